"""Tamper evidence: the chain notices every change made behind the application's back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.chain import seal_once, verify
from services.audit.signing import chain_passes_through, make_checkpoint, signature_ok
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore
from services.settings import Settings
from tests.factories import new_patient

META = EventMetadata(actor_id="tester", role="care_manager", organisation_id="org")


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    pool = await create_pool(db_dsn, Settings())
    store = EventStore(pool)
    now = datetime.now(UTC)
    for _ in range(5):
        patient = new_patient(now=now)
        patient.enroll(occurred_at=now, now=now)
        await store.append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0,
            events=patient.collect_events(),
            metadata=META,
            now=now,
        )
    async with pool.acquire() as c:
        await c.execute(
            "INSERT INTO access_log (operation, outcome, reason) VALUES ('patient', 'denied', 'X')"
        )
    await pool.close()
    connection = await asyncpg.connect(db_dsn)
    while await seal_once(connection):
        pass
    yield connection
    await connection.close()


async def _behind_the_back(conn: asyncpg.Connection, sql: str, table: str = "events") -> None:
    """A superuser disables the append-only triggers and changes rows directly."""
    await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    await conn.execute(sql)
    await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def test_an_untouched_log_verifies(conn: asyncpg.Connection) -> None:
    """Ten events and one access record, sealed: nothing to report."""
    report = await verify(conn)
    assert report.ok and report.links_checked == 11


async def test_the_application_cannot_update_or_delete_events(conn: asyncpg.Connection) -> None:
    """The append-only triggers refuse UPDATE, DELETE and TRUNCATE."""
    for sql in (
        "UPDATE events SET event_type = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE access_log SET reason = 'y'",
        "DELETE FROM audit_chain",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)


async def test_an_edited_event_is_reported(conn: asyncpg.Connection) -> None:
    """A payload changed with SQL shows up as edited, naming the row."""
    position = await conn.fetchval("SELECT min(position) FROM events")
    await _behind_the_back(
        conn,
        f'UPDATE events SET payload = payload || \'{{"mrn": "X"}}\' WHERE position = {position}',
    )
    report = await verify(conn)
    assert report.edited == [f"event:{position}"] and not report.ok


async def test_a_deleted_event_is_reported(conn: asyncpg.Connection) -> None:
    """A row removed with SQL shows up as deleted."""
    position = await conn.fetchval("SELECT max(position) FROM events")
    await _behind_the_back(conn, f"DELETE FROM events WHERE position = {position}")
    assert (await verify(conn)).deleted == [f"event:{position}"]


async def test_an_inserted_event_is_reported(conn: asyncpg.Connection) -> None:
    """A row slipped in below the sealed head is reported as inserted."""
    await _behind_the_back(
        conn,
        """INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, stream_version,
                               patient_id, event_type, event_version, payload, metadata,
                               occurred_at)
           OVERRIDING SYSTEM VALUE
           SELECT 0, '1'::xid8, gen_random_uuid(), stream_id, stream_type, 99, patient_id,
                  event_type, 1, payload, metadata, occurred_at
           FROM events LIMIT 1""",
    )
    assert (await verify(conn)).inserted == ["event:0"]


async def test_reordered_events_are_reported(conn: asyncpg.Connection) -> None:
    """Swapping two rows' transaction ids changes the log order: both links break."""
    first, last = await conn.fetchrow("SELECT min(position), max(position) FROM events")
    await _behind_the_back(
        conn,
        f"""UPDATE events e SET tx_id = o.tx_id
            FROM events o
            WHERE (e.position, o.position) IN (({first}, {last}), ({last}, {first}))""",
    )
    report = await verify(conn)
    assert sorted(report.edited) == sorted([f"event:{first}", f"event:{last}"])


async def test_an_edited_access_record_is_reported(conn: asyncpg.Connection) -> None:
    """Reads and denials are chained too."""
    await _behind_the_back(conn, "UPDATE access_log SET reason = 'nothing'", table="access_log")
    report = await verify(conn)
    assert [e for e in report.edited if e.startswith("access:")]


async def test_a_signed_checkpoint_checks_offline_and_pins_the_chain(
    conn: asyncpg.Connection,
) -> None:
    """A forged signature fails; a rewritten chain no longer passes through the checkpoint."""
    checkpoint = await make_checkpoint(conn, Ed25519PrivateKey.generate())
    assert signature_ok(checkpoint)
    assert await chain_passes_through(conn, checkpoint)
    forged = json.loads(json.dumps(checkpoint))
    forged["head_hash"] = "11" * 32
    assert not signature_ok(forged)
    await _behind_the_back(
        conn, "UPDATE audit_chain SET link_hash = sha256(link_hash)", table="audit_chain"
    )
    assert not await chain_passes_through(conn, checkpoint)
    assert not (await verify(conn)).ok
