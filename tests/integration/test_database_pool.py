"""The pool's cheap reset: leases (session advisory locks) still end when their connection
goes back to the pool; an open transaction never leaks to the next user."""

from __future__ import annotations

import asyncpg

from services.database import create_pool, holds_session_state
from services.settings import Settings

LOCK = 7_361_999


async def test_a_lease_on_a_pooled_connection_ends_when_the_connection_goes_back(
    db_dsn: str,
) -> None:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=1))
    other = await asyncpg.connect(db_dsn)
    try:
        async with pool.acquire() as conn:
            holds_session_state(conn)
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
            assert not await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        async with pool.acquire() as again:  # the same connection, reset
            assert not await again.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
    finally:
        await other.close()
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_before_the_next_user(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=1))
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE pool_probe (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
    finally:
        await pool.close()
