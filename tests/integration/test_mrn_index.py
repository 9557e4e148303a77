"""The MRN blind index against a real PostgreSQL: unique per organisation, race-free,
freed by erasure, never the MRN in clear (docs/clinical-time.md)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from uuid import uuid4

import asyncpg
import pytest

from domain.patient import Patient
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore
from services.mrn_index import DuplicateMrnError, MrnIndex, backfill, normalise_mrn
from services.settings import Settings
from tests.factories import ORG

META = EventMetadata(actor_id="admin", role="admin", organisation_id=str(ORG))


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=6))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


def _patient(mrn: str, organisation_id: object = ORG) -> Patient:
    now = datetime.now(UTC)
    return Patient.register(
        given_name="Test",
        family_name="Person",
        birth_date=date(1980, 1, 1),
        mrn=mrn,
        organisation_id=organisation_id,
        occurred_at=now,
        now=now,
    )


async def _count(db_dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        value: int = await conn.fetchval(sql)
    finally:
        await conn.close()
    return value


def test_the_mrn_is_normalised_for_whitespace_case_and_unicode_width() -> None:
    """Spaces and case are typing variants; full-width digits are the same digits;
    punctuation is kept (it may be significant)."""
    assert normalise_mrn(" ab 12\t3 ") == normalise_mrn("AB123") == "ab123"
    assert normalise_mrn("\uff21\uff22\uff11\uff12\uff13") == "ab123"
    assert normalise_mrn("AB-123") != normalise_mrn("AB123")
    index = MrnIndex(b"k" * 32)
    assert index.digest(ORG, "ab 123") == index.digest(ORG, "AB123")
    assert index.digest(ORG, "AB123") != index.digest(uuid4(), "AB123")
    assert index.digest(ORG, "AB123") != MrnIndex(b"j" * 32).digest(ORG, "AB123")


async def test_two_concurrent_registrations_of_one_mrn_write_exactly_one_patient(
    store: EventStore, db_dsn: str
) -> None:
    """The unique constraint decides the race; the loser writes no event and no key row
    of its own is left behind in the index."""
    app = Application(store)
    now = datetime.now(UTC)
    results = await asyncio.gather(
        *(app.create(_patient("MRN-RACE"), metadata=META, now=now) for _ in range(4)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 3
    assert all(isinstance(e, DuplicateMrnError) for e in lost)
    assert await _count(db_dsn, "SELECT count(*) FROM streams") == 1
    assert await _count(db_dsn, "SELECT count(*) FROM patient_mrn_index") == 1


async def test_erasure_frees_the_mrn_and_the_index_never_holds_it_in_clear(
    store: EventStore, db_dsn: str
) -> None:
    """Forgetting deletes the index row in its transaction; the MRN registers again."""
    app = Application(store)
    now = datetime.now(UTC)
    first = _patient("MRN-ZQ-4411")
    await app.create(first, metadata=META, now=now)
    with pytest.raises(DuplicateMrnError):
        await app.create(_patient("mrn-zq-4411"), metadata=META, now=now)
    conn = await asyncpg.connect(db_dsn)
    try:
        digests = [bytes(r["mrn_digest"]) for r in await conn.fetch("TABLE patient_mrn_index")]
    finally:
        await conn.close()
    assert len(digests) == 1 and b"4411" not in digests[0] and len(digests[0]) == 32
    await forget_patient(store, first.id, reason="erasure request", metadata=META, now=now)
    assert await _count(db_dsn, "SELECT count(*) FROM patient_mrn_index") == 0
    await app.create(_patient("MRN-ZQ-4411"), metadata=META, now=now)
    assert await _count(db_dsn, "SELECT count(*) FROM patient_mrn_index") == 1


async def test_the_backfill_indexes_older_registrations_and_reports_duplicates_by_id(
    store: EventStore, db_dsn: str
) -> None:
    """Patients appended without the index (as before migration 0045): the backfill
    indexes them in log order, reports the later duplicate by id, skips a forgotten one,
    and a second run changes nothing; afterwards a new duplicate is refused."""
    no_index = Application(store)
    no_index.mrn_index = None  # registrations as they were made before migration 0045
    now = datetime.now(UTC)
    earlier, later, gone = _patient("OLD-1"), _patient(" old-1"), _patient("OLD-2")
    for patient in (earlier, later, gone):
        await no_index.create(patient, metadata=META, now=now)
    await forget_patient(store, gone.id, reason="erasure request", metadata=META, now=now)
    assert await _count(db_dsn, "SELECT count(*) FROM patient_mrn_index") == 0
    app = Application(store)
    assert app.mrn_index is not None
    report = await backfill(store, app.mrn_index)
    assert (report.indexed, report.duplicates, report.forgotten) == (1, [later.id], 1)
    again = await backfill(store, app.mrn_index)
    assert (again.indexed, again.duplicates, again.forgotten) == (0, [later.id], 1)
    with pytest.raises(DuplicateMrnError):
        await app.create(_patient("OLD-1"), metadata=META, now=now)
