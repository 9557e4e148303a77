"""Referral and consultation trackers as Relay-style connections, over HTTP (issue 13).

`referralTracker`, `consultationTracker` and the panel's `referrals` and
`consultationsAwaiting` were plain lists silently capped at 500; their paged successors
(`referralTrackerPage`, `consultationTrackerPage`, `panel { referralPage
consultationsAwaitingPage }`) hand out every loop a page at a time, oldest request first,
with totalCount and one PageInfo, and refuse a bad page size or cursor naming the field.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.journey import CareTeam, command, enrolled_patient
from tests.e2e.server import ServerProcess
from tests.e2e.test_consultation_loop import signed_note
from tests.e2e.test_referral_loop import requested

REFERRALS = """query($first: Int!, $after: String, $overdueOnly: Boolean! = false) {
  referralTrackerPage(first: $first, after: $after, overdueOnly: $overdueOnly) {
    __typename
    ... on ReferralTrackerConnection {
      totalCount maxPageSize pageInfo { hasNextPage endCursor }
      edges { cursor node { id patientId overdue } }
    }
    ... on ValidationError { code field problems { field code } }
  }
}"""
CONSULTATIONS = """query($first: Int!, $after: String) {
  consultationTrackerPage(first: $first, after: $after) {
    __typename
    ... on ConsultationTrackerConnection {
      totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id noteStatus } }
    }
    ... on ValidationError { code field }
  }
}"""
PANEL = """query($first: Int!, $after: String) { panel {
  referralPage(first: $first, after: $after) {
    totalCount maxPageSize pageInfo { hasNextPage endCursor } edges { cursor node { id } }
  }
  consultationsAwaitingPage(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } }
  }
} }"""
OLD_LIST = "{ referralTracker { id } }"


def _all_pages(server: ServerProcess, token: str, document: str, root: str) -> Any:
    """Every page of size 2 in turn: (totalCounts, ids seen, pages)."""
    totals, seen, pages, after = set(), [], 0, None
    while True:
        body = server.graphql(document, {"first": 2, "after": after}, token=token)
        assert "errors" not in body, body
        page = body["data"][root]
        assert page["__typename"].endswith("Connection"), page
        totals.add(page["totalCount"])
        assert len(page["edges"]) <= 2
        seen.extend(e["node"]["id"] for e in page["edges"])
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            return totals, seen, pages
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]


def _referrals(server: ServerProcess, team: CareTeam, n: int) -> list[str]:
    return [requested(server, team) for _ in range(n)]


def test_the_referral_tracker_pages_with_total_count(server: ServerProcess) -> None:
    team = enrolled_patient(server)
    made = _referrals(server, team, 5)
    totals, seen, pages = _all_pages(server, team.care_manager, REFERRALS, "referralTrackerPage")
    assert totals == {5}
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(set(seen)) == 5
    # The same loops in the same order as the deprecated capped list.
    old = server.graphql(OLD_LIST, token=team.care_manager)["data"]["referralTracker"]
    assert [r["id"] for r in old] == seen
    # A filter only Python can apply (overdue) pages too: none is late here.
    late = server.graphql(REFERRALS, {"first": 2, "overdueOnly": True}, token=team.care_manager)
    assert late["data"]["referralTrackerPage"]["totalCount"] == 0
    assert late["data"]["referralTrackerPage"]["edges"] == []
    # Someone outside the care team sees an empty connection, not an error.
    outsider = server.graphql(REFERRALS, {"first": 2}, token=server.token("care_manager"))
    assert outsider["data"]["referralTrackerPage"]["totalCount"] == 0


def test_a_bad_page_of_a_tracker_is_a_typed_error_naming_the_argument(
    server: ServerProcess,
) -> None:
    team = enrolled_patient(server)
    _referrals(server, team, 1)
    for first in (0, 201):
        refused = server.graphql(REFERRALS, {"first": first}, token=team.care_manager)
        assert refused["data"]["referralTrackerPage"] == {
            "__typename": "ValidationError",
            "code": "PAGE_SIZE",
            "field": "first",
            "problems": [{"field": "first", "code": "PAGE_SIZE"}],
        }
    forged = server.graphql(
        CONSULTATIONS, {"first": 2, "after": "bm90LWEtY3Vyc29y"}, token=team.care_manager
    )
    assert forged["data"]["consultationTrackerPage"] == {
        "__typename": "ValidationError",
        "code": "INVALID_CURSOR",
        "field": "after",
    }
    # The panel returns itself, so its pages are refused in `errors`, as patientPage is.
    panel = server.graphql(PANEL, {"first": 201}, token=team.pcp)
    extensions = panel["errors"][0]["extensions"]
    assert (extensions["code"], extensions["field"]) == ("PAGE_SIZE", "first")


def test_the_consultation_tracker_and_the_panels_lists_page(server: ServerProcess) -> None:
    team = enrolled_patient(server)
    notes = [signed_note(server, team, ["Check sleep."])[0] for _ in range(3)]
    _referrals(server, team, 3)

    totals, seen, pages = _all_pages(
        server, team.psychiatrist, CONSULTATIONS, "consultationTrackerPage"
    )
    assert (totals, pages) == ({3}, 2)
    assert sorted(seen) == sorted(notes)

    body = server.graphql(PANEL, {"first": 2}, token=team.pcp)
    assert "errors" not in body, body
    panel = body["data"]["panel"]
    assert panel["referralPage"]["totalCount"] == 3
    assert panel["referralPage"]["maxPageSize"] == 200
    assert len(panel["referralPage"]["edges"]) == 2
    awaiting = panel["consultationsAwaitingPage"]
    assert (awaiting["totalCount"], len(awaiting["edges"])) == (3, 2)
    rest = server.graphql(
        PANEL, {"first": 2, "after": awaiting["pageInfo"]["endCursor"]}, token=team.pcp
    )["data"]["panel"]["consultationsAwaitingPage"]
    assert not rest["pageInfo"]["hasNextPage"]
    assert sorted([e["node"]["id"] for e in awaiting["edges"] + rest["edges"]]) == sorted(notes)
    # A consultation request the PCP has nothing to do with yet is not awaiting them.
    command(
        server,
        "requestConsultation",
        {"patientId": team.patient_id, "question": "Another question?"},
        team.care_manager,
        "",
    )
    again = server.graphql(PANEL, {"first": 2}, token=team.pcp)["data"]["panel"]
    assert again["consultationsAwaitingPage"]["totalCount"] == 3

    # Each page read is recorded under the panel, with the fields the portal selected.
    reads = server.graphql(
        """query($id: UUID!) { auditTrail(patientId: $id, kinds: [READ], first: 500) {
             ... on AuditTrail { edges { node { action fields } } } } }""",
        {"id": team.patient_id},
        token=server.token("compliance"),
    )["data"]["auditTrail"]["edges"]
    panel_fields = {f for e in reads if e["node"]["action"] == "panel" for f in e["node"]["fields"]}
    assert "panel.referralPage.edges.node.id" in panel_fields
    assert "panel.consultationsAwaitingPage.edges.node.id" in panel_fields
    assert any(e["node"]["action"] == "consultationTrackerPage" for e in reads)


REVIEW = """query($first: Int!, $after: String) { reviewQueue {
  maxPageSize
  edges { cursor node { priority patient { patientId } } }
  notesToDraftPage(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id noteStatus } }
  }
  notesToSignPage(first: $first) { totalCount edges { node { id noteStatus } } }
} }"""


def test_the_review_queues_notes_are_paged(server: ServerProcess) -> None:
    team = enrolled_patient(server)
    asked = [
        command(
            server,
            "requestConsultation",
            {"patientId": team.patient_id, "question": f"Question {n}?"},
            team.care_manager,
            "... on ConsultationNotePayload { consultationNote { id } }",
        )["consultationNote"]["id"]
        for n in range(3)
    ]
    body = server.graphql(REVIEW, {"first": 2}, token=team.psychiatrist)
    assert "errors" not in body, body
    queue = body["data"]["reviewQueue"]
    assert queue["maxPageSize"] == 200
    assert [e["node"]["patient"]["patientId"] for e in queue["edges"]] == [team.patient_id]
    drafts = queue["notesToDraftPage"]
    assert (drafts["totalCount"], len(drafts["edges"]), drafts["pageInfo"]["hasNextPage"]) == (
        3,
        2,
        True,
    )
    rest = server.graphql(
        REVIEW, {"first": 2, "after": drafts["pageInfo"]["endCursor"]}, token=team.psychiatrist
    )["data"]["reviewQueue"]["notesToDraftPage"]
    assert not rest["pageInfo"]["hasNextPage"]
    seen = [e["node"]["id"] for e in drafts["edges"] + rest["edges"]]
    assert sorted(seen) == sorted(asked)
    assert {e["node"]["noteStatus"] for e in drafts["edges"]} == {"REQUESTED"}
    assert queue["notesToSignPage"] == {"totalCount": 0, "edges": []}
    refused = server.graphql(REVIEW, {"first": 0}, token=team.psychiatrist)
    extensions = refused["errors"][0]["extensions"]
    assert (extensions["code"], extensions["field"]) == ("PAGE_SIZE", "first")
