"""Runs the chosen rows one after another and writes the report."""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench.base import BenchOptions, RowContext, RowSpec, stderr_logger
from bench.environment import (
    BenchServer,
    CorePlan,
    Databases,
    bench_server,
    describe_cores,
    machine_facts,
    pin_tree,
    plan_cores,
    server_facts,
)
from bench.report import write_report
from bench.results import BenchReport, RowResult
from bench.rows import ROWS


def command_line(options: BenchOptions) -> str:
    """The exact ``python -m bench`` command that reproduces a run."""
    parts = [
        "python -m bench",
        f"--rows {','.join(str(r) for r in options.rows)}",
        f"--events {options.events}",
        f"--writers {','.join(str(w) for w in options.writers)}",
        f"--runs {options.runs}",
        f"--rate {options.rate:g}",
        f"--lag-seconds {options.lag_seconds:g}",
        f"--scale-events {options.scale_events}",
        f"--out {options.out}",
    ]
    if not options.pin:
        parts.append("--no-pin")
    if not options.charts:
        parts.append("--no-charts")
    if not options.profile:
        parts.append("--no-profile")
    return " ".join(parts)


async def _run_row(spec: RowSpec, ctx: RowContext, facts: dict[str, Any]) -> RowResult:
    if not facts:
        facts.update(await server_facts(ctx.server.dsn))
    return await spec.run(ctx)


def run_row(
    spec: RowSpec, options: BenchOptions, plan: CorePlan, facts: dict[str, Any]
) -> RowResult:
    """One row on its own PostgreSQL server; a failure becomes a 'failed' row."""
    log = stderr_logger(options.quiet)
    why = spec.available()
    if why is not None:
        log(f"row {spec.number} skipped: {why}")
        return RowResult(spec.number, spec.slug, spec.title, status="skipped", reason=why)
    log(f"row {spec.number}: {spec.title}")
    start = time.perf_counter()
    server: BenchServer | None = None
    try:
        with bench_server(plan) as server:
            ctx = RowContext(
                options=options,
                server=server,
                databases=Databases(server.dsn),
                cores=plan,
                log=log,
            )
            result = asyncio.run(_run_row(spec, ctx, facts))
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log(f"row {spec.number} failed: {detail}")
        log(traceback.format_exc())
        result = RowResult(
            spec.number, spec.slug, spec.title, status="failed", reason=detail[:2000]
        )
    result.seconds = time.perf_counter() - start
    return result


def run_bench(options: BenchOptions) -> tuple[BenchReport, dict[str, Any]]:
    """Runs every requested row in order; returns the report and the written paths."""
    started = datetime.now(UTC)
    plan = plan_cores(options.pin)
    pin_tree(os.getpid(), plan.loadgen)
    machine = machine_facts()
    facts: dict[str, Any] = {}
    rows: list[RowResult] = []
    for number in options.rows:
        spec = ROWS.get(number)
        if spec is None:
            rows.append(RowResult(number, "unknown", f"row {number}", "skipped", "no such row"))
            continue
        rows.append(run_row(spec, options, plan, facts))
        # Written after every row, so an interrupted run keeps what it measured.
        write_report(
            _report(options, started, machine, facts, plan, rows), options.out, charts=False
        )
    return _finish(options, started, machine, facts, plan, rows)


def _finish(
    options: BenchOptions,
    started: datetime,
    machine: dict[str, Any],
    facts: dict[str, Any],
    plan: CorePlan,
    rows: list[RowResult],
) -> tuple[BenchReport, dict[str, Any]]:
    report = _report(options, started, machine, facts, plan, rows)
    paths = write_report(report, options.out, charts=options.charts)
    return report, dict(paths)


def _report(
    options: BenchOptions,
    started: datetime,
    machine: dict[str, Any],
    facts: dict[str, Any],
    plan: CorePlan,
    rows: list[RowResult],
) -> BenchReport:
    machine = dict(machine)
    if facts:
        machine["postgresql"] = facts
    external = bool(os.environ.get("CARETEAM_DATABASE_URL"))
    return BenchReport(
        command=command_line(options),
        started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        runs=options.runs,
        events=options.events,
        writers=list(options.writers),
        machine=machine,
        placement={
            "bench process (load generator; runs careteam's store and projector code)": (
                describe_cores(plan.loadgen)
            ),
            "PostgreSQL server (postmaster and every backend)": (
                "not pinned: external server (CARETEAM_DATABASE_URL)"
                if external
                else describe_cores(plan.server)
                + (" (embedded, one per row, in a temporary folder)")
            ),
            "careteam serve and the raw endpoints (rows 3, 4, 6, 7); Kafka broker (row 5)": (
                describe_cores(plan.server)
            ),
        },
        rows=list(rows),
    )
