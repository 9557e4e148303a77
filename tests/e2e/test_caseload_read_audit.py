"""A caseload read is audited as a read of every patient it returns, over HTTP: a
clinician's patients on their care team as ordinary reads, a patient reached only under
break-the-glass tagged for compliance's review (decided in the page's own statement)."""

from __future__ import annotations

from tests.e2e.journey import enrolled_patient
from tests.e2e.server import ServerProcess

BREAK = """mutation($id: UUID!) { breakTheGlass(patientId: $id, reason: "ED", minutes: 30) {
  __typename } }"""
CASELOAD = """{ caseload(first: 50) { totalCount edges { node { patientId } } } }"""
TRAIL = """query($id: UUID!) { auditTrail(patientId: $id, kinds: [READ]) { ... on AuditTrail {
  entries { actorId action purposeOfUse reason fields } } } }"""


def _reads_by(server: ServerProcess, patient_id: str, actor: str) -> list[dict[str, object]]:
    trail = server.graphql(TRAIL, {"id": patient_id}, token=server.token("compliance"))
    entries: list[dict[str, object]] = trail["data"]["auditTrail"]["entries"]
    return [e for e in entries if e["actorId"] == actor]


def test_every_patient_of_a_caseload_page_is_recorded_as_read_with_its_basis(
    server: ServerProcess,
) -> None:
    own = enrolled_patient(server, mrn="AUD-1")
    other = enrolled_patient(server, mrn="AUD-2")
    pcp = own.pcp
    assert server.graphql(BREAK, {"id": other.patient_id}, token=pcp)["data"] == {
        "breakTheGlass": {"__typename": "EmergencyAccessPayload"}
    }

    page = server.graphql(CASELOAD, token=pcp)["data"]["caseload"]
    returned = {e["node"]["patientId"] for e in page["edges"]}
    assert returned == {own.patient_id, other.patient_id}
    assert page["totalCount"] == 2

    actor = str(own.pcp_id)
    fields = ["caseload.totalCount", "caseload.edges.node.patientId"]
    assert _reads_by(server, own.patient_id, actor) == [
        {
            "actorId": actor,
            "action": "caseload",
            "purposeOfUse": "TREAT",
            "reason": None,
            "fields": fields,
        }
    ]
    assert _reads_by(server, other.patient_id, actor) == [
        {
            "actorId": actor,
            "action": "caseload",
            "purposeOfUse": "ETREAT",
            "reason": "BREAK_THE_GLASS",
            "fields": fields,
        }
    ]
