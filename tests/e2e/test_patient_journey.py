"""A care manager's first path through careteam, over real HTTP against a running server."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.e2e.server import ServerProcess

PATIENT_FIELDS = """
    id status episodeNumber safetyRisk
    latestPhq9 { total severity safetyAlert complete answers instrument }
    screenings { instrument complete total severity }
    flags { kind ruleId ruleVersion inputs }
    openTasks { kind dueOn }
"""

REGISTER = """
mutation($input: RegisterPatientInput!) {
  registerPatient(input: $input) {
    __typename
    ... on PatientPayload { patient { id status } }
    ... on ValidationError { code message field }
  }
}"""

ENROLL = """
mutation($id: UUID!) {
  enrollPatient(input: {patientId: $id}) {
    __typename
    ... on PatientPayload { patient { status episodeNumber } }
    ... on InvalidTransitionError { code message }
    ... on NotFoundError { code message }
  }
}"""

RECORD = f"""
mutation($id: UUID!, $answers: [Int]!, $instrument: InstrumentCode!, $at: DateTime) {{
  recordScreening(input: {{patientId: $id, instrument: $instrument, answers: $answers,
                           occurredAt: $at}}) {{
    __typename
    ... on PatientPayload {{ patient {{ {PATIENT_FIELDS} }} }}
    ... on ValidationError {{ code message }}
    ... on InvalidTransitionError {{ code message }}
    ... on NotFoundError {{ code message }}
  }}
}}"""

READ = f"query($id: UUID!) {{ patient(id: $id) {{ ... on Patient {{ {PATIENT_FIELDS} }} }} }}"


def register(server: ServerProcess, **overrides: Any) -> dict[str, Any]:
    payload = {
        "givenName": "Alex",
        "familyName": "Example",
        "birthDate": "1984-03-02",
        "mrn": "MRN-0001",
        **overrides,
    }
    body = server.graphql(REGISTER, {"input": payload})
    result: dict[str, Any] = body["data"]["registerPatient"]
    return result


def test_register_enroll_and_record_a_phq9_shows_score_severity_and_safety_flag(
    server: ServerProcess,
) -> None:
    """The mutation responses already reflect their own writes, and a read agrees."""
    registered = register(server)
    assert registered["__typename"] == "PatientPayload"
    pid = registered["patient"]["id"]
    assert registered["patient"]["status"] is None

    enrolled = server.graphql(ENROLL, {"id": pid})["data"]["enrollPatient"]
    assert enrolled == {
        "__typename": "PatientPayload",
        "patient": {"status": "enrolled", "episodeNumber": 1},
    }

    answers = [2, 2, 2, 2, 2, 1, 1, 1, 1]  # total 14 (moderate), item 9 answered 1
    recorded = server.graphql(RECORD, {"id": pid, "answers": answers, "instrument": "PHQ9"})
    result = recorded["data"]["recordScreening"]
    assert result["__typename"] == "PatientPayload"
    patient = result["patient"]
    assert patient["latestPhq9"] == {
        "total": 14,
        "severity": "moderate",
        "safetyAlert": True,
        "complete": True,
        "answers": answers,
        "instrument": "phq9",
    }
    assert patient["safetyRisk"] is True
    assert [f["kind"] for f in patient["flags"]] == ["safety_risk"]
    assert patient["flags"][0]["ruleVersion"]
    assert "suicide_risk_assessment" in [t["kind"] for t in patient["openTasks"]]

    read = server.graphql(READ, {"id": pid})["data"]["patient"]
    assert read == patient


def test_bad_input_gets_a_typed_error_and_writes_nothing(server: ServerProcess) -> None:
    """Out-of-range answers, a wrong answer count, a future time and a bad transition."""
    pid = register(server)["patient"]["id"]
    server.graphql(ENROLL, {"id": pid})

    out_of_range = server.graphql(
        RECORD, {"id": pid, "answers": [4, 0, 0, 0, 0, 0, 0, 0, 0], "instrument": "PHQ9"}
    )["data"]["recordScreening"]
    assert out_of_range["__typename"] == "ValidationError"
    assert out_of_range["code"]

    too_few = server.graphql(RECORD, {"id": pid, "answers": [1, 1], "instrument": "PHQ9"})
    assert too_few["data"]["recordScreening"]["__typename"] == "ValidationError"

    future = server.graphql(
        RECORD,
        {"id": pid, "answers": [0] * 9, "instrument": "PHQ9", "at": "2999-01-01T00:00:00Z"},
    )["data"]["recordScreening"]
    assert future["__typename"] == "ValidationError"
    assert future["code"] == "OCCURRED_IN_FUTURE"

    twice = server.graphql(ENROLL, {"id": pid})["data"]["enrollPatient"]
    assert twice["__typename"] == "InvalidTransitionError"

    missing = server.graphql(ENROLL, {"id": "00000000-0000-4000-8000-00000000dead"})
    assert missing["data"]["enrollPatient"]["__typename"] == "NotFoundError"

    blank = register(server, givenName="  ")
    assert blank["__typename"] == "ValidationError"

    read = server.graphql(READ, {"id": pid})["data"]["patient"]
    assert read["screenings"] == []
    assert read["episodeNumber"] == 1


def test_malformed_requests_get_clear_errors_not_stack_traces(server: ServerProcess) -> None:
    """Syntax errors, unknown fields, wrong variable types and non-JSON bodies."""
    import httpx

    syntax = server.graphql("mutation { registerPatient(")
    assert syntax["errors"][0]["message"].startswith("Syntax Error")

    unknown = server.graphql('{ patient(id: "x") { nope } }')
    assert "errors" in unknown and "Traceback" not in str(unknown)

    wrong_type = server.graphql(READ, {"id": "not-a-uuid"})
    assert "errors" in wrong_type and "Traceback" not in str(wrong_type)

    auth = {"Authorization": f"Bearer {server.default_token}"}
    response = httpx.post(
        f"{server.url}/graphql",
        content=b"{not json",
        headers={"content-type": "application/json", **auth},
    )
    assert response.status_code == 400

    huge = httpx.post(
        f"{server.url}/graphql",
        content=b"x" * 300_000,
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413

    get = httpx.get(f"{server.url}/graphql", params={"query": "{ __typename }"})
    assert get.status_code != 200 or "errors" in get.text or "<html" in get.text.lower()


def test_a_restarted_server_on_the_embedded_database_keeps_every_record(tmp_path: Path) -> None:
    """Stop the server (and its embedded PostgreSQL), start it again: the patient is there."""
    first = ServerProcess(data_dir=tmp_path / "data").start()
    first.use(first.token("care_manager"))
    try:
        pid = register(first)["patient"]["id"]
        first.graphql(ENROLL, {"id": pid})
        first.graphql(RECORD, {"id": pid, "answers": [1] * 9, "instrument": "PHQ9"})
    finally:
        first.stop(signal.SIGTERM)

    second = ServerProcess(data_dir=tmp_path / "data").start()
    second.use(first.default_token or "")
    try:
        patient = second.graphql(READ, {"id": pid})["data"]["patient"]
        assert patient["status"] == "enrolled"
        assert patient["latestPhq9"]["total"] == 9
        assert patient["latestPhq9"]["severity"] == "mild"
    finally:
        second.stop()


def test_metrics_expose_projection_lag_per_read_model(server: ServerProcess) -> None:
    """/metrics answers in Prometheus text format with one gauge per read model."""
    import httpx

    register(server)
    text = httpx.get(f"{server.url}/metrics").text
    assert "# TYPE careteam_projection_events_behind gauge" in text
    assert 'careteam_projection_events_behind{projection="patient_view"}' in text
