"""A caseload made by ``careteam seed`` (plus one patient with a full record: care plan,
referrals, consents) exported over HTTP as a Group Bulk Data export and read resource by
resource; HAPI FHIR's validator reports no error for any line or resource."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.fhir_validator import FhirValidator
from tests.e2e.server import DEFAULT_ORG, ServerProcess
from tests.e2e.test_fhir_export import (  # noqa: F401 (a fixture)
    RESOURCE_TYPES,
    a_patient_with_a_full_record,
    fhir_get,
    fhir_validator,
    ok,
)

PATIENTS = 12
EXPORTED_TYPES = set(RESOURCE_TYPES) - {"Provenance"}


def seed(db_dsn: str, data_dir: Path) -> None:
    env = {**os.environ, "CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_DATA_DIR": str(data_dir)}
    env.pop("CARETEAM_KAFKA_BOOTSTRAP_SERVERS", None)
    seeded = subprocess.run(
        [sys.executable, "-m", "services.cli", "seed", "--patients", str(PATIENTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]


def group_export(server: ServerProcess, token: str) -> list[tuple[str, str]]:
    """The organisation's caseload as (type, NDJSON text) per file of the manifest."""
    auth = {"Authorization": f"Bearer {token}"}
    kick = httpx.get(
        f"{server.url}/fhir/Group/{DEFAULT_ORG}/$export",
        headers={**auth, "Prefer": "respond-async"},
        timeout=30.0,
    )
    assert kick.status_code == 202, kick.text
    deadline = time.monotonic() + 300
    while True:
        status = httpx.get(kick.headers["Content-Location"], headers=auth, timeout=30.0)
        if status.status_code != 202:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status.status_code == 200, status.text
    files = []
    for output in status.json()["output"]:
        download = httpx.get(output["url"], headers=auth, timeout=60.0)
        assert download.status_code == 200
        assert len(download.text.splitlines()) == output["count"]
        files.append((output["type"], download.text))
    return files


def test_every_resource_of_a_seeded_caseload_and_its_bulk_export_validates_without_errors(
    db_dsn: str,
    tmp_path: Path,
    fhir_validator: FhirValidator,  # noqa: F811 (the fixture)
) -> None:
    seed(db_dsn, tmp_path)
    server = ServerProcess(data_dir=tmp_path, env={"CARETEAM_DATABASE_URL": db_dsn}).start()
    try:
        full = a_patient_with_a_full_record(server)
        compliance = server.token("compliance")
        files = group_export(server, compliance)
        checked: list[tuple[str, dict[str, Any]]] = []
        patients: set[str] = set()
        for kind, text in files:
            for line in text.splitlines():
                resource = json.loads(line)
                assert resource["resourceType"] == kind
                checked.append((f"export-{kind}", resource))
                if kind == "Patient":
                    patients.add(resource["id"])
        assert {kind for kind, _ in files} == EXPORTED_TYPES
        assert len(patients) == PATIENTS + 1 and full.patient_id in patients
        # Every resource read by id, and each patient's Provenance and AuditEvent trail.
        for label, resource in list(checked):
            read = fhir_get(server, f"{resource['resourceType']}/{resource['id']}", compliance)
            assert ok(read) == resource, label
        for patient_id in sorted(patients):
            for kind in ("Provenance", "AuditEvent"):
                bundle = ok(fhir_get(server, kind, compliance, patient=patient_id))
                assert bundle["total"] > 0, kind
                checked.extend((f"search-{kind}", e["resource"]) for e in bundle["entry"])
    finally:
        server.stop()
    assert {r["resourceType"] for _, r in checked} == {*RESOURCE_TYPES, "AuditEvent"}
    failures = []
    for i, (label, resource) in enumerate(checked):
        path = tmp_path / f"{i:05d}-{label}.json"
        path.write_text(json.dumps(resource))
        result = fhir_validator.validate(path)
        if result["errors"]:
            failures.append((path.name, result["issues"]))
    assert failures == []
