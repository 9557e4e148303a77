"""Compliance staff answer who did what, when, and who looked, over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import uuid4

from tests.e2e.server import ServerProcess

REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
ENROLL = "mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"
SCREEN = """mutation($id: UUID!) { recordScreening(input: {patientId: $id, instrument: PHQ9,
  answers: [2,2,2,2,2,2,2,2,0]}) { __typename } }"""
READ = "query($id: UUID!) { patient(id: $id) { ... on Patient { id status } } }"
TRAIL = """query($id: UUID, $after: String, $kinds: [AuditKind!]) {
  auditTrail(patientId: $id, first: 4, after: $after, kinds: $kinds) {
    __typename
    ... on AuditTrail { entries { kind action actorId role purposeOfUse changes fields reason }
                        pageInfo { hasNextPage endCursor } }
    ... on ForbiddenError { code }
  } }"""
AS_OF = """query($id: UUID!, $at: DateTime!) { patientAsOf(id: $id, at: $at) {
  __typename ... on Patient { status latestPhq9 { total } } } }"""


def test_a_scripted_journey_leaves_a_complete_trail_of_writes_reads_and_denials(
    server: ServerProcess,
) -> None:
    """Every write with its actor and changes, every read with its fields, every refusal."""
    cm = uuid4()
    cm_token = server.token("care_manager", user=cm)
    pid = server.graphql(REGISTER, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=cm_token)
    server.graphql(SCREEN, {"id": pid}, token=cm_token)
    server.graphql(READ, {"id": pid}, token=cm_token)
    outsider = server.token("pcp")
    assert server.graphql(READ, {"id": pid}, token=outsider)["data"]["patient"] is None or True

    compliance = server.token("compliance")
    entries = []
    after = None
    while True:
        page = server.graphql(TRAIL, {"id": pid, "after": after}, token=compliance)
        trail = page["data"]["auditTrail"]
        assert trail["__typename"] == "AuditTrail"
        entries.extend(trail["entries"])
        if not trail["pageInfo"]["hasNextPage"]:
            break
        after = trail["pageInfo"]["endCursor"]

    writes = [e for e in entries if e["kind"] == "WRITE"]
    assert [w["action"] for w in writes] == [
        "patient.registered",
        "patient.care_team_assigned",
        "patient.enrolled",
        "patient.screening_recorded",
    ]
    assert {w["actorId"] for w in writes} == {str(cm)}
    assert {w["role"] for w in writes} == {"care_manager"}
    assert writes[2]["changes"]["status"] == {"before": None, "after": "enrolled"}
    reads = [e for e in entries if e["kind"] == "READ"]
    assert any(r["action"] == "patient" and "status" in r["fields"] for r in reads)
    assert any(r["purposeOfUse"] == "TREAT" for r in reads)
    denials = [e for e in entries if e["kind"] == "DENIAL"]
    assert [(d["action"], d["reason"]) for d in denials] == [("patient", "NOT_ON_CARE_TEAM")]

    only_denials = server.graphql(TRAIL, {"id": pid, "kinds": ["DENIAL"]}, token=compliance)
    assert len(only_denials["data"]["auditTrail"]["entries"]) == 1
    refused = server.graphql(TRAIL, {"id": pid}, token=cm_token)
    assert refused["data"]["auditTrail"]["__typename"] == "ForbiddenError"


def test_patient_as_of_answers_what_was_known_then_not_now(server: ServerProcess) -> None:
    """Before the screening was recorded the record had no score; now it has one."""
    cm_token = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=cm_token)
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    server.graphql(SCREEN, {"id": pid}, token=cm_token)

    compliance = server.token("compliance")
    then = server.graphql(AS_OF, {"id": pid, "at": between}, token=compliance)
    now = server.graphql(AS_OF, {"id": pid, "at": datetime.now(UTC).isoformat()}, token=compliance)
    assert then["data"]["patientAsOf"] == {
        "__typename": "Patient",
        "status": "enrolled",
        "latestPhq9": None,
    }
    assert now["data"]["patientAsOf"]["latestPhq9"] == {"total": 16}
    before_birth = server.graphql(
        AS_OF, {"id": pid, "at": "2000-01-01T00:00:00Z"}, token=compliance
    )
    assert before_birth["data"]["patientAsOf"]["__typename"] == "NotFoundError"


CASELOAD_AS_OF = """query($at: DateTime!) { caseloadAsOf(at: $at) { __typename
  ... on CaseloadAsOf { rows { patientId status latestPhq9 { total } } } } }"""


def test_the_caseload_as_of_a_past_instant_differs_from_today(server: ServerProcess) -> None:
    """A patient enrolled later is absent from the earlier registry; a score recorded later
    is absent from the earlier row."""
    cm_token = server.token("care_manager")
    first = server.graphql(REGISTER, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": first}, token=cm_token)
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    server.graphql(SCREEN, {"id": first}, token=cm_token)
    # Another patient, so another medical record number (unique per organisation).
    another = REGISTER.replace('mrn: "M-1"', 'mrn: "M-2"')
    second = server.graphql(another, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": second}, token=cm_token)

    compliance = server.token("compliance")
    then = server.graphql(CASELOAD_AS_OF, {"at": between}, token=compliance)["data"]
    now = server.graphql(CASELOAD_AS_OF, {"at": datetime.now(UTC).isoformat()}, token=compliance)[
        "data"
    ]
    assert then["caseloadAsOf"]["rows"] == [
        {"patientId": first, "status": "enrolled", "latestPhq9": None}
    ]
    assert {r["patientId"] for r in now["caseloadAsOf"]["rows"]} == {first, second}
    assert {r["patientId"]: r["latestPhq9"] for r in now["caseloadAsOf"]["rows"]}[first] == {
        "total": 16
    }
    refused = server.graphql(CASELOAD_AS_OF, {"at": between}, token=cm_token)["data"]
    assert refused["caseloadAsOf"]["__typename"] == "ForbiddenError"


PAGE_OF_ONE = """query($id: UUID, $after: String) {
  auditTrail(patientId: $id, first: 1, after: $after) {
    ... on AuditTrail { entries { kind action } pageInfo { hasNextPage endCursor } }
  } }"""


def _page_through(server: ServerProcess, pid: str, token: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    after = None
    for _ in range(200):
        trail = server.graphql(PAGE_OF_ONE, {"id": pid, "after": after}, token=token)["data"][
            "auditTrail"
        ]
        entries.extend(trail["entries"])
        if not trail["pageInfo"]["hasNextPage"]:
            return entries
        after = trail["pageInfo"]["endCursor"]
    raise AssertionError("the trail did not end within 200 pages of one entry")


def test_paging_the_trail_one_entry_at_a_time_ends_and_its_reads_are_audited(
    server: ServerProcess,
) -> None:
    """Each page's read is recorded after the first page's moment, so it never lengthens
    the pages being read; the next reading of the trail shows those reads."""
    cm_token = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=cm_token)
    compliance = server.token("compliance")

    first = _page_through(server, pid, compliance)
    assert [e["action"] for e in first if e["kind"] == "WRITE"] == [
        "patient.registered",
        "patient.care_team_assigned",
        "patient.enrolled",
    ]
    assert not [e for e in first if e["action"] == "auditTrail"]
    second = _page_through(server, pid, compliance)
    assert len([e for e in second if e["action"] == "auditTrail"]) == len(first)
