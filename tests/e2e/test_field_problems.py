"""Every field problem of an input at once, over HTTP (issue 13): one request with three bad
fields answers one ValidationError listing the three, as camelCase input paths, and writes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg

from tests.e2e.journey import enrolled_patient, event_count
from tests.e2e.server import ServerProcess
from tests.e2e.test_consultation_loop import signed_note

PROBLEMS = """... on ValidationError { code field message problems { field code message } }"""


def mutate(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    input_type = operation[0].upper() + operation[1:] + "Input"
    document = (
        f"mutation($i: {input_type}!) {{ {operation}(input: $i) {{ __typename {PROBLEMS} }} }}"
    )
    body = server.graphql(document, {"i": input}, token=token)
    assert "errors" not in body, body
    return body["data"][operation]


async def all_events(db_dsn: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await conn.close()


async def directory_rows(db_dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM directory_changes"),
            await conn.fetchval("SELECT count(*) FROM staff"),
            await conn.fetchval("SELECT count(*) FROM organisations"),
        )
    finally:
        await conn.close()


def fields(result: Any) -> list[tuple[str, str]]:
    return [(p["field"], p["code"]) for p in result["problems"]]


async def test_register_patient_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager")
    before = await all_events(db_dsn)
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    result = mutate(
        server,
        "registerPatient",
        {"givenName": "  ", "familyName": "Person", "birthDate": tomorrow, "mrn": ""},
        cm,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("givenName", "BLANK_VALUE"),
        ("mrn", "BLANK_VALUE"),
        ("birthDate", "INVALID_BIRTH_DATE"),
    ]
    # The first problem stays on top, as before (compatible with clients reading `field`).
    assert (result["field"], result["code"]) == ("givenName", "BLANK_VALUE")
    assert await all_events(db_dsn) == before


async def test_log_contact_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-1")
    before = await event_count(db_dsn, team.patient_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = mutate(
        server,
        "logContact",
        {
            "patientId": team.patient_id,
            "activityKind": "CONTACT",
            "minutes": 0,
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("modality", "MODALITY_REQUIRED"),
        ("minutes", "INVALID_MINUTES"),
    ]
    assert await event_count(db_dsn, team.patient_id) == before
    # One bad field is still one problem, the same as `code`/`field`.
    single = mutate(
        server,
        "logContact",
        {"patientId": team.patient_id, "activityKind": "CASE_REVIEW", "minutes": 0},
        team.care_manager,
    )
    assert fields(single) == [("minutes", "INVALID_MINUTES")]
    assert await event_count(db_dsn, team.patient_id) == before


async def test_record_screening_reports_time_and_answers_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-2")
    before = await event_count(db_dsn, team.patient_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = mutate(
        server,
        "recordScreening",
        {
            "patientId": team.patient_id,
            "instrument": "PHQ9",
            "answers": [0, 1, 2],
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert result["__typename"] == "ValidationError", result
    assert [p["field"] for p in result["problems"]] == ["occurredAt", "answers"]
    assert await event_count(db_dsn, team.patient_id) == before


async def test_put_staff_member_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    admin = server.token("admin")
    before = await directory_rows(db_dsn)
    result = mutate(
        server,
        "putStaffMember",
        {"userId": str(uuid4()), "displayName": " ", "credentials": "x" * 101, "roles": []},
        admin,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("displayName", "INVALID_TEXT"),
        ("credentials", "INVALID_TEXT"),
        ("roles", "INVALID_ROLES"),
    ]
    org = mutate(server, "setOrganisation", {"name": "", "timeZone": "Mars/Olympus"}, admin)
    assert fields(org) == [("name", "INVALID_TEXT"), ("timeZone", "UNKNOWN_TIME_ZONE")]
    assert await directory_rows(db_dsn) == before


# --- care plans, referrals, consultation notes (every other multi-field input) -----------


async def test_a_care_plan_review_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-3")
    created = server.graphql(
        """mutation($i: CreateCarePlanInput!) { createCarePlan(input: $i) {
             ... on CarePlanPayload { carePlan { id } } } }""",
        {"i": {"patientId": team.patient_id}},
        token=team.pcp,
    )
    plan_id = created["data"]["createCarePlan"]["carePlan"]["id"]
    before = await event_count(db_dsn, plan_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    review = mutate(
        server,
        "reviewCarePlan",
        {
            "carePlanId": plan_id,
            "decision": "CHANGE",
            "baselineTotal": 99,
            "latestTotal": -1,
            "occurredAt": future,
        },
        team.pcp,
    )
    assert review["__typename"] == "ValidationError", review
    assert fields(review) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("baselineTotal", "INVALID_TARGET"),
        ("latestTotal", "INVALID_TARGET"),
    ]
    # A medication with a blank name, no dose and a psychotherapy's modality: each named.
    started = mutate(
        server,
        "startIntervention",
        {
            "carePlanId": plan_id,
            "kind": "MEDICATION",
            "name": " ",
            "modality": "INTERPERSONAL_THERAPY",
        },
        team.pcp,
    )
    assert fields(started) == [
        ("name", "INTERVENTION_DETAILS"),
        ("dose", "INTERVENTION_DETAILS"),
        ("modality", "INTERVENTION_DETAILS"),
    ]
    target = mutate(
        server,
        "setTarget",
        {
            "carePlanId": plan_id,
            "instrument": "PHQ9",
            "kind": "REDUCTION_PERCENT",
            "value": 150,
            "occurredAt": future,
        },
        team.pcp,
    )
    assert fields(target) == [("occurredAt", "OCCURRED_IN_FUTURE"), ("value", "INVALID_TARGET")]
    goal = mutate(
        server,
        "addGoal",
        {"carePlanId": plan_id, "description": "", "occurredAt": future},
        team.pcp,
    )
    assert fields(goal) == [("occurredAt", "OCCURRED_IN_FUTURE"), ("description", "BLANK_VALUE")]
    assert await event_count(db_dsn, plan_id) == before


async def test_a_referral_request_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-4")
    before = await all_events(db_dsn)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = mutate(
        server,
        "requestReferral",
        {
            "patientId": team.patient_id,
            "service": "PSYCHOTHERAPY",
            "reason": "   ",
            "expectedBy": "2000-01-01",
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("reason", "BLANK_VALUE"),
        ("expectedBy", "INVALID_EXPECTED_BY"),
    ]
    assert await all_events(db_dsn) == before


async def test_consultation_inputs_report_every_bad_field(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-5")
    before = await all_events(db_dsn)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    asked = mutate(
        server,
        "requestConsultation",
        {"patientId": team.patient_id, "question": " ", "occurredAt": future},
        team.care_manager,
    )
    assert fields(asked) == [("occurredAt", "OCCURRED_IN_FUTURE"), ("question", "BLANK_VALUE")]
    assert await all_events(db_dsn) == before

    note_id, (rec_id,) = signed_note(server, team, ["Increase the dose."])
    acknowledged = server.graphql(
        """mutation($i: AcknowledgeConsultationNoteInput!) {
             acknowledgeConsultationNote(input: $i) { __typename } }""",
        {"i": {"consultationNoteId": note_id}},
        token=team.pcp,
    )
    assert acknowledged["data"]["acknowledgeConsultationNote"]["__typename"] == (
        "ConsultationNotePayload"
    ), acknowledged
    written = await event_count(db_dsn, note_id)
    declined = mutate(
        server,
        "respondToRecommendation",
        {
            "consultationNoteId": note_id,
            "recommendationId": rec_id,
            "response": "DECLINED",
            "text": "",
            "occurredAt": future,
        },
        team.pcp,
    )
    assert fields(declined) == [("occurredAt", "OCCURRED_IN_FUTURE"), ("text", "REASON_REQUIRED")]
    addendum = mutate(
        server,
        "addAddendum",
        {"consultationNoteId": note_id, "text": "", "occurredAt": future},
        team.psychiatrist,
    )
    assert fields(addendum) == [("occurredAt", "OCCURRED_IN_FUTURE"), ("text", "BLANK_VALUE")]
    assert await event_count(db_dsn, note_id) == written


async def test_patient_commands_with_lists_and_conditional_fields_report_every_problem(
    server: ServerProcess, db_dsn: str
) -> None:
    """A relapse prevention plan names each blank item by its index; a consent for
    collaborative care without its method and a future time names both."""
    team = enrolled_patient(server, mrn="FP-6")
    before = await event_count(db_dsn, team.patient_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    plan = mutate(
        server,
        "writeRelapsePreventionPlan",
        {
            "patientId": team.patient_id,
            "warningSigns": ["Sleeping badly", " "],
            "strategies": [],
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert fields(plan) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("warningSigns[1]", "BLANK_VALUE"),
        ("strategies", "INVALID_PAYLOAD_VALUE"),
    ]
    consent = mutate(
        server,
        "grantConsent",
        {"patientId": team.patient_id, "kind": "COCM_TREATMENT", "occurredAt": future},
        team.care_manager,
    )
    assert fields(consent) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("method", "CONSENT_METHOD_REQUIRED"),
    ]
    assert await event_count(db_dsn, team.patient_id) == before
