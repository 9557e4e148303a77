"""Crypto-shredding: a forgotten patient cannot be read back from anywhere careteam stores."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from domain.patient import Patient
from projections.registry import all_projections
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore
from services.projector.runner import ProjectionRunner
from services.relay import Relay, RelayOptions, relay_lag
from services.settings import Settings
from tests.factories import ORG

pytestmark = pytest.mark.kafka

# Synthetic identity, chosen to be unmistakable in a search of every table and message.
GIVEN, FAMILY, MRN, BORN = "Zebulonqx", "Quixotlyn", "MRN-ZQ-77123", date(1971, 7, 19)
NEEDLES = (GIVEN, FAMILY, MRN, BORN.isoformat())
META = EventMetadata(actor_id="admin", role="admin", organisation_id=str(ORG))


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=6))
    try:
        yield EventStore(pool, snapshot_every=2, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def _database_text(conn: asyncpg.Connection) -> str:
    """Every row of every table in the database, as text."""
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    parts = []
    for t in tables:
        rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["tablename"]}" t')
        parts.extend(r["row"] for r in rows)
    return "\n".join(parts)


async def _topic_text(bootstrap: str, topic: str) -> str:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        values = [r.value or b"" for records in batches.values() for r in records]
        keys = [r.key or b"" for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return "\n".join(v.decode() for v in values + keys)


async def test_a_forgotten_patient_is_unreadable_everywhere_while_the_log_still_replays(
    store: EventStore, db_dsn: str, kafka_bootstrap: str, fresh_topic: str, tmp_path: Path
) -> None:
    """Names, MRN and birth date vanish from the database, read models and Kafka."""
    app = Application(store)
    now = datetime.now(UTC)
    patient = Patient.register(
        given_name=GIVEN,
        family_name=FAMILY,
        birth_date=BORN,
        mrn=MRN,
        organisation_id=ORG,
        occurred_at=now,
        now=now,
    )
    patient.enroll(occurred_at=now, now=now)
    await app.create(patient, metadata=META, now=now)
    for minutes in (10, 20, 30):
        await app.execute(
            Patient,
            patient.id,
            lambda p, m=minutes: p.log_contact(  # type: ignore[misc]
                activity="contact", modality="phone", minutes=m, occurred_at=now, now=now
            ),
            metadata=META,
            now=now,
        )
    loaded = await store.load(Patient, patient.id)  # writes a snapshot (snapshot_every=2)
    assert loaded.given_name == GIVEN
    runner = ProjectionRunner(store, all_projections())
    await runner.catch_up()

    async with store.pool.acquire() as conn:
        raw = await conn.fetchval("SELECT payload::text FROM events WHERE stream_version = 1")
    assert GIVEN not in raw and "$enc" in raw, "identifying fields are stored encrypted"

    relay = Relay(
        store,
        bootstrap_servers=kafka_bootstrap,
        topic=fresh_topic,
        options=RelayOptions(page_size=50),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await forget_patient(store, patient.id, reason="erasure request 42", metadata=META, now=now)
        await runner.catch_up()
        async with asyncio.timeout(30):
            while (await relay_lag(store.pool, "relay:internal")).events_behind:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)

    replayed = await store.load(Patient, patient.id)
    assert (replayed.given_name, replayed.family_name, replayed.mrn, replayed.birth_date) == (
        None,
        None,
        None,
        None,
    )
    assert sum(c.minutes for c in replayed.contacts) == 60, "the clinical log still replays"

    async with store.pool.acquire() as conn:
        everything = await _database_text(conn)
        view = await conn.fetchval("SELECT doc FROM rm_patient_view WHERE key = $1", patient.id)
    assert view["given_name"] is None and view["minutes_total"] == 60
    for needle in NEEDLES:
        assert needle not in everything
        assert base64.b64encode(needle.encode()).decode() not in everything

    published = await _topic_text(kafka_bootstrap, fresh_topic)
    assert "patient.registered" in published and "patient.forgotten" in published
    for needle in NEEDLES:
        assert needle not in published


async def test_no_new_identifying_data_can_be_stored_for_a_forgotten_patient(
    store: EventStore,
) -> None:
    """The destroyed key is never re-created."""
    from services.crypto import PatientForgottenError

    now = datetime.now(UTC)
    patient = Patient.register(
        given_name="A",
        family_name="B",
        birth_date=date(1990, 1, 1),
        mrn="M",
        organisation_id=ORG,
        occurred_at=now,
        now=now,
    )
    await Application(store).create(patient, metadata=META, now=now)
    await forget_patient(store, patient.id, reason="request", metadata=META, now=now)
    assert store.keyring is not None
    async with store.pool.acquire() as conn:
        with pytest.raises(PatientForgottenError):
            await store.keyring.data_key(conn, patient.id)
