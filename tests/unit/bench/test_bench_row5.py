"""A tiny real run of row 5 against the test PostgreSQL server and the real Kafka broker.

Smoke only: both systems ran, the relay's topic held every event exactly once and in
order, and the row cleaned up its databases; nothing is asserted about a duration. The
broker is the one the Kafka integration tests use (CARETEAM_KAFKA_BOOTSTRAP_SERVERS, or
the one ``deploy/kafka/kafka.sh start`` runs on 127.0.0.1:9092); that conftest's fixture
is not visible from here, so this module has its own, and like it, fails without a broker
instead of skipping.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import row5_relay
from bench.base import BenchOptions
from tests.unit.bench.support import assert_no_databases_left, row_context

pytestmark = pytest.mark.kafka

EVENTS = 300


@pytest.fixture
def row_broker(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test broker (tests/conftest.py), also set in the environment so the row uses
    it rather than starting its own."""
    monkeypatch.setenv(row5_relay.BOOTSTRAP_ENV, kafka_bootstrap)
    return kafka_bootstrap


async def test_row_5_runs_both_systems_and_the_relay_delivers_every_event_once(
    db_dsn: str, row_broker: str, tmp_path: Path
) -> None:
    assert row5_relay.broker_missing() is None
    options = BenchOptions(rows=(5,), events=EVENTS, runs=1, out=tmp_path, profile=False)
    ctx = row_context(db_dsn, options)
    result = await row5_relay.measure(ctx)

    assert result.status == "measured"
    for system in ("careteam", "raw"):
        series = result.series_by_key(system)
        assert len(series.runs) == 1 and series.runs[0] > 0
    [ratio] = result.comparisons
    assert not math.isnan(ratio.median)
    assert ratio.target is not None
    exactly_once, in_order = result.checks
    assert exactly_once.value == 0.0, exactly_once.detail
    assert f"{EVENTS} records read back; missing 0, duplicated 0" in exactly_once.detail
    assert f"the raw producer's topics held {EVENTS} records" in exactly_once.detail
    assert in_order.value == 0.0
    assert result.placement["Kafka broker"].startswith("external broker")
    assert "Kafka storage not measured: the broker is external." in result.notes
    assert result.method.startswith("Row 5:")

    await assert_no_databases_left(db_dsn)
