"""careEvents over a real WebSocket (graphql-transport-ws), with authentication and scoping."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.server import ServerProcess

SUBSCRIBE = """subscription { careEvents { patientId eventType streamVersion position } }"""
REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
ENROLL = """mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"""
SCREEN = """mutation($id: UUID!) { recordScreening(input: {patientId: $id, instrument: PHQ9,
  answers: [1,1,1,1,1,1,1,1,0]}) { __typename } }"""


def ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/graphql"


async def _open(server: ServerProcess, token: str | None) -> Any:
    socket = await websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"])
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket


async def _next_events(socket: Any, count: int, wait: float = 10.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while len(events) < count:
            message = json.loads(await socket.recv())
            if message["type"] == "next":
                events.append(message["payload"]["data"]["careEvents"])
    return events


async def test_a_care_manager_receives_their_patients_events_in_order_and_nothing_else(
    server: ServerProcess,
) -> None:
    """Events of a patient on the caller's team arrive in order; another team's never do."""
    mine, theirs = uuid4(), uuid4()
    my_token = server.token("care_manager", user=mine)
    their_token = server.token("care_manager", user=theirs)
    socket = await _open(server, my_token)
    try:
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        await asyncio.sleep(0.3)

        def run(query: str, token: str, **variables: Any) -> dict[str, Any]:
            return server.graphql(query, variables, token=token)

        # Another patient of the organisation, so another medical record number.
        another = REGISTER.replace('mrn: "M-1"', 'mrn: "M-2"')
        other = run(another, their_token)["data"]["registerPatient"]["patient"]["id"]
        mine_id = run(REGISTER, my_token)["data"]["registerPatient"]["patient"]["id"]
        await asyncio.to_thread(run, ENROLL, their_token, id=other)
        await asyncio.to_thread(run, ENROLL, my_token, id=mine_id)
        await asyncio.to_thread(run, SCREEN, their_token, id=other)
        await asyncio.to_thread(run, SCREEN, my_token, id=mine_id)

        events = await _next_events(socket, 4)
        assert {e["patientId"] for e in events} == {mine_id}
        assert [e["eventType"] for e in events] == [
            "patient.registered",
            "patient.care_team_assigned",
            "patient.enrolled",
            "patient.screening_recorded",
        ]
        assert [e["streamVersion"] for e in events] == [1, 2, 3, 4]
        with pytest.raises(TimeoutError):
            await _next_events(socket, 1, wait=1.0)
    finally:
        await socket.close()
    trail = server.graphql(
        """query($id: UUID!) { auditTrail(patientId: $id, kinds: [READ]) {
             ... on AuditTrail { entries { action actorId } } } }""",
        {"id": mine_id},
        token=server.token("compliance"),
    )["data"]["auditTrail"]["entries"]
    delivered = [e for e in trail if e["action"] == "careEvents"]
    assert len(delivered) == 4 and {e["actorId"] for e in delivered} == {str(mine)}


async def test_a_socket_that_skips_connection_init_is_closed(server: ServerProcess) -> None:
    """Subscribing before connection_init closes the socket with 4401."""
    socket = await websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"])
    try:
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        await socket.close()


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_a_socket_without_a_valid_token_is_refused(
    server: ServerProcess, token: str | None
) -> None:
    """connection_init without a valid bearer token closes the socket with 4403."""
    socket = await _open(server, token)
    try:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    finally:
        await socket.close()


async def test_the_legacy_graphql_ws_protocol_is_not_offered(server: ServerProcess) -> None:
    """Only graphql-transport-ws is spoken; the legacy protocol is refused at the handshake."""
    with pytest.raises((InvalidStatus, ConnectionClosed, websockets.exceptions.InvalidHandshake)):
        socket = await websockets.connect(ws_url(server), subprotocols=["graphql-ws"])
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        await socket.recv()
