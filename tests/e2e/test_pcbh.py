"""The wider team and PCBH over HTTP: a BHC on the team takes a warm handoff and records
a brief visit, seen in the BHC's and the PCP's views with the same-day measure; a
caregiver sees nothing but what was granted; community-service referral loops close
with a report back and the tracker says which close and how fast.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from tests.e2e.journey import CareTeam, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

ERRORS = """
    ... on ValidationError { code field }
    ... on InvalidTransitionError { code field }
    ... on NotFoundError { code field }
    ... on NotAllowedError { code field }
    ... on ForbiddenError { code }
"""
CREATED = "... on PatientPayload { createdId }"

PUT_STAFF = """mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) {
    __typename ... on StaffMember { userId roles } ... on ValidationError { code field }
} }"""

BOARD = """{ warmHandoffs { __typename
    ... on WarmHandoffBoard {
      handoffs { id patientId fromUserId toUserId status seenSameDay }
      briefVisits { id patientId bhcId minutes handoffId }
      sameDay { handoffs seenSameDay pending share }
    }
    ... on ForbiddenError { code }
} }"""

INTEGRATED = """query($p: UUID!) { integratedCare(patientId: $p) { __typename
    ... on IntegratedCare {
      members { userId role }
      caregivers { caregiverId relationship scopes }
      handoffs { id status }
      briefVisits { id minutes bhcId }
    }
    ... on ForbiddenError { code }
    ... on NotFoundError { code }
} }"""

PATIENT = """query($p: UUID!) { patient(id: $p) { __typename
    ... on Patient { id } ... on ForbiddenError { code } ... on NotFoundError { code } } }"""

CAREGIVER_VIEW = """query($p: UUID!) { caregiverView(patientId: $p) { __typename
    ... on CaregiverPortal { scopes careTeam { userId role } careTeamUserIds visitTimes }
    ... on ForbiddenError { code }
    ... on NotFoundError { code }
} }"""

LOOPS = """{ communityServiceLoops { __typename
    ... on CommunityServiceLoops {
      services { service receivingOrganisationId referrals sent closedWithReport
                 declinedOrCancelled open closedLoopShare medianDaysToAccept
                 medianDaysToReportBack }
    }
    ... on ForbiddenError { code }
} }"""


def run(
    server: ServerProcess, operation: str, input: dict[str, Any], token: str, payload: str = ""
) -> dict[str, Any]:
    input_type = operation[0].upper() + operation[1:] + "Input"
    document = (
        f"mutation($input: {input_type}!) {{ {operation}(input: $input) "
        f"{{ __typename {payload} {ERRORS} }} }}"
    )
    body = server.graphql(document, {"input": input}, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][operation]
    return result


def read(server: ServerProcess, query: str, token: str, **variables: Any) -> Any:
    body = server.graphql(query, variables, token=token)
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


def list_staff(server: ServerProcess, user: UUID, *roles: str) -> dict[str, Any]:
    body = server.graphql(
        PUT_STAFF,
        {"i": {"userId": str(user), "displayName": "Staff Member", "roles": list(roles)}},
        token=server.token("admin"),
    )
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["putStaffMember"]
    return result


def with_bhc(server: ServerProcess) -> tuple[CareTeam, UUID, str]:
    """An enrolled patient whose team includes a BHC the directory lists as one."""
    team = enrolled_patient(server)
    bhc = uuid4()
    assert list_staff(server, bhc, "BEHAVIORAL_HEALTH_CONSULTANT")["__typename"] == "StaffMember"
    added = run(
        server,
        "addWiderTeamMember",
        {"patientId": team.patient_id, "userId": str(bhc), "role": "BEHAVIORAL_HEALTH_CONSULTANT"},
        team.care_manager,
    )
    assert added["__typename"] == "PatientPayload", added
    return team, bhc, server.token("behavioral_health_consultant", user=bhc)


async def test_a_bhc_takes_a_warm_handoff_and_a_brief_visit_shows_in_both_views(
    server: ServerProcess, db_dsn: str
) -> None:
    team, bhc, bhc_token = with_bhc(server)
    social_worker = uuid4()
    list_staff(server, social_worker, "SOCIAL_WORKER")
    before = await event_count(db_dsn, team.patient_id)

    # A team role the directory does not list the person in: typed, nothing written.
    wrong_role = run(
        server,
        "addWiderTeamMember",
        {
            "patientId": team.patient_id,
            "userId": str(social_worker),
            "role": "BEHAVIORAL_HEALTH_CONSULTANT",
        },
        team.care_manager,
    )
    assert wrong_role == {"__typename": "NotAllowedError", "code": "NOT_IN_ROLE", "field": "userId"}
    assert await event_count(db_dsn, team.patient_id) == before
    assert (
        run(
            server,
            "addWiderTeamMember",
            {"patientId": team.patient_id, "userId": str(social_worker), "role": "SOCIAL_WORKER"},
            team.care_manager,
        )["__typename"]
        == "PatientPayload"
    )
    before = await event_count(db_dsn, team.patient_id)

    # A warm handoff to someone who is not a BHC: typed, nothing written.
    for target in (social_worker, team.psychiatrist_id):
        refused = run(
            server,
            "offerWarmHandoff",
            {"patientId": team.patient_id, "toUserId": str(target)},
            team.pcp,
        )
        assert refused == {
            "__typename": "NotAllowedError",
            "code": "NOT_A_BHC",
            "field": "toUserId",
        }
    assert await event_count(db_dsn, team.patient_id) == before

    handoff = run(
        server,
        "offerWarmHandoff",
        {"patientId": team.patient_id, "toUserId": str(bhc)},
        team.pcp,
        CREATED,
    )["createdId"]
    # Only the BHC accepts; a BHC not on this patient's team is refused.
    outsider = server.token("behavioral_health_consultant", user=uuid4())
    assert run(
        server,
        "acceptWarmHandoff",
        {"patientId": team.patient_id, "handoffId": handoff},
        outsider,
    ) == {"__typename": "ForbiddenError", "code": "NOT_ON_CARE_TEAM"}
    # A second BHC on the team, not the one it was offered to: refused, nothing written.
    second_bhc = uuid4()
    list_staff(server, second_bhc, "BEHAVIORAL_HEALTH_CONSULTANT")
    added = run(
        server,
        "addWiderTeamMember",
        {
            "patientId": team.patient_id,
            "userId": str(second_bhc),
            "role": "BEHAVIORAL_HEALTH_CONSULTANT",
        },
        team.care_manager,
    )
    assert added["__typename"] == "PatientPayload", added
    before_other = await event_count(db_dsn, team.patient_id)
    assert run(
        server,
        "acceptWarmHandoff",
        {"patientId": team.patient_id, "handoffId": handoff},
        server.token("behavioral_health_consultant", user=second_bhc),
    ) == {"__typename": "NotAllowedError", "code": "NOT_THE_HANDOFFS_BHC", "field": "handoffId"}
    assert await event_count(db_dsn, team.patient_id) == before_other
    accepted = run(
        server, "acceptWarmHandoff", {"patientId": team.patient_id, "handoffId": handoff}, bhc_token
    )
    assert accepted["__typename"] == "PatientPayload", accepted

    before = await event_count(db_dsn, team.patient_id)
    for minutes in (14, 31):
        short = run(
            server,
            "recordBriefVisit",
            {"patientId": team.patient_id, "minutes": minutes, "handoffId": handoff},
            bhc_token,
        )
        assert short == {
            "__typename": "ValidationError",
            "code": "BRIEF_VISIT_DURATION",
            "field": "minutes",
        }
    assert await event_count(db_dsn, team.patient_id) == before
    visit = run(
        server,
        "recordBriefVisit",
        {"patientId": team.patient_id, "minutes": 20, "handoffId": handoff},
        bhc_token,
        CREATED,
    )["createdId"]

    # A second handoff the BHC could not take: missed, recorded by the PCP.
    missed = run(
        server,
        "offerWarmHandoff",
        {"patientId": team.patient_id, "toUserId": str(bhc)},
        team.pcp,
        CREATED,
    )["createdId"]
    assert (
        run(
            server,
            "missWarmHandoff",
            {"patientId": team.patient_id, "handoffId": missed},
            team.pcp,
        )["__typename"]
        == "PatientPayload"
    )

    for token in (bhc_token, team.pcp):
        board = read(server, BOARD, token)
        assert board["__typename"] == "WarmHandoffBoard", board
        assert [(h["id"], h["status"], h["seenSameDay"]) for h in board["handoffs"]] == [
            (handoff, "ACCEPTED", True),
            (missed, "MISSED", False),
        ]
        assert {h["patientId"] for h in board["handoffs"]} == {team.patient_id}
        assert board["briefVisits"] == [
            {
                "id": visit,
                "patientId": team.patient_id,
                "bhcId": str(bhc),
                "minutes": 20,
                "handoffId": handoff,
            }
        ]
        assert board["sameDay"] == {"handoffs": 2, "seenSameDay": 1, "pending": 0, "share": 0.5}

        record = read(server, INTEGRATED, token, p=team.patient_id)
        assert record["__typename"] == "IntegratedCare", record
        assert {(m["userId"], m["role"]) for m in record["members"]} == {
            (str(bhc), "BEHAVIORAL_HEALTH_CONSULTANT"),
            (str(second_bhc), "BEHAVIORAL_HEALTH_CONSULTANT"),
            (str(social_worker), "SOCIAL_WORKER"),
        }
        assert [h["status"] for h in record["handoffs"]] == ["ACCEPTED", "MISSED"]
        assert record["briefVisits"] == [{"id": visit, "minutes": 20, "bhcId": str(bhc)}]

    # Another PCP's board does not show this PCP's handoffs.
    other_pcp = read(server, BOARD, server.token("pcp", user=uuid4()))
    assert other_pcp["handoffs"] == [] and other_pcp["sameDay"]["share"] is None
    # Minimum necessary: the BHC reaches the patient through the PCBH operations only.
    assert read(server, PATIENT, bhc_token, p=team.patient_id) == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }


async def test_a_caregiver_sees_nothing_the_patient_or_guardian_did_not_grant(
    server: ServerProcess, db_dsn: str
) -> None:
    team, _, _ = with_bhc(server)
    guardian = uuid4()
    added = run(
        server,
        "addCaregiver",
        {"patientId": team.patient_id, "caregiverId": str(guardian), "relationship": "GUARDIAN"},
        team.care_manager,
    )
    assert added["__typename"] == "PatientPayload", added
    carer = server.token("caregiver", user=guardian)

    # Nothing of the record, and an empty view until something is granted.
    assert read(server, PATIENT, carer, p=team.patient_id)["__typename"] == "ForbiddenError"
    assert read(server, INTEGRATED, carer, p=team.patient_id) == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }
    assert read(server, BOARD, carer) == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }
    assert read(server, CAREGIVER_VIEW, carer, p=team.patient_id) == {
        "__typename": "CaregiverPortal",
        "scopes": [],
        "careTeam": None,
        "careTeamUserIds": None,
        "visitTimes": None,
    }
    # A caregiver not listed on this patient gets nothing at all.
    stranger = server.token("caregiver", user=uuid4())
    assert read(server, CAREGIVER_VIEW, stranger, p=team.patient_id) == {
        "__typename": "ForbiddenError",
        "code": "NOT_ON_CARE_TEAM",
    }
    # A caregiver cannot grant themselves access.
    before = await event_count(db_dsn, team.patient_id)
    assert run(
        server,
        "grantCaregiverAccess",
        {"patientId": team.patient_id, "caregiverId": str(guardian), "scope": "CARE_TEAM"},
        carer,
    ) == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
    # A caregiver is not staff: no staff role in the directory, none on the team.
    assert list_staff(server, guardian, "CAREGIVER") == {
        "__typename": "ValidationError",
        "code": "INVALID_ROLES",
        "field": "roles",
    }
    as_staff = run(
        server,
        "addWiderTeamMember",
        {"patientId": team.patient_id, "userId": str(guardian), "role": "PEER_SPECIALIST"},
        team.care_manager,
    )
    assert as_staff == {
        "__typename": "ValidationError",
        "code": "CAREGIVER_NOT_STAFF",
        "field": "userId",
    }
    assert await event_count(db_dsn, team.patient_id) == before

    # The guardian allows visits only: visit times appear, the team stays hidden.
    granted = run(
        server,
        "grantCaregiverAccess",
        {"patientId": team.patient_id, "caregiverId": str(guardian), "scope": "VISITS"},
        team.care_manager,
    )
    assert granted["__typename"] == "PatientPayload", granted
    view = read(server, CAREGIVER_VIEW, carer, p=team.patient_id)
    assert view["scopes"] == ["VISITS"]
    assert view["visitTimes"] == [] and view["careTeam"] is None
    assert view["careTeamUserIds"] is None
    # Withdrawn again: back to nothing.
    run(
        server,
        "revokeCaregiverAccess",
        {"patientId": team.patient_id, "caregiverId": str(guardian), "scope": "VISITS"},
        team.pcp,
    )
    assert read(server, CAREGIVER_VIEW, carer, p=team.patient_id)["visitTimes"] is None


REFERRAL = "... on ReferralPayload { referral { id status } }"


def referral(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    result = run(server, operation, input, token, REFERRAL)
    return result.get("referral", result)


def test_community_service_loops_close_with_a_report_back_and_the_tracker_says_how_fast(
    server: ServerProcess,
) -> None:
    team = enrolled_patient(server)
    food_bank = str(uuid4())
    cm = team.care_manager

    def requested(service: str, org: str | None = None) -> str:
        input = {
            "patientId": team.patient_id,
            "service": service,
            "reason": "Social need.",
            "expectedBy": "2999-01-01",
        }
        if org:
            input["receivingOrganisationId"] = org
        made = referral(server, "requestReferral", input, cm)
        assert made["status"] == "REQUESTED", made
        rid: str = made["id"]
        return rid

    food = requested("FOOD_ASSISTANCE", food_bank)
    for operation in ("sendReferral", "acceptReferral"):
        assert referral(server, operation, {"referralId": food}, cm)["status"] != "REQUESTED"
    # A community service reports back without an appointment: sent, accepted, report back.
    closed = referral(
        server,
        "completeReferral",
        {"referralId": food, "reportBackSummary": "Enrolled in the weekly pantry."},
        cm,
    )
    assert closed["status"] == "COMPLETED", closed

    housing = requested("HOUSING_SUPPORT")
    referral(server, "sendReferral", {"referralId": housing}, cm)
    declined = referral(server, "declineReferral", {"referralId": housing, "reason": "Full."}, cm)
    assert declined["status"] == "DECLINED"
    requested("TRANSPORTATION")  # still open, never sent

    # A clinical service still needs its appointment before the report back.
    therapy = requested("PSYCHOTHERAPY")
    referral(server, "sendReferral", {"referralId": therapy}, cm)
    referral(server, "acceptReferral", {"referralId": therapy}, cm)
    early = referral(
        server, "completeReferral", {"referralId": therapy, "reportBackSummary": "Seen."}, cm
    )
    assert early["__typename"] == "InvalidTransitionError"

    loops = read(server, LOOPS, cm)
    assert loops["__typename"] == "CommunityServiceLoops", loops
    by_service = {row["service"]: row for row in loops["services"]}
    assert set(by_service) == {"FOOD_ASSISTANCE", "HOUSING_SUPPORT", "TRANSPORTATION"}
    assert by_service["FOOD_ASSISTANCE"] == {
        "service": "FOOD_ASSISTANCE",
        "receivingOrganisationId": food_bank,
        "referrals": 1,
        "sent": 1,
        "closedWithReport": 1,
        "declinedOrCancelled": 0,
        "open": 0,
        "closedLoopShare": 1.0,
        "medianDaysToAccept": 0.0,
        "medianDaysToReportBack": 0.0,
    }
    assert by_service["HOUSING_SUPPORT"]["closedLoopShare"] == 0.0
    assert by_service["HOUSING_SUPPORT"]["declinedOrCancelled"] == 1
    assert by_service["TRANSPORTATION"]["sent"] == 0
    assert by_service["TRANSPORTATION"]["closedLoopShare"] is None
    assert by_service["TRANSPORTATION"]["open"] == 1
    # Which services close their loops is the organisation's figure: a caregiver may not ask.
    assert read(server, LOOPS, server.token("caregiver"))["__typename"] == "ForbiddenError"


BOARD_PAGE = """query($first: Int!, $after: String) { warmHandoffs { __typename
    ... on WarmHandoffBoard {
      handoffPage(first: $first, after: $after) {
        totalCount maxPageSize pageInfo { hasNextPage endCursor }
        edges { cursor node { id patientId status } }
      }
      briefVisitPage(first: 1) { totalCount edges { node { id } } }
    }
} }"""


def test_the_warm_handoff_board_pages_its_handoffs_oldest_offer_first(
    server: ServerProcess,
) -> None:
    team, bhc, bhc_token = with_bhc(server)
    offered = [
        run(
            server,
            "offerWarmHandoff",
            {"patientId": team.patient_id, "toUserId": str(bhc)},
            team.pcp,
            CREATED,
        )["createdId"]
        for _ in range(5)
    ]

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        board = read(server, BOARD_PAGE, bhc_token, first=2, after=after)
        page = board["handoffPage"]
        assert page["totalCount"] == 5 and page["maxPageSize"] == 200
        assert len(page["edges"]) == (2 if pages < 2 else 1)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == offered  # oldest offer first, each once
    assert board["briefVisitPage"] == {"totalCount": 0, "edges": []}
    # The PCP who offered them sees the same five.
    assert read(server, BOARD_PAGE, team.pcp, first=200)["handoffPage"]["totalCount"] == 5

    # A page size out of range and a cursor of another list: errors naming the argument.
    for variables, code, field in (
        ({"first": 0}, "PAGE_SIZE", "first"),
        ({"first": 201}, "PAGE_SIZE", "first"),
        ({"first": 2, "after": "bm90IGEgY3Vyc29y"}, "INVALID_CURSOR", "after"),
    ):
        body = server.graphql(BOARD_PAGE, variables, token=bhc_token)
        extensions = body["errors"][0]["extensions"]
        assert (extensions["code"], extensions["field"]) == (code, field), body
