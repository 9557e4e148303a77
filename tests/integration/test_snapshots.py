"""Snapshots in PostgreSQL: one written before the state was declared on the aggregates
still loads, and loading from a snapshot gives what replaying the events gives."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain.codec import snapshot_aggregate
from domain.patient import Patient
from domain.registry import AGGREGATES
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore
from services.settings import Settings
from tests.factories import ORG, new_patient

STORED_SNAPSHOTS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "stored" / "stored_snapshots.json").read_text()
)
META = EventMetadata(actor_id="admin", role="admin", organisation_id=str(ORG))
CARE_MANAGER = UUID("00000000-0000-4000-8000-0000000000c1")


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        yield EventStore(pool, snapshot_every=2, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def test_snapshots_written_before_load_from_the_database(store: EventStore) -> None:
    """Each stored snapshot of the fixture, put in the snapshots table under its state
    version, is what the store loads for that stream (no events after it)."""
    async with store.pool.acquire() as conn:
        for stored in STORED_SNAPSHOTS:
            state = stored["state"]
            await conn.execute(
                """INSERT INTO snapshots (stream_id, stream_version, state_version, state)
                   VALUES ($1, $2, $3, $4)""",
                UUID(state["id"]),
                state["version"],
                stored["state_version"],
                state,
            )
    for stored in STORED_SNAPSHOTS:
        cls = next(c for c in AGGREGATES.values() if c.__name__ == stored["aggregate"])
        loaded = await store.load(cls, UUID(stored["state"]["id"]))
        assert type(loaded) is cls
        assert json.loads(json.dumps(snapshot_aggregate(loaded))) == stored["state"]


async def test_loading_from_a_snapshot_equals_replaying_the_events(store: EventStore) -> None:
    """A patient with enough events is snapshotted on load; a load that starts from the
    snapshot and applies the events after it gives the aggregate the whole log gives."""
    app = Application(store)
    now = datetime.now(UTC)
    patient = new_patient(now=now)
    patient.enroll(occurred_at=now, now=now)
    await app.create(patient, metadata=META, now=now)
    await app.execute(
        Patient,
        patient.id,
        lambda p: p.assign_care_team(care_manager_id=CARE_MANAGER, occurred_at=now, now=now),
        metadata=META,
        now=now,
    )
    for minutes in (10, 20):
        await app.execute(
            Patient,
            patient.id,
            lambda p, m=minutes: p.log_contact(  # type: ignore[misc]
                activity="contact", modality="phone", minutes=m, occurred_at=now, now=now
            ),
            metadata=META,
            now=now,
        )
    # Each load of the application past two events writes a snapshot (snapshot_every=2),
    # so the stream of five events has one taken before its last event.
    async with store.pool.acquire() as conn:
        taken = await conn.fetchval(
            "SELECT stream_version FROM snapshots WHERE stream_id = $1", patient.id
        )
    assert taken is not None and 2 <= taken < 5
    from_snapshot = await store.load(Patient, patient.id)
    replayed: Any = None
    for record in await store.read_stream(patient.id):
        replayed = record.to_domain_event().mutate(replayed)
    assert from_snapshot == replayed
    assert [c.minutes for c in from_snapshot.contacts] == [10, 20]
    assert from_snapshot.care_team.care_manager_id == CARE_MANAGER
