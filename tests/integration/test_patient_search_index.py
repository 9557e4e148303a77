"""The patient search index against a real PostgreSQL: written with the registration,
deleted by erasure, backfilled for older registrations, never a name in clear."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from domain.patient import Patient
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore
from services.patient_search import backfill
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


def _patient(mrn: str) -> Patient:
    now = datetime.now(UTC)
    return Patient.register(
        given_name="Zoë",
        family_name="Testperson",
        birth_date=date(1980, 1, 1),
        mrn=mrn,
        organisation_id=ORG,
        occurred_at=now,
        now=now,
    )


async def _rows(db_dsn: str, patient: Patient) -> list[bytes]:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT digest FROM patient_search_index WHERE patient_id = $1", patient.id
        )
    finally:
        await conn.close()
    return [bytes(r["digest"]) for r in rows]


async def test_registration_indexes_and_erasure_deletes(store: EventStore, db_dsn: str) -> None:
    app = Application(store)
    assert app.search_index is not None
    patient = _patient("IDX-1")
    now = datetime.now(UTC)
    await app.create(patient, metadata=META, now=now)
    digests = await _rows(db_dsn, patient)
    # zo, zoe; te .. testperson (9); the birth date.
    assert len(digests) == 2 + 9 + 1
    assert app.search_index.name_digest(ORG, "zoe") in digests
    assert all(len(d) == 32 for d in digests)  # digests only, no name
    await forget_patient(store, patient.id, reason="erasure request", metadata=META, now=now)
    assert await _rows(db_dsn, patient) == []


async def test_the_backfill_indexes_older_registrations_and_skips_forgotten_ones(
    store: EventStore, db_dsn: str
) -> None:
    no_index = Application(store)
    no_index.search_index = None  # registrations as they were made before migration 0052
    now = datetime.now(UTC)
    kept, gone = _patient("IDX-2"), _patient("IDX-3")
    for patient in (kept, gone):
        await no_index.create(patient, metadata=META, now=now)
    await forget_patient(store, gone.id, reason="erasure request", metadata=META, now=now)
    assert await _rows(db_dsn, kept) == []
    app = Application(store)
    assert app.search_index is not None
    report = await backfill(store, app.search_index)
    assert (report.indexed, report.forgotten) == (1, 1)
    assert app.search_index.birth_date_digest(ORG, date(1980, 1, 1)) in await _rows(db_dsn, kept)
    assert await _rows(db_dsn, gone) == []
    again = await backfill(store, app.search_index)
    assert (again.indexed, again.forgotten) == (0, 1)
