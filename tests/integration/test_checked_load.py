"""The command handler's authorisation decided in the load's own statement
(``LoadCheck``, services/eventstore.py): the same answers, refusals and audit rows as a
check of its own and nothing written when it refuses, identifying fields decrypted with
the key read in that statement, and two writers at once on one patient both written, one
after the other."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.patient import Patient
from services.api.schema import build_schema
from services.auth import Principal, Role
from services.bootstrap import Runtime
from services.eventstore import LoadCheck
from tests.integration.graphql_support import execute_as

ORG = uuid4()
CARE_MANAGER = Principal(uuid4(), Role.CARE_MANAGER, ORG)
OTHER_CARE_MANAGER = Principal(uuid4(), Role.CARE_MANAGER, ORG)
ELSEWHERE = Principal(uuid4(), Role.CARE_MANAGER, uuid4())
SCHEMA = build_schema()

REGISTER = """mutation ($mrn: String!) { registerPatient(input: {givenName: "Ann",
  familyName: "Example", birthDate: "1980-01-02", mrn: $mrn}) {
  __typename ... on PatientPayload { patient { id } } } }"""
ENROLL = """mutation ($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"""
CONTACT = """mutation ($id: UUID!) { logContact(input: {patientId: $id,
  activityKind: CONTACT, modalityKind: PHONE, minutes: 20}) {
  __typename ... on PatientPayload { logPosition }
  ... on ForbiddenError { code } ... on NotFoundError { code } } }"""


async def execute(
    runtime: Runtime, principal: Principal, query: str, **variables: Any
) -> dict[str, Any]:
    data = await execute_as(SCHEMA, runtime, principal, query, **variables)
    return dict(next(iter(data.values())))


async def enrolled(runtime: Runtime) -> UUID:
    mrn = f"MRN-{uuid4().hex[:8]}"
    registered = await execute(runtime, CARE_MANAGER, REGISTER, mrn=mrn)
    patient_id = UUID(registered["patient"]["id"])
    await execute(runtime, CARE_MANAGER, ENROLL, id=str(patient_id))
    return patient_id


async def versions(runtime: Runtime, patient_id: UUID) -> list[int]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY 1", patient_id
        )
    return [r["stream_version"] for r in rows]


async def denials(runtime: Runtime, actor: UUID) -> list[tuple[str, str, UUID | None]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT operation, reason, patient_id FROM access_log
               WHERE actor_id = $1 AND outcome = 'denied'""",
            actor,
        )
    return [(r["operation"], r["reason"], r["patient_id"]) for r in rows]


async def test_refusals_are_answered_and_audited_as_before_and_write_nothing(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    before = await versions(runtime, patient_id)
    off_team = await execute(runtime, OTHER_CARE_MANAGER, CONTACT, id=str(patient_id))
    assert off_team == {"__typename": "ForbiddenError", "code": "NOT_ON_CARE_TEAM"}
    hidden = await execute(runtime, ELSEWHERE, CONTACT, id=str(patient_id))
    assert hidden == {"__typename": "NotFoundError", "code": "PATIENT_NOT_FOUND"}
    assert await versions(runtime, patient_id) == before
    assert await denials(runtime, OTHER_CARE_MANAGER.user_id) == [
        ("logContact", "NOT_ON_CARE_TEAM", patient_id)
    ]
    assert await denials(runtime, ELSEWHERE.user_id) == [
        ("logContact", "PATIENT_NOT_IN_ORGANISATION", patient_id)
    ]


async def test_two_writers_at_once_are_both_written_one_after_the_other(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    before = await versions(runtime, patient_id)
    answers = await asyncio.gather(
        *(execute(runtime, CARE_MANAGER, CONTACT, id=str(patient_id)) for _ in range(2))
    )
    assert [a["__typename"] for a in answers] == ["PatientPayload", "PatientPayload"]
    after = await versions(runtime, patient_id)
    assert after == [*before, before[-1] + 1, before[-1] + 2]


class Refused(Exception):
    pass


def check(refused: str | None) -> LoadCheck:
    def sql(first: int) -> tuple[str, list[object]]:
        return f"SELECT ${first}::text AS refused", [refused]

    return LoadCheck(sql=sql, refuse=Refused)


async def test_the_checked_load_rebuilds_what_the_plain_load_does_or_reads_nothing(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    store = runtime.store
    plain = await store.load(Patient, patient_id)
    checked = await store.load(Patient, patient_id, check=check(None))
    # The name is an identifying field, stored encrypted: decrypted with the key the
    # checked load's own statement read.
    assert checked.given_name == plain.given_name == "Ann"
    assert checked.snapshot_state() == plain.snapshot_state()
    with pytest.raises(Refused, match="NOT_ON_CARE_TEAM"):
        await store.load(Patient, patient_id, check=check("NOT_ON_CARE_TEAM"))


async def test_a_forgotten_patients_fields_stay_unreadable_through_the_checked_load(
    runtime: Runtime,
) -> None:
    patient_id = await enrolled(runtime)
    assert runtime.store.keyring is not None
    async with runtime.pool.acquire() as conn:
        await runtime.store.keyring.destroy(conn, patient_id)
    plain = await runtime.store.load(Patient, patient_id)
    checked = await runtime.store.load(Patient, patient_id, check=check(None))
    assert checked.given_name is None and plain.given_name is None


async def test_a_retry_after_a_conflict_is_checked_again_and_refused_writes_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real conflict: another writer appends between this command's load and its append,
    and the caller loses access at the same moment. The retry's load decides again."""
    from datetime import UTC, datetime

    from services.eventstore import EventMetadata

    patient_id = await enrolled(runtime)
    flag = f"t_refusal_{uuid4().hex}"  # a plain table: every pooled connection sees it
    async with runtime.pool.acquire() as conn:
        await conn.execute(f"CREATE TABLE {flag} (reason text)")
    # The check reads a flag the test turns on while the other writer writes (a stand-in
    # for the caller leaving the team; the policy SQL itself is tested above).
    decided: list[str | None] = []

    def flag_check(first: int) -> tuple[str, list[object]]:
        return f"SELECT (SELECT reason FROM {flag} LIMIT 1) AS refused", []

    refusing = LoadCheck(sql=flag_check, refuse=Refused)
    store = runtime.store
    real_append = store.append
    real_load = store.load
    now = datetime.now(UTC)
    other = EventMetadata(actor_id=str(CARE_MANAGER.user_id), role="care_manager")

    async def load_and_note(*args: Any, **kwargs: Any) -> Any:
        try:
            aggregate = await real_load(*args, **kwargs)
        except Refused:
            decided.append("refused")
            raise
        decided.append("allowed")
        return aggregate

    async def append_after_another_writer(**kwargs: Any) -> Any:
        if len(decided) == 1:  # the first attempt: someone else writes first
            rival = await real_load(Patient, patient_id)
            rival.log_contact(
                activity="contact", modality="phone", minutes=5, occurred_at=now, now=now
            )
            events = rival.collect_events()
            await real_append(
                stream_type="patient",
                stream_id=patient_id,
                patient_id=patient_id,
                expected_version=rival.version - len(events),
                events=events,
                metadata=other,
                now=now,
            )
            async with runtime.pool.acquire() as conn:
                await conn.execute(f"INSERT INTO {flag} VALUES ('NOT_ON_CARE_TEAM')")
        return await real_append(**kwargs)

    monkeypatch.setattr(store, "load", load_and_note)
    monkeypatch.setattr(store, "append", append_after_another_writer)
    before = await versions(runtime, patient_id)

    def contact(patient: Patient) -> object:
        return patient.log_contact(
            activity="contact", modality="phone", minutes=20, occurred_at=now, now=now
        )

    with pytest.raises(Refused, match="NOT_ON_CARE_TEAM"):
        await runtime.app.execute(
            Patient, patient_id, contact, metadata=other, now=now, check=refusing
        )
    assert decided == ["allowed", "refused"]  # the retry's load checked again
    assert await versions(runtime, patient_id) == [*before, before[-1] + 1]  # the rival's only
    async with runtime.pool.acquire() as conn:
        await conn.execute(f"DROP TABLE {flag}")
