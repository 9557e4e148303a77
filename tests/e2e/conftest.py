"""End-to-end fixtures: a real ``careteam serve`` process over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess


@pytest.fixture
def server(db_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """careteam serve on a free port, on a fresh database of the test PostgreSQL server."""
    proc = ServerProcess(data_dir=tmp_path, env={"CARETEAM_DATABASE_URL": db_dsn})
    proc.start()
    proc.use(proc.token("care_manager"))
    try:
        yield proc
    finally:
        proc.stop()
