"""The last closed-set Strings have enum twins, over HTTP (issue 13): a care event's
streamKind and a partner change's changeKind, beside their deprecated String fields."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.e2e.server import ServerProcess

SUBSCRIBE = "subscription { careEvents { eventType streamType streamKind } }"
REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "ET-1"}) { ... on PatientPayload { patient { id } } } }"""
PARTNER = """mutation ($input: RegisterPartnerInput!) { registerPartner(input: $input) {
  __typename ... on PartnerRegistration { partner { id } } } }"""
HISTORY = """query ($id: UUID!) { partner(id: $id) { __typename
  ... on Partner { history { change changeKind version } } } }"""


async def test_a_care_event_carries_its_stream_kind(server: ServerProcess) -> None:
    token = server.token("care_manager")
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
    )
    try:
        auth = {"Authorization": f"Bearer {token}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": auth}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        await asyncio.sleep(0.3)
        body = await asyncio.to_thread(server.graphql, REGISTER, {}, token=token)
        assert "errors" not in body, body
        async with asyncio.timeout(10):
            while True:
                message: dict[str, Any] = json.loads(await socket.recv())
                if message["type"] == "next":
                    event = message["payload"]["data"]["careEvents"]
                    break
        assert event == {
            "eventType": "patient.registered",
            "streamType": "patient",
            "streamKind": "PATIENT",
        }
    finally:
        await socket.close()


def test_a_partner_change_carries_its_change_kind(server: ServerProcess) -> None:
    admin = server.token("admin")
    body = server.graphql(
        PARTNER,
        {
            "input": {
                "organisationId": "00000000-0000-4000-8000-0000000000b7",
                "name": "Community partner",
                "purpose": "care coordination",
                "allowedEventTypes": ["patient.screening_recorded.v1"],
                "delivery": "GRAPHQL",
            }
        },
        token=admin,
    )
    assert "errors" not in body, body
    registered = body["data"]["registerPartner"]
    assert registered["__typename"] == "PartnerRegistration", registered
    history = server.graphql(HISTORY, {"id": registered["partner"]["id"]}, token=admin)
    assert "errors" not in history, history
    assert history["data"]["partner"]["history"] == [
        {"change": "registered", "changeKind": "REGISTERED", "version": 1}
    ]
