"""careEvents subscribers sharing one execution (services/api/fanout.py), over real
WebSockets against ``careteam serve``: the same document, variables and scope give every
subscriber the same answer, each with its own read record; a different scope never shares."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import uuid4

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ServerProcess

DOCUMENT = """subscription($ids: [UUID!]) {
  careEvents(patientIds: $ids) { eventType patientId streamVersion position payload }
}"""
REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
FLAG = """mutation($id: UUID!) { raiseFlag(input: {patientId: $id, kind: TEAM_MEMBER,
  note: "team note"}) { __typename } }"""
TRAIL = """query($id: UUID!) { auditTrail(patientId: $id, kinds: [READ]) {
  ... on AuditTrail { entries { action actorId } } } }"""


async def _subscribe(
    server: ServerProcess, token: str, variables: dict[str, Any], operation_id: str = "1"
) -> Any:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await socket.send(json.dumps(init))
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    subscribe = {"query": DOCUMENT, "variables": variables}
    message = {"id": operation_id, "type": "subscribe", "payload": subscribe}
    await socket.send(json.dumps(message))
    return socket


def _gauges(server: ServerProcess) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return (
        families["careteam_websocket_subscribers"].samples[0].value,
        families["careteam_subscription_executions"].samples[0].value,
    )


async def _await_gauges(server: ServerProcess, subscribers: int, executions: int) -> None:
    deadline = time.monotonic() + 10
    while (seen := await asyncio.to_thread(_gauges, server)) != (subscribers, executions):
        assert time.monotonic() < deadline, f"gauges stayed at {seen}"
        await asyncio.sleep(0.1)


async def _events(socket: Any, count: int, wait: float = 10.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while len(events) < count:
            message = json.loads(await socket.recv())
            assert message["type"] == "next", message
            events.append(message["payload"]["data"]["careEvents"])
    return events


def _deliveries(server: ServerProcess, patient: str) -> dict[str, int]:
    """careEvents read records of ``patient`` per actor."""
    entries = server.graphql(TRAIL, {"id": patient}, token=server.token("compliance"))["data"][
        "auditTrail"
    ]["entries"]
    counts: dict[str, int] = {}
    for entry in entries:
        if entry["action"] == "careEvents":
            counts[entry["actorId"]] = counts.get(entry["actorId"], 0) + 1
    return counts


def _register(server: ServerProcess, token: str) -> str:
    body = server.graphql(REGISTER, token=token)
    return str(body["data"]["registerPatient"]["patient"]["id"])


async def test_subscribers_with_the_same_document_and_scope_share_one_answer_each_audited(
    server: ServerProcess,
) -> None:
    """Two administrators with the same document and variables: one execution, the same
    events with the same data, and a read record of each delivery for each of them."""
    manager = server.token("care_manager")
    patient = _register(server, manager)
    first, second = uuid4(), uuid4()
    sockets = [
        await _subscribe(server, server.token("admin", user=user), {"ids": [patient]})
        for user in (first, second)
    ]
    try:
        await _await_gauges(server, subscribers=2, executions=1)
        await asyncio.to_thread(server.graphql, FLAG, {"id": patient}, token=manager)
        received = [await _events(socket, 1) for socket in sockets]
        assert received[0] == received[1]
        [event] = received[0]
        assert event["eventType"] == "patient.flag_raised"
        assert event["patientId"] == patient
        assert "inputs" not in event["payload"]  # the note: clinical text, not an admin's
    finally:
        for socket in sockets:
            await socket.close()
    assert _deliveries(server, patient) == {str(first): 1, str(second): 1}


async def test_subscribers_whose_answers_could_differ_never_share(
    server: ServerProcess,
) -> None:
    """The same document for a care manager on the patient's team (two tabs), another
    care manager of the organisation and an administrator: three executions. The team's
    care manager gets the note, the administrator the event without it, the other care
    manager nothing; each delivery is recorded for its own reader only."""
    mine, theirs, admin = uuid4(), uuid4(), uuid4()
    manager = server.token("care_manager", user=mine)
    variables: dict[str, Any] = {"ids": None}
    sockets = {
        "mine": await _subscribe(server, manager, variables),
        "mine again": await _subscribe(server, server.token("care_manager", user=mine), variables),
        "theirs": await _subscribe(server, server.token("care_manager", user=theirs), variables),
        "admin": await _subscribe(server, server.token("admin", user=admin), variables),
    }
    try:
        await _await_gauges(server, subscribers=4, executions=3)
        patient = await asyncio.to_thread(_register, server, manager)
        await asyncio.to_thread(server.graphql, FLAG, {"id": patient}, token=manager)
        types = ["patient.registered", "patient.care_team_assigned", "patient.flag_raised"]
        mine_events = await _events(sockets["mine"], 3)
        assert [e["eventType"] for e in mine_events] == types
        assert mine_events[2]["payload"]["inputs"]
        assert await _events(sockets["mine again"], 3) == mine_events
        admin_events = await _events(sockets["admin"], 3)
        assert [e["eventType"] for e in admin_events] == types
        assert "inputs" not in admin_events[2]["payload"]
        with pytest.raises(TimeoutError):
            await _events(sockets["theirs"], 1, wait=1.5)
    finally:
        for socket in sockets.values():
            await socket.close()
    assert _deliveries(server, patient) == {str(mine): 6, str(admin): 3}


async def test_shared_subscribers_each_get_the_frame_with_their_own_operation_id(
    server: ServerProcess,
) -> None:
    """The group's answer is encoded once and each member's operation id spliced in
    (services/api/transport.py): every frame is still the protocol's whole ``next``
    message for that subscriber, compact JSON with its keys in the protocol's order."""
    manager = server.token("care_manager")
    patient = _register(server, manager)
    ids = ["1", 'tab "2" \\ é']
    sockets = [
        await _subscribe(server, server.token("admin"), {"ids": [patient]}, operation_id=i)
        for i in ids
    ]
    try:
        await _await_gauges(server, subscribers=2, executions=1)
        await asyncio.to_thread(server.graphql, FLAG, {"id": patient}, token=manager)
        async with asyncio.timeout(10):
            frames = [await socket.recv() for socket in sockets]
    finally:
        for socket in sockets:
            await socket.close()
    messages = [json.loads(frame) for frame in frames]
    assert [m["id"] for m in messages] == ids
    assert [list(m) for m in messages] == [["id", "type", "payload"]] * 2
    assert [m["type"] for m in messages] == ["next", "next"]
    assert messages[0]["payload"] == messages[1]["payload"]
    assert messages[0]["payload"]["data"]["careEvents"]["eventType"] == "patient.flag_raised"
    for frame, message in zip(frames, messages, strict=True):
        assert frame == json.dumps(message, separators=(",", ":"), ensure_ascii=False)
