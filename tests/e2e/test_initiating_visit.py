"""The billing practitioner's initiating visit over HTTP (issue 18; docs/clinical-rules.md,
"Billing"): until the PCP records one, the month's billing row lists it as missing and is
not ready to submit; once recorded it is not listed. Only the PCP on the team records it,
and a bad time is a typed error with nothing written."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.e2e.journey import command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

BILLING = """query($month: Date!) { billingSummary(month: $month) {
    rows { patientId codes { code units } missingDocumentation missingElements
           billable readyToSubmit } } }"""
ERRORS = "... on PatientPayload { patient { id } }"


def _row(server: ServerProcess, token: str, pid: str, month: str) -> dict[str, Any]:
    reply = server.graphql(BILLING, {"month": month}, token=token)
    assert "errors" not in reply, reply
    (row,) = [r for r in reply["data"]["billingSummary"]["rows"] if r["patientId"] == pid]
    result: dict[str, Any] = row
    return result


async def test_a_month_lists_the_initiating_visit_until_the_pcp_records_it(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="IV-1")
    pid, cm = team.patient_id, team.care_manager
    now = dt.datetime.now(dt.UTC)
    for operation, input in (
        (
            "grantConsent",
            {
                "patientId": pid,
                "kind": "COCM_TREATMENT",
                "method": "VERBAL",
                "costSharingExplained": True,
            },
        ),
        (
            "recordScreening",
            {"patientId": pid, "instrument": "PHQ9", "answers": [2, 2, 2, 2, 2, 2, 1, 1, 0]},
        ),
        (
            "logContact",
            {"patientId": pid, "activityKind": "CONTACT", "modalityKind": "PHONE", "minutes": 40},
        ),
    ):
        done = command(server, operation, input, cm, ERRORS)
        assert done["__typename"] == "PatientPayload", (operation, done)
    month = now.date().replace(day=1).isoformat()
    before = _row(server, cm, pid, month)
    assert "initiating_visit" in before["missingDocumentation"]
    assert "INITIATING_VISIT" in before["missingElements"] and not before["readyToSubmit"]

    # Not the PCP, or a visit in the future: typed errors, nothing written.
    written = await event_count(db_dsn, pid)
    by_cm = command(
        server,
        "recordInitiatingVisit",
        {"patientId": pid, "visitKind": "ANNUAL_WELLNESS_VISIT"},
        cm,
        "",
    )
    assert by_cm == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
    future = (now + dt.timedelta(days=2)).isoformat()
    late = command(
        server,
        "recordInitiatingVisit",
        {"patientId": pid, "visitKind": "ANNUAL_WELLNESS_VISIT", "occurredAt": future},
        team.pcp,
        "",
    )
    assert (late["__typename"], late["field"]) == ("ValidationError", "occurredAt"), late
    assert await event_count(db_dsn, pid) == written

    visit = command(
        server,
        "recordInitiatingVisit",
        {"patientId": pid, "visitKind": "EVALUATION_AND_MANAGEMENT"},
        team.pcp,
        ERRORS,
    )
    assert visit["__typename"] == "PatientPayload", visit
    # The command waited for the read models (read-your-writes): the row is re-derived.
    after = _row(server, cm, pid, month)
    assert "initiating_visit" not in after["missingDocumentation"]
    assert "INITIATING_VISIT" not in after["missingElements"]
