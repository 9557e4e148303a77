"""The server's log holds no patient data: marker values planted in every identity and
free-text field, sent in valid and invalid requests, never appear in the log of a real
``careteam serve``, and expected client errors leave no error line and no traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.journey import ERRORS, enrolled_patient
from tests.e2e.server import ServerProcess
from tests.e2e.test_fuzz_graphql import mangled


def _marker(kind: str) -> str:
    return f"Zq{kind}{uuid4().hex[:12]}"


GIVEN = _marker("given")
FAMILY = _marker("family")
MRN = _marker("mrn")
BIRTH = "1937-04-19"  # a date nothing else in the test uses
GOAL = _marker("goal")
QUESTION = _marker("question")
REASON = _marker("reason")
NOTE = _marker("note")
EMERGENCY = _marker("emergency")
MARKERS = (GIVEN, FAMILY, MRN, BIRTH, BIRTH.replace("-", ""), GOAL, QUESTION, REASON, NOTE)
MARKERS += (EMERGENCY,)

REGISTER = f"""mutation {{ registerPatient(input: {{givenName: "{GIVEN}", familyName: "{FAMILY}",
  birthDate: "{BIRTH}", mrn: "{MRN}"}}) {{ __typename {ERRORS} }} }}"""

REGISTER_VARIABLES = (
    "mutation($input: RegisterPatientInput!) { registerPatient(input: $input) { __typename } }"
)


class Client:
    """POSTs GraphQL to the server and keeps every reply's X-Request-Id."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30.0)
        self.request_ids: list[str] = []

    def post(
        self, document: str, variables: Any = None, *, token: str, headers: Any = None
    ) -> httpx.Response:
        payload: dict[str, Any] = {"query": document}
        if variables is not None:
            payload["variables"] = variables
        response = self.http.post(
            "/graphql",
            json=payload,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
        assert response.status_code < 500, response.text
        self.request_ids.append(response.headers["x-request-id"])
        return response

    def data(self, document: str, variables: Any = None, *, token: str) -> Any:
        body = self.post(document, variables, token=token).json()
        assert "errors" not in body, body
        return body["data"]

    def refused(self, document: str, variables: Any = None, *, token: str) -> list[Any]:
        body = self.post(document, variables, token=token).json()
        assert body.get("errors"), body
        errors: list[Any] = body["errors"]
        return errors


def _expected_errors(client: Client, cm: str, patient_id: str, psychiatrist: str) -> None:
    """Ordinary client mistakes, each carrying the markers."""
    identity = {"givenName": GIVEN, "familyName": FAMILY, "birthDate": BIRTH}
    # A required field missing, as literals and as variables.
    client.refused(REGISTER.replace(f', mrn: "{MRN}"', ""), token=cm)
    client.refused(
        REGISTER_VARIABLES,
        {"input": identity},
        token=cm,
    )
    # Wrong types, as literals and as variables.
    client.refused(REGISTER.replace(f'birthDate: "{BIRTH}"', f'birthDate: "{MRN}"'), token=cm)
    client.refused(REGISTER.replace(f'mrn: "{MRN}"', "mrn: 19370419"), token=cm)
    client.refused(
        REGISTER_VARIABLES,
        {"input": {**identity, "mrn": MRN, "birthDate": f"{BIRTH}T{GIVEN}"}},
        token=cm,
    )
    client.refused(
        REGISTER_VARIABLES,
        {"input": {**identity, "mrn": [MRN, {"x": FAMILY}]}},
        token=cm,
    )
    # Malformed documents with literals: cut short, an unknown field, an unknown argument.
    client.refused(REGISTER[: REGISTER.index("mrn")], token=cm)
    client.refused(REGISTER.replace("registerPatient", "registerPatients"), token=cm)
    client.refused(
        REGISTER.replace("registerPatient(", f'registerPatient(note: "{NOTE}", '), token=cm
    )
    client.refused(f'{{ patient(id: "{MRN}") {{ __typename }} }}', token=cm)
    client.refused(
        f'mutation {{ requestReferral(input: {{patientId: "{patient_id}", service: '
        f'PSYCHOTHERAPY, reason: "{REASON}", expectedBy: "{GIVEN}"}}) {{ __typename }} }}',
        token=cm,
    )
    # Out-of-range paging arguments and an empty or foreign cursor.
    client.refused("{ caseload(first: 100000) { __typename } }", token=cm)
    client.refused("{ caseload(first: -1) { __typename } }", token=cm)
    client.refused('{ caseload(after: "") { __typename } }', token=cm)
    client.refused(f'{{ caseload(after: "{MRN}") {{ __typename }} }}', token=cm)
    # A subscription over HTTP, with markers in its arguments.
    client.refused(
        f'subscription {{ careEvents(eventTypes: ["{REASON}"]) {{ __typename }} }}', token=cm
    )
    # Headers carrying the markers: an unknown purpose, a malformed request id, a bad token.
    assert client.post(REGISTER, token=cm, headers={"X-Purpose-Of-Use": MRN}).status_code == 400
    no_mrn = REGISTER.replace(f', mrn: "{MRN}"', "")
    odd_id = client.post(no_mrn, token=cm, headers={"X-Request-Id": f"{GIVEN} {FAMILY}"})
    assert odd_id.headers["x-request-id"] != f"{GIVEN} {FAMILY}"
    assert client.post(REGISTER, token=f"{NOTE}.{REASON}.{MRN}").status_code == 401
    # Typed domain errors: out-of-range input with free text, and a role not permitted.
    reply = client.data(
        f'mutation {{ breakTheGlass(patientId: "{patient_id}", reason: "{EMERGENCY}", '
        f"minutes: 9999) {{ __typename {ERRORS} }} }}",
        token=cm,
    )
    assert reply["breakTheGlass"]["__typename"] in ("ValidationError", "NotAllowedError"), reply
    reply = client.data(REGISTER, token=psychiatrist)
    assert reply["registerPatient"]["__typename"] == "ForbiddenError", reply


def _valid_requests(client: Client, cm: str, patient_id: str, outsider: str) -> None:
    """Valid writes and reads with the markers as patient data."""
    registered = client.data(REGISTER, token=cm)
    assert registered["registerPatient"]["__typename"] == "PatientPayload", registered
    client.data(
        REGISTER_VARIABLES,
        {"input": {"givenName": GIVEN, "familyName": FAMILY, "birthDate": BIRTH, "mrn": MRN}},
        token=cm,
    )
    plan = client.data(
        "mutation($input: CreateCarePlanInput!) { createCarePlan(input: $input) "
        f"{{ __typename ... on CarePlanPayload {{ carePlan {{ id }} }} {ERRORS} }} }}",
        {"input": {"patientId": patient_id}},
        token=cm,
    )["createCarePlan"]
    assert plan["__typename"] == "CarePlanPayload", plan
    goal = client.data(
        f"mutation($input: AddGoalInput!) {{ addGoal(input: $input) {{ __typename {ERRORS} }} }}",
        {"input": {"carePlanId": plan["carePlan"]["id"], "description": GOAL}},
        token=cm,
    )
    assert goal["addGoal"]["__typename"] == "CarePlanPayload", goal
    for operation, text in (("requestConsultation", "question"), ("requestReferral", "reason")):
        marker = QUESTION if text == "question" else REASON
        extra = (
            {"service": "PSYCHOTHERAPY", "expectedBy": "2999-01-01"}
            if operation == "requestReferral"
            else {}
        )
        input_type = operation[0].upper() + operation[1:] + "Input"
        reply = client.data(
            f"mutation($input: {input_type}!) {{ {operation}(input: $input) "
            f"{{ __typename {ERRORS} }} }}",
            {"input": {"patientId": patient_id, text: marker, **extra}},
            token=cm,
        )
        assert reply[operation]["__typename"] not in ("ValidationError", "ForbiddenError"), reply
    glass = client.data(
        f'mutation {{ breakTheGlass(patientId: "{patient_id}", reason: "{EMERGENCY}", '
        f"minutes: 30) {{ __typename {ERRORS} }} }}",
        token=outsider,
    )
    assert glass["breakTheGlass"]["__typename"] == "EmergencyAccessPayload", glass
    seen = client.data(
        f'{{ patient(id: "{patient_id}") {{ __typename ... on Patient {{ id }} }} }}',
        token=outsider,
    )
    assert seen["patient"]["__typename"] == "Patient", seen


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    """A client of the test's server."""
    made = Client(server)
    try:
        yield made
    finally:
        made.http.close()


def _log(server: ServerProcess) -> str:
    return server.log_path.read_text(encoding="utf-8", errors="replace")


def test_marker_values_in_valid_and_invalid_requests_never_reach_the_server_log(
    server: ServerProcess, client: Client
) -> None:
    """No planted identity or free-text value appears anywhere in the server's log output."""
    team = enrolled_patient(server, mrn=_marker("seed"))
    outsider = server.token("care_manager")
    _valid_requests(client, team.care_manager, team.patient_id, outsider)
    _expected_errors(client, team.care_manager, team.patient_id, team.psychiatrist)

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(document=mangled(st.just(REGISTER)))
    def fuzzed(document: str) -> None:
        client.post(document, token=team.care_manager)

    fuzzed()
    server.stop()
    log = _log(server)
    for request_id in client.request_ids[:3]:
        assert f"request_id={request_id}" in log, "the log does not show the requests"
    leaked = [marker for marker in MARKERS if marker in log]
    assert not leaked, f"{len(leaked)} planted values in the server log"


def test_expected_client_errors_log_no_error_and_no_traceback(
    server: ServerProcess, client: Client
) -> None:
    """Validation, argument and typed domain errors are logged as info lines without a
    traceback; nothing is logged at ERROR."""
    team = enrolled_patient(server, mrn=_marker("seed"))
    start = len(_log(server))
    _expected_errors(client, team.care_manager, team.patient_id, team.psychiatrist)
    server.stop()
    log = _log(server)[start:]
    assert "graphql client errors" in log
    assert "Traceback" not in log
    assert "traceback=" not in log
    assert not re.search(r"level=(ERROR|CRITICAL)", log), log


def test_a_well_formed_request_id_is_kept_and_any_other_is_replaced(
    server: ServerProcess, client: Client
) -> None:
    """X-Request-Id comes back as sent when well-formed, else as a new UUID, and is logged."""
    token = server.token("care_manager")
    document = "{ caseload { __typename } }"
    kept = client.post(document, token=token, headers={"X-Request-Id": "client-req.0001_x"})
    assert kept.headers["x-request-id"] == "client-req.0001_x"
    for bad in ("short", "has space in it", "x" * 65, "bad/slash/value!"):
        replaced = client.post(document, token=token, headers={"X-Request-Id": bad})
        assert re.fullmatch(r"[0-9a-f-]{36}", replaced.headers["x-request-id"]), bad
    unauthenticated = httpx.post(f"{server.url}/graphql", json={"query": document})
    assert unauthenticated.status_code == 401
    assert re.fullmatch(r"[0-9a-f-]{36}", unauthenticated.headers["x-request-id"])
    server.stop()
    assert "request_id=client-req.0001_x" in _log(server)
