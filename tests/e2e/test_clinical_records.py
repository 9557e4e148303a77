"""Trustworthy clinical records over HTTP against a running server (docs/clinical-time.md):
clinical time of scores, unique medical record numbers, referral completion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.e2e.journey import command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

PHQ9_18 = [3, 3, 3, 3, 3, 3, 0, 0, 0]
PHQ9_10 = [3, 3, 3, 1, 0, 0, 0, 0, 0]
PHQ9_3 = [3, 0, 0, 0, 0, 0, 0, 0, 0]

ROW = """query($id: UUID!) { registryRow(patientId: $id) {
  baselinePhq9 { total takenAt } latestPhq9 { total takenAt } phq9PercentChange
  flags { kind } reviewReasons } }"""
OUTCOMES = """{ outcomes { episodes { patientId baseline { takenOn total } latest { total }
  improvement response remission twelveWeeks { eligible windowStart counted { total } } } } }"""
SCREEN = "... on PatientPayload { patient { id } }"


def _ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def _patient_in_treatment(server: ServerProcess, care_manager: str, mrn: str) -> str:
    """Registered 100 days ago (born 1980), enrolled and in treatment for 90 days."""
    registered = command(
        server,
        "registerPatient",
        {
            "givenName": "Test",
            "familyName": "Person",
            "birthDate": "1980-05-05",
            "mrn": mrn,
            "occurredAt": _ago(100),
        },
        care_manager,
        SCREEN,
    )
    pid: str = registered["patient"]["id"]
    for operation in ("enrollPatient", "startTreatment"):
        moved = command(
            server, operation, {"patientId": pid, "occurredAt": _ago(90)}, care_manager, ""
        )
        assert moved["__typename"] == "PatientPayload", moved
    return pid


def _screen(server: ServerProcess, token: str, pid: str, answers: list[int], at: str) -> Any:
    return command(
        server,
        "recordScreening",
        {"patientId": pid, "instrument": "PHQ9", "answers": answers, "occurredAt": at},
        token,
        SCREEN,
    )


def _views(server: ServerProcess, token: str, pid: str) -> tuple[Any, Any]:
    row = server.graphql(ROW, {"id": pid}, token=token)
    assert "errors" not in row, row
    outcomes = server.graphql(OUTCOMES, token=token)
    assert "errors" not in outcomes, outcomes
    mine = [e for e in outcomes["data"]["outcomes"]["episodes"] if e["patientId"] == pid]
    return row["data"]["registryRow"], mine


async def test_a_score_before_birth_is_refused_and_a_mistyped_year_changes_no_measure(
    server: ServerProcess, db_dsn: str
) -> None:
    """A PHQ-9 dated before the birth date: a ValidationError naming occurredAt, nothing
    written. One dated in 1990 (born 1980, episode 2026): accepted as history, but the
    baseline, latest, percent change, flags, review reasons and outcomes stay the same."""
    care_manager = server.token("care_manager", user=uuid4())
    pid = _patient_in_treatment(server, care_manager, "CT-1")
    assert _screen(server, care_manager, pid, PHQ9_18, _ago(89))["__typename"] == "PatientPayload"
    assert _screen(server, care_manager, pid, PHQ9_10, _ago(5))["__typename"] == "PatientPayload"
    row, outcomes = _views(server, care_manager, pid)
    assert row["baselinePhq9"]["total"] == 18 and row["latestPhq9"]["total"] == 10
    assert "not_improving" in [f["kind"] for f in row["flags"]]  # 18 -> 10 at week 12
    assert [o["baseline"]["total"] for o in outcomes] == [18]

    written = await event_count(db_dsn, pid)
    before_birth = _screen(server, care_manager, pid, PHQ9_3, "1980-05-04T23:59:59+00:00")
    assert before_birth == {
        "__typename": "ValidationError",
        "code": "OCCURRED_BEFORE_BIRTH",
        "field": "occurredAt",
    }
    assert await event_count(db_dsn, pid) == written

    typo = _screen(server, care_manager, pid, PHQ9_3, "1990-01-01T09:00:00+00:00")
    assert typo["__typename"] == "PatientPayload"
    assert await event_count(db_dsn, pid) == written + 1  # kept in the history
    assert _views(server, care_manager, pid) == (row, outcomes)


REFERRAL = "... on ReferralPayload { referral { id status appointmentAt closedAt } }"


async def test_a_referral_is_not_completed_before_its_appointment(
    server: ServerProcess, db_dsn: str
) -> None:
    """Scheduled for next year: completing it now is a ValidationError naming occurredAt
    and writes nothing; an accepted referral without an appointment cannot be completed;
    a referral whose appointment has passed completes."""
    care_manager = server.token("care_manager", user=uuid4())
    pid = _patient_in_treatment(server, care_manager, "CT-R")

    def referral(appointment: str | None) -> str:
        requested = command(
            server,
            "requestReferral",
            {
                "patientId": pid,
                "service": "PSYCHOTHERAPY",
                "reason": "Weekly psychotherapy.",
                "expectedBy": "2999-01-01",
                "occurredAt": _ago(10),
            },
            care_manager,
            REFERRAL,
        )
        rid: str = requested["referral"]["id"]
        for operation in ("sendReferral", "acceptReferral"):
            done = command(
                server,
                operation,
                {"referralId": rid, "occurredAt": _ago(9)},
                care_manager,
                REFERRAL,
            )
            assert done["__typename"] == "ReferralPayload", done
        if appointment is not None:
            scheduled = command(
                server,
                "scheduleReferral",
                {"referralId": rid, "appointmentAt": appointment, "occurredAt": _ago(8)},
                care_manager,
                REFERRAL,
            )
            assert scheduled["referral"]["status"] == "SCHEDULED", scheduled
        return rid

    def complete(rid: str) -> Any:
        return command(
            server,
            "completeReferral",
            {"referralId": rid, "reportBackSummary": "Seen; therapy started."},
            care_manager,
            REFERRAL,
        )

    next_year = (datetime.now(UTC) + timedelta(days=365)).replace(microsecond=0).isoformat()
    future = referral(next_year)
    written = await event_count(db_dsn, future)
    assert complete(future) == {
        "__typename": "ValidationError",
        "code": "COMPLETED_BEFORE_APPOINTMENT",
        "field": "occurredAt",
    }
    assert await event_count(db_dsn, future) == written

    unscheduled = referral(None)
    assert complete(unscheduled) == {
        "__typename": "InvalidTransitionError",
        "code": "INVALID_REFERRAL_TRANSITION",
    }

    past = referral(_ago(2))
    assert complete(past)["referral"]["status"] == "COMPLETED"


REGISTER = """mutation($mrn: String!) { registerPatient(input: {givenName: "Test",
  familyName: "Person", birthDate: "1980-05-05", mrn: $mrn}) { __typename
  ... on PatientPayload { patient { id mrn } }
  ... on ConflictError { code field message } ... on ValidationError { code field } } }"""
FORGET = """mutation($id: UUID!) { forgetPatient(patientId: $id, reason: "erasure request") {
  __typename } }"""


async def _index_rows(db_dsn: str) -> list[Any]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT organisation_id, mrn_digest, patient_id FROM patient_mrn_index"
            )
        )
    finally:
        await conn.close()


async def _patients(db_dsn: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM streams WHERE stream_type = 'patient'"
        )
    finally:
        await conn.close()
    return count


async def test_an_mrn_is_unique_per_organisation_and_freed_when_the_patient_is_forgotten(
    server: ServerProcess, db_dsn: str
) -> None:
    """A second patient with the same MRN (typed with other case and spaces) in the same
    organisation: a ConflictError naming mrn, nothing written, no MRN in the message. The
    same MRN in another organisation is accepted. After forgetPatient the MRN can be
    registered again. The index holds keyed digests, never the MRN."""
    org_a, org_b = uuid4(), uuid4()
    cm_a = server.token("care_manager", user=uuid4(), org=org_a)
    first = server.graphql(REGISTER, {"mrn": "CT-77 01"}, token=cm_a)["data"]["registerPatient"]
    assert first["__typename"] == "PatientPayload", first
    patients = await _patients(db_dsn)

    for typed in ("CT-77 01", " ct-7701 ", "CT-7701"):
        again = server.graphql(REGISTER, {"mrn": typed}, token=cm_a)["data"]["registerPatient"]
        assert (again["__typename"], again["code"], again["field"]) == (
            "ConflictError",
            "DUPLICATE_MRN",
            "mrn",
        )
        assert "7701" not in again["message"] and "77 01" not in again["message"]
    assert await _patients(db_dsn) == patients
    other = server.graphql(REGISTER, {"mrn": "CT-7702"}, token=cm_a)["data"]["registerPatient"]
    assert other["__typename"] == "PatientPayload"  # a different MRN is fine

    cm_b = server.token("care_manager", user=uuid4(), org=org_b)
    elsewhere = server.graphql(REGISTER, {"mrn": "CT-77 01"}, token=cm_b)["data"]
    assert elsewhere["registerPatient"]["__typename"] == "PatientPayload"

    rows = await _index_rows(db_dsn)
    assert len(rows) == 3
    assert all(len(r["mrn_digest"]) == 32 and b"7701" not in r["mrn_digest"] for r in rows)
    same_mrn = [r["mrn_digest"] for r in rows if r["patient_id"] != UUID(other["patient"]["id"])]
    assert len(set(same_mrn)) == 2  # equal MRNs of two organisations: unrelated digests

    admin = server.token("admin", user=uuid4(), org=org_a)
    forgotten = server.graphql(FORGET, {"id": first["patient"]["id"]}, token=admin)
    assert forgotten["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", forgotten
    assert UUID(first["patient"]["id"]) not in {r["patient_id"] for r in await _index_rows(db_dsn)}
    reused = server.graphql(REGISTER, {"mrn": "CT-7701"}, token=cm_a)["data"]["registerPatient"]
    assert reused["__typename"] == "PatientPayload", reused
    assert reused["patient"]["id"] != first["patient"]["id"]


async def test_a_psychiatrists_case_review_answers_the_teams_review_request(
    server: ServerProcess,
) -> None:
    """The care manager asks for review (a flag); the psychiatrist records the case
    review: the request is cleared, so the row no longer asks for review for it."""
    team = enrolled_patient(server, mrn="CT-CR")
    pid = team.patient_id
    asked = command(
        server,
        "raiseFlag",
        {"patientId": pid, "kind": "NEEDS_PSYCHIATRIC_REVIEW", "note": "please review"},
        team.care_manager,
        "",
    )
    assert asked["__typename"] == "PatientPayload", asked
    row, _ = _views(server, team.care_manager, pid)
    assert "team_request" in row["reviewReasons"]
    reviewed = command(server, "recordCaseReview", {"patientId": pid}, team.psychiatrist, "")
    assert reviewed["__typename"] == "PatientPayload", reviewed
    row, _ = _views(server, team.care_manager, pid)
    assert row["reviewReasons"] == []
    assert "needs_psychiatric_review" not in [f["kind"] for f in row["flags"]]
