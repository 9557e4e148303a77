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
import os
import socket
from pathlib import Path

import asyncpg
import pytest

from services.bench import row5_relay
from services.bench.base import BenchOptions, RowContext
from services.bench.environment import DB_PREFIX, BenchServer, CorePlan, Databases

pytestmark = pytest.mark.kafka

ENV_VAR = row5_relay.BOOTSTRAP_ENV
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
EVENTS = 300


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def kafka_bootstrap(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test broker, also set in the environment so the row uses it rather than
    starting its own; fails the test when there is none."""
    bootstrap = os.environ.get(ENV_VAR)
    if not bootstrap:
        host, port = DEFAULT_BOOTSTRAP.rsplit(":", 1)
        if not _listening(host, int(port)):
            pytest.fail(
                f"No Kafka broker: {ENV_VAR} is unset and nothing listens on "
                f"{DEFAULT_BOOTSTRAP}. Start one with `bash deploy/kafka/kafka.sh start`, "
                f"or set {ENV_VAR} to an existing cluster.",
                pytrace=False,
            )
        bootstrap = DEFAULT_BOOTSTRAP
    monkeypatch.setenv(ENV_VAR, bootstrap)
    return bootstrap


async def test_row_5_runs_both_systems_and_the_relay_delivers_every_event_once(
    db_dsn: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    assert row5_relay.broker_missing() is None
    options = BenchOptions(rows=(5,), events=EVENTS, runs=1, out=tmp_path, profile=False)
    ctx = RowContext(
        options=options,
        server=BenchServer(dsn=db_dsn),
        databases=Databases(db_dsn),
        cores=CorePlan(),
    )
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

    conn = await asyncpg.connect(db_dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1", f"{DB_PREFIX}%"
        )
    finally:
        await conn.close()
    assert left == 0, "the benchmark left its databases behind"
