"""Rolling deploys over a real ``careteam serve``: a replica starts against a database a
newer release migrated with an expand-only migration, refuses one with a contract
migration (naming it), and without migrating on start refuses an unmigrated database
until ``careteam migrate`` ran."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from tests.conftest import _with_database
from tests.e2e.server import ServerProcess

REGISTER = """
mutation($input: RegisterPatientInput!) {
  registerPatient(input: $input) { __typename }
}"""
PATIENT = {
    "givenName": "Test",
    "familyName": "Synthetic",
    "birthDate": "1980-01-01",
    "mrn": "ROLL-1",
}


async def _newer_release_migrated(dsn: str, *, compatible: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum, compatible) "
            "VALUES (9001, 'future_change', 'f', $1)",
            compatible,
        )
    finally:
        await conn.close()


def _refused(server: ServerProcess) -> str:
    """Starts ``server`` expecting it to refuse; returns what it printed."""
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start()
    assert server.proc is not None and server.proc.returncode == 2
    return server.log_path.read_text()


@pytest.fixture
async def empty_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A database with no tables at all (no migration ran)."""
    name = f"t_{uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    yield _with_database(pg_server_dsn, name)
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
def replica(db_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """This release, not migrating on start (as in production), on a migrated database."""
    server = ServerProcess(
        data_dir=tmp_path,
        env={"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_MIGRATE_ON_START": "false"},
    )
    try:
        yield server
    finally:
        server.stop()


async def test_a_replica_serves_a_database_a_newer_release_expanded(
    replica: ServerProcess, db_dsn: str
) -> None:
    await _newer_release_migrated(db_dsn, compatible=True)
    replica.start()
    replica.use(replica.token("care_manager"))
    body = replica.graphql(REGISTER, {"input": PATIENT})
    assert body["data"]["registerPatient"]["__typename"] == "PatientPayload"
    assert 'newer migrations declared compatible" versions=9001' in replica.log_path.read_text()


async def test_a_replica_refuses_a_database_a_newer_release_contracted(
    replica: ServerProcess, db_dsn: str
) -> None:
    await _newer_release_migrated(db_dsn, compatible=False)
    printed = _refused(replica)
    assert "cannot start" in printed and "9001 (future_change)" in printed
    assert "incompatible" in printed


def test_a_replica_that_does_not_migrate_waits_for_careteam_migrate(
    empty_dsn: str, tmp_path: Path
) -> None:
    env = {"CARETEAM_DATABASE_URL": empty_dsn, "CARETEAM_MIGRATE_ON_START": "false"}
    server = ServerProcess(data_dir=tmp_path, env=env)
    try:
        printed = _refused(server)
        assert "careteam migrate" in printed and "CARETEAM_MIGRATE_ON_START" in printed
        migrate = subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        assert "applied migrations" in migrate.stdout
        server.start()
        server.use(server.token("care_manager"))
        body = server.graphql(REGISTER, {"input": PATIENT})
        assert body["data"]["registerPatient"]["__typename"] == "PatientPayload"
    finally:
        server.stop()
