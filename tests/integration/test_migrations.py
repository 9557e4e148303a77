"""Migrations: an applied file that changed is refused, a comment-only edit is not."""

from __future__ import annotations

import asyncpg
import pytest

from services.database import COMMENT_ONLY_EDITS, MigrationError, migrate


async def test_a_database_that_ran_an_earlier_comment_only_text_still_migrates(
    db_dsn: str,
) -> None:
    """A checksum listed as a comment-only edit of a migration is accepted as applied."""
    conn = await asyncpg.connect(db_dsn)
    try:
        (earlier,) = COMMENT_ONLY_EDITS[30]
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 30", earlier)
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_a_migration_whose_applied_text_differs_otherwise_is_refused(db_dsn: str) -> None:
    """Any other checksum for an applied migration stops migrate with a named error."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 30")
        with pytest.raises(MigrationError, match="migration 30"):
            await migrate(conn)
    finally:
        await conn.close()
