"""Free text in the log: ciphertext for new appends, old plaintext still read, and
unreadable once the patient is forgotten."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.patient import Patient
from domain.referral import Referral
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore
from services.settings import Settings
from tests.factories import ORG

META = EventMetadata(actor_id="cm", role="care_manager", organisation_id=str(ORG))


@pytest.fixture
async def stores(db_dsn: str) -> AsyncIterator[tuple[EventStore, EventStore]]:
    """A store that encrypts and one on the same database that writes in clear (as
    careteam did before free text was encrypted)."""
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32))), EventStore(pool)
    finally:
        await pool.close()


async def test_old_plaintext_and_new_ciphertext_of_one_stream_both_read_until_forgotten(
    stores: tuple[EventStore, EventStore],
) -> None:
    """An old clear reason still reads; a new one is stored encrypted and reads as null
    once the patient is forgotten."""
    store, old_writer = stores
    now = datetime.now(UTC)
    patient = Patient.register(
        given_name="G",
        family_name="F",
        birth_date=date(1970, 1, 1),
        mrn="M",
        organisation_id=ORG,
        occurred_at=now,
        now=now,
    )
    await Application(store).create(patient, metadata=META, now=now)
    old_reason, new_reason = secrets.token_hex(8), secrets.token_hex(8)
    referral = Referral.request(
        patient_id=patient.id,
        service="psychotherapy",
        reason=old_reason,
        expected_by=(now + timedelta(days=30)).date(),
        occurred_at=now,
        now=now,
    )
    await Application(old_writer).create(referral, metadata=META, now=now)
    await Application(store).execute(
        Referral,
        referral.id,
        lambda r: r.cancel(reason=new_reason, occurred_at=now, now=now),
        metadata=META,
        now=now,
    )

    async with store.pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT payload::text AS p FROM events WHERE stream_id = $1 ORDER BY stream_version",
            referral.id,
        )
    assert old_reason in stored[0]["p"], "written in clear by the old writer"
    assert new_reason not in stored[1]["p"] and '"$enc"' in stored[1]["p"]

    loaded = await store.load(Referral, referral.id)
    assert (loaded.reason, loaded.cancel_reason) == (old_reason, new_reason)

    await forget_patient(store, patient.id, reason="request", metadata=META, now=now)
    forgotten = await store.load(Referral, referral.id)
    assert forgotten.cancel_reason is None
    assert forgotten.status.value == "cancelled", "the loop's facts still replay"
