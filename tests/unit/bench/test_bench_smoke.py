"""A tiny real run of row 1 against the test PostgreSQL server: smoke only.

It checks that every system ran, that the tailing reader saw every event once and in
order, and that the report can be written; it never asserts anything about a duration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import row1_appends
from bench.base import BenchOptions
from bench.report import write_report
from bench.results import BenchReport
from tests.unit.bench.support import assert_no_databases_left, row_context


async def test_row_1_runs_every_system_and_the_tailing_reader_skips_nothing(
    db_dsn: str, tmp_path: Path
) -> None:
    options = BenchOptions(rows=(1,), events=60, writers=(1, 3), runs=1, out=tmp_path)
    ctx = row_context(db_dsn, options)
    result = await row1_appends.measure(ctx)

    assert result.status == "measured"
    systems = ["careteam", "raw"]
    if row1_appends.library_missing() is None:
        systems.append("library")
    else:
        assert any("Library baseline not measured" in n for n in result.notes)
    for system in systems:
        for writers in (1, 3):
            series = result.series_by_key(f"{system}_w{writers}")
            assert len(series.runs) == 1 and series.runs[0] > 0
    skipped = [c for c in result.checks if "skipped" in c.label]
    assert [c.value for c in skipped] == [0.0, 0.0]
    assert all("60 appended; duplicates 0, out of order 0" in c.detail for c in skipped)
    assert all(not math.isnan(c.median) for c in result.comparisons)
    storage = result.series_by_key("careteam_bytes_per_event")
    assert storage.runs[0] > 0

    report = BenchReport(
        command="python -m bench --rows 1 --events 60",
        started_at="",
        finished_at="",
        runs=1,
        events=60,
        writers=[1, 3],
        machine={},
        placement={},
        rows=[result],
    )
    paths = write_report(report, tmp_path, charts=False)
    assert json.loads(paths["json"].read_text())["rows"][0]["status"] == "measured"

    await assert_no_databases_left(db_dsn)
