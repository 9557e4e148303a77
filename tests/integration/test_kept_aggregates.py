"""Aggregates kept in memory between commands (``EventStore.keep``, issue 14 row 4): the
next command on a stream reads only what is newer than the kept version, yet every
command sees exactly the state a load from the database builds, whoever else wrote to
the stream, after a database whose stream differs at the kept version, and after an
erasure here or in another process (a forgotten patient's decrypted fields are never
served from memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.patient import Patient
from services.api.schema import build_schema
from services.auth import Principal, Role
from services.bootstrap import Runtime
from services.erasure import forget_patient
from services.eventstore import EventMetadata, EventStore, LoadCheck
from tests.integration.graphql_support import execute_as

ORG = uuid4()
CARE_MANAGER = Principal(uuid4(), Role.CARE_MANAGER, ORG)
SCHEMA = build_schema()

REGISTER = """mutation ($mrn: String!) { registerPatient(input: {givenName: "Ann",
  familyName: "Example", birthDate: "1980-01-02", mrn: $mrn}) {
  __typename ... on PatientPayload { patient { id } } } }"""
ENROLL = """mutation ($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"""
CONTACT = """mutation ($id: UUID!, $minutes: Int!) { logContact(input: {patientId: $id,
  activityKind: CONTACT, modalityKind: PHONE, minutes: $minutes}) {
  __typename ... on PatientPayload { logPosition } } }"""
ASSIGN = """mutation ($id: UUID!, $cm: UUID!) { assignCareTeam(input: {patientId: $id,
  careManagerId: $cm}) { __typename ... on PatientPayload {
  patient { careTeam { careManagerId } } } } }"""
META = EventMetadata(actor_id=str(uuid4()), role="care_manager")


async def execute(runtime: Runtime, query: str, **variables: Any) -> dict[str, Any]:
    data = await execute_as(SCHEMA, runtime, CARE_MANAGER, query, **variables)
    return dict(next(iter(data.values())))


async def enrolled(runtime: Runtime) -> UUID:
    registered = await execute(runtime, REGISTER, mrn=f"MRN-{uuid4().hex[:8]}")
    patient_id = UUID(registered["patient"]["id"])
    assert (await execute(runtime, ENROLL, id=str(patient_id)))["__typename"] == "PatientPayload"
    return patient_id


def allowed() -> LoadCheck:
    def sql(first: int) -> tuple[str, list[object]]:
        return f"SELECT ${first}::text AS refused", [None]

    return LoadCheck(sql=sql, refuse=RuntimeError)


def from_database(runtime: Runtime) -> EventStore:
    """A store on the same database that keeps nothing: what a load from the log builds."""
    return EventStore(runtime.pool, keyring=runtime.store.keyring, kept_aggregates=0)


async def contact_through(
    store: EventStore, patient_id: UUID, minutes: int, *, keep: bool = False
) -> int:
    """Loads the patient from ``store``, logs a contact and appends it there (a writer
    other than the runtime's own); with ``keep``, ``store`` keeps the aggregate as a
    command would. Returns the version the patient had before."""
    now = datetime.now(UTC)
    patient = await store.load(Patient, patient_id)
    before = patient.version
    copied = store.copy_for_keeping(patient) if keep else None
    patient.log_contact(
        activity="contact", modality="phone", minutes=minutes, occurred_at=now, now=now
    )
    events = patient.collect_events()
    recorded = await store.append(
        stream_type="patient",
        stream_id=patient_id,
        patient_id=patient_id,
        expected_version=before,
        events=events,
        metadata=META,
        now=now,
    )
    if copied is not None:
        store.keep(copied, recorded)
    return before


def kept(runtime: Runtime) -> Any:
    memo = runtime.store.kept_memo
    assert memo is not None
    return memo


async def test_each_command_starts_from_the_kept_state_which_is_the_databases(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    start = (await from_database(runtime).load(Patient, patient_id)).version
    memo = kept(runtime)
    hits = memo.hits
    for minutes in (5, 10, 15):
        answer = await execute(runtime, CONTACT, id=str(patient_id), minutes=minutes)
        assert answer["__typename"] == "PatientPayload"
    manager = uuid4()
    answer = await execute(runtime, ASSIGN, id=str(patient_id), cm=str(manager))
    assert answer["patient"]["careTeam"]["careManagerId"] == str(manager)
    # Enrolment kept the patient; each of the four commands took it (the first load, for
    # enrolment, had nothing kept).
    assert memo.hits - hits == 4
    held = memo.get(patient_id)
    assert held is not None and held.aggregate.version == start + 4
    expected = await from_database(runtime).load(Patient, patient_id)
    assert held.aggregate.snapshot_state() == expected.snapshot_state()
    assert held.aggregate.care_team.care_manager_id == manager


async def test_another_writers_events_are_read_after_the_kept_version(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    other = from_database(runtime)
    start = await contact_through(other, patient_id, 7)
    hits = kept(runtime).hits
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    assert kept(runtime).hits == hits + 1
    assert loaded.version == start + 1
    assert loaded.snapshot_state() == (await other.load(Patient, patient_id)).snapshot_state()


async def test_a_stream_that_differs_at_the_kept_version_is_loaded_from_the_database(
    runtime: Runtime,
) -> None:
    """As after a restore to an earlier point followed by other writes: the stream has an
    event at the kept version, but not the one applied here."""
    patient_id = await enrolled(runtime)
    await execute(runtime, CONTACT, id=str(patient_id), minutes=30)
    held = kept(runtime).get(patient_id)
    assert held is not None
    last = held.aggregate.version
    async with runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")  # past the trigger
        await conn.execute(
            "DELETE FROM events WHERE stream_id = $1 AND stream_version = $2", patient_id, last
        )
    other = from_database(runtime)
    assert await contact_through(other, patient_id, 2) == last - 1
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    truth = await other.load(Patient, patient_id)
    assert loaded.version == truth.version == last
    assert [c.minutes for c in loaded.contacts] == [c.minutes for c in truth.contacts] == [2]
    assert loaded.snapshot_state() == truth.snapshot_state()


async def test_a_patient_forgotten_elsewhere_is_never_served_from_memory(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    await execute(runtime, CONTACT, id=str(patient_id), minutes=5)
    held = kept(runtime).get(patient_id)
    assert held is not None and held.aggregate.given_name == "Ann"
    # Another process forgets the patient: only the database knows.
    keyring = runtime.store.keyring
    assert keyring is not None
    async with runtime.pool.acquire() as conn:
        await keyring.destroy(conn, patient_id)
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    assert loaded.given_name is None and loaded.family_name is None


async def test_forgetting_a_patient_here_drops_what_is_kept_for_them(runtime: Runtime) -> None:
    patient_id = await enrolled(runtime)
    other_id = await enrolled(runtime)
    assert kept(runtime).get(patient_id) is not None
    await forget_patient(
        runtime.store, patient_id, reason="patient request", metadata=META, now=datetime.now(UTC)
    )
    assert kept(runtime).get(patient_id) is None
    assert kept(runtime).get(other_id) is not None


async def test_a_refused_load_leaves_the_kept_aggregate_for_the_next_command(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)

    def refusing(first: int) -> tuple[str, list[object]]:
        return f"SELECT ${first}::text AS refused", ["NOT_ON_CARE_TEAM"]

    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        await runtime.store.load(Patient, patient_id, check=LoadCheck(sql=refusing, refuse=Refused))
    hits = kept(runtime).hits
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    assert kept(runtime).hits == hits + 1
    assert (
        loaded.snapshot_state()
        == (await from_database(runtime).load(Patient, patient_id)).snapshot_state()
    )


async def test_nothing_is_kept_when_keeping_is_off(runtime: Runtime) -> None:
    store = from_database(runtime)
    assert store.kept_memo is None
    patient = await store.load(Patient, await enrolled(runtime))
    assert store.copy_for_keeping(patient) is None


async def test_a_command_that_committed_just_before_an_erasure_here_keeps_nothing(
    runtime: Runtime,
) -> None:
    """The erasure runs between the command's commit and its ``keep`` (here: from an
    append listener, which the store awaits after the commit)."""
    patient_id = await enrolled(runtime)
    erased: list[UUID] = []

    async def forget_after_the_next_commit(_position: Any) -> None:
        if not erased:
            erased.append(patient_id)
            await forget_patient(
                runtime.store, patient_id, reason="request", metadata=META, now=datetime.now(UTC)
            )

    runtime.store.on_append(forget_after_the_next_commit)
    await execute(runtime, CONTACT, id=str(patient_id), minutes=5)
    assert erased == [patient_id]
    assert kept(runtime).discard_where(lambda k: k.patient_id == patient_id) == 0


async def test_a_failure_to_keep_does_not_fail_the_committed_command(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient_id = await enrolled(runtime)
    store = runtime.store
    monkeypatch.setattr(store, "copy_for_keeping", lambda aggregate: object())  # unusable
    answer = await execute(runtime, CONTACT, id=str(patient_id), minutes=5)
    assert answer["__typename"] == "PatientPayload"
    assert kept(runtime).get(patient_id) is None
    contacts = (await from_database(runtime).load(Patient, patient_id)).contacts
    assert [c.minutes for c in contacts] == [5]


async def test_kept_aggregates_leave_memory_when_they_expire_even_if_no_command_comes(
    runtime: Runtime,
) -> None:
    store = EventStore(runtime.pool, keyring=runtime.store.keyring, kept_seconds=0.2)
    patient_id = await enrolled(runtime)
    await contact_through(store, patient_id, 3, keep=True)
    memo = store.kept_memo
    assert memo is not None and len(memo) == 1
    await asyncio.sleep(0.5)  # nothing uses the memo meanwhile
    assert len(memo) == 0


async def test_two_commands_at_once_on_one_patient_leave_the_databases_state_kept(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    answers = await asyncio.gather(
        *(execute(runtime, CONTACT, id=str(patient_id), minutes=m) for m in (4, 6))
    )
    # (A command retries once after a conflict, so two at once are both written.)
    assert [a["__typename"] for a in answers] == ["PatientPayload"] * 2
    truth = await from_database(runtime).load(Patient, patient_id)
    assert sorted(c.minutes for c in truth.contacts) == [4, 6]
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    assert loaded.snapshot_state() == truth.snapshot_state()


async def test_a_snapshot_newer_than_the_kept_version_is_read_instead(runtime: Runtime) -> None:
    patient_id = await enrolled(runtime)
    held = kept(runtime).get(patient_id)
    assert held is not None
    other = EventStore(
        runtime.pool, keyring=runtime.store.keyring, kept_aggregates=0, snapshot_every=1
    )
    for minutes in (1, 2):
        await contact_through(other, patient_id, minutes)  # its load saves a snapshot
    await other.load(Patient, patient_id)  # a snapshot at the last version
    async with runtime.pool.acquire() as conn:
        snapshot = await conn.fetchval(
            "SELECT stream_version FROM snapshots WHERE stream_id = $1", patient_id
        )
    assert snapshot == held.aggregate.version + 2
    loaded = await runtime.store.load(Patient, patient_id, check=allowed())
    assert [c.minutes for c in loaded.contacts] == [1, 2]
    assert loaded.snapshot_state() == (await other.load(Patient, patient_id)).snapshot_state()


CREATE_PLAN = """mutation ($id: UUID!) { createCarePlan(input: {patientId: $id}) {
  __typename ... on CarePlanPayload { carePlan { id } } } }"""
ADD_GOAL = """mutation ($plan: UUID!, $goal: String!) { addGoal(input: {carePlanId: $plan,
  description: $goal}) { __typename ... on CarePlanPayload {
  carePlan { goals { description } } } } }"""


async def test_a_care_plan_is_kept_between_commands_too_and_is_the_databases(
    runtime: Runtime,
) -> None:
    from domain.care_plan import CarePlan

    patient_id = await enrolled(runtime)
    created = await execute(runtime, CREATE_PLAN, id=str(patient_id))
    plan_id = UUID(created["carePlan"]["id"])
    memo = kept(runtime)
    hits = memo.hits
    for goal in ("Walk daily", "Sleep by eleven", "Call my sister"):
        answer = await execute(runtime, ADD_GOAL, plan=str(plan_id), goal=goal)
        assert answer["__typename"] == "CarePlanPayload", answer
    assert [g["description"] for g in answer["carePlan"]["goals"]] == [
        "Walk daily",
        "Sleep by eleven",
        "Call my sister",
    ]
    assert memo.hits - hits == 2  # the first goal's load had nothing kept (a creation)
    held = memo.get(plan_id)
    assert held is not None
    truth = await from_database(runtime).load(CarePlan, plan_id)
    assert held.aggregate.snapshot_state() == truth.snapshot_state()
