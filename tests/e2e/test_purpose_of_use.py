"""Purpose of use: HL7 codes from X-Purpose-Of-Use (or connection_init), role defaults,
refusals that run nothing, ETREAT for break-the-glass, and older values shown as codes."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.journey import enrolled_patient
from tests.e2e.server import DEFAULT_ORG, ServerProcess

pytestmark = pytest.mark.slow  # 40 s or more: scheduled first (tests/conftest.py)

READ = "query($id: UUID!) { patient(id: $id) { __typename } }"
REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "P-1"}) { __typename } }"""
TRAIL = """query($id: UUID) { auditTrail(patientId: $id, first: 500) { __typename
  ... on AuditTrail { entries { kind action actorId purposeOfUse requestId reason } } } }"""
BREAK = """mutation($id: UUID!) { breakTheGlass(patientId: $id, reason: "ED", minutes: 30) {
  __typename } }"""


def _post(
    server: ServerProcess, document: str, variables: Any, token: str, purpose: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": f"req-{uuid4().hex}"}
    if purpose is not None:
        headers["X-Purpose-Of-Use"] = purpose
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": document, "variables": variables},
        headers=headers,
        timeout=30.0,
    )


async def _rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.mark.parametrize("purpose", ["MARKETING", "BOGUS", "", "TREATMENT"])
async def test_an_unknown_purpose_is_refused_with_a_typed_error_and_runs_nothing(
    server: ServerProcess, db_dsn: str, purpose: str
) -> None:
    """An unknown code gets a 400 naming X-Purpose-Of-Use; nothing is written or read."""
    team = enrolled_patient(server)
    events_before = await _rows(db_dsn, "SELECT count(*) AS n FROM events")
    for document, variables in ((REGISTER, {}), (READ, {"id": team.patient_id})):
        reply = _post(server, document, variables, team.care_manager, purpose)
        assert reply.status_code == 400, reply.text
        (error,) = reply.json()["errors"]
        assert error["extensions"]["code"] == "UNKNOWN_PURPOSE_OF_USE"
        assert error["extensions"]["field"] == "X-Purpose-Of-Use"
        assert "X-Purpose-Of-Use" in error["message"]
        assert "TREAT" in error["extensions"]["allowed"]
        request_id = reply.headers["x-request-id"]
        logged = await _rows(db_dsn, "SELECT 1 FROM access_log WHERE request_id = $1", request_id)
        assert logged == []
    assert await _rows(db_dsn, "SELECT count(*) AS n FROM events") == events_before


@pytest.mark.parametrize(
    ("role", "purpose"),
    [("admin", "TREAT"), ("compliance", "TREAT"), ("care_manager", "ETREAT"), ("pcp", "HLEGAL")],
)
async def test_a_purpose_the_role_may_not_use_is_refused_and_the_refusal_audited(
    server: ServerProcess, db_dsn: str, role: str, purpose: str
) -> None:
    """A known code outside the role's list is a 400 and an audited denial; nothing runs."""
    token = server.token(role)
    reply = _post(server, REGISTER, {}, token, purpose)
    assert reply.status_code == 400, reply.text
    assert reply.json()["errors"][0]["extensions"]["code"] == "PURPOSE_OF_USE_NOT_PERMITTED"
    denied = await _rows(
        db_dsn,
        "SELECT operation, outcome, reason FROM access_log WHERE request_id = $1",
        reply.headers["x-request-id"],
    )
    assert [tuple(r) for r in denied] == [
        ("purposeOfUse", "denied", "PURPOSE_OF_USE_NOT_PERMITTED")
    ]
    assert await _rows(db_dsn, "SELECT 1 FROM events WHERE metadata->>'role' = $1", role) == []


async def test_each_role_default_and_each_named_purpose_is_recorded_with_reads_and_writes(
    server: ServerProcess, db_dsn: str
) -> None:
    """Clinicians default to TREAT, compliance to HOPERAT; a named code is recorded as sent."""
    team = enrolled_patient(server)
    compliance = server.token("compliance")
    cases = [
        (READ, {"id": team.patient_id}, team.care_manager, None, "TREAT"),
        (READ, {"id": team.patient_id}, team.pcp, "coc", "COC"),
        (READ, {"id": team.patient_id}, team.psychiatrist, "HPAYMT", "HPAYMT"),
        (TRAIL, {"id": team.patient_id}, compliance, None, "HOPERAT"),
        (TRAIL, {"id": team.patient_id}, compliance, "HLEGAL", "HLEGAL"),
    ]
    for document, variables, token, sent, recorded in cases:
        reply = _post(server, document, variables, token, sent)
        assert reply.status_code == 200 and "errors" not in reply.json(), reply.text
        rows = await _rows(
            db_dsn,
            "SELECT purpose_of_use FROM access_log WHERE request_id = $1",
            reply.headers["x-request-id"],
        )
        assert rows and {r["purpose_of_use"] for r in rows} == {recorded}, (sent, rows)
    written = _post(
        server,
        "mutation($id: UUID!) { startTreatment(input: {patientId: $id}) { __typename } }",
        {"id": team.patient_id},
        team.care_manager,
        "COC",
    )
    events = await _rows(
        db_dsn,
        "SELECT metadata->>'purpose_of_use' AS p FROM events WHERE metadata->>'request_id' = $1",
        written.headers["x-request-id"],
    )
    assert [r["p"] for r in events] == ["COC"]


async def test_break_the_glass_grant_and_reads_are_recorded_as_etreat(
    server: ServerProcess, db_dsn: str
) -> None:
    """The grant's event and the reads it opens carry ETREAT, whatever the header said."""
    team = enrolled_patient(server)
    outsider_id = uuid4()
    outsider = server.token("pcp", user=outsider_id)
    opened = _post(server, BREAK, {"id": team.patient_id}, outsider, "TREAT")
    assert opened.json()["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload"
    read = _post(server, READ, {"id": team.patient_id}, outsider, "TREAT")
    assert read.json()["data"]["patient"]["__typename"] == "Patient"
    grant = await _rows(
        db_dsn,
        "SELECT metadata->>'purpose_of_use' AS p FROM events WHERE metadata->>'request_id' = $1",
        opened.headers["x-request-id"],
    )
    assert [r["p"] for r in grant] == ["ETREAT"]
    trail = _post(server, TRAIL, {"id": team.patient_id}, server.token("compliance"), None)
    mine = [
        e for e in trail.json()["data"]["auditTrail"]["entries"] if e["actorId"] == str(outsider_id)
    ]
    assert {(e["kind"], e["purposeOfUse"]) for e in mine} == {
        ("WRITE", "ETREAT"),
        ("READ", "ETREAT"),
    }


async def test_older_stored_purposes_are_shown_as_hl7_codes(
    server: ServerProcess, db_dsn: str
) -> None:
    """Rows stored as TREATMENT, EMERGENCY, PAYMENT, OPERATIONS or AUDIT read as HL7 codes."""
    team = enrolled_patient(server)
    legacy = {"TREATMENT": "TREAT", "EMERGENCY": "ETREAT", "PAYMENT": "HPAYMT"}
    legacy |= {"OPERATIONS": "HOPERAT", "AUDIT": "HOPERAT"}
    conn = await asyncpg.connect(db_dsn)
    try:
        for stored in legacy:
            await conn.execute(
                """INSERT INTO access_log (actor_id, role, organisation_id, patient_id,
                       operation, outcome, purpose_of_use, request_id)
                   VALUES ($1, 'pcp', $2, $3, 'patient', 'allowed', $4, $5)""",
                uuid4(),
                DEFAULT_ORG,
                team.patient_id,
                stored,
                f"legacy-{stored}",
            )
    finally:
        await conn.close()
    trail = _post(server, TRAIL, {"id": team.patient_id}, server.token("compliance"), None)
    shown = {
        e["requestId"]: e["purposeOfUse"]
        for e in trail.json()["data"]["auditTrail"]["entries"]
        if (e["requestId"] or "").startswith("legacy-")
    }
    assert shown == {f"legacy-{stored}": code for stored, code in legacy.items()}


def _ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/graphql"


async def _init(server: ServerProcess, payload: dict[str, str]) -> Any:
    socket = await websockets.connect(_ws_url(server), subprotocols=["graphql-transport-ws"])
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket


async def test_a_websocket_names_its_purpose_in_connection_init_and_an_unknown_one_is_refused(
    server: ServerProcess,
) -> None:
    """connection_init with a permitted code is acknowledged; an unknown one closes with 4400
    and a reason naming X-Purpose-Of-Use."""
    bearer = {"Authorization": f"Bearer {server.token('care_manager')}"}
    accepted = await _init(server, {**bearer, "X-Purpose-Of-Use": "COC"})
    try:
        assert json.loads(await accepted.recv())["type"] == "connection_ack"
    finally:
        await accepted.close()
    refused = await _init(server, {**bearer, "X-Purpose-Of-Use": "MARKETING"})
    with pytest.raises(ConnectionClosed) as closed:
        await refused.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400
    assert "X-Purpose-Of-Use" in closed.value.rcvd.reason
