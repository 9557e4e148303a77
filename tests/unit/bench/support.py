"""What the bench rows' smoke tests share: a row context on the test server, and the check
that a row dropped every database it made."""

from __future__ import annotations

import asyncpg

from bench.base import BenchOptions, RowContext
from bench.environment import DB_PREFIX, BenchServer, CorePlan, Databases


def row_context(db_dsn: str, options: BenchOptions) -> RowContext:
    """A row's context on the test PostgreSQL server, unpinned."""
    return RowContext(
        options=options,
        server=BenchServer(dsn=db_dsn),
        databases=Databases(db_dsn),
        cores=CorePlan(),
    )


async def assert_no_databases_left(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1", f"{DB_PREFIX}%"
        )
    finally:
        await conn.close()
    assert left == 0, "the benchmark left its databases behind"
