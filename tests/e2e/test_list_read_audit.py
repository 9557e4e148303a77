"""A read of several patients is one access row naming them all; over HTTP, every reader
of the access log by patient still finds it as a read of each: compliance's audit trail
(paged one entry at a time through the list), FHIR AuditEvent (one resource per patient,
naming only that patient), the emergency review's count of reads under a grant and the
audit export (an entry per patient, its FHIR id ``access-log-<row>-<place>``)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from fhirclient.models.auditevent import AuditEvent as R4AuditEvent

from services.audit.export import ExportRequest, audit_event, entries
from tests.e2e.journey import command
from tests.e2e.server import ServerProcess

BREAK = """mutation($id: UUID!) { breakTheGlass(patientId: $id, reason: "ED", minutes: 30) {
  __typename } }"""
CASELOAD = """{ caseload(first: 50) { edges { node { patientId } } } }"""
TRAIL = """query($id: UUID, $after: String, $until: DateTime) {
  auditTrail(patientId: $id, kinds: [READ], first: 1, after: $after, until: $until) {
    ... on AuditTrail { edges { cursor node { actorId action patientId purposeOfUse } }
    pageInfo { hasNextPage endCursor } } } }"""
REVIEWS = """{ emergencyAccessReviews { ... on EmergencyGrants {
  grants { patientId userId reads } } } }"""


def _trail(
    server: ServerProcess, token: str, until: datetime, patient: str | None = None
) -> list[dict[str, Any]]:
    """Every read entry of the trail, asked one entry a page."""
    entries: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"id": patient, "after": after, "until": until.isoformat()}
        page = server.graphql(TRAIL, variables, token=token)["data"]["auditTrail"]
        entries += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return entries
        after = page["pageInfo"]["endCursor"]


async def _exported_reads(
    db_dsn: str, patients: list[str], until: datetime
) -> dict[str, list[tuple[str, str, str]]]:
    """Each patient's caseload reads in the audit export: patient, actor, FHIR id."""
    conn = await asyncpg.connect(db_dsn)
    try:
        found = {}
        for patient in patients:
            request = ExportRequest(until - timedelta(hours=1), until, UUID(patient), None, "fhir")
            found[patient] = [
                (e["patient_id"], e["actor_id"], audit_event(e)["id"])
                async for e in entries(conn, request)
                if e["action"] == "caseload"
            ]
        return found
    finally:
        await conn.close()


def _fhir(server: ServerProcess, path: str, token: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/fhir/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_list_read_is_found_as_a_read_of_each_patient_by_every_reader(
    server: ServerProcess, db_dsn: str
) -> None:
    org = uuid4()
    cm = server.token("care_manager", org=org)
    patients = [
        command(
            server,
            "registerPatient",
            {"givenName": "Test", "familyName": "Person", "birthDate": "1980-05-05", "mrn": mrn},
            cm,
            "... on PatientPayload { patient { id } }",
        )["patient"]["id"]
        for mrn in ("LIST-1", "LIST-2", "LIST-3")
    ]
    team = {"pcpId": str(uuid4()), "psychiatricConsultantId": str(uuid4())}
    for patient in patients:
        assigned = command(server, "assignCareTeam", {"patientId": patient, **team}, cm, "")
        assert assigned["__typename"] == "PatientPayload", assigned
        enrolled = command(server, "enrollPatient", {"patientId": patient}, cm, "")
        assert enrolled["__typename"] == "PatientPayload", enrolled
    doctor = uuid4()
    outsider = server.token("pcp", user=doctor, org=org)
    for patient in patients:
        assert server.graphql(BREAK, {"id": patient}, token=outsider)["data"] == {
            "breakTheGlass": {"__typename": "EmergencyAccessPayload"}
        }
    page = server.graphql(CASELOAD, token=outsider)["data"]["caseload"]
    assert sorted(e["node"]["patientId"] for e in page["edges"]) == sorted(patients)

    compliance = server.token("compliance", org=org)
    until = datetime.now(UTC)
    # The whole organisation's reads, one entry a page: the list read is one entry per
    # patient, none skipped or repeated across the pages' cursors.
    everything = _trail(server, compliance, until)
    caseload_reads = [e for e in everything if e["action"] == "caseload"]
    assert sorted(e["patientId"] for e in caseload_reads) == sorted(patients)
    assert {(e["actorId"], e["purposeOfUse"]) for e in caseload_reads} == {(str(doctor), "ETREAT")}
    for patient in patients:
        own = _trail(server, compliance, until, patient)
        assert {e["patientId"] for e in own} == {patient}
        assert [e["actorId"] for e in own if e["action"] == "caseload"] == [str(doctor)]

    # Each grant counts the list read as one read of its patient.
    grants = server.graphql(REVIEWS, token=compliance)["data"]["emergencyAccessReviews"]
    assert sorted((g["patientId"], g["userId"], g["reads"]) for g in grants["grants"]) == sorted(
        (patient, str(doctor), 1) for patient in patients
    )

    # FHIR: the same read as one AuditEvent per patient, `<row>-<place>`, readable by id.
    ids: dict[str, str] = {}
    for patient in patients:
        bundle = _fhir(server, "AuditEvent", compliance, patient=patient)
        (read,) = [
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["subtype"][0]["code"] == "caseload"
        ]
        assert re.fullmatch(r"[1-9][0-9]*-[1-9][0-9]*", read["id"])
        assert read["entity"] == [
            {
                "what": {"reference": f"Patient/{patient}"},
                "detail": [{"type": "fields", "valueString": "caseload.edges.node.patientId"}],
            }
        ]
        R4AuditEvent(read, strict=True)
        assert _fhir(server, f"AuditEvent/{read['id']}", compliance) == read
        ids[patient] = read["id"]
    assert len({i.split("-")[0] for i in ids.values()}) == 1
    assert sorted(i.split("-")[1] for i in ids.values()) == ["1", "2", "3"]
    row = ids[patients[0]].split("-")[0]
    for missing in (f"{row}-0", f"{row}-4", f"{row}-01", f"{row}-"):
        response = httpx.get(
            f"{server.url}/fhir/AuditEvent/{missing}",
            headers={"Authorization": f"Bearer {compliance}"},
            timeout=30.0,
        )
        assert response.status_code == 404, missing

    # The audit export: one entry per patient of the list, each its own AuditEvent id.
    exported = asyncio.run(_exported_reads(db_dsn, patients, until))
    assert exported == {p: [(p, str(doctor), f"access-log-{ids[p]}")] for p in patients}
