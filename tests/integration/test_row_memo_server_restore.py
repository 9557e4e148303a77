"""Memos keyed by row versions (``xmin``) are emptied when the server behind the pool is
restored: a restored server issues its transaction ids again, so a version the process
remembers could name another document there (services/row_memo.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import caseload
from services.database import EmbeddedPostgres, create_pool
from services.row_memo import RowMemo
from services.settings import Settings
from tests.pg_control import pg_ctl, start


def _copy(source: Path, target: Path) -> None:
    """A copy keeping owners and modes (the server runs as its own user)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=60)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A PostgreSQL server for this test alone, so that it can be restored under a pool."""
    pgdata = tmp_path / "pg"
    embedded = EmbeddedPostgres(str(pgdata), delete_on_exit=True)
    dsn = embedded.start()
    try:
        yield pgdata.resolve(), dsn
    finally:
        embedded.stop()


async def test_a_server_restored_under_a_running_pool_empties_the_row_memos(
    own_postgres: tuple[Path, str], tmp_path: Path
) -> None:
    pgdata, dsn = own_postgres
    pool = await create_pool(dsn, Settings())
    memo: RowMemo[str] = RowMemo()
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
            await conn.execute("INSERT INTO t VALUES (1, 'before the backup')")
        # A file-level backup of the stopped server.
        pg_ctl(pgdata, "-m", "fast", "-w", "stop")
        backup = tmp_path / "backup"
        _copy(pgdata, backup)
        start(pgdata)
        # After the backup (the pool reconnects to the restarted server): a write, and
        # what the process derives from its version.
        await pool.expire_connections()
        async with pool.acquire() as conn:
            await conn.execute("UPDATE t SET v = 'after the backup' WHERE k = 1")
            version = await conn.fetchval("SELECT xmin::text::bigint FROM t WHERE k = 1")
        memo.put(("t", 1, version), "after the backup")
        caseload._PAGE_CURSORS[("ordering", version)] = ["cursor"]
        # The same pool, a fresh connection to the same server: nothing is forgotten.
        await pool.expire_connections()
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
        assert memo.get(("t", 1, version)) == "after the backup"

        # Restore the backup under the running pool.
        pg_ctl(pgdata, "-m", "immediate", "-w", "stop")
        shutil.rmtree(pgdata)
        _copy(backup, pgdata)
        start(pgdata)
        await pool.expire_connections()
        async with pool.acquire() as conn:
            # The restored server issues the same transaction id again, for other content.
            await conn.execute("UPDATE t SET v = 'restored, then changed' WHERE k = 1")
            again = await conn.fetchval("SELECT xmin::text::bigint FROM t WHERE k = 1")
            assert again == version, "the restored server did not reissue the version"
            # The memo no longer answers the old content for that version.
            assert memo.get(("t", 1, again)) is None
            assert ("ordering", version) not in caseload._PAGE_CURSORS
    finally:
        await pool.close()
