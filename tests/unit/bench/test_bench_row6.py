"""A tiny real run of row 6 against the test PostgreSQL server: smoke only.

One and three WebSocket subscribers, a handful of events, one run: every delivery must
arrive and every series must exist; nothing is asserted about a duration.
"""

from __future__ import annotations

from pathlib import Path

from bench import row6_fanout
from bench.base import BenchOptions
from tests.unit.bench.support import assert_no_databases_left, row_context

SMALL, LARGE = 1, 3
EVENTS = 4


async def test_row_6_delivers_every_event_to_every_subscriber(db_dsn: str, tmp_path: Path) -> None:
    options = BenchOptions(rows=(6,), events=EVENTS, runs=1, out=tmp_path, charts=False)
    ctx = row_context(db_dsn, options)
    result = await row6_fanout.measure_with(
        ctx, subscribers=(SMALL, LARGE), events=EVENTS, rate=row6_fanout.RATE
    )

    assert result.status == "measured"
    [missing] = [c for c in result.checks if c.label.startswith("deliveries missing")]
    assert missing.value == 0.0, missing.detail
    assert missing.detail.startswith(f"{EVENTS * (SMALL + LARGE)} expected")
    assert "0 duplicates; 0 mutations failed" in missing.detail
    for n in (SMALL, LARGE):
        for suffix in ("p50", "p99", "mutation_p50", "deliveries"):
            series = result.series_by_key(f"n{n}_{suffix}")
            assert len(series.runs) == 1 and series.runs[0] > 0
        assert len(result.series_by_key(f"n{n}_api_rss").runs) == 1
    [ratio] = result.comparisons
    assert (ratio.subject, ratio.baseline) == (f"n{LARGE}_p99", f"n{SMALL}_p99")
    assert ratio.target is None and len(ratio.ratios) == 1

    await assert_no_databases_left(db_dsn)
