"""A tiny real run of row 7 against the test PostgreSQL server: smoke only.

Both databases are loaded with COPY, projected and sealed; every role's query answers
over HTTP from a real ``careteam serve`` at both sizes. Nothing is asserted about a
duration.
"""

from __future__ import annotations

from pathlib import Path

from bench import row7_scale
from bench.base import BenchOptions
from tests.unit.bench.support import assert_no_databases_left, row_context


async def test_row_7_loads_both_scales_and_every_role_query_answers(
    db_dsn: str, tmp_path: Path
) -> None:
    options = BenchOptions(rows=(7,), runs=1, out=tmp_path, profile=False)
    ctx = row_context(db_dsn, options)
    result = await row7_scale.measure_with(ctx, large_events=1_000, requests=3, seconds=0.0)

    assert result.status == "measured"
    failed = next(c for c in result.checks if "failed" in c.label)
    assert failed.value == 0, failed.detail
    for query in row7_scale.QUERIES:
        for scale in ("small", "large"):
            series = result.series_by_key(f"{query.key}_{scale}_p99")
            assert len(series.runs) == 1 and series.runs[0] > 0
    assert result.series_by_key("large_log_bytes_per_event").runs[0] > 0
    assert any("1,000 events, 20 patients" in note for note in result.notes)
    # 20 patients: one care manager, one PCP and one consultant hold them all.
    rows = next(n for n in result.notes if n.startswith("Rows in each answer at 1,000"))
    assert "caseload 20," in rows and "panel 20," in rows and "patient 1," in rows

    await assert_no_databases_left(db_dsn)
