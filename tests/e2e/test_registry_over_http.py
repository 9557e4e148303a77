"""The caseload and billingSummary over real HTTP against a running careteam server.

A subprocess server reads the wall clock, so the test dates its events in the past
(``occurredAt``) relative to now: enrolled in the first days of last month, 36 minutes
logged in that month, a safety answer on a PHQ-9.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from tests.e2e.server import ServerProcess


def _last_month() -> date:
    return (datetime.now(UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)


def _at(day: date, dom: int) -> str:
    return datetime(day.year, day.month, dom, 10, tzinfo=UTC).isoformat()


def _ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][field]
    assert result["__typename"] == "PatientPayload", result
    patient = result["patient"]  # the enum says what the deprecated String says
    assert patient["episodeStatus"] == (patient["status"] and patient["status"].upper())
    return result


PAYLOAD = "__typename ... on PatientPayload { patient { id status episodeStatus } }"

CASELOAD = """
{ caseload(first: 10) {
    totalCount asOf pageInfo { hasNextPage }
    edges { node {
      patientId status episodeStatus weeksInTreatment flagged
      latestPhq9 { total instrument instrumentCode } contactCount daysSinceLastContact
      flags { kind ruleId ruleVersion inputs } reviewReasons reviewReasonKinds
    } }
} }"""

BILLING = """
query($month: Date!) {
  billingSummary(month: $month) {
    month
    rows { patientId firstMonth loggedMinutes countedMinutes codes { code units }
           missingDocumentation missingElements billable }
  }
}"""


GRANT_CONSENT = """
mutation($id: UUID!, $at: DateTime!) {
  grantConsent(input: {patientId: $id, kind: COCM_TREATMENT, method: VERBAL,
                       costSharingExplained: true, occurredAt: $at}) { __typename }
}"""


def _grant_consent(server: ServerProcess, patient_id: str, on: str) -> None:
    """Collaborative care consent, documented verbally, effective on ``on``."""
    reply = server.graphql(GRANT_CONSENT, {"id": patient_id, "at": on})
    assert reply["data"]["grantConsent"]["__typename"] == "PatientPayload", reply


def _wait_for(read: Any, done: Any, timeout: float = 15.0) -> Any:
    """Polls ``read()`` until ``done(value)``: another process's writes arrive by poll."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


async def test_a_care_manager_sees_the_caseload_row_and_the_first_month_bill(
    server: ServerProcess, db_dsn: str
) -> None:
    """Enroll, score with a safety answer, log 36 minutes: flagged row, then 99492."""
    care_manager = uuid4()
    server.use(server.token("care_manager", user=care_manager))
    month = _last_month()
    registered = _ok(
        server.graphql(
            'mutation($at: DateTime) { registerPatient(input: {givenName: "A", '
            'familyName: "B", birthDate: "1980-01-01", mrn: "M-1", administrativeSex: FEMALE, '
            "occurredAt: $at}) { "
            f"{PAYLOAD} }} }}",
            {"at": _at(month, 1)},
        ),
        "registerPatient",
    )
    pid = registered["patient"]["id"]
    for mutation, dom in (("enrollPatient", 2), ("startTreatment", 2)):
        _ok(
            server.graphql(
                f"mutation($id: UUID!, $at: DateTime) {{ {mutation}(input: "
                f"{{patientId: $id, occurredAt: $at}}) {{ {PAYLOAD} }} }}",
                {"id": pid, "at": _at(month, dom)},
            ),
            mutation,
        )
    _ok(
        server.graphql(
            "mutation($id: UUID!, $at: DateTime) { recordScreening(input: {patientId: $id, "
            "instrument: PHQ9, answers: [2,2,2,2,1,1,1,1,1], occurredAt: $at}) "
            f"{{ {PAYLOAD} }} }}",
            {"id": pid, "at": _at(month, 3)},
        ),
        "recordScreening",
    )
    # The enum fields, and (deprecated, still accepted) their lower-case String twins.
    kinds = (
        "activityKind: CONTACT, modalityKind: PHONE",
        'activity: "contact", modality: "phone"',
    )
    for (dom, minutes), kind in zip(((3, 20), (10, 16)), kinds, strict=True):
        _ok(
            server.graphql(
                "mutation($id: UUID!, $at: DateTime, $m: Int!) { logContact(input: "
                f"{{patientId: $id, {kind}, minutes: $m, "
                f"occurredAt: $at}}) {{ {PAYLOAD} }} }}",
                {"id": pid, "at": _at(month, dom), "m": minutes},
            ),
            "logContact",
        )
    both_sexes = server.graphql(
        'mutation { registerPatient(input: {givenName: "C", familyName: "D", '
        'birthDate: "1980-01-01", mrn: "M-2", administrativeSex: MALE, sex: "male"}) '
        "{ __typename ... on Error { code field } } }"
    )
    assert both_sexes["data"]["registerPatient"] == {
        "__typename": "ValidationError",
        "code": "CONFLICTING_FIELDS",
        "field": "administrativeSex",
    }, both_sexes
    # Exactly one of activityKind and activity; at most one of modalityKind and modality.
    for fields, code, field in (
        ("modalityKind: PHONE", "FIELD_REQUIRED", "activityKind"),
        ('activityKind: CONTACT, activity: "contact"', "CONFLICTING_FIELDS", "activityKind"),
        (
            'activityKind: CONTACT, modalityKind: PHONE, modality: "phone"',
            "CONFLICTING_FIELDS",
            "modalityKind",
        ),
        ('activity: "chat", modalityKind: PHONE', "INVALID_ENUM_VALUE", "activity"),
    ):
        refused = server.graphql(
            "mutation($id: UUID!) { logContact(input: "
            f"{{patientId: $id, {fields}, minutes: 5}}) "
            "{ __typename ... on Error { code field } } }",
            {"id": pid},
        )
        assert refused["data"]["logContact"] == {
            "__typename": "ValidationError",
            "code": code,
            "field": field,
        }, (fields, refused)

    body = server.graphql(CASELOAD)
    assert "errors" not in body, body
    page = body["data"]["caseload"]
    assert page["totalCount"] == 1 and not page["pageInfo"]["hasNextPage"]
    row = page["edges"][0]["node"]
    assert row["patientId"] == pid and row["status"] == "active_treatment"
    assert row["episodeStatus"] == "ACTIVE_TREATMENT"  # the enum beside the deprecated String
    assert row["latestPhq9"] == {"total": 13, "instrument": "phq9", "instrumentCode": "PHQ9"}
    assert row["contactCount"] == 2
    assert row["flagged"] and row["weeksInTreatment"] >= 3
    kinds = {f["kind"]: f for f in row["flags"]}
    assert kinds["safety_risk"]["ruleId"] == "flags.safety_risk"
    assert kinds["safety_risk"]["inputs"]["latest_item9"] == 1
    assert "needs_psychiatric_review" in kinds
    assert row["reviewReasonKinds"] == [r.upper() for r in row["reviewReasons"]]
    assert "SAFETY_RISK" in row["reviewReasonKinds"]

    def bill() -> dict[str, Any]:
        reply = server.graphql(BILLING, {"month": month.isoformat()})
        assert "errors" not in reply, reply
        (only,) = reply["data"]["billingSummary"]["rows"]
        result: dict[str, Any] = only
        return result

    unconsented = bill()
    assert unconsented["loggedMinutes"] == 36 and unconsented["codes"] == []
    assert "consent" in unconsented["missingDocumentation"] and not unconsented["billable"]

    _grant_consent(server, pid, _at(month, 2))
    billed = _wait_for(bill, lambda r: r["billable"])
    assert billed["firstMonth"] and billed["countedMinutes"] == 36
    assert billed["codes"] == [{"code": "99492", "units": 1}]
    # No care plan, case review or initiating visit was recorded: listed, and the code
    # still stands.
    assert billed["missingDocumentation"] == [
        "care_plan",
        "psychiatric_consultant_review",
        "initiating_visit",
    ]
    assert billed["missingElements"] == [
        "CARE_PLAN",
        "PSYCHIATRIC_CONSULTANT_REVIEW",
        "INITIATING_VISIT",
    ]
