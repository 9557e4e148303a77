"""Migrations: an applied file that changed is refused, a comment-only edit is not."""

from __future__ import annotations

import asyncpg
import pytest

from services.database import (
    COMMENT_ONLY_EDITS,
    MigrationError,
    check_schema,
    migrate,
)


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


# --- rolling deploys: a database migrated by a newer release ----------------------------


async def _add_newer(conn: asyncpg.Connection, *, compatible: bool) -> None:
    """What a newer release's `careteam migrate` leaves: a row this code has no file for."""
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, compatible) "
        "VALUES (9001, 'future_change', 'f', $1)",
        compatible,
    )


async def test_a_newer_migration_declared_expand_lets_this_release_start(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await _add_newer(conn, compatible=True)
        assert await migrate(conn) == []
        await check_schema(conn)
    finally:
        await conn.close()


async def test_a_newer_migration_declared_contract_is_refused_by_name(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await _add_newer(conn, compatible=False)
        for step in (migrate, check_schema):
            with pytest.raises(MigrationError, match=r"9001 \(future_change\).*incompatible"):
                await step(conn)
    finally:
        await conn.close()


async def test_without_migrating_on_start_a_missing_migration_names_the_setting(
    db_dsn: str,
) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = 75")
        with pytest.raises(MigrationError, match=r"\[75\].*CARETEAM_MIGRATE_ON_START"):
            await check_schema(conn)
    finally:
        await conn.close()
