"""An event the log cannot show yet (an older transaction of another connection is still
open, as the audit chain sealer's or another process's writes are) reaches a
``careEvents`` subscriber as soon as that transaction ends, not at the next poll
(services/logfollow.py, ``pending``). The poll is set to an hour, so only the follower's
short re-reads can deliver it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import websockets

from tests.e2e.server import ServerProcess

DOCUMENT = """subscription($ids: [UUID!]) {
  careEvents(patientIds: $ids) { eventType patientId }
}"""
REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "M-1"}) { ... on PatientPayload { patient { id } } } }"""
FLAG = """mutation($id: UUID!) { raiseFlag(input: {patientId: $id, kind: TEAM_MEMBER,
  note: "team note"}) { __typename } }"""


@pytest.fixture
def slow_poll_server(db_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_PROJECTOR_POLL_SECONDS": "3600"},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def _subscribe(server: ServerProcess, token: str, patient: str) -> Any:
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await socket.send(json.dumps(init))
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    subscribe = {"query": DOCUMENT, "variables": {"ids": [patient]}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
    return socket


async def test_an_event_held_back_by_an_open_transaction_is_delivered_once_it_ends(
    slow_poll_server: ServerProcess, db_dsn: str
) -> None:
    server = slow_poll_server
    manager = server.token("care_manager")
    body = server.graphql(REGISTER, token=manager)
    patient = str(body["data"]["registerPatient"]["patient"]["id"])
    socket = await _subscribe(server, server.token("admin"), patient)
    blocker = await asyncpg.connect(db_dsn)
    try:
        await asyncio.sleep(0.5)  # the subscription is established
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchval("SELECT pg_current_xact_id()")  # holds the snapshot's xmin
        flag = asyncio.create_task(
            asyncio.to_thread(server.graphql, FLAG, {"id": patient}, token=manager)
        )
        await asyncio.sleep(0.5)  # the append is committed, and not readable yet
        await transaction.rollback()
        async with asyncio.timeout(30):
            message = json.loads(await socket.recv())
        assert message["type"] == "next"
        event = message["payload"]["data"]["careEvents"]
        assert (event["eventType"], event["patientId"]) == ("patient.flag_raised", patient)
        await flag
    finally:
        await blocker.close()
        await socket.close()
