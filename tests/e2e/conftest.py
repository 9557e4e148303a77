"""End-to-end fixtures: a real ``careteam serve`` process over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

# Each phase's report (setup, call, teardown) of the running test, for fixtures that
# keep evidence when it failed (the cluster fault suite keeps its server logs).
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


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
