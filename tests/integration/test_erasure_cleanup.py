"""The VACUUM after an erasure: tables are rewritten, and a table it cannot lock in time
gets a plain VACUUM instead of stalling the API."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from services.erasure_cleanup import PLAINTEXT_TABLES, vacuum_after_erasure


async def _files(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, relfilenode FROM pg_class WHERE relname = ANY($1::text[])",
        list(PLAINTEXT_TABLES),
    )
    return {r["relname"]: r["relfilenode"] for r in rows}


async def test_every_table_that_held_plaintext_is_rewritten_into_new_files(db_dsn: str) -> None:
    """VACUUM FULL gives each table a new file; the session's lock timeout is restored."""
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await _files(conn)
        assert set(before) == set(PLAINTEXT_TABLES)
        await vacuum_after_erasure(conn)
        after = await _files(conn)
        assert all(after[name] != before[name] for name in PLAINTEXT_TABLES)
        assert await conn.fetchval("SHOW lock_timeout") == "0"
    finally:
        await conn.close()


async def test_a_table_held_by_a_long_transaction_gets_a_plain_vacuum_instead_of_a_stall(
    db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The others are rewritten; the locked one keeps its file; it all ends in seconds."""
    holder = await asyncpg.connect(db_dsn)
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await _files(conn)
        tx = holder.transaction()
        await tx.start()
        await holder.fetch("SELECT * FROM rm_registry LIMIT 1")
        started = time.monotonic()
        async with asyncio.timeout(60):
            await vacuum_after_erasure(conn)
        elapsed = time.monotonic() - started
        await tx.rollback()
        after = await _files(conn)
        assert after["rm_registry"] == before["rm_registry"]
        others = [name for name in PLAINTEXT_TABLES if name != "rm_registry"]
        assert all(after[name] != before[name] for name in others)
        assert elapsed < 20
        assert "not granted its lock" in caplog.text
    finally:
        await holder.close()
        await conn.close()
