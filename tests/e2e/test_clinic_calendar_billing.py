"""Clinic calendars and billing programs over HTTP against the real server (issue 18).

Every organisation is in America/Los_Angeles. Events are dated in 2025 and early 2026,
before the server's wall clock, with their local offsets written out (PDT -07:00 until
02:00 on 2 November 2025, PST -08:00 after).
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID, uuid4

from tests.e2e.server import ServerProcess

ZONE = "America/Los_Angeles"
PAYLOAD = "__typename ... on PatientPayload { patient { id } } ... on Error { code field }"

SET_ORG = """mutation($i: SetOrganisationInput!) { setOrganisation(input: $i) {
    __typename ... on ValidationError { code field } } }"""
SET_PROGRAM = """mutation($i: SetBillingProgramInput!) { setBillingProgram(input: $i) {
    __typename
    ... on Organisation { timeZone billingPrograms { program effectiveFrom } }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
} }"""
BILLING = """query($month: Date!) { billingSummary(month: $month) { rows {
    patientId timeZone program firstMonth loggedMinutes countedMinutes billable
    codes { code units } ruleId ruleVersion shortfalls { code minutesNeeded }
    countedMinutesByRole { role minutes } nonQualifyingMinutesByRole { role minutes }
    apcmAddOnsPossible entries { minutes }
} } }"""


def _clinic(server: ServerProcess, program: str | None) -> tuple[str, str]:
    """A new organisation in Los Angeles with ``program`` from 2025-01-01: (admin, cm)."""
    org = uuid4()
    admin = server.token("admin", org=org)
    set_org = server.graphql(SET_ORG, {"i": {"name": "Clinic", "timeZone": ZONE}}, token=admin)
    assert set_org["data"]["setOrganisation"]["__typename"] == "Organisation", set_org
    if program is not None:
        reply = server.graphql(
            SET_PROGRAM, {"i": {"program": program, "effectiveFrom": "2025-01-01"}}, token=admin
        )
        assert reply["data"]["setBillingProgram"]["billingPrograms"] == [
            {"program": program, "effectiveFrom": "2025-01-01"}
        ], reply
    return admin, server.token("care_manager", org=org, user=uuid4())


def _do(server: ServerProcess, token: str, mutation: str, args: str, values: Any) -> Any:
    reply = server.graphql(
        f"mutation($id: UUID!, $at: DateTime) {{ {mutation}(input: {{{args}}}) {{ {PAYLOAD} }} }}",
        values,
        token=token,
    )
    assert "errors" not in reply, reply
    return reply["data"][mutation]


def _patient(server: ServerProcess, cm: str, enrolled_at: str) -> str:
    """Registered, enrolled and consented (verbal, cost sharing explained) at ``enrolled_at``."""
    reply = server.graphql(
        "mutation($at: DateTime, $mrn: String!) { registerPatient(input: "
        '{givenName: "A", familyName: "B", '
        'birthDate: "1970-01-01", mrn: $mrn, administrativeSex: FEMALE, occurredAt: $at}) '
        f"{{ {PAYLOAD} }} }}",
        {"at": enrolled_at, "mrn": f"M-{uuid4().hex[:8]}"},
        token=cm,
    )
    pid: str = reply["data"]["registerPatient"]["patient"]["id"]
    values = {"id": pid, "at": enrolled_at}
    assert _do(server, cm, "enrollPatient", "patientId: $id, occurredAt: $at", values)[
        "__typename"
    ] == ("PatientPayload")
    consent = (
        "patientId: $id, kind: COCM_TREATMENT, method: VERBAL, costSharingExplained: true, "
        "occurredAt: $at"
    )
    assert _do(server, cm, "grantConsent", consent, values)["__typename"] == "PatientPayload"
    return pid


def _log(server: ServerProcess, cm: str, pid: str, at: str, minutes: int, by: str = "") -> Any:
    performer = f', performedBy: "{by}"' if by else ""
    reply = server.graphql(
        "mutation($id: UUID!, $at: DateTime) { logContact(input: {patientId: $id, "
        f"activityKind: CONTACT, modalityKind: PHONE, minutes: {minutes}, occurredAt: $at"
        f"{performer}}}) {{ {PAYLOAD} }} }}",
        {"id": pid, "at": at},
        token=cm,
    )
    assert "errors" not in reply, reply
    return reply["data"]["logContact"]


def _row(server: ServerProcess, token: str, pid: str, month: str, logged: int) -> dict[str, Any]:
    """The patient's row of ``month``, once the read model shows ``logged`` minutes."""
    deadline = time.monotonic() + 15
    while True:
        reply = server.graphql(BILLING, {"month": month}, token=token)
        assert "errors" not in reply, reply
        rows = [r for r in reply["data"]["billingSummary"]["rows"] if r["patientId"] == pid]
        if (rows and rows[0]["loggedMinutes"] == logged) or time.monotonic() > deadline:
            assert rows, reply
            found: dict[str, Any] = rows[0]
            return found
        time.sleep(0.2)


def _codes(row: dict[str, Any]) -> list[tuple[str, int]]:
    return [(c["code"], c["units"]) for c in row["codes"]]


def test_the_clinic_calendar_cuts_months_and_first_months_in_local_time(
    server: ServerProcess,
) -> None:
    """20:00 on 31 October in Los Angeles is October; November is a later month across
    the end of daylight saving time, though both fall in November in UTC."""
    admin, cm = _clinic(server, None)
    # Enrolled 20:30 PDT on 31 October = 03:30 UTC on 1 November.
    pid = _patient(server, cm, "2025-10-31T20:30:00-07:00")
    _log(server, cm, pid, "2025-10-31T20:45:00-07:00", 40)
    # 01:30 PST on 2 November, the day daylight saving time ends (the second 01:30).
    _log(server, cm, pid, "2025-11-02T01:30:00-08:00", 35)

    october = _row(server, admin, pid, "2025-10-01", 40)
    assert october["timeZone"] == ZONE and october["program"] is None
    assert october["firstMonth"] and _codes(october) == [("99492", 1)]
    assert (october["ruleId"], october["ruleVersion"]) == ("billing.cocm", "2021.1")

    november = _row(server, admin, pid, "2025-11-01", 35)
    # In UTC November would be the first month (35 minutes: G2214 only); locally it is
    # a later month, and 35 minutes reach 99493 (from 31).
    assert not november["firstMonth"] and _codes(november) == [("99493", 1)]
    assert november["countedMinutesByRole"] == [{"role": "CARE_MANAGER", "minutes": 35}]
    assert november["shortfalls"] == [{"code": "99494", "minutesNeeded": 41}]
    assert november["apcmAddOnsPossible"] is False


def test_the_same_minutes_bill_by_program_and_date_of_service(server: ServerProcess) -> None:
    """90 minutes in a first month: 99484 for general BHI; G0512 for an FQHC in 2025;
    99492 + 99494 for the same FQHC in 2026, then 99493 + 99494 and G2214."""
    bhi_admin, bhi_cm = _clinic(server, "GENERAL_BHI")
    fqhc_admin, fqhc_cm = _clinic(server, "FQHC_RHC")

    bhi = _patient(server, bhi_cm, "2025-11-03T09:00:00-08:00")
    fqhc_2025 = _patient(server, fqhc_cm, "2025-11-03T09:00:00-08:00")
    fqhc_2026 = _patient(server, fqhc_cm, "2026-01-05T09:00:00-08:00")
    for pid, cm, day in (
        (bhi, bhi_cm, "2025-11-10"),
        (fqhc_2025, fqhc_cm, "2025-11-10"),
        (fqhc_2026, fqhc_cm, "2026-01-12"),
    ):
        _log(server, cm, pid, f"{day}T10:00:00-08:00", 50)
        _log(server, cm, pid, f"{day}T14:00:00-08:00", 40)
    # The 2025 FQHC patient's January 2026 (a later month) and February.
    _log(server, fqhc_cm, fqhc_2025, "2026-01-20T10:00:00-08:00", 80)
    _log(server, fqhc_cm, fqhc_2025, "2026-02-20T10:00:00-08:00", 20)

    row = _row(server, bhi_admin, bhi, "2025-11-01", 90)
    assert row["program"] == "GENERAL_BHI" and _codes(row) == [("99484", 1)]
    assert (row["ruleId"], row["ruleVersion"]) == ("billing.cocm", "2021.1")

    row = _row(server, fqhc_admin, fqhc_2025, "2025-11-01", 90)
    assert row["program"] == "FQHC_RHC" and _codes(row) == [("G0512", 1)]
    assert (row["ruleId"], row["ruleVersion"]) == ("billing.fqhc_rhc", "2018.1")

    row = _row(server, fqhc_admin, fqhc_2026, "2026-01-01", 90)
    assert row["firstMonth"] and _codes(row) == [("99492", 1), ("99494", 1)]
    assert (row["ruleId"], row["ruleVersion"]) == ("billing.fqhc_rhc", "2026.1")

    row = _row(server, fqhc_admin, fqhc_2025, "2026-01-01", 80)
    assert not row["firstMonth"] and _codes(row) == [("99493", 1), ("99494", 1)]
    assert (row["ruleId"], row["ruleVersion"]) == ("billing.fqhc_rhc", "2026.1")

    row = _row(server, fqhc_admin, fqhc_2025, "2026-02-01", 20)
    assert _codes(row) == [("G2214", 1)]
    assert row["shortfalls"] == [
        {"code": "99493", "minutesNeeded": 11},
        {"code": "99494", "minutesNeeded": 56},
    ]


def test_bad_program_performer_and_zone_are_typed_errors_and_write_nothing(
    server: ServerProcess,
) -> None:
    """Unknown program for a date, a performer who is not staff, a non-IANA zone; a PCP's
    own time is kept apart and never counts."""
    admin, cm = _clinic(server, None)
    for program, since, code in (
        ("GENERAL_BHI_CP_CSW", "2023-12-01", "PROGRAM_NOT_IN_FORCE"),  # G0323 from 2024
        ("FQHC_RHC", "2017-06-01", "PROGRAM_NOT_IN_FORCE"),  # G0512 from 2018
        ("GENERAL_BHI", "2025-01-15", "NOT_FIRST_OF_MONTH"),
    ):
        reply = server.graphql(
            SET_PROGRAM, {"i": {"program": program, "effectiveFrom": since}}, token=admin
        )
        assert reply["data"]["setBillingProgram"] == {
            "__typename": "ValidationError",
            "code": code,
            "field": "effectiveFrom",
        }, reply
    refused = server.graphql(
        SET_PROGRAM, {"i": {"program": "GENERAL_BHI", "effectiveFrom": "2025-01-01"}}, token=cm
    )
    assert refused["data"]["setBillingProgram"]["__typename"] == "ForbiddenError"
    bad_zone = server.graphql(SET_ORG, {"i": {"name": "Clinic", "timeZone": "PST"}}, token=admin)
    assert bad_zone["data"]["setOrganisation"] == {
        "__typename": "ValidationError",
        "code": "UNKNOWN_TIME_ZONE",
        "field": "timeZone",
    }
    programs = server.graphql(
        "{ me { organisation { timeZone billingPrograms { program } } } }", token=admin
    )
    assert programs["data"]["me"]["organisation"] == {"timeZone": ZONE, "billingPrograms": []}

    pid = _patient(server, cm, "2025-11-03T09:00:00-08:00")
    _log(server, cm, pid, "2025-11-04T09:00:00-08:00", 10)
    caregiver = uuid4()  # a parent or anyone not listed as staff
    assert _log(server, cm, pid, "2025-11-05T09:00:00-08:00", 30, str(caregiver)) == {
        "__typename": "ValidationError",
        "code": "NOT_STAFF",
        "field": "performedBy",
    }
    pcp = UUID(int=uuid4().int)
    put = server.graphql(
        "mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) { __typename } }",
        {"i": {"userId": str(pcp), "displayName": "Dr P", "roles": ["PCP"]}},
        token=admin,
    )
    assert put["data"]["putStaffMember"]["__typename"] == "StaffMember", put
    _log(server, cm, pid, "2025-11-06T09:00:00-08:00", 30, str(pcp))
    row = _row(server, admin, pid, "2025-11-01", 40)
    assert [e["minutes"] for e in row["entries"]] == [10, 30]  # the refused 30 never written
    assert row["countedMinutes"] == 10 and _codes(row) == []
    assert row["countedMinutesByRole"] == [{"role": "CARE_MANAGER", "minutes": 10}]
    assert row["nonQualifyingMinutesByRole"] == [{"role": "PCP", "minutes": 30}]
    assert row["shortfalls"][0] == {"code": "G2214", "minutesNeeded": 6}
