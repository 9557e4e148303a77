"""Tiny real runs of rows 8 and 9 against the test PostgreSQL server: smoke only.

Row 8 loads 200 patients with row 7's loader, builds their search index with the
backfill and sends every search to a real ``careteam serve`` and to the raw endpoint; row
9 seeds a small caseload and reads the worklist from both. Each checks that careteam and
the raw endpoint answered every probe the same and that no request failed. Nothing is
asserted about a duration.
"""

from __future__ import annotations

from pathlib import Path

from bench import row8_search, row9_worklist
from bench.base import BenchOptions
from bench.results import RowResult
from tests.unit.bench.support import assert_no_databases_left, row_context


def _assert_measured_and_equal(result: RowResult) -> None:
    assert result.status == "measured"
    for key in ("careteam_rate", "raw_rate", "careteam_p99", "raw_p99"):
        series = result.series_by_key(key)
        assert len(series.runs) == 1 and series.runs[0] > 0
    assert len(result.comparisons) == 1 and result.comparisons[0].target is not None
    failed, differing = result.checks
    assert failed.value == 0, failed.detail
    assert differing.value == 0, differing.detail


async def test_row_8_searches_answer_the_same_patients_from_careteam_and_raw(
    db_dsn: str, tmp_path: Path
) -> None:
    options = BenchOptions(rows=(8,), runs=1, out=tmp_path, profile=False)
    ctx = row_context(db_dsn, options)
    result = await row8_search.measure_with(ctx, patients=200, requests=20)

    _assert_measured_and_equal(result)
    assert any("200 patients (1,000 events)" in n for n in result.notes)
    assert any("search index of 200 patients" in n for n in result.notes)
    sizes = next(n for n in result.notes if n.startswith("Patients per answer"))
    # Every search is taken from one of the care manager's patients: none finds nobody.
    assert "per answer over the 16 distinct requests: 0 " not in sizes

    await assert_no_databases_left(db_dsn)


async def test_row_9_worklist_answers_the_same_items_from_careteam_and_raw(
    db_dsn: str, tmp_path: Path
) -> None:
    options = BenchOptions(rows=(9,), runs=1, out=tmp_path, profile=False)
    ctx = row_context(db_dsn, options)
    result = await row9_worklist.measure_with(ctx, patients=12, requests=10)

    _assert_measured_and_equal(result)
    items = next(n for n in result.notes if n.startswith("Items per answer"))
    assert "requests: 0 to 0" not in items

    await assert_no_databases_left(db_dsn)
