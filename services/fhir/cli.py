"""``careteam fhir-import FILE``: import a registry CSV or a FHIR Bundle into a running
server, with a progress bar.

A client of ``POST /fhir/$import`` (never a side door to the database): the server
authorises, audits and writes exactly as for any other request, with the token's user as
the actor. The progress bar goes to stderr, the report (JSON) to stdout or ``--report``.
The exit status is 0 when nothing was rejected, 1 when some rows were, 2 on a refusal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BAR_WIDTH = 30


def add_cli(subparsers: Any) -> None:
    """Registers ``fhir-import`` on the careteam command line."""
    parser = subparsers.add_parser(
        "fhir-import", help="import a registry CSV or a FHIR Bundle into a running server"
    )
    parser.add_argument("file", type=Path, help="a .csv (registry) or .json (FHIR Bundle)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument(
        "--token", help="bearer token of a care manager or PCP (default $CARETEAM_TOKEN)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and report only")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.set_defaults(func=_import_command)


def _bar(done: int, total: int) -> str:
    filled = BAR_WIDTH if total == 0 else BAR_WIDTH * done // total
    return f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"


def _import_command(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("CARETEAM_TOKEN")
    if not token:
        print("a token is needed: --token or CARETEAM_TOKEN", file=sys.stderr)
        return 2
    kind = "text/csv" if args.file.suffix.lower() == ".csv" else "application/fhir+json"
    headers = {"Authorization": f"Bearer {token}"}
    base = args.url.rstrip("/")
    with httpx.Client(timeout=60.0) as client:
        started = client.post(
            f"{base}/fhir/$import",
            params={"dryRun": "true" if args.dry_run else "false"},
            content=args.file.read_bytes(),
            headers={**headers, "Content-Type": kind},
        )
        if started.status_code != 202:
            print(f"refused ({started.status_code}): {started.text}", file=sys.stderr)
            return 2
        status_url = started.headers["Content-Location"]
        while True:
            status = client.get(status_url, headers=headers)
            done, _, total = status.headers.get("X-Progress", "0/0").partition("/")
            print(_bar(int(done), int(total or 0)), end="", file=sys.stderr, flush=True)
            if status.status_code != 202:
                break
            time.sleep(0.5)
    print(file=sys.stderr)
    if status.status_code != 200:
        print(f"failed ({status.status_code}): {status.text}", file=sys.stderr)
        return 2
    report: dict[str, Any] = status.json()
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(text + "\n")
        print(json.dumps(report["counts"]), file=sys.stderr)
    else:
        print(text)
    return 1 if report["counts"].get("rejected") else 0
