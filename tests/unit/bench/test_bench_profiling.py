"""Profiles in the report: collapsed stacks summarised by function, package and own code."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench import profiling

COLLAPSED = "\n".join(
    [
        "main (services/cli.py:10);caseload (services/api/registry/queries.py:40);"
        "loads (json/decoder.py:337) 6",
        "main (services/cli.py:10);caseload (services/api/registry/queries.py:41);"
        "caseload_row (projections/caseload.py:600) 3",
        "run (asyncio/runners.py:118);select (selectors.py:468) 1",
        "not a stack line",
    ]
)


def test_own_time_is_the_frame_on_top_and_lines_are_merged() -> None:
    samples, own, _inclusive = profiling.summarise(COLLAPSED)
    assert samples == 10
    assert own[0] == ("loads (json/decoder.py)", 60.0)
    assert ("caseload_row (projections/caseload.py)", 30.0) in own


def test_inclusive_time_lists_careteam_code_without_the_entry_point() -> None:
    _samples, _own, inclusive = profiling.summarise(COLLAPSED)
    assert inclusive[0] == ("caseload (services/api/registry/queries.py)", 90.0)
    assert all("cli.py" not in name and "asyncio" not in name for name, _ in inclusive)


def test_own_time_by_package() -> None:
    assert profiling.by_package(COLLAPSED)[:2] == [("json", 60.0), ("projections", 30.0)]


def test_a_live_process_is_sampled(tmp_path: Path) -> None:
    """py-spy attaches to a busy Python process and the profile names its function."""
    busy = subprocess.Popen(
        [sys.executable, "-c", "def spin():\n    while True: sum(range(1000))\nspin()"]
    )
    try:
        with profiling.sample(busy.pid, tmp_path / "p.txt", "busy") as profile:
            time.sleep(1.5)
    finally:
        busy.kill()
        busy.wait()
    assert profile.error == "", f"py-spy could not sample: {profile.error}"
    assert profile.samples > 0
    assert any(name.startswith("spin (") for name, _ in profile.own)
