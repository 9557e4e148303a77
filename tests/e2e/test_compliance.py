"""Compliance staff answer who did what, when, and who looked, over HTTP and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg

from tests.e2e.server import DEFAULT_ORG, ServerProcess

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


def _audit_cli(db_dsn: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_audit_verify_passes_then_reports_tampering_done_with_sql(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """The CLI exits 0 on an intact chain, 1 after an event is edited behind its back."""
    cm_token = server.token("care_manager")
    pid = server.graphql(REGISTER, token=cm_token)["data"]["registerPatient"]["patient"]["id"]
    server.graphql(ENROLL, {"id": pid}, token=cm_token)

    checkpoint = _audit_cli(db_dsn, tmp_path, "checkpoint")
    assert checkpoint.returncode == 0, checkpoint.stderr
    (tmp_path / "checkpoint.json").write_text(checkpoint.stdout)
    assert _audit_cli(db_dsn, tmp_path, "check", str(tmp_path / "checkpoint.json")).returncode == 0
    clean = _audit_cli(
        db_dsn, tmp_path, "verify", "--checkpoint", str(tmp_path / "checkpoint.json")
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr

    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute(
            'UPDATE events SET metadata = metadata || \'{"actor_id": "someone-else"}\' '
            "WHERE stream_version = 1"
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()
    tampered = _audit_cli(db_dsn, tmp_path, "verify")
    assert tampered.returncode == 1
    assert '"edited"' in tampered.stdout and "event:" in tampered.stdout
    assert str(DEFAULT_ORG) not in tampered.stdout


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
