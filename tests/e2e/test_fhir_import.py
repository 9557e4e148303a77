"""Onboarding import over HTTP and the CLI against a running server and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from tests.e2e.fhir_validator import FhirValidator
from tests.e2e.journey import command
from tests.e2e.server import ServerProcess
from tests.e2e.test_fhir_export import fhir_validator, ok  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

HEADER = ["mrn", "given_name", "family_name", "birth_date", "sex", "enrolled_on"]
MEASURES = ["phq9_1", "phq9_2", "phq9_3", "gad7_1"]


def history(i: int) -> dict[str, str]:
    """A synthetic patient's registry row: enrolled, three PHQ-9s and a GAD-7; every
    tenth has a safety answer on the first PHQ-9, every seventh a severe one."""
    first = [2, 2, 2, 2, 2, 1, 1, 1, 1 if i % 10 == 0 else 0]
    if i % 7 == 0:
        first = [3, 3, 3, 3, 2, 2, 2, 2, 0]
    return {
        "mrn": f"IMP-{i:05d}",
        "given_name": "Test",
        "family_name": f"Import{i}",
        "birth_date": f"{1950 + i % 50}-0{1 + i % 9}-1{i % 10}",
        "sex": ("female", "male", "other", "")[i % 4],
        "enrolled_on": "2026-06-01",
        "phq9_1": "2026-06-02 " + " ".join(map(str, first)),
        "phq9_2": "2026-07-15 1 1 1 1 1 1 1 0 0",
        "phq9_3": f"2026-09-{10 + i % 10}T09:30:00-05:00 " + ("1 0 0 0 1 0 0 1 0"),
        "gad7_1": "2026-06-02 2 2 1 1 1 0 0",
    }


def csv_text(rows: list[dict[str, str]], header: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or HEADER + MEASURES, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def start_import(
    server: ServerProcess, token: str, body: str, kind: str, *, dry_run: bool = False
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/fhir/$import",
        params={"dryRun": str(dry_run).lower()},
        content=body.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": kind},
        timeout=60.0,
    )


def run_import(
    server: ServerProcess, token: str, body: str, kind: str = "text/csv", *, dry_run: bool = False
) -> dict[str, Any]:
    """Starts an import and polls its status until the report is there."""
    started = start_import(server, token, body, kind, dry_run=dry_run)
    assert started.status_code == 202, started.text
    url = started.headers["Content-Location"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
        if status.status_code == 200:
            report: dict[str, Any] = status.json()
            return report
        assert status.status_code == 202, status.text
        time.sleep(0.2)
    raise AssertionError("the import did not finish")


async def total_events(db_dsn: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return count


REGISTRY_ROW = """
query($id: UUID!) { registryRow(patientId: $id) {
  episodeStatus enrolledAt weeksInTreatment flagged
  baselinePhq9 { total severity takenAt } latestPhq9 { total severity takenAt }
  phq9PercentChange baselineGad7 { total takenAt } latestGad7 { total takenAt }
  gad7PercentChange flags { kind ruleId ruleVersion } reviewReasonKinds
} }"""
OUTCOMES = """
query($cm: UUID!) { outcomes(careManagerId: $cm) { episodes {
  episodeNumber status ageAtIndex baseline { total } latest { total } improvement
  response remission
} } }"""


def registry(server: ServerProcess, token: str, patient_id: str) -> dict[str, Any]:
    body = server.graphql(REGISTRY_ROW, {"id": patient_id}, token=token)
    assert "errors" not in body, body
    row: dict[str, Any] = body["data"]["registryRow"]
    return row


def cell_answers(_instrument: str, cells: list[str]) -> list[int]:
    """The item answers a CSV measure cell holds after its date."""
    return [int(a) for a in cells]


def by_graphql(
    server: ServerProcess,
    token: str,
    row: dict[str, str],
    columns: list[str] = MEASURES,
    answers_of: Callable[[str, list[str]], list[int]] = cell_answers,
) -> str:
    """The same history entered through GraphQL: register, enroll, each measure of
    ``columns`` in order, its answers ``answers_of(instrument, cells after the date)``."""
    registered = command(
        server,
        "registerPatient",
        {
            "givenName": row["given_name"],
            "familyName": row["family_name"],
            "birthDate": row["birth_date"],
            "mrn": row["mrn"] + "-G",
            "occurredAt": "2026-06-01T12:00:00+00:00",
        },
        token,
        "... on PatientPayload { patient { id } }",
    )
    patient_id: str = registered["patient"]["id"]
    enrolled = command(
        server,
        "enrollPatient",
        {"patientId": patient_id, "occurredAt": "2026-06-01T12:00:00+00:00"},
        token,
        "",
    )
    assert enrolled["__typename"] == "PatientPayload", enrolled
    measures = []
    for name in columns:
        when, *cells = row[name].split()
        at = when if "T" in when else when + "T12:00:00+00:00"
        instrument = name.split("_")[0].upper()
        measures.append((at, instrument, answers_of(instrument, cells)))
    for at, instrument, answers in sorted(measures, key=lambda m: m[0]):
        result = command(
            server,
            "recordScreening",
            {
                "patientId": patient_id,
                "instrument": instrument,
                "answers": answers,
                "occurredAt": at,
            },
            token,
            "",
        )
        assert result["__typename"] == "PatientPayload", result
    return patient_id


def test_an_imported_history_gives_the_registry_the_same_baselines_flags_and_outcomes_as_graphql(
    server: ServerProcess,
) -> None:
    importer_id, typist_id = uuid4(), uuid4()
    importer = server.token("care_manager", user=importer_id)
    typist = server.token("care_manager", user=typist_id)
    rows = [history(i) for i in (0, 1, 7)]  # a safety answer, a plain one, a severe one
    report = run_import(server, importer, csv_text(rows))
    assert report["counts"] == {"created": 3}, report
    for row, entry in zip(rows, report["entries"], strict=True):
        assert entry["measuresCreated"] == 4
        imported = registry(server, importer, entry["patientId"])
        typed = registry(server, typist, by_graphql(server, typist, row))
        assert imported == typed
    assert registry(server, importer, report["entries"][0]["patientId"])["flagged"] is True
    outcomes = [
        sorted(
            server.graphql(OUTCOMES, {"cm": str(cm)}, token=token)["data"]["outcomes"]["episodes"],
            key=json.dumps,
        )
        for cm, token in ((importer_id, importer), (typist_id, typist))
    ]
    assert outcomes[0] and outcomes[0] == outcomes[1]


IDENTITY = {"mrn", "given_name", "family_name", "birth_date", "sex"}


def without_age(episodes: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in e.items() if k != "ageAtIndex"}) for e in episodes)


async def test_a_thousand_patients_import_with_a_progress_bar_and_a_second_import_changes_nothing(
    server: ServerProcess, db_dsn: str, tmp_path: Path
) -> None:
    """The CLI imports 1,000 histories with a progress bar; every imported patient's
    registry row equals that of the same history typed through GraphQL, and the outcomes
    of the 1,000 equal those of the typed histories (one typed per distinct history, the
    rows differing only in identity); a second import changes nothing."""
    rows = [history(i) for i in range(1000)]
    path = tmp_path / "registry.csv"
    path.write_text(csv_text(rows))
    importer_id = uuid4()
    token = server.token("care_manager", user=importer_id)

    def cli(*extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        report_path = tmp_path / f"report-{uuid4().hex}.json"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "services.cli", "fhir-import", str(path)),
                *("--url", server.url, "--token", token, "--report", str(report_path), *extra),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(report_path.read_text())
        return done, report

    _dry, report = cli("--dry-run")
    assert report["dryRun"] is True and report["counts"] == {"created": 1000}
    assert await total_events(db_dsn) == 0
    first, report = cli()
    assert "1000/1000" in first.stderr and "] 0/1000" in first.stderr
    assert report["counts"] == {"created": 1000}
    written = await total_events(db_dsn)
    assert written > 5000

    def history_of(row: dict[str, str]) -> str:
        return json.dumps({k: v for k, v in row.items() if k not in IDENTITY}, sort_keys=True)

    # One typist per distinct history, so each typist's outcomes are that history's.
    typists: dict[str, tuple[UUID, str, str]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        key = history_of(row)
        if key not in typists:
            typist_id = uuid4()
            typist = server.token("care_manager", user=typist_id)
            typists[key] = (typist_id, typist, by_graphql(server, typist, row))
        counts[key] = counts.get(key, 0) + 1
    assert 10 < len(typists) < 100
    typed = {key: registry(server, t, pid) for key, (_, t, pid) in typists.items()}
    for row, entry in zip(rows, report["entries"], strict=True):
        assert registry(server, token, entry["patientId"]) == typed[history_of(row)]
    expected: list[dict[str, Any]] = []
    for key, (typist_id, typist, _pid) in typists.items():
        body = server.graphql(OUTCOMES, {"cm": str(typist_id)}, token=typist)
        (episode,) = body["data"]["outcomes"]["episodes"]
        expected.extend([episode] * counts[key])
    imported = server.graphql(OUTCOMES, {"cm": str(importer_id)}, token=token)
    # The age at the index score differs with the birth date (identity), nothing else.
    assert without_age(imported["data"]["outcomes"]["episodes"]) == without_age(expected)
    written = await total_events(db_dsn)  # with the typed histories' events
    _again, report = cli()
    assert report["counts"] == {"unchanged": 1000}
    assert {e["measuresUnchanged"] for e in report["entries"]} == {4}
    assert await total_events(db_dsn) == written
    # The log holds no patient data: no MRN, no family name of the file.
    log = server.log_path.read_text()
    assert "IMP-00042" not in log and "Import42" not in log


async def test_bad_rows_are_refused_with_typed_reasons_and_nothing_half_written(
    server: ServerProcess, db_dsn: str
) -> None:
    token = server.token("care_manager")
    good = history(1)
    future_birth = {**history(2), "birth_date": "2031-01-01"}
    out_of_range = {**history(3), "phq9_2": "2026-07-15 1 1 1 1 4 1 1 0 0"}
    bad_date = {**history(4), "enrolled_on": "2026-13-40"}
    future_measure = {**history(5), "gad7_1": "2031-01-01 1 1 1 1 1 1 1"}
    missing = {**history(6), "given_name": ""}
    rows = [good, future_birth, out_of_range, bad_date, future_measure, missing, good]
    body = csv_text(rows)
    dry = run_import(server, token, body, dry_run=True)
    assert await total_events(db_dsn) == 0
    report = run_import(server, token, body)
    errors = [(e["ref"], e["outcome"], e["errors"]) for e in report["entries"]]
    assert [(e["ref"], e["outcome"], e["errors"]) for e in dry["entries"]] == errors
    assert errors == [
        ("row 2", "created", []),
        ("row 3", "rejected", [{"code": "INVALID_BIRTH_DATE", "field": "birth_date"}]),
        ("row 4", "rejected", [{"code": "ANSWER_OUT_OF_RANGE", "field": "phq9_2"}]),
        ("row 5", "rejected", [{"code": "INVALID_DATE", "field": "enrolled_on"}]),
        ("row 6", "rejected", [{"code": "OCCURRED_IN_FUTURE", "field": "gad7_1"}]),
        ("row 7", "rejected", [{"code": "FIELD_REQUIRED", "field": "given_name"}]),
        ("row 8", "rejected", [{"code": "DUPLICATE_MRN_IN_FILE", "field": "mrn"}]),
    ]
    conn = await asyncpg.connect(db_dsn)
    try:
        streams = await conn.fetchval("SELECT count(DISTINCT stream_id) FROM events")
    finally:
        await conn.close()
    assert streams == 1  # only the good patient; a refused one left nothing behind
    # A file-level fault: a missing column is a 400 OperationOutcome naming it.
    refused = start_import(server, token, csv_text([good], HEADER[1:]), "text/csv")
    assert refused.status_code == 400
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["mrn"] and "MISSING_COLUMN" in issue["diagnostics"]
    for role in ("psychiatrist", "compliance", "partner"):
        denied = start_import(server, server.token(role), body, "text/csv")
        assert denied.status_code == 403, (role, denied.text)


def bundle(kind: str = "transaction") -> dict[str, Any]:
    """Two patients: one with an enrollment, a PHQ-9 and its total; one whose
    Observation has an unknown LOINC code; and an entry about nobody in the Bundle."""
    p1, p2, qr = (f"urn:uuid:{uuid4()}" for _ in range(3))
    items = [
        {"linkId": str(n), "answer": [{"valueInteger": a}]}
        for n, a in enumerate([1, 2, 1, 2, 1, 1, 0, 1, 0], start=1)
    ]

    def entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
        return {
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]},
        }

    def patient(mrn: str) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:careteam:mrn", "value": mrn}],
            "name": [{"family": "Bundle", "given": ["Test"]}],
            "birthDate": "1977-03-04",
            "gender": "female",
        }

    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            entry(p1, patient("B-1")),
            entry(
                f"urn:uuid:{uuid4()}",
                {
                    "resourceType": "EpisodeOfCare",
                    "status": "active",
                    "patient": {"reference": p1},
                    "period": {"start": "2026-05-01T12:00:00+00:00"},
                },
            ),
            entry(
                qr,
                {
                    "resourceType": "QuestionnaireResponse",
                    "questionnaire": "http://loinc.org/q/44249-1",
                    "status": "completed",
                    "subject": {"reference": p1},
                    "authored": "2026-05-02T10:00:00+00:00",
                    "item": items,
                },
            ),
            entry(
                f"urn:uuid:{uuid4()}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "subject": {"reference": p1},
                    "valueInteger": 9,
                    "derivedFrom": [{"reference": qr}],
                },
            ),
            entry(p2, patient("B-2")),
            entry(
                f"urn:uuid:{uuid4()}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
                    "subject": {"reference": p2},
                    "valueInteger": 3,
                },
            ),
            entry(
                f"urn:uuid:{uuid4()}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "subject": {"reference": "urn:uuid:nobody"},
                    "valueInteger": 3,
                },
            ),
        ],
    }


async def test_a_fhir_bundle_imports_once_and_what_it_made_exports_valid_r4(
    server: ServerProcess,
    db_dsn: str,
    fhir_validator: FhirValidator,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    token = server.token("care_manager")
    body = json.dumps(bundle())
    report = run_import(server, token, body, "application/fhir+json")
    outcomes = [(e["ref"], e["outcome"], e["errors"]) for e in report["entries"]]
    assert outcomes == [
        ("entry 0", "created", []),
        (
            "entry 4",
            "rejected",
            [{"code": "UNKNOWN_CODE", "field": "Bundle.entry[5].resource.code"}],
        ),
        (
            "entry 6",
            "rejected",
            [{"code": "UNKNOWN_SUBJECT", "field": "Bundle.entry[6].resource.subject"}],
        ),
    ]
    patient_id = report["entries"][0]["patientId"]
    written = await total_events(db_dsn)
    again = run_import(server, token, body, "application/fhir+json")
    assert again["entries"][0]["outcome"] == "unchanged"
    assert await total_events(db_dsn) == written
    everything = ok(
        httpx.get(  # noqa: ASYNC210 (a test client)
            f"{server.url}/fhir/Patient/{patient_id}/$everything",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
        )
    )
    kinds = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert kinds.count("Observation") == 1 and "EpisodeOfCare" in kinds
    resources = [e["resource"] for e in everything["entry"]]
    observation = next(r for r in resources if "valueInteger" in r)
    assert observation["valueInteger"] == 9
    assert observation["effectiveDateTime"].startswith("2026-05-02T10:00:00")
    path = tmp_path / "imported.json"
    path.write_text(json.dumps(everything))
    assert fhir_validator.validate(path)["errors"] == 0
    malformed = start_import(server, token, '{"resourceType": "Bundle"}', "application/fhir+json")
    assert malformed.status_code == 400
    assert malformed.json()["issue"][0]["expression"] == ["Bundle.type"]
    not_json = start_import(server, token, "{", "application/fhir+json")
    assert not_json.status_code == 400
    unknown = httpx.get(  # noqa: ASYNC210 (a test client)
        f"{server.url}/fhir/$import-status/nothing",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    assert unknown.status_code == 404
    assert UUID(patient_id)
