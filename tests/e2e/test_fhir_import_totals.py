"""Onboarding import of a totals-only registry over HTTP: dated PHQ-9 and GAD-7 totals
without item answers, against a running server and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from tests.e2e.fhir_validator import FhirValidator
from tests.e2e.journey import command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess
from tests.e2e.test_fhir_export import fhir_validator, ok  # noqa: F401 (a fixture)
from tests.e2e.test_fhir_import import (
    HEADER,
    OUTCOMES,
    by_graphql,
    csv_text,
    registry,
    run_import,
    total_events,
)

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

TOTALS = ["phq9_1", "phq9_2", "phq9_3", "gad7_1", "gad7_2"]
PATIENTS = 220


def totals_row(i: int) -> dict[str, str]:
    """A synthetic registry row holding totals only. Baselines 10-24 (item 9 can stay 0
    when the same totals are typed as answers); the last PHQ-9 a response, a remission,
    no improvement or a small one, in turn; GAD-7 5-21, then a third of it."""
    first = 10 + i % 15
    last = (first // 2 - 1, 3, first, first - 2)[i % 4]
    gad = 5 + i % 17
    return {
        "mrn": f"TOT-{i:05d}",
        "given_name": "Test",
        "family_name": f"Totals{i}",
        "birth_date": f"{1950 + i % 50}-0{1 + i % 9}-1{i % 10}",
        "sex": ("female", "male", "other", "")[i % 4],
        "enrolled_on": "2026-06-01",
        "phq9_1": f"2026-06-02 {first}",
        "phq9_2": f"2026-07-15 {max(0, first - i % 9)}",
        "phq9_3": f"2026-09-{10 + i % 10}T09:30:00-05:00 {last}",
        "gad7_1": f"2026-06-02 {gad}",
        "gad7_2": f"2026-09-01 {gad // 3}",
    }


def answers_for(instrument: str, cells: list[str]) -> list[int]:
    """Item answers summing to the cell's total, PHQ-9 item 9 = 0 (so at most 24)."""
    (text,) = cells
    total = int(text)
    scored = 8 if instrument == "PHQ9" else 7
    answers = [min(3, max(0, total - 3 * k)) for k in range(scored)]
    assert sum(answers) == total
    return answers + ([0] if instrument == "PHQ9" else [])


SCREENINGS = """
query($id: UUID!) { patient(id: $id) { ... on Patient {
  screenings { total totalOnly answers safetyAlert needsFollowUp }
  openTasks { kind } flags { kind }
} } }"""


async def test_a_totals_only_registry_imports_with_the_registry_of_the_same_history_typed(
    server: ServerProcess, db_dsn: str
) -> None:
    importer_id, typist_id = uuid4(), uuid4()
    importer = server.token("care_manager", user=importer_id)
    typist = server.token("care_manager", user=typist_id)
    rows = [totals_row(i) for i in range(PATIENTS)]
    body = csv_text(rows, HEADER + TOTALS)

    dry = run_import(server, importer, body, dry_run=True)
    assert dry["dryRun"] is True and dry["counts"] == {"created": PATIENTS}, dry["counts"]
    assert await total_events(db_dsn) == 0

    report = run_import(server, importer, body)
    assert report["counts"] == {"created": PATIENTS}, report["counts"]
    assert {e["measuresCreated"] for e in report["entries"]} == {5}
    written = await total_events(db_dsn)

    again = run_import(server, importer, body)
    assert again["counts"] == {"unchanged": PATIENTS}
    assert {e["measuresUnchanged"] for e in again["entries"]} == {5}
    assert await total_events(db_dsn) == written

    for row, entry in zip(rows, report["entries"], strict=True):
        imported = registry(server, importer, entry["patientId"])
        typed = registry(server, typist, by_graphql(server, typist, row, TOTALS, answers_for))
        assert imported == typed, entry["ref"]
    kinds = {
        json.dumps(registry(server, importer, e["patientId"])["flags"]) for e in report["entries"]
    }
    assert len(kinds) > 1  # the histories differ enough to raise different flags
    outcomes = [
        sorted(
            server.graphql(OUTCOMES, {"cm": str(cm)}, token=token)["data"]["outcomes"]["episodes"],
            key=json.dumps,
        )
        for cm, token in ((importer_id, importer), (typist_id, typist))
    ]
    assert len(outcomes[0]) == PATIENTS and outcomes[0] == outcomes[1]
    assert {e["response"] for e in outcomes[0]} == {True, False}
    assert {e["remission"] for e in outcomes[0]} == {True, False}

    # A PHQ-9 total of 24 imported: no answers, no safety alert, no flag, no task.
    severe = report["entries"][14]["patientId"]
    body_read = server.graphql(SCREENINGS, {"id": severe}, token=importer)
    assert "errors" not in body_read, body_read
    patient = body_read["data"]["patient"]
    assert {
        (s["totalOnly"], json.dumps(s["answers"]), s["safetyAlert"]) for s in patient["screenings"]
    } == {(True, "[]", False)}
    assert max(s["total"] for s in patient["screenings"]) == 24
    assert {(s["total"] >= 20, s["needsFollowUp"]) for s in patient["screenings"]} == {
        (True, True),
        (False, False),
    }
    assert patient["openTasks"] == []
    assert "safety_risk" not in {f["kind"] for f in patient["flags"]}


def _observation(patient: str, code: str, value: int, **extra: Any) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid4()}",
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": patient},
            "effectiveDateTime": "2026-05-02T10:00:00+00:00",
            "valueInteger": value,
            **extra,
        },
    }


async def test_bad_totals_are_refused_per_row_and_a_bundle_total_exports_as_valid_r4(
    server: ServerProcess,
    db_dsn: str,
    fhir_validator: FhirValidator,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    token = server.token("care_manager")
    good = totals_row(1)
    rows = [
        good,
        {**totals_row(2), "phq9_2": "2026-07-15 28"},
        {**totals_row(3), "gad7_1": "2026-06-02 22"},
        {**totals_row(4), "gad7_2": "2031-01-01 4"},
        {**totals_row(5), "birth_date": "1990-01-01", "phq9_1": "1989-06-02 12"},
    ]
    body = csv_text(rows, HEADER + TOTALS)
    report = run_import(server, token, body)
    assert [(e["ref"], e["outcome"], e["errors"]) for e in report["entries"]] == [
        ("row 2", "created", []),
        ("row 3", "rejected", [{"code": "TOTAL_OUT_OF_RANGE", "field": "phq9_2"}]),
        ("row 4", "rejected", [{"code": "TOTAL_OUT_OF_RANGE", "field": "gad7_1"}]),
        ("row 5", "rejected", [{"code": "OCCURRED_IN_FUTURE", "field": "gad7_2"}]),
        ("row 6", "rejected", [{"code": "INVALID_BIRTH_DATE", "field": "birth_date"}]),
    ]
    conn = await asyncpg.connect(db_dsn)
    try:
        streams = await conn.fetchval("SELECT count(DISTINCT stream_id) FROM events")
    finally:
        await conn.close()
    assert streams == 1  # only the good row's patient: a refused row left nothing behind
    written = await total_events(db_dsn)
    # The same instant with another total is a conflict, and nothing is written.
    changed = run_import(
        server, token, csv_text([{**good, "phq9_2": "2026-07-15 3"}], HEADER + TOTALS)
    )
    assert changed["entries"][0]["errors"] == [{"code": "MEASURE_CONFLICT", "field": "phq9_2"}]
    assert await total_events(db_dsn) == written
    # A new total of a known patient dated before their birth (1951-02-11).
    early = run_import(
        server, token, csv_text([{**good, "gad7_3": "1950-01-01 4"}], [*HEADER, *TOTALS, "gad7_3"])
    )
    assert early["entries"][0]["errors"] == [{"code": "OCCURRED_BEFORE_BIRTH", "field": "gad7_3"}]
    assert await total_events(db_dsn) == written

    # A Bundle: an Observation with a known LOINC total and no derivedFrom is a total.
    patient_url = f"urn:uuid:{uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:careteam:mrn", "value": "TOT-B-1"}],
                    "name": [{"family": "Bundle", "given": ["Test"]}],
                    "birthDate": "1977-03-04",
                },
            },
            _observation(patient_url, "44261-6", 27),
            _observation(patient_url, "70274-6", 0, effectiveDateTime="2026-05-03"),
        ],
    }
    imported = run_import(server, token, json.dumps(bundle), "application/fhir+json")
    (entry,) = imported["entries"]
    assert (entry["outcome"], entry["measuresCreated"]) == ("created", 2), entry
    after = await total_events(db_dsn)
    repeated = run_import(server, token, json.dumps(bundle), "application/fhir+json")
    assert repeated["entries"][0]["outcome"] == "unchanged"
    assert await total_events(db_dsn) == after
    out_of_range = {
        **bundle,
        "entry": [bundle["entry"][0], _observation(patient_url, "70274-6", 22)],
    }
    refused = run_import(server, token, json.dumps(out_of_range), "application/fhir+json")
    assert refused["entries"][0]["errors"] == [
        {"code": "TOTAL_OUT_OF_RANGE", "field": "Bundle.entry[1].resource.valueInteger"}
    ]

    headers = {"Authorization": f"Bearer {token}"}
    everything = ok(
        httpx.get(  # noqa: ASYNC210 (a test client)
            f"{server.url}/fhir/Patient/{entry['patientId']}/$everything",
            headers=headers,
            timeout=30.0,
        )
    )
    resources = [e["resource"] for e in everything["entry"]]
    kinds = [r["resourceType"] for r in resources]
    assert kinds.count("Observation") == 2 and "QuestionnaireResponse" not in kinds
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    assert sorted(o["valueInteger"] for o in observations) == [0, 27]
    assert all("derivedFrom" not in o for o in observations)
    path = tmp_path / "imported-totals.json"
    path.write_text(json.dumps(everything))
    assert fhir_validator.validate(path)["errors"] == 0
    one = observations[0]["id"]
    read = ok(
        httpx.get(f"{server.url}/fhir/Observation/{one}", headers=headers, timeout=30.0)  # noqa: ASYNC210
    )
    path.write_text(json.dumps(read))
    assert fhir_validator.validate(path)["errors"] == 0
    missing = httpx.get(  # noqa: ASYNC210 (a test client)
        f"{server.url}/fhir/QuestionnaireResponse/{one}", headers=headers, timeout=30.0
    )
    assert missing.status_code == 404


async def test_one_historical_total_is_recorded_through_graphql_as_an_imported_total(
    server: ServerProcess, db_dsn: str
) -> None:
    """importMeasureTotal: a PHQ-9 total of 22 without answers is a totalOnly screening
    judged severe (needsFollowUp) that raises no flag and no task, and becomes the
    baseline; a total out of range, the ASQ, or a role that may not screen write nothing."""
    team = enrolled_patient(server, mrn="E2E-TOTAL-1")
    pid = team.patient_id

    def imported(token: str, instrument: str, total: int, at: str) -> dict[str, Any]:
        return command(
            server,
            "importMeasureTotal",
            {"patientId": pid, "instrument": instrument, "total": total, "occurredAt": at},
            token,
            "",
        )

    taken = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    before = await event_count(db_dsn, pid)
    refusals = [
        (imported(team.care_manager, "PHQ9", 28, taken), "TOTAL_OUT_OF_RANGE", "total"),
        (imported(team.care_manager, "ASQ", 1, taken), "INSTRUMENT_WITHOUT_TOTAL", "instrument"),
        (
            imported(team.care_manager, "PHQ9", 5, "2031-01-01T00:00:00+00:00"),
            "OCCURRED_IN_FUTURE",
            "occurredAt",
        ),
    ]
    for result, code, field in refusals:
        assert result["__typename"] == "ValidationError", result
        assert (result["code"], result["field"]) == (code, field)
    assert imported(team.psychiatrist, "PHQ9", 22, taken)["__typename"] == "ForbiddenError"
    assert await event_count(db_dsn, pid) == before

    assert imported(team.care_manager, "PHQ9", 22, taken)["__typename"] == "PatientPayload"
    body = server.graphql(SCREENINGS, {"id": pid}, token=team.care_manager)
    assert "errors" not in body, body
    patient = body["data"]["patient"]
    assert patient["screenings"] == [
        {
            "total": 22,
            "totalOnly": True,
            "answers": [],
            "safetyAlert": False,
            "needsFollowUp": True,
        }
    ]
    assert patient["openTasks"] == [] and patient["flags"] == []
    row = registry(server, team.care_manager, pid)
    assert row["baselinePhq9"]["total"] == 22 and row["baselinePhq9"]["severity"] == "severe"
