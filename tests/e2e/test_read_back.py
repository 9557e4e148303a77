"""Reading back what was written: notes, referrals and care plans by id and per patient."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.e2e.journey import command, enrolled_patient
from tests.e2e.server import ServerProcess
from tests.e2e.test_consultation_loop import signed_note, step

NOTE_FIELDS = """
  __typename
  ... on ConsultationNote {
    id status question content
    addenda { text authorId }
    recommendations { id text response responseText respondedBy }
  }
  ... on ForbiddenError { code }
  ... on NotFoundError { code }
"""

OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000ff")

REFERRAL_FIELDS = """
  __typename
  ... on Referral { id status reason reportBackSummary }
  ... on ForbiddenError { code }
  ... on NotFoundError { code }
"""


def read(server: ServerProcess, field: str, id: str, fields: str, token: str) -> Any:
    body = server.graphql(f'{{ {field}(id: "{id}") {{ {fields} }} }}', token=token)
    assert "errors" not in body, body
    return body["data"][field]


async def reads_recorded(db_dsn: str, operation: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM access_log_entries WHERE operation = $1 AND outcome = 'allowed'",
            operation,
        )
        return count
    finally:
        await conn.close()


async def test_the_pcp_reads_a_signed_note_and_the_psychiatrist_reads_the_decline_reason(
    server: ServerProcess, db_dsn: str
) -> None:
    """A signed note's text, addenda and recommendations, and each response's text, read back."""
    team = enrolled_patient(server)
    note_id, (accept_id, decline_id) = signed_note(
        server, team, ["Increase the dose.", "Check sleep."]
    )
    step(
        server,
        "addAddendum",
        {"consultationNoteId": note_id, "text": "Week 11 score arrived since."},
        team.psychiatrist,
    )
    step(server, "acknowledgeConsultationNote", {"consultationNoteId": note_id}, team.pcp)
    step(
        server,
        "respondToRecommendation",
        {
            "consultationNoteId": note_id,
            "recommendationId": decline_id,
            "response": "DECLINED",
            "text": "Sleep was assessed last week.",
        },
        team.pcp,
    )

    as_pcp = read(server, "consultationNote", note_id, NOTE_FIELDS, team.pcp)
    assert as_pcp["__typename"] == "ConsultationNote"
    assert as_pcp["content"] == "Partial response at week 10."
    assert [a["text"] for a in as_pcp["addenda"]] == ["Week 11 score arrived since."]
    assert [r["text"] for r in as_pcp["recommendations"]] == ["Increase the dose.", "Check sleep."]

    as_psychiatrist = read(server, "consultationNote", note_id, NOTE_FIELDS, team.psychiatrist)
    declined = {r["id"]: r for r in as_psychiatrist["recommendations"]}[decline_id]
    assert (declined["response"], declined["responseText"]) == (
        "DECLINED",
        "Sleep was assessed last week.",
    )
    assert declined["respondedBy"] == str(team.pcp_id)
    assert {r["id"] for r in as_psychiatrist["recommendations"]} == {accept_id, decline_id}
    assert await reads_recorded(db_dsn, "consultationNote") == 2


def test_everyone_on_the_team_reads_a_referrals_report_back_and_no_one_else_does(
    server: ServerProcess,
) -> None:
    """The report back is readable by the three team roles; others are refused or not found."""
    team = enrolled_patient(server)
    payload = "... on ReferralPayload { referral { id } }"
    made = command(
        server,
        "requestReferral",
        {
            "patientId": team.patient_id,
            "service": "PSYCHOTHERAPY",
            "reason": "Weekly psychotherapy.",
            "expectedBy": "2999-01-01",
        },
        team.care_manager,
        payload,
    )
    referral_id = made["referral"]["id"]
    for operation, extra in (
        ("sendReferral", {}),
        ("acceptReferral", {}),
        ("scheduleReferral", {"appointmentAt": "2026-01-02T09:30:00+00:00"}),
        ("completeReferral", {"reportBackSummary": "Assessed; eight sessions agreed."}),
    ):
        done = command(
            server, operation, {"referralId": referral_id, **extra}, team.care_manager, payload
        )
        assert done["referral"]["id"] == referral_id, (operation, done)

    for token in (team.care_manager, team.pcp, team.psychiatrist):
        seen = read(server, "referral", referral_id, REFERRAL_FIELDS, token)
        assert (seen["status"], seen["reportBackSummary"]) == (
            "COMPLETED",
            "Assessed; eight sessions agreed.",
        )

    stranger = server.token("pcp")
    assert read(server, "referral", referral_id, REFERRAL_FIELDS, stranger) == {
        "__typename": "ForbiddenError",
        "code": "NOT_ON_CARE_TEAM",
    }
    elsewhere = server.token("pcp", org=OTHER_ORG)
    assert read(server, "referral", referral_id, REFERRAL_FIELDS, elsewhere) == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
    }
    # An id of another kind of record is not a referral.
    assert read(server, "referral", team.patient_id, REFERRAL_FIELDS, team.pcp) == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
    }
    assert read(server, "referral", str(uuid4()), REFERRAL_FIELDS, team.pcp) == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
    }


def test_a_patients_records_list_every_plan_referral_and_note(server: ServerProcess) -> None:
    """patientRecords returns what the team wrote for the patient, and only to readers."""
    team = enrolled_patient(server)
    note_id, _ = signed_note(server, team, ["Increase the dose."])
    plan = command(
        server,
        "createCarePlan",
        {"patientId": team.patient_id},
        team.care_manager,
        "... on CarePlanPayload { carePlan { id } }",
    )
    query = """query($p: UUID!) { patientRecords(patientId: $p) {
        __typename
        ... on PatientRecords {
          carePlans { id } referrals { id } consultationNotes { id question }
        }
        ... on ForbiddenError { code }
    } }"""
    body = server.graphql(query, {"p": team.patient_id}, token=team.pcp)
    records = body["data"]["patientRecords"]
    assert records["__typename"] == "PatientRecords", body
    assert [p["id"] for p in records["carePlans"]] == [plan["carePlan"]["id"]]
    assert records["referrals"] == []
    assert [n["id"] for n in records["consultationNotes"]] == [note_id]

    refused = server.graphql(query, {"p": team.patient_id}, token=server.token("psychiatrist"))
    assert refused["data"]["patientRecords"] == {
        "__typename": "ForbiddenError",
        "code": "NOT_ON_CARE_TEAM",
    }
