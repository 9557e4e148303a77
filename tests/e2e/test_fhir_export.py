"""The FHIR R4 export over HTTP against a running server, checked by HAPI FHIR's validator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from tests.e2e.fhir_validator import FhirValidator
from tests.e2e.journey import CareTeam, command, enrolled_patient, event_count
from tests.e2e.server import DEFAULT_ORG, ServerProcess

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

FHIR_JSON = "application/fhir+json"
RESOURCE_TYPES = (
    "Patient",
    "Observation",
    "QuestionnaireResponse",
    "CareTeam",
    "EpisodeOfCare",
    "Consent",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "Provenance",
)
PATIENT_PAYLOAD = "... on PatientPayload { createdId }"


@pytest.fixture(scope="session")
def fhir_validator() -> Iterator[FhirValidator]:
    """One HAPI FHIR validator JVM for the whole test session."""
    validator = FhirValidator()
    try:
        yield validator
    finally:
        validator.close()


def test_the_validator_reports_an_error_for_a_resource_that_breaks_r4(
    fhir_validator: FhirValidator, tmp_path: Path
) -> None:
    """The validator is not vacuous: a wrong required code and a text integer are errors."""
    broken = {
        "resourceType": "Observation",
        "id": "x1",
        "status": "done",
        "code": {"text": "PHQ-9 total score"},
        "valueInteger": "ten",
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = fhir_validator.validate(path)
    assert result["errors"] >= 2
    locations = {i["location"] for i in result["issues"] if i["severity"] == "error"}
    assert "Observation.status" in locations


def fhir_get(server: ServerProcess, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}/fhir/{path}", params=params, headers=headers, timeout=30.0)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    return body


def screen(server: ServerProcess, team: CareTeam, instrument: str, answers: list[Any]) -> None:
    result = command(
        server,
        "recordScreening",
        {"patientId": team.patient_id, "instrument": instrument, "answers": answers},
        team.care_manager,
        "",
    )
    assert result["__typename"] == "PatientPayload", result


def consent(server: ServerProcess, team: CareTeam, **input: Any) -> str:
    result = command(
        server,
        "grantConsent",
        {"patientId": team.patient_id, **input},
        team.care_manager,
        PATIENT_PAYLOAD,
    )
    assert result["__typename"] == "PatientPayload", result
    created: str = result["createdId"]
    return created


def care_plan(server: ServerProcess, team: CareTeam) -> None:
    """A care plan with an achieved goal, an open goal, two targets and two treatments."""
    created = command(
        server,
        "createCarePlan",
        {"patientId": team.patient_id},
        team.pcp,
        "... on CarePlanPayload { carePlan { id } }",
    )
    plan = {"carePlanId": created["carePlan"]["id"]}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("addGoal", {"description": "Sleep through the night"}),
        ("addGoal", {"description": "Walk every day"}),
        ("setTarget", {"instrument": "PHQ9", "kind": "SCORE_BELOW", "value": 5}),
        (
            "setTarget",
            {"instrument": "GAD7", "kind": "REDUCTION_PERCENT", "value": 50, "dueOn": "2027-03-01"},
        ),
        ("startIntervention", {"kind": "MEDICATION", "name": "sertraline", "dose": "50 mg"}),
        (
            "startIntervention",
            {
                "kind": "PSYCHOTHERAPY",
                "name": "problem solving",
                "modality": "PROBLEM_SOLVING_THERAPY",
            },
        ),
    ]
    goal = None
    for operation, input in steps:
        result = command(
            server, operation, {**plan, **input}, team.pcp, "... on CarePlanPayload { createdId }"
        )
        assert result["__typename"] == "CarePlanPayload", result
        goal = goal or result["createdId"]
    closed = command(
        server, "closeGoal", {**plan, "goalId": goal, "outcome": "ACHIEVED"}, team.pcp, ""
    )
    assert closed["__typename"] == "CarePlanPayload", closed


def referrals(server: ServerProcess, team: CareTeam) -> None:
    """A referral that reported back, and one still waiting to be sent."""
    ids = []
    for service in ("PSYCHOTHERAPY", "COMMUNITY_SERVICES"):
        result = command(
            server,
            "requestReferral",
            {
                "patientId": team.patient_id,
                "service": service,
                "reason": "needs weekly sessions",
                "expectedBy": "2030-01-01",
                "receivingOrganisationId": str(uuid4()),
            },
            team.care_manager,
            "... on ReferralPayload { referral { id } }",
        )
        ids.append(result["referral"]["id"])
    for operation, extra in (
        ("sendReferral", {}),
        ("acceptReferral", {}),
        ("scheduleReferral", {"appointmentAt": "2026-01-05T10:00:00+00:00"}),
        ("completeReferral", {"reportBackSummary": "seen twice"}),
    ):
        result = command(server, operation, {"referralId": ids[0], **extra}, team.care_manager, "")
        assert result["__typename"] == "ReferralPayload", (operation, result)


def a_patient_with_a_full_record(server: ServerProcess) -> CareTeam:
    """An enrolled patient with every instrument's screening, an incomplete one, a
    treatment consent, a revoked data-sharing consent, an expiring Part 2 consent, a care
    plan and two referrals."""
    team = enrolled_patient(server, mrn="E2E-FHIR-1")
    screen(server, team, "PHQ9", [1, 2, 1, 2, 1, 1, 0, 1, 1])
    screen(server, team, "PHQ9", [1, None, 1, 0, 0, 1, 0, 0, 0])
    screen(server, team, "PHQ2", [2, 2])
    screen(server, team, "GAD7", [1, 1, 2, 0, 1, 1, 0])
    screen(server, team, "ASQ", [0, 0, 0, 0, None])
    consent(server, team, kind="COCM_TREATMENT", method="VERBAL", costSharingExplained=True)
    partner = str(uuid4())
    shared = consent(server, team, kind="DATA_SHARING", partnerOrganisationId=partner)
    revoked = command(
        server,
        "revokeConsent",
        {"patientId": team.patient_id, "consentId": shared},
        team.care_manager,
        "",
    )
    assert revoked["__typename"] == "PatientPayload", revoked
    consent(
        server,
        team,
        kind="PART2",
        method="WRITTEN",
        partnerOrganisationId=partner,
        expiresOn="2030-01-01",
    )
    care_plan(server, team)
    referrals(server, team)
    return team


def forgotten_patient(server: ServerProcess) -> CareTeam:
    """An enrolled patient with a PHQ-9 whose identity an administrator erased."""
    team = enrolled_patient(server, mrn="E2E-FHIR-2")
    screen(server, team, "PHQ9", [0, 0, 1, 0, 0, 0, 0, 0, 0])
    admin = server.token("admin")
    body = server.graphql(
        """mutation($id: UUID!) { forgetPatient(patientId: $id, reason: "request 1") {
             __typename } }""",
        {"id": team.patient_id},
        token=admin,
    )
    assert body["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", body
    return team


def test_every_exported_resource_type_passes_the_hapi_fhir_validator_without_errors(
    server: ServerProcess, fhir_validator: FhirValidator, tmp_path: Path
) -> None:
    """Reads, searches, $everything, the CapabilityStatement and error outcomes of a full
    record and of a forgotten patient validate against R4 with no error."""
    full = a_patient_with_a_full_record(server)
    forgotten = forgotten_patient(server)
    exported: list[tuple[str, dict[str, Any]]] = []
    exported.append(("metadata", ok(fhir_get(server, "metadata", None))))
    for n, team in enumerate((full, forgotten)):
        token = team.care_manager
        everything = ok(fhir_get(server, f"Patient/{team.patient_id}/$everything", token))
        exported.append((f"p{n}-everything", everything))
        exported.append(
            (f"p{n}-Patient-search", ok(fhir_get(server, "Patient", token, _id=team.patient_id)))
        )
        for resource_type in RESOURCE_TYPES[1:]:
            bundle = ok(
                fhir_get(server, resource_type, token, patient=f"Patient/{team.patient_id}")
            )
            exported.append((f"p{n}-{resource_type}-search", bundle))
        for i, entry in enumerate(everything["entry"]):
            resource = entry["resource"]
            read = ok(fhir_get(server, f"{resource['resourceType']}/{resource['id']}", token))
            assert read == resource
            exported.append((f"p{n}-{i}-{resource['resourceType']}-read", read))
    provenance = ok(fhir_get(server, "Provenance", full.care_manager, patient=full.patient_id))
    targets = {t["reference"] for e in provenance["entry"] for t in e["resource"]["target"]}
    everything_ids = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in exported[1][1]["entry"]
    }
    assert targets == everything_ids
    some = provenance["entry"][-1]["resource"]
    exported.append(
        ("provenance-read", ok(fhir_get(server, f"Provenance/{some['id']}", full.care_manager)))
    )
    compliance = server.token("compliance")
    audit = ok(fhir_get(server, "AuditEvent", compliance, patient=full.patient_id))
    assert audit["total"] > 0
    exported.append(("audit-search", audit))
    first = audit["entry"][0]["resource"]
    exported.append(("audit-read", ok(fhir_get(server, f"AuditEvent/{first['id']}", compliance))))
    unsupported = fhir_get(
        server, "Observation", full.care_manager, patient=full.patient_id, code="44261-6"
    )
    assert unsupported.status_code == 400
    exported.append(("outcome-400", unsupported.json()))
    missing = fhir_get(server, f"Observation/{uuid4()}", full.care_manager)
    assert missing.status_code == 404
    exported.append(("outcome-404", missing.json()))

    exported_types = {body["resourceType"] for _, body in exported}
    for _, body in exported:
        exported_types |= {e["resource"]["resourceType"] for e in body.get("entry", [])}
    assert exported_types == {
        *RESOURCE_TYPES,
        "AuditEvent",
        "Bundle",
        "CapabilityStatement",
        "OperationOutcome",
    }
    failures = []
    for label, body in exported:
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(body, indent=2))
        result = fhir_validator.validate(path)
        errors = [i for i in result["issues"] if i["severity"] in ("error", "fatal")]
        if errors or result["errors"]:
            failures.append((label, errors))
    assert failures == []


def test_observations_carry_the_loinc_total_and_derive_from_their_questionnaire_response(
    server: ServerProcess,
) -> None:
    """Complete PHQ-9, PHQ-2 and GAD-7 totals are survey Observations with their LOINC
    codes; incomplete and ASQ screenings are questionnaire responses only."""
    team = a_patient_with_a_full_record(server)
    token = team.care_manager
    observations = ok(fhir_get(server, "Observation", token, patient=team.patient_id))
    responses = ok(fhir_get(server, "QuestionnaireResponse", token, patient=team.patient_id))
    codes = {
        e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in observations["entry"]
    }
    assert set(codes) == {"44261-6", "55758-7", "70274-6"}
    assert codes["44261-6"]["valueInteger"] == 10
    assert codes["55758-7"]["valueInteger"] == 4
    assert codes["70274-6"]["valueInteger"] == 6
    response_ids = {e["resource"]["id"] for e in responses["entry"]}
    assert len(response_ids) == 5
    for observation in codes.values():
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        assert observation["subject"] == {"reference": f"Patient/{team.patient_id}"}
        (derived,) = observation["derivedFrom"]
        assert derived["reference"].removeprefix("QuestionnaireResponse/") in response_ids
    phq9 = next(
        e["resource"] for e in responses["entry"] if e["resource"]["id"] == codes["44261-6"]["id"]
    )
    assert phq9["questionnaire"] == "http://loinc.org/q/44249-1"
    assert [i["answer"][0]["valueInteger"] for i in phq9["item"]] == [1, 2, 1, 2, 1, 1, 0, 1, 1]


def test_a_forgotten_patient_is_exported_without_identity_fields(server: ServerProcess) -> None:
    """After forgetPatient the Patient resource has no name, identifier or birth date."""
    team = forgotten_patient(server)
    patient = ok(fhir_get(server, f"Patient/{team.patient_id}", team.care_manager))
    assert patient["id"] == team.patient_id
    assert not {"name", "identifier", "birthDate"} & set(patient)
    kept = ok(fhir_get(server, "Observation", team.care_manager, patient=team.patient_id))
    assert kept["total"] == 1


async def access_rows(db_dsn: str, patient_id: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            """SELECT actor_id, operation, outcome, reason FROM access_log
               WHERE patient_id = $1 ORDER BY id""",
            UUID(patient_id),
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_fhir_reads_are_authorised_and_audited_exactly_like_graphql_reads(
    server: ServerProcess, db_dsn: str
) -> None:
    """Team members read and are audited; other organisations get 404, non-members and
    partners 403, no token 401, every refusal recorded, no patient data in any error."""
    team = enrolled_patient(server, mrn="E2E-FHIR-3")
    screen(server, team, "PHQ9", [1, 1, 1, 1, 1, 1, 1, 1, 0])
    pid = team.patient_id
    ok(fhir_get(server, f"Patient/{pid}", team.pcp))
    ok(fhir_get(server, "Observation", team.psychiatrist, patient=pid))
    ok(fhir_get(server, f"Patient/{pid}/$everything", team.care_manager))
    ok(fhir_get(server, f"Patient/{pid}", server.token("compliance")))

    other_org = server.token("care_manager", org=uuid4())
    off_team = server.token("care_manager")
    partner = server.token("partner")
    refusals = {
        "other organisation read": (fhir_get(server, f"Patient/{pid}", other_org), 404),
        "other organisation search": (
            fhir_get(server, "Observation", other_org, patient=pid),
            404,
        ),
        "other organisation everything": (
            fhir_get(server, f"Patient/{pid}/$everything", other_org),
            404,
        ),
        "off the team": (fhir_get(server, f"CareTeam/{pid}", off_team), 403),
        "partner": (fhir_get(server, f"Patient/{pid}", partner), 403),
        "no token": (fhir_get(server, f"Patient/{pid}", None), 401),
        "unknown id": (fhir_get(server, f"Patient/{uuid4()}", team.care_manager), 404),
        "not a uuid": (fhir_get(server, "Consent/not-an-id", team.care_manager), 404),
        "unknown type": (fhir_get(server, f"Encounter/{pid}", team.care_manager), 404),
        "unsupported parameter": (
            fhir_get(server, "CareTeam", team.care_manager, patient=pid, status="active"),
            400,
        ),
        "missing patient": (fhir_get(server, "Consent", team.care_manager), 400),
        "malformed patient": (fhir_get(server, "Consent", team.care_manager, patient="x"), 400),
    }
    for label, (response, status) in refusals.items():
        assert response.status_code == status, label
        assert response.headers["content-type"].startswith(FHIR_JSON), label
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", label
        assert "E2E-FHIR-3" not in response.text and "Person" not in response.text, label
    unsupported = refusals["unsupported parameter"][0].json()["issue"][0]
    assert unsupported["expression"] == ["status"] and "status" in unsupported["diagnostics"]
    missing = refusals["missing patient"][0].json()["issue"][0]
    assert missing["expression"] == ["patient"]

    rows = await access_rows(db_dsn, pid)
    reads = [(r["actor_id"], r["operation"]) for r in rows if r["operation"].startswith("fhir:")]
    assert (team.pcp_id, "fhir:read") in reads
    assert (team.psychiatrist_id, "fhir:search") in reads
    assert (team.care_manager_id, "fhir:$everything") in reads
    assert all(r["outcome"] == "allowed" for r in rows if r["operation"].startswith("fhir:"))
    denials = sorted(r["reason"] for r in rows if r["outcome"] == "denied")
    assert denials == [
        "NOT_ON_CARE_TEAM",
        "PATIENT_NOT_IN_ORGANISATION",
        "PATIENT_NOT_IN_ORGANISATION",
        "PATIENT_NOT_IN_ORGANISATION",
    ]
    assert "E2E-FHIR-3" not in server.log_path.read_text()


def test_referrals_and_care_plans_are_exported_with_their_loop_and_goals(
    server: ServerProcess,
) -> None:
    """A referral that reported back is a completed ServiceRequest; the care plan lists its
    goals and targets, each readable by its id."""
    team = a_patient_with_a_full_record(server)
    token = team.pcp
    requests = ok(fhir_get(server, "ServiceRequest", token, patient=team.patient_id))
    assert sorted(e["resource"]["status"] for e in requests["entry"]) == ["completed", "draft"]
    done = next(e["resource"] for e in requests["entry"] if e["resource"]["status"] == "completed")
    assert done["occurrenceDateTime"].startswith("2026-01-05")
    assert "note" in done
    plans = ok(fhir_get(server, "CarePlan", token, patient=team.patient_id))
    (plan,) = [e["resource"] for e in plans["entry"]]
    goals = ok(fhir_get(server, "Goal", token, patient=team.patient_id))
    assert [f"Goal/{e['resource']['id']}" for e in goals["entry"]] == [
        g["reference"] for g in plan["goal"]
    ]
    statuses = [e["resource"]["lifecycleStatus"] for e in goals["entry"]]
    assert statuses == ["completed", "active", "active", "active"]
    for reference in plan["goal"]:
        assert ok(fhir_get(server, reference["reference"], token))["resourceType"] == "Goal"
    other_org = server.token("care_manager", org=uuid4())
    assert fhir_get(server, f"CarePlan/{plan['id']}", other_org).status_code == 404
    assert fhir_get(server, plan["goal"][0]["reference"], other_org).status_code == 404
    assert fhir_get(server, f"ServiceRequest/{done['id']}", other_org).status_code == 404
    assert fhir_get(server, f"ServiceRequest/{done['id']}", server.token("pcp")).status_code == 403


def test_audit_events_show_compliance_every_fhir_read_and_refusal_of_a_patient(
    server: ServerProcess,
) -> None:
    """Compliance reads a patient's access log as AuditEvents; the care team may not."""
    team = enrolled_patient(server, mrn="E2E-FHIR-4")
    ok(fhir_get(server, f"Patient/{team.patient_id}", team.pcp))
    assert fhir_get(server, f"Patient/{team.patient_id}", server.token("pcp")).status_code == 403
    compliance = server.token("compliance")
    events = ok(fhir_get(server, "AuditEvent", compliance, patient=team.patient_id))
    by_operation = {
        (e["resource"]["subtype"][0]["code"], e["resource"]["outcome"]) for e in events["entry"]
    }
    assert ("fhir:read", "0") in by_operation
    assert ("patient", "4") in by_operation
    read = next(
        e["resource"] for e in events["entry"] if e["resource"]["subtype"][0]["code"] == "fhir:read"
    )
    assert read["agent"][0]["who"]["identifier"]["value"] == f"urn:uuid:{team.pcp_id}"
    assert read["entity"][0]["what"] == {"reference": f"Patient/{team.patient_id}"}
    refused = fhir_get(server, "AuditEvent", team.care_manager, patient=team.patient_id)
    assert refused.status_code == 403
    elsewhere = server.token("compliance", org=uuid4())
    assert fhir_get(server, "AuditEvent", elsewhere, patient=team.patient_id).status_code == 404
    assert fhir_get(server, f"AuditEvent/{read['id']}", elsewhere).status_code == 404


async def test_a_bulk_export_holds_only_visible_patients_validates_and_audits_each_download(
    server: ServerProcess, fhir_validator: FhirValidator, tmp_path: Path, db_dsn: str
) -> None:
    """Patient/$export: 202 and a status URL, then a manifest of NDJSON files holding only
    the caller's patients; every resource validates; each download is audited."""
    full = a_patient_with_a_full_record(server)
    other = enrolled_patient(server, mrn="E2E-FHIR-5")
    auth = {"Authorization": f"Bearer {full.care_manager}"}
    stranger = {"Authorization": f"Bearer {other.care_manager}"}
    kickoff_url = f"{server.url}/fhir/Patient/$export"
    files: list[tuple[dict[str, Any], str]] = []
    async with httpx.AsyncClient(timeout=30.0) as client:
        without_prefer = await client.get(kickoff_url, headers=auth)
        assert without_prefer.status_code == 400
        assert without_prefer.json()["issue"][0]["expression"] == ["Prefer"]
        kick = await client.get(kickoff_url, headers={**auth, "Prefer": "respond-async"})
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["content-location"]
        status = await client.get(status_url, headers=auth)
        for _ in range(600):
            if status.status_code != 202:
                break
            await asyncio.sleep(0.1)
            status = await client.get(status_url, headers=auth)
        assert status.status_code == 200, status.text
        manifest = status.json()
        assert (await client.get(status_url, headers=stranger)).status_code == 404
        first_file = manifest["output"][0]["url"]
        assert (await client.get(first_file, headers=stranger)).status_code == 404
        for output in manifest["output"]:
            download = await client.get(output["url"], headers=auth)
            assert download.status_code == 200
            files.append((output, download.text))
    assert manifest["requiresAccessToken"] is True
    assert {o["type"] for o in manifest["output"]} == set(RESOURCE_TYPES) - {"Provenance"}
    failures = []
    for output, text in files:
        lines = text.splitlines()
        assert len(lines) == output["count"]
        for i, line in enumerate(lines):
            resource = json.loads(line)
            assert resource["resourceType"] == output["type"]
            assert other.patient_id not in line
            path = tmp_path / f"export-{output['type']}-{i}.json"
            path.write_text(line)
            result = fhir_validator.validate(path)
            if result["errors"]:
                failures.append((path.name, result["issues"]))
    assert failures == []
    rows = await access_rows(db_dsn, full.patient_id)
    exported = [r for r in rows if r["operation"] == "fhir:$export"]
    assert len(exported) == len(manifest["output"])
    assert all(r["actor_id"] == full.care_manager_id for r in exported)
    others = await access_rows(db_dsn, other.patient_id)
    assert not [r for r in others if r["operation"] == "fhir:$export"]


def post_response(server: ServerProcess, token: str, resource: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/fhir/QuestionnaireResponse",
        content=json.dumps(resource),
        headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON},
        timeout=30.0,
    )


async def test_a_posted_questionnaire_response_is_recorded_as_a_screening_with_its_score(
    server: ServerProcess, fhir_validator: FhirValidator, tmp_path: Path, db_dsn: str
) -> None:
    """A PHQ-9 QuestionnaireResponse posted by the care manager is scored and exported back;
    bad input, other roles and other organisations are refused and write nothing."""
    team = enrolled_patient(server, mrn="E2E-FHIR-6")
    phq9 = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://loinc.org/q/44249-1",
        "status": "completed",
        "subject": {"reference": f"Patient/{team.patient_id}"},
        "authored": "2026-11-02T09:30:00+00:00",
        "item": [{"linkId": str(n), "answer": [{"valueInteger": 2}]} for n in range(1, 10)],
    }
    before = await event_count(db_dsn, team.patient_id)
    refusals = {
        "psychiatrist": (post_response(server, team.psychiatrist, phq9), 403),
        "other organisation": (
            post_response(server, server.token("care_manager", org=uuid4()), phq9),
            404,
        ),
        "out of range": (
            post_response(
                server,
                team.care_manager,
                {**phq9, "item": [{"linkId": "1", "answer": [{"valueInteger": 4}]}]},
            ),
            400,
        ),
        "unknown item": (
            post_response(
                server,
                team.care_manager,
                {**phq9, "item": [{"linkId": "12", "answer": [{"valueInteger": 1}]}]},
            ),
            400,
        ),
    }
    for label, (response, status) in refusals.items():
        assert response.status_code == status, (label, response.text)
        assert response.json()["resourceType"] == "OperationOutcome", label
    assert refusals["unknown item"][0].json()["issue"][0]["expression"] == [
        "QuestionnaireResponse.item[0].linkId"
    ]
    assert "ANSWER_OUT_OF_RANGE" in refusals["out of range"][0].json()["issue"][0]["diagnostics"]
    assert await event_count(db_dsn, team.patient_id) == before

    created = post_response(server, team.care_manager, phq9)
    assert created.status_code == 201, created.text
    stored = created.json()
    location = created.headers["location"]
    assert location.endswith(f"/QuestionnaireResponse/{stored['id']}")
    assert ok(fhir_get(server, f"QuestionnaireResponse/{stored['id']}", team.pcp)) == stored
    assert [i["answer"] for i in stored["item"]] == [i["answer"] for i in phq9["item"]]
    observation = ok(fhir_get(server, f"Observation/{stored['id']}", team.pcp))
    assert observation["valueInteger"] == 18
    assert observation["effectiveDateTime"].startswith("2026-11-02T09:30:00")
    path = tmp_path / "created.json"
    path.write_text(created.text)
    assert fhir_validator.validate(path)["errors"] == 0
    conn = await asyncpg.connect(db_dsn)
    try:
        channel = await conn.fetchval(
            """SELECT metadata->>'channel' FROM events
               WHERE patient_id = $1 AND event_type = 'patient.screening_recorded'""",
            UUID(team.patient_id),
        )
    finally:
        await conn.close()
    assert channel == "fhir"


BREAK_THE_GLASS = """mutation($id: UUID!) {
  breakTheGlass(patientId: $id, reason: "unresponsive in ED", minutes: 30) { __typename } }"""


async def test_break_the_glass_opens_fhir_reads_tagged_as_emergency_like_graphql(
    server: ServerProcess, db_dsn: str
) -> None:
    """A clinician off the team is refused until they break the glass; then FHIR reads
    succeed and are recorded with purpose ETREAT."""
    team = enrolled_patient(server, mrn="E2E-FHIR-7")
    doctor = uuid4()
    outsider = server.token("pcp", user=doctor)
    assert fhir_get(server, f"Patient/{team.patient_id}", outsider).status_code == 403
    opened = server.graphql(BREAK_THE_GLASS, {"id": team.patient_id}, token=outsider)
    assert opened["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload", opened
    ok(fhir_get(server, f"Patient/{team.patient_id}/$everything", outsider))
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            """SELECT outcome, purpose_of_use, reason FROM access_log
               WHERE patient_id = $1 AND actor_id = $2 AND operation LIKE 'fhir:%'""",
            UUID(team.patient_id),
            doctor,
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("allowed", "ETREAT", "BREAK_THE_GLASS")]


async def bulk_export(
    server: ServerProcess, token: str, path: str, **params: str
) -> dict[str, list[dict[str, Any]]]:
    """Runs one Bulk Data export to the end; its resources by type."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30.0) as client:
        kick = await client.get(
            f"{server.url}/fhir/{path}",
            params=params,
            headers={**auth, "Prefer": "respond-async"},
        )
        assert kick.status_code == 202, kick.text
        status = await client.get(kick.headers["content-location"], headers=auth)
        for _ in range(600):
            if status.status_code != 202:
                break
            await asyncio.sleep(0.1)
            status = await client.get(kick.headers["content-location"], headers=auth)
        assert status.status_code == 200, status.text
        out: dict[str, list[dict[str, Any]]] = {}
        for output in status.json()["output"]:
            text = (await client.get(output["url"], headers=auth)).text
            out[output["type"]] = [json.loads(line) for line in text.splitlines()]
    return out


async def test_since_keeps_the_patients_changed_after_it_and_a_group_is_the_organisation(
    server: ServerProcess, fhir_validator: FhirValidator, tmp_path: Path
) -> None:
    """_since: only patients with an event recorded after the instant; Group/{org}/$export:
    the organisation's caseload as the caller may read it; any other Group is 404."""
    compliance = server.token("compliance")
    before = enrolled_patient(server, mrn="E2E-FHIR-S1")
    screen(server, before, "PHQ9", [1, 1, 1, 1, 1, 1, 1, 1, 0])
    await asyncio.sleep(1.1)
    since = datetime.now(UTC).isoformat(timespec="seconds")
    await asyncio.sleep(1.1)
    after = enrolled_patient(server, mrn="E2E-FHIR-S2")
    screen(server, after, "GAD7", [1, 1, 1, 1, 1, 1, 1])
    recent = await bulk_export(server, compliance, "Patient/$export", _since=since)
    assert [p["id"] for p in recent["Patient"]] == [after.patient_id]
    # A later event of the first patient brings it back in.
    screen(server, before, "PHQ2", [1, 0])
    again = await bulk_export(server, compliance, "Patient/$export", _since=since)
    assert {p["id"] for p in again["Patient"]} == {before.patient_id, after.patient_id}
    group = await bulk_export(server, compliance, f"Group/{DEFAULT_ORG}/$export")
    assert {p["id"] for p in group["Patient"]} == {before.patient_id, after.patient_id}
    mine = await bulk_export(server, after.care_manager, f"Group/{DEFAULT_ORG}/$export")
    assert [p["id"] for p in mine["Patient"]] == [after.patient_id]  # the caller's scope
    failures = []
    for kind, resources in recent.items():
        for i, resource in enumerate(resources):
            path = tmp_path / f"since-{kind}-{i}.json"
            path.write_text(json.dumps(resource))
            result = fhir_validator.validate(path)
            if result["errors"]:
                failures.append((path.name, result["issues"]))
    assert failures == []
    auth = {"Authorization": f"Bearer {compliance}", "Prefer": "respond-async"}
    for url, params, status in (
        (f"Group/{uuid4()}/$export", {}, 404),
        ("Group/not-a-uuid/$export", {}, 404),
        ("Patient/$export", {"_since": "2026-01-01"}, 400),
        ("Patient/$export", {"_since": "yesterday"}, 400),
    ):
        refused = httpx.get(  # noqa: ASYNC210 (a test client)
            f"{server.url}/fhir/{url}", params=params, headers=auth, timeout=30.0
        )
        assert refused.status_code == status, (url, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
