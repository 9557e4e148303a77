"""Break-the-glass over HTTP: a reason opens a window, reads in it are tagged and reviewed."""

from __future__ import annotations

from uuid import uuid4

from tests.e2e.journey import event_count
from tests.e2e.server import ServerProcess

REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
READ = "query($id: UUID!) { patient(id: $id) { __typename ... on ForbiddenError { code } } }"
BREAK = """mutation($id: UUID!, $reason: String!, $minutes: Int!) {
  breakTheGlass(patientId: $id, reason: $reason, minutes: $minutes) {
    __typename ... on EmergencyAccessPayload { grantId expiresAt }
    ... on ValidationError { code } ... on ForbiddenError { code }
    ... on NotAllowedError { code } } }"""
REVIEWS = """{ emergencyAccessReviews { __typename ... on EmergencyGrants {
  grants { grantId patientId userId reason reads reviewOutcome } }
  ... on ForbiddenError { code } } }"""
REVIEW = """mutation($id: UUID!, $grant: UUID!) { reviewEmergencyAccess(patientId: $id,
  grantId: $grant, outcome: APPROPRIATE, note: "ED visit") { __typename
  ... on InvalidTransitionError { code } } }"""
TRAIL = """query($id: UUID!) { auditTrail(patientId: $id, kinds: [READ]) { ... on AuditTrail {
  entries { actorId purposeOfUse reason } } } }"""


def test_an_outsider_breaks_the_glass_reads_and_compliance_reviews_it(
    server: ServerProcess,
) -> None:
    """Refused before; allowed with a reason; the read is tagged; the review closes it once."""
    pid = server.graphql(REGISTER)["data"]["registerPatient"]["patient"]["id"]
    doctor = uuid4()
    outsider = server.token("pcp", user=doctor)
    assert server.graphql(READ, {"id": pid}, token=outsider)["data"]["patient"] == {
        "__typename": "ForbiddenError",
        "code": "NOT_ON_CARE_TEAM",
    }
    blank = server.graphql(BREAK, {"id": pid, "reason": " ", "minutes": 30}, token=outsider)
    assert blank["data"]["breakTheGlass"]["__typename"] == "ValidationError"
    too_long = server.graphql(BREAK, {"id": pid, "reason": "ED", "minutes": 999}, token=outsider)
    assert too_long["data"]["breakTheGlass"]["code"] == "INVALID_EMERGENCY_WINDOW"
    compliance = server.token("compliance")
    refused = server.graphql(BREAK, {"id": pid, "reason": "ED", "minutes": 30}, token=compliance)
    assert refused["data"]["breakTheGlass"]["__typename"] == "ForbiddenError"

    opened = server.graphql(
        BREAK, {"id": pid, "reason": "unresponsive in ED", "minutes": 30}, token=outsider
    )["data"]["breakTheGlass"]
    assert opened["__typename"] == "EmergencyAccessPayload"
    assert server.graphql(READ, {"id": pid}, token=outsider)["data"]["patient"] == {
        "__typename": "Patient"
    }

    reads = server.graphql(TRAIL, {"id": pid}, token=compliance)["data"]["auditTrail"]["entries"]
    tagged = [r for r in reads if r["actorId"] == str(doctor)]
    assert tagged == [
        {"actorId": str(doctor), "purposeOfUse": "ETREAT", "reason": "BREAK_THE_GLASS"}
    ]

    queue = server.graphql(REVIEWS, token=compliance)["data"]["emergencyAccessReviews"]["grants"]
    assert [(g["grantId"], g["userId"], g["reads"]) for g in queue] == [
        (opened["grantId"], str(doctor), 1)
    ]
    review = {"id": pid, "grant": opened["grantId"]}
    assert server.graphql(REVIEW, review, token=compliance)["data"]["reviewEmergencyAccess"] == {
        "__typename": "EmergencyReviewPayload"
    }
    again = server.graphql(REVIEW, review, token=compliance)["data"]["reviewEmergencyAccess"]
    assert again == {
        "__typename": "InvalidTransitionError",
        "code": "EMERGENCY_GRANT_ALREADY_REVIEWED",
    }
    assert server.graphql(REVIEWS, token=compliance)["data"]["emergencyAccessReviews"] == {
        "__typename": "EmergencyGrants",
        "grants": [],
    }
    not_compliance = server.graphql(REVIEWS, token=outsider)["data"]["emergencyAccessReviews"]
    assert not_compliance["__typename"] == "ForbiddenError"


async def test_a_pcp_on_the_care_team_cannot_break_the_glass_on_their_own_patient(
    server: ServerProcess, db_dsn: str
) -> None:
    """The PCP who registered the patient is on the team: a typed refusal, nothing written,
    nothing for compliance to review; an outsider PCP is still allowed."""
    doctor = uuid4()
    pcp = server.token("pcp", user=doctor)
    pid = server.graphql(REGISTER, token=pcp)["data"]["registerPatient"]["patient"]["id"]
    before = await event_count(db_dsn, pid)
    refused = server.graphql(BREAK, {"id": pid, "reason": "ED", "minutes": 30}, token=pcp)
    assert refused["data"]["breakTheGlass"] == {
        "__typename": "NotAllowedError",
        "code": "ALREADY_ON_CARE_TEAM",
    }
    assert await event_count(db_dsn, pid) == before
    compliance = server.token("compliance")
    queue = server.graphql(REVIEWS, token=compliance)["data"]["emergencyAccessReviews"]["grants"]
    assert queue == []
    outsider = server.token("pcp", user=uuid4())
    opened = server.graphql(BREAK, {"id": pid, "reason": "ED", "minutes": 30}, token=outsider)
    assert opened["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload"


GRANTS = """query($first: Int!, $after: String) {
  emergencyAccessReviews(onlyOpen: false, first: $first, after: $after) {
    __typename
    ... on EmergencyGrants {
      totalCount maxPageSize pageInfo { hasNextPage endCursor }
      edges { cursor node { grantId grantedAt } }
    }
    ... on ValidationError { code field }
  } }"""


def test_emergency_grants_are_paged_newest_first(server: ServerProcess) -> None:
    """Three grants, two a page: every grant once, newest first, with totalCount."""
    made = []
    for n in range(3):
        pid = server.graphql(REGISTER.replace('"M-1"', f'"G-{n}"'))["data"]["registerPatient"][
            "patient"
        ]["id"]
        opened = server.graphql(
            BREAK,
            {"id": pid, "reason": "unresponsive in ED", "minutes": 30},
            token=server.token("pcp"),
        )["data"]["breakTheGlass"]
        assert opened["__typename"] == "EmergencyAccessPayload", opened
        made.append(opened["grantId"])
    compliance = server.token("compliance")
    seen, after = [], None
    while True:
        page = server.graphql(GRANTS, {"first": 2, "after": after}, token=compliance)["data"][
            "emergencyAccessReviews"
        ]
        assert (page["totalCount"], page["maxPageSize"]) == (3, 200)
        seen.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(n["grantId"] for n in seen) == sorted(made)
    assert [n["grantedAt"] for n in seen] == sorted((n["grantedAt"] for n in seen), reverse=True)
    for first in (0, 201):
        refused = server.graphql(GRANTS, {"first": first}, token=compliance)
        assert refused["data"]["emergencyAccessReviews"] == {
            "__typename": "ValidationError",
            "code": "PAGE_SIZE",
            "field": "first",
        }
    forged = server.graphql(GRANTS, {"first": 2, "after": "eA"}, token=compliance)
    assert forged["data"]["emergencyAccessReviews"]["field"] == "after"
