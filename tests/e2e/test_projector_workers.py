"""Read-your-writes over HTTP while projector workers die and join: an API-only ``serve``
and ``careteam projector`` processes on one database. Every patient a command registers
is in the read model when the command answers, before, during and after a worker is
killed with SIGKILL and another started."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

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
