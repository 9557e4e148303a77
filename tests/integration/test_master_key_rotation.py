"""Rotating the master key on a real PostgreSQL: every stored key is re-wrapped, nothing
becomes unreadable, and a forgotten patient stays forgotten."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg
import pytest

from domain.patient import Patient
from services.application import Application
from services.crypto import (
    KeyRing,
    UnknownMasterKeyError,
    master_key_status,
    rewrap_patient_keys,
    rotate_master_key,
)
from services.database import create_pool
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore
from services.mrn_index import MrnIndex
from services.settings import Settings
from tests.factories import ORG

META = EventMetadata(actor_id="admin", role="admin", organisation_id=str(ORG))
OLD, NEW = os.urandom(32), os.urandom(32)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        yield pool
    finally:
        await pool.close()


async def _ring(pool: asyncpg.Pool, master: bytes, previous: tuple[bytes, ...] = ()) -> KeyRing:
    async with pool.acquire() as conn:
        return await KeyRing.open(conn, master, previous)


async def _register(app: Application, n: int, now: datetime) -> list[UUID]:
    ids = []
    for i in range(n):
        patient = Patient.register(
            given_name=f"Given{i}",
            family_name=f"Family{i}",
            birth_date=date(1980, 1, 1 + i),
            mrn=f"MRN-ROT-{i}",
            organisation_id=ORG,
            occurred_at=now,
            now=now,
        )
        await app.create(patient, metadata=META, now=now)
        ids.append(patient.id)
    return ids


async def test_after_rotation_the_new_key_alone_reads_names_mrn_index_and_erasure_records(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    old_store = EventStore(pool, keyring=await _ring(pool, OLD))
    ids = await _register(Application(old_store), 7, now)
    await forget_patient(old_store, ids[0], reason="erasure request 7", metadata=META, now=now)
    old_digest = MrnIndex(old_store.keyring.blind_index_key()).digest(ORG, "MRN-ROT-3")  # type: ignore[union-attr]

    # During the rotation, processes know both keys; the rotation runs in small batches.
    both = await _ring(pool, NEW, (OLD,))
    report = await rotate_master_key(pool, both, batch_size=2)
    assert (report.rewrapped, report.already_current, report.changed_meanwhile) == (6, 0, 0)
    again = await rotate_master_key(pool, both, batch_size=2)
    assert (again.rewrapped, again.already_current) == (0, 6), "a second run changes nothing"

    async with pool.acquire() as conn:
        status = await master_key_status(conn, both)
    assert status == {"current": 6, "other": 0, "destroyed": 1, "derived_keys_other": 0}

    # Afterwards the old key is gone from the configuration.
    new_only = await _ring(pool, NEW)
    store = EventStore(pool, keyring=new_only)
    for i, patient_id in enumerate(ids[1:], start=1):
        loaded = await store.load(Patient, patient_id)
        assert (loaded.given_name, loaded.mrn) == (f"Given{i}", f"MRN-ROT-{i}")
    forgotten = await store.load(Patient, ids[0])
    assert forgotten.given_name is None, "a forgotten patient stays forgotten"
    events = await store.read_stream(ids[0])
    assert events[-1].payload["reason"] == "erasure request 7", "erasure records stay readable"
    assert MrnIndex(new_only.blind_index_key()).digest(ORG, "MRN-ROT-3") == old_digest
    # A new patient's key is wrapped by the new key, and readable.
    [fresh] = await _register(Application(store), 1, now)
    assert (await store.load(Patient, fresh)).given_name == "Given0"


async def test_a_rotation_never_brings_back_a_key_destroyed_after_it_was_read(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    old_store = EventStore(pool, keyring=await _ring(pool, OLD))
    ids = await _register(Application(old_store), 3, now)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT patient_id, wrapped_key FROM patient_keys ORDER BY 1")
    # The patient is forgotten between the rotation's read and its write.
    await forget_patient(old_store, ids[1], reason="erasure request", metadata=META, now=now)
    both = await _ring(pool, NEW, (OLD,))
    async with pool.acquire() as conn:
        report = await rewrap_patient_keys(
            conn, both, [(r["patient_id"], bytes(r["wrapped_key"])) for r in rows]
        )
        destroyed = await conn.fetchval(
            "SELECT wrapped_key IS NULL FROM patient_keys WHERE patient_id = $1", ids[1]
        )
    assert (report.rewrapped, report.changed_meanwhile) == (2, 1)
    assert destroyed, "the destroyed key stays destroyed"


async def test_a_process_given_the_wrong_master_key_refuses_to_start(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    store = EventStore(pool, keyring=await _ring(pool, OLD))
    await _register(Application(store), 1, now)
    with pytest.raises(UnknownMasterKeyError) as refused:
        await _ring(pool, NEW)
    assert "CARETEAM_MASTER_KEY_PREVIOUS" in str(refused.value)
    # Before the rotation, the new key with the old one as previous reads everything.
    both = await _ring(pool, NEW, (OLD,))
    assert both.blind_index_key() == store.keyring.blind_index_key()  # type: ignore[union-attr]
    # After it, the old key alone no longer can.
    await rotate_master_key(pool, both)
    with pytest.raises(UnknownMasterKeyError):
        await _ring(pool, OLD)


async def _drop_derived_keys(pool: asyncpg.Pool) -> None:
    """The database as it was before the derived keys were stored (migration 0076)."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM key_material")


async def test_the_first_start_with_a_previous_key_derives_from_the_key_that_wrapped_the_data(
    pool: asyncpg.Pool,
) -> None:
    """A database from before the derived keys were stored, first started with a new key
    and two previous ones, the original one not last: the MRN index key is still the one
    derived from the original key, so the index rows written before keep matching."""
    now = datetime.now(UTC)
    store = EventStore(pool, keyring=await _ring(pool, OLD))
    await _register(Application(store), 2, now)
    original = store.keyring.blind_index_key()  # type: ignore[union-attr]
    await _drop_derived_keys(pool)
    stray = os.urandom(32)
    ring = await _ring(pool, NEW, (OLD, stray))
    assert ring.blind_index_key() == original
    assert (await _ring(pool, NEW, (stray, OLD))).blind_index_key() == original


async def test_a_first_start_that_cannot_tell_the_original_key_refuses(pool: asyncpg.Pool) -> None:
    """Every patient key destroyed and no derived key stored: with previous keys given
    careteam cannot tell which one the erasure records were sealed under, so it stops and
    names the settings instead of storing keys derived from a guess."""
    now = datetime.now(UTC)
    store = EventStore(pool, keyring=await _ring(pool, OLD))
    (only,) = await _register(Application(store), 1, now)
    await forget_patient(store, only, reason="erasure request 9", metadata=META, now=now)
    await _drop_derived_keys(pool)
    with pytest.raises(UnknownMasterKeyError, match="CARETEAM_MASTER_KEY_PREVIOUS unset"):
        await _ring(pool, NEW, (OLD,))
    assert (await _ring(pool, OLD)).record_key == store.keyring.record_key  # type: ignore[union-attr]
