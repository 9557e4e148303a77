"""Exactly-once read models: a projector killed with SIGKILL mid catch-up loses nothing
and applies nothing twice."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from projections.registry import projection_tables
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import EventStore
from services.seed import DemoTeam, seed_caseload
from services.settings import Settings
from tests.integration.readmodels_support import read_model_positions

MASTER = os.urandom(32)
TEAM = DemoTeam(
    organisation_id=UUID("00000000-0000-4000-8000-000000000001"),
    care_manager_id=UUID("00000000-0000-4000-8000-0000000000c1"),
    pcp_id=UUID("00000000-0000-4000-8000-0000000000b1"),
    psychiatric_consultant_id=UUID("00000000-0000-4000-8000-0000000000a1"),
)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        yield EventStore(pool, keyring=KeyRing(MASTER))
    finally:
        await pool.close()


def _projector(db_dsn: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CARETEAM_DATABASE_URL": db_dsn,
        "CARETEAM_DATA_DIR": str(data_dir),
        "CARETEAM_MASTER_KEY": base64.b64encode(MASTER).decode(),
        "CARETEAM_PROJECTOR_PAGE_SIZE": "7",
    }
    env.pop("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "projector"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _positions(conn: asyncpg.Connection) -> dict[str, int]:
    return await read_model_positions(conn)


async def test_a_projector_killed_mid_catch_up_and_restarted_has_exact_totals(
    store: EventStore, db_dsn: str, tmp_path: Path
) -> None:
    """Minutes per patient and per month match the log exactly after a SIGKILL and restart."""
    await seed_caseload(Application(store), TEAM, patients=30, now=datetime.now(UTC))
    conn = await asyncpg.connect(db_dsn)
    try:
        head = await conn.fetchval("SELECT max(position) FROM events")
        first = _projector(db_dsn, tmp_path)
        try:
            async with asyncio.timeout(120):
                while True:
                    reached = (await _positions(conn)).values()
                    if reached and max(reached) > head // 3:
                        break
                    await asyncio.sleep(0.05)
            mid = await _positions(conn)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert min(mid.values(), default=0) < head, "killed in the middle of the catch-up"

        second = _projector(db_dsn, tmp_path)
        try:
            async with asyncio.timeout(180):
                while True:
                    reached = await _positions(conn)
                    if len(reached) == len(projection_tables()) and set(reached.values()) == {head}:
                        break
                    await asyncio.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)

        from_log = {
            r["patient_id"]: r["minutes"]
            for r in await conn.fetch(
                """SELECT patient_id, sum((payload->>'minutes')::int) AS minutes FROM events
                   WHERE event_type = 'patient.contact_logged' GROUP BY patient_id"""
            )
        }
        in_view = {
            r["key"]: r["minutes"]
            for r in await conn.fetch(
                "SELECT key, (doc->>'minutes_total')::int AS minutes FROM rm_patient_view"
            )
        }
        assert in_view == from_log
        month_log = await conn.fetch(
            """SELECT date_trunc('month', occurred_at) AS m, sum((payload->>'minutes')::int) AS n
               FROM events WHERE event_type = 'patient.contact_logged' GROUP BY 1 ORDER BY 1"""
        )
        month_model = await conn.fetch(
            """SELECT date_trunc('month', occurred_at) AS m, sum(minutes) AS n
               FROM rm_billing_minutes GROUP BY 1 ORDER BY 1"""
        )
        assert [tuple(r) for r in month_model] == [tuple(r) for r in month_log]
    finally:
        await conn.close()
