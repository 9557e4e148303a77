"""The VACUUM after an erasure: tables are rewritten, and a table it cannot lock in time
gets a plain VACUUM instead of stalling the API."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from domain.patient import Patient
from projections.registry import all_projections
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.erasure import forget_patient
from services.erasure_cleanup import PLAINTEXT_TABLES, vacuum_after_erasure
from services.eventstore import EventMetadata, EventStore
from services.projector.runner import ProjectionRunner
from services.settings import Settings
from tests.factories import ORG

META = EventMetadata(actor_id="admin", role="admin", organisation_id=str(ORG))


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def _files(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, relfilenode FROM pg_class WHERE relname = ANY($1::text[])",
        list(PLAINTEXT_TABLES),
    )
    return {r["relname"]: r["relfilenode"] for r in rows}


async def test_every_table_that_held_plaintext_is_rewritten_into_new_files(db_dsn: str) -> None:
    """VACUUM FULL gives each table a new file; the session's lock timeout is restored."""
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await _files(conn)
        assert set(before) == set(PLAINTEXT_TABLES)
        await vacuum_after_erasure(conn)
        after = await _files(conn)
        assert all(after[name] != before[name] for name in PLAINTEXT_TABLES)
        assert await conn.fetchval("SHOW lock_timeout") == "0"
    finally:
        await conn.close()


async def test_a_table_held_by_a_long_transaction_gets_a_plain_vacuum_instead_of_a_stall(
    db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The others are rewritten; the locked one keeps its file; it all ends in seconds."""
    holder = await asyncpg.connect(db_dsn)
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await _files(conn)
        tx = holder.transaction()
        await tx.start()
        await holder.fetch("SELECT * FROM rm_registry LIMIT 1")
        started = time.monotonic()
        async with asyncio.timeout(60):
            await vacuum_after_erasure(conn)
        elapsed = time.monotonic() - started
        await tx.rollback()
        after = await _files(conn)
        assert after["rm_registry"] == before["rm_registry"]
        others = [name for name in PLAINTEXT_TABLES if name != "rm_registry"]
        assert all(after[name] != before[name] for name in others)
        assert elapsed < 20
        assert "not granted its lock" in caplog.text
    finally:
        await holder.close()
        await conn.close()


async def test_a_replay_through_several_erasures_vacuums_once_at_the_end_of_the_log(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages of a catch-up holding erasures leave one VACUUM, after the last page."""
    now = datetime.now(UTC)
    app = Application(store)
    for n in range(3):
        patient = Patient.register(
            given_name=f"G{n}",
            family_name=f"F{n}",
            birth_date=date(1980, 1, 1 + n),
            mrn=f"M{n}",
            organisation_id=ORG,
            occurred_at=now,
            now=now,
        )
        await app.create(patient, metadata=META, now=now)
        await forget_patient(store, patient.id, reason="request", metadata=META, now=now)
    caplog.set_level(logging.INFO, logger="careteam.erasure")
    runner = ProjectionRunner(store, all_projections(), page_size=2)
    assert await runner.catch_up() == 6
    assert caplog.text.count("vacuumed") == 1
