"""One event is appended with plain parameters, several through ``unnest``
(services/eventstore.py): both store the same columns, return what the database assigned,
record an idempotency key against the last event, and refuse a stale version or a
repeated key the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from domain.patient import Patient
from services.database import create_pool
from services.eventstore import (
    ConcurrencyConflictError,
    DuplicateCommandError,
    EventMetadata,
    EventStore,
    IdempotencyKey,
)
from services.settings import Settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
META = EventMetadata(actor_id=str(uuid4()), role="care_manager")


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings())
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


def registered() -> Patient:
    return Patient.register(
        given_name="Ann",
        family_name="Example",
        birth_date=date(1980, 1, 2),
        mrn="MRN-1",
        organisation_id=uuid4(),
        occurred_at=NOW - timedelta(days=1),
        now=NOW,
    )


async def append(store: EventStore, patient: Patient, key: IdempotencyKey | None = None) -> list:
    events = patient.collect_events()
    return await store.append(
        stream_type="patient",
        stream_id=patient.id,
        patient_id=patient.id,
        expected_version=patient.version - len(events),
        events=events,
        metadata=META,
        now=NOW,
        idempotency=key,
    )


async def test_one_event_and_several_are_stored_and_returned_alike(store: EventStore) -> None:
    patient = registered()
    patient.enroll(occurred_at=NOW - timedelta(hours=2), now=NOW)
    several = await append(store, patient)
    assert len(several) == 2
    patient.log_contact(activity="contact", modality="phone", minutes=9, occurred_at=NOW, now=NOW)
    key = IdempotencyKey(actor_id=uuid4(), key="k-1", fingerprint="f", operation="logContact")
    (one,) = await append(store, patient, key)
    stored = await store.read_stream(patient.id)
    assert [r.stream_version for r in stored] == [1, 2, 3]
    for mine, theirs in zip([*several, one], stored, strict=True):
        assert (mine.event_id, mine.event_type, mine.event_version) == (
            theirs.event_id,
            theirs.event_type,
            theirs.event_version,
        )
        assert (mine.position, mine.tx_id, mine.recorded_at) == (
            theirs.position,
            theirs.tx_id,
            theirs.recorded_at,
        )
        assert mine.payload == theirs.payload and mine.metadata == theirs.metadata
        assert mine.occurred_at == theirs.occurred_at
    assert stored[2].payload["minutes"] == 9
    async with store.pool.acquire() as conn:
        last = await conn.fetchval("SELECT last_event_id FROM idempotency_keys WHERE key = 'k-1'")
    assert last == one.event_id


async def test_one_event_is_refused_like_several_on_a_stale_version_or_a_repeated_key(
    store: EventStore,
) -> None:
    patient = registered()
    await append(store, patient)
    patient.enroll(occurred_at=NOW, now=NOW)
    events = patient.collect_events()
    with pytest.raises(ConcurrencyConflictError):
        await store.append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0,  # stale: version 1 is taken
            events=events,
            metadata=META,
            now=NOW,
        )
    key = IdempotencyKey(actor_id=uuid4(), key="k-2", fingerprint="f", operation="enroll")
    await store.append(
        stream_type="patient",
        stream_id=patient.id,
        patient_id=patient.id,
        expected_version=1,
        events=events,
        metadata=META,
        now=NOW,
        idempotency=key,
    )
    patient.log_contact(activity="contact", modality="phone", minutes=5, occurred_at=NOW, now=NOW)
    with pytest.raises(DuplicateCommandError):
        await append(store, patient, key)
