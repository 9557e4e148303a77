"""One PageInfo and Relay-style connections for the lists a portal pages through, over HTTP.

Issue 13: every growing list is a connection (edges with node and cursor, pageInfo with
hasNextPage and endCursor, `first`/`after`, a stated maxPageSize), and the paging state is
one type, PageInfo.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from tests.e2e.journey import command, enrolled_patient
from tests.e2e.server import ServerProcess

REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
ENROLL = "mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"
TRAIL = """query($id: UUID, $first: Int!, $after: String) {
  auditTrail(patientId: $id, first: $first, after: $after, kinds: [WRITE]) {
    __typename
    ... on AuditTrail {
      edges { cursor node { action } } entries { action }
      pageInfo { hasNextPage endCursor } maxPageSize }
    ... on ValidationError { code field message }
  } }"""
DISCLOSURES = """query($id: UUID!, $first: Int!) { disclosures(patientId: $id, first: $first) {
  __typename
  ... on DisclosurePage { edges { cursor node { id } } pageInfo { hasNextPage endCursor }
                          maxPageSize }
  ... on ValidationError { code field }
} }"""
TYPES = (
    """{ __schema { types { name kind fields { name type { kind name ofType { name } } } } } }"""
)


def _types(server: ServerProcess) -> dict[str, Any]:
    data = server.graphql(TYPES, token=server.token("care_manager"))["data"]
    return {t["name"]: t for t in data["__schema"]["types"]}


def test_the_schema_has_one_page_info_and_every_page_info_field_is_of_it(
    server: ServerProcess,
) -> None:
    types = _types(server)
    page_infos = sorted(n for n in types if n.endswith("PageInfo"))
    assert page_infos == ["PageInfo"]
    assert [f["name"] for f in types["PageInfo"]["fields"]] == ["hasNextPage", "endCursor"]
    holders = {
        name: field
        for name, t in types.items()
        if t["kind"] == "OBJECT" and not name.startswith("__")
        for field in t["fields"] or []
        if field["name"] == "pageInfo"
    }
    assert {
        "AuditTrail",
        "DisclosurePage",
        "CaseloadConnection",
        "WorklistConnection",
        "PanelPatientConnection",
    } <= set(holders)
    for field in holders.values():
        assert field["type"]["kind"] == "NON_NULL"
        assert field["type"]["ofType"]["name"] == "PageInfo"


def test_the_audit_trail_pages_by_edge_cursors(server: ServerProcess) -> None:
    cm = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=cm)
    compliance = server.token("compliance")

    whole = server.graphql(TRAIL, {"id": pid, "first": 10}, token=compliance)["data"]
    trail = whole["auditTrail"]
    actions = [e["node"]["action"] for e in trail["edges"]]
    assert actions == ["patient.registered", "patient.care_team_assigned", "patient.enrolled"]
    assert [e["action"] for e in trail["entries"]] == actions  # the deprecated list agrees
    assert trail["pageInfo"] == {"hasNextPage": False, "endCursor": trail["edges"][-1]["cursor"]}
    assert trail["maxPageSize"] == 500

    # Resuming after the first edge's cursor gives the rest, one page of one at a time.
    after = trail["edges"][0]["cursor"]
    one = server.graphql(TRAIL, {"id": pid, "first": 1, "after": after}, token=compliance)
    page = one["data"]["auditTrail"]
    assert [e["node"]["action"] for e in page["edges"]] == ["patient.care_team_assigned"]
    assert page["pageInfo"]["hasNextPage"] is True
    last = server.graphql(
        TRAIL, {"id": pid, "first": 1, "after": page["pageInfo"]["endCursor"]}, token=compliance
    )["data"]["auditTrail"]
    assert [e["node"]["action"] for e in last["edges"]] == ["patient.enrolled"]
    assert last["pageInfo"]["hasNextPage"] is False


def test_a_page_size_out_of_range_is_a_typed_error_naming_first(server: ServerProcess) -> None:
    cm = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm)["data"]["registerPatient"]["patient"]["id"]
    compliance = server.token("compliance")
    for first in (0, 501):
        bad = server.graphql(TRAIL, {"id": pid, "first": first}, token=compliance)["data"]
        assert bad["auditTrail"]["__typename"] == "ValidationError"
        assert (bad["auditTrail"]["code"], bad["auditTrail"]["field"]) == ("PAGE_SIZE", "first")
    for first in (0, 201):
        bad = server.graphql(DISCLOSURES, {"id": pid, "first": first}, token=compliance)["data"]
        assert bad["disclosures"] == {
            "__typename": "ValidationError",
            "code": "PAGE_SIZE",
            "field": "first",
        }


def test_an_empty_accounting_is_an_empty_connection(server: ServerProcess) -> None:
    cm = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm)["data"]["registerPatient"]["patient"]["id"]
    page = server.graphql(DISCLOSURES, {"id": pid, "first": 200}, token=server.token("compliance"))
    assert page["data"]["disclosures"] == {
        "__typename": "DisclosurePage",
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "maxPageSize": 200,
    }


PANEL = """query($first: Int!, $after: String) { panel(first: $first, after: $after) {
  patientPage { totalCount maxPageSize edges { cursor node { patientId familyName } }
                pageInfo { hasNextPage endCursor } } } }"""


def test_the_pcps_panel_is_paged_beyond_the_old_cap(server: ServerProcess) -> None:
    """`panel.patients` was one list capped at 500; `patientPage` pages the whole panel."""
    pcp_id = uuid4()
    cm = server.token("care_manager")
    ids = []
    for n, family in enumerate(["Cole", "Abel", "Bale"]):
        registered = command(
            server,
            "registerPatient",
            {"givenName": "P", "familyName": family, "birthDate": "1980-05-05", "mrn": f"PG-{n}"},
            cm,
            "... on PatientPayload { patient { id } }",
        )
        pid = registered["patient"]["id"]
        command(server, "assignCareTeam", {"patientId": pid, "pcpId": str(pcp_id)}, cm, "")
        assert command(server, "enrollPatient", {"patientId": pid}, cm, "")["__typename"] == (
            "PatientPayload"
        )
        ids.append(pid)
    pcp = server.token("pcp", user=pcp_id)

    seen: list[str] = []
    after = None
    for _ in range(5):
        body = server.graphql(PANEL, {"first": 2, "after": after}, token=pcp)
        page = body["data"]["panel"]["patientPage"]
        assert (page["totalCount"], page["maxPageSize"]) == (3, 200)
        assert len(page["edges"]) <= 2
        seen.extend(e["node"]["familyName"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert seen == ["Abel", "Bale", "Cole"]  # no safety alert: by family name, each once

    for bad, code, field in ((0, "PAGE_SIZE", "first"), (201, "PAGE_SIZE", "first")):
        refused = server.graphql(PANEL, {"first": bad}, token=pcp)
        assert refused["data"] is None
        extensions = refused["errors"][0]["extensions"]
        assert (extensions["code"], extensions["field"]) == (code, field)
    forged = server.graphql(PANEL, {"first": 2, "after": "bm90LWEtY3Vyc29y"}, token=pcp)
    assert forged["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"

    # An outsider PCP's panel is empty, not an error.
    other = server.graphql(PANEL, {"first": 2}, token=server.token("pcp"))
    assert other["data"]["panel"]["patientPage"]["edges"] == []
    assert other["data"]["panel"]["patientPage"]["totalCount"] == 0


def test_a_loops_open_steps_are_enums_beside_their_deprecated_strings(
    server: ServerProcess,
) -> None:
    """TrackerStep.step (TrackerStepKind) and actorKind (TrackerActor), issue 13's closed
    sets as enums; the lower-case name and actor stay, deprecated, and agree."""
    team = enrolled_patient(server, mrn="PG-STEP")
    requested = command(
        server,
        "requestConsultation",
        {"patientId": team.patient_id, "question": "next step?"},
        team.care_manager,
        "",
    )
    assert requested["__typename"] == "ConsultationNotePayload"
    body = server.graphql(
        """query($id: UUID!) { consultationTracker(patientId: $id) {
             steps { step actorKind name actor } } }""",
        {"id": team.patient_id},
        token=team.care_manager,
    )
    steps = [s for t in body["data"]["consultationTracker"] for s in t["steps"]]
    assert steps == [
        {
            "step": "DRAFT",
            "actorKind": "PSYCHIATRIC_CONSULTANT",
            "name": "draft",
            "actor": "psychiatric_consultant",
        }
    ]


OUTCOMES = """{ outcomes {
  episodes { patientId twelveWeeks { measure measureKind } drrE { measure measureKind }
             cms159 { measure measureKind } }
  byCareManager { twelveWeeks { measure measureKind } drrE { measure measureKind }
                  cms159 { measure measureKind } } } }"""
SCREEN = """mutation($id: UUID!) { recordScreening(input: {patientId: $id, instrument: PHQ9,
  answers: [2,2,2,2,2,2,2,2,0]}) { __typename } }"""


def test_outcome_measures_are_enums_beside_their_deprecated_strings(
    server: ServerProcess,
) -> None:
    team = enrolled_patient(server, mrn="PG-OUT")
    screened = server.graphql(SCREEN, {"id": team.patient_id}, token=team.care_manager)
    assert screened["data"]["recordScreening"]["__typename"] == "PatientPayload"
    report = server.graphql(OUTCOMES, token=team.care_manager)["data"]["outcomes"]
    expected = {
        "twelveWeeks": {"measure": "twelve_weeks", "measureKind": "TWELVE_WEEKS"},
        "drrE": {"measure": "drr_e", "measureKind": "DRR_E"},
        "cms159": {"measure": "cms159", "measureKind": "CMS159"},
    }
    mine = [e for e in report["episodes"] if e["patientId"] == team.patient_id]
    assert mine == [{"patientId": team.patient_id, **expected}]
    assert report["byCareManager"]
    for row in report["byCareManager"]:
        assert row == expected
