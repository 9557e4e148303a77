"""``python -m bench``: run the benchmark rows and write the report.

Wire it into the main CLI with ``add_cli(subparsers)``; ``python -m bench``
runs the same command on its own.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.base import DEFAULT_ROWS, BenchOptions
from bench.results import fmt

DESCRIPTION = """Measure careteam against baselines run on the same machine and server:
row 1 appends (vs the eventsourcing library's PostgreSQL recorder and raw asyncpg
INSERTs), row 2 projection rebuild (vs COPY), row 3 the caseload query over HTTP (vs a
raw Starlette + asyncpg endpoint), row 4 mutation-to-read-model lag over HTTP (vs a raw
asyncpg round trip), row 5 the relay to Kafka (vs a raw aiokafka producer), row 6
subscription fan-out to 200 WebSockets (vs one), row 7 every role's query at 1M events
(vs 10,000), row 8 searchPatients among 20,000 patients and row 9 a worklist of 150
patients (each vs a raw Starlette + asyncpg endpoint). Each row starts its own embedded
PostgreSQL in a temporary folder unless CARETEAM_DATABASE_URL is set (then it creates and
drops careteam_bench_* databases there). Writes report.md, report.json, charts/ and
profiles/ to --out. Never fails on a duration."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {text}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers: {text}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number: {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number: {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number: {text}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number: {text}")
    return value


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``bench`` on the main CLI's subparsers."""
    defaults = BenchOptions()
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the benchmarks and write a report (Markdown, JSON, charts)",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--rows",
        type=_int_list,
        default=DEFAULT_ROWS,
        help="rows to run, in order (default all nine: 1,2,3,4,5,6,7,8,9)",
    )
    parser.add_argument(
        "--events",
        type=_positive_int,
        default=defaults.events,
        help=f"events per measurement in rows 1 and 2 (default {defaults.events})",
    )
    parser.add_argument(
        "--writers",
        type=_int_list,
        default=defaults.writers,
        help="concurrent writers in row 1 (default 1,16; targets apply at 16)",
    )
    parser.add_argument(
        "--runs",
        type=_positive_int,
        default=defaults.runs,
        help=f"runs per figure; the report gives medians (default {defaults.runs})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=defaults.out,
        help=f"folder for the report (default {defaults.out}/)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=defaults.rate,
        help=f"row 4: commands per second, open loop (default {defaults.rate:g})",
    )
    parser.add_argument(
        "--lag-seconds",
        type=_positive_float,
        default=defaults.lag_seconds,
        help=f"row 4: seconds of load per run after a 2 s warm-up (default "
        f"{defaults.lag_seconds:g})",
    )
    parser.add_argument(
        "--scale-events",
        type=_positive_int,
        default=defaults.scale_events,
        help=f"row 7: events in the large database, 50 per patient (default "
        f"{defaults.scale_events:,}; the small one has 10,000)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the bench process and PostgreSQL to separate cores",
    )
    parser.add_argument("--no-charts", action="store_true", help="do not write PNG charts")
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="do not sample the careteam process with py-spy during each row's last run",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=_cmd_bench)
    return parser


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        rows=tuple(args.rows),
        events=args.events,
        writers=tuple(args.writers),
        runs=args.runs,
        out=Path(args.out),
        rate=args.rate,
        lag_seconds=args.lag_seconds,
        scale_events=args.scale_events,
        pin=not args.no_pin,
        charts=not args.no_charts,
        profile=not args.no_profile,
        quiet=args.quiet,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from bench.report import target_lines, verdict
    from bench.runner import run_bench

    # The row code logs through the application's loggers; keep progress readable.
    logging.getLogger("careteam").setLevel(logging.WARNING)
    report, paths = run_bench(options_from_args(args))
    print(f"report: {paths['markdown']}")
    print(f"data:   {paths['json']}")
    for row in report.rows:
        if row.status != "measured":
            print(f"row {row.number} {row.status}: {row.reason}")
            continue
        for line in target_lines(row):
            unit = "x" if line["unit"] == "x" else f" {line['unit']}"
            print(
                f"row {row.number} {line['figure']}: {fmt(line['value'])}{unit} "
                f"(target {line['target']}): {verdict(line['met'])}"
                + (f", {line['gap']}" if line["met"] is False else "")
            )
    failed = [r for r in report.rows if r.status == "failed"]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
