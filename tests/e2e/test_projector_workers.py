"""Read-your-writes over HTTP while projector workers die and join: an API-only ``serve``
and ``careteam projector`` processes on one database. Every patient a command registers
is in the read model when the command answers, before, during and after a worker is
killed with SIGKILL and another started."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import websockets

from tests.e2e.server import ServerProcess
from tests.e2e.test_operations import REGISTER, _input, _post, _spawn_projector
from tests.integration.test_projector_failover import _owners

READ = """
query($id: UUID!) {
  patient(id: $id) { __typename ... on Patient { id } ... on NotFoundError { code } }
}"""


async def _owned_by(dsn: str, workers: int, within: float = 60.0) -> None:
    """Waits until ``workers`` database sessions own all 16 partitions between them."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while True:
            owners = await _owners(conn)
            covered = set().union(*owners.values()) if owners else set()
            if len(owners) == workers and covered == set(range(16)):
                return
            assert time.monotonic() < deadline, f"not owned by {workers}: {owners}"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def _register_and_read(server: ServerProcess, n: int) -> str:
    """Registers a patient and reads it back at once; the lookup's type name."""
    body = _post(server, REGISTER, {"input": _input(1000 + n)}).json()
    registered = body["data"]["registerPatient"]
    assert registered["__typename"] == "PatientPayload", body
    patient_id = registered["patient"]["id"]
    read: dict[str, Any] = _post(server, READ, {"id": patient_id}).json()
    assert "errors" not in read, read
    return str(read["data"]["patient"]["__typename"])


async def test_commands_read_their_writes_while_projector_workers_die_and_join(
    db_dsn: str, tmp_path: Path
) -> None:
    server = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_READ_YOUR_WRITES_TIMEOUT_SECONDS": "10"},
        args=("--components", "api"),
    )
    server.start()
    server.use(server.token("care_manager"))
    workers: list[subprocess.Popen[bytes]] = []
    seen: list[str] = []
    try:
        workers = [_spawn_projector(tmp_path, server.env), _spawn_projector(tmp_path, server.env)]
        await _owned_by(db_dsn, 2)
        for n in range(36):
            if n == 12:  # kill one worker: the other owns everything
                workers[0].send_signal(signal.SIGKILL)
                await asyncio.to_thread(workers.pop(0).wait, 30)
            if n == 24:  # a new worker joins and gets a share
                workers.append(_spawn_projector(tmp_path, server.env))
                await _owned_by(db_dsn, 2)
            seen.append(await asyncio.to_thread(_register_and_read, server, n))
        await _owned_by(db_dsn, 2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            await asyncio.to_thread(worker.wait, 30)
        server.stop()
    assert seen == ["Patient"] * 36


async def test_live_events_reach_a_subscriber_of_an_api_only_serve(
    db_dsn: str, tmp_path: Path
) -> None:
    """An API-only ``serve`` follows the checkpoints a ``careteam projector`` writes, and its
    live feed waits for the access model in every partition before it delivers: every
    registration reaches an admin's subscription, and the feed never gave up waiting for
    the access model (it logs when it does). Commands here come one at a time, so the
    worker's pages are a poll apart and write every checkpoint; the rows a faster stream of
    pages leaves behind are covered in tests/integration/test_projector_partitions.py."""
    server = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_READ_YOUR_WRITES_TIMEOUT_SECONDS": "10"},
        args=("--components", "api"),
    )
    server.start()
    server.use(server.token("care_manager"))
    worker = _spawn_projector(tmp_path, server.env)
    socket = None
    try:
        await _owned_by(db_dsn, 1)
        socket = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
        )
        admin = server.token("admin")
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {admin}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        subscribe = {"query": "subscription { careEvents { eventType patientId } }"}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await asyncio.sleep(0.5)  # subscribed
        registered = set()
        for n in range(6):
            answer = await asyncio.to_thread(_post, server, REGISTER, {"input": _input(2000 + n)})
            registered.add(answer.json()["data"]["registerPatient"]["patient"]["id"])
        delivered: set[str] = set()
        async with asyncio.timeout(60):
            while not registered <= delivered:
                message = json.loads(await socket.recv())
                assert message["type"] == "next", message
                event = message["payload"]["data"]["careEvents"]
                if event["eventType"] == "patient.registered":
                    delivered.add(event["patientId"])
        assert "access model lagging" not in server.log_path.read_text()
    finally:
        if socket is not None:
            await socket.close()
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
        server.stop()
