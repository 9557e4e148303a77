"""Rolling deploys: each migration declares expand or contract; migrating on start is a
setting, on in development and off in production."""

from __future__ import annotations

import re

import pytest

from services.database import DECLARATIONS_REQUIRED_AFTER, Migration, load_migrations
from services.settings import Settings, SettingsError

PRODUCTION = {
    "CARETEAM_ENV": "production",
    "CARETEAM_DATABASE_URL": "postgresql://db/careteam",
    "CARETEAM_OIDC_ISSUER": "https://idp.example",
    "CARETEAM_OIDC_AUDIENCE": "careteam",
    "CARETEAM_OIDC_JWKS_URL": "https://idp.example/jwks",
    "CARETEAM_MASTER_KEY": "a2V5",
    "CARETEAM_AUDIT_SIGNING_KEY": "a2V5",
    "CARETEAM_AUDIT_PUBLIC_KEYS_FILE": "/etc/careteam/audit-keys",
    "CARETEAM_AUDIT_CHECKPOINT_DIR": "/srv/careteam/checkpoints",
}


@pytest.mark.parametrize(
    ("sql", "declared", "compatible"),
    [
        ("-- careteam-migration: expand\nCREATE TABLE t (a int);", "expand", True),
        ("-- A new index.\n--careteam-migration:  contract\nDROP TABLE t;", "contract", False),
        ("CREATE TABLE t (a int);", None, False),
        ("-- careteam-migration: maybe\nCREATE TABLE t (a int);", None, False),
    ],
)
def test_a_migration_is_compatible_only_when_it_declares_expand(
    sql: str, declared: str | None, compatible: bool
) -> None:
    migration = Migration(9001, "future_change", sql)
    assert migration.declared == declared
    assert migration.compatible is compatible


def test_every_new_migration_declares_expand_or_contract() -> None:
    undeclared = [
        f"{m.version:04d}_{m.name}.sql"
        for m in load_migrations()
        if m.version > DECLARATIONS_REQUIRED_AFTER and m.declared is None
    ]
    assert undeclared == [], "add a `-- careteam-migration: expand|contract` line"


def test_migrating_on_start_is_on_in_development_and_off_in_production() -> None:
    assert Settings.from_env({}).migrate_on_start is True
    assert Settings.from_env(PRODUCTION).migrate_on_start is False
    both = {**PRODUCTION, "CARETEAM_MIGRATE_ON_START": "true"}
    assert Settings.from_env(both).migrate_on_start is True
    assert Settings.from_env({"CARETEAM_MIGRATE_ON_START": "0"}).migrate_on_start is False


def test_a_malformed_migrate_on_start_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="CARETEAM_MIGRATE_ON_START"):
        Settings.from_env({"CARETEAM_MIGRATE_ON_START": "sometimes"})


# What an old release cannot live with: a migration declared `expand` must not contain it.
_NOT_EXPAND = re.compile(
    r"\bDROP\s+(TABLE|COLUMN|VIEW|INDEX|TYPE|FUNCTION|SCHEMA)\b|\bRENAME\b|\bSET\s+NOT\s+NULL\b"
    r"|\bALTER\s+COLUMN\s+\w+\s+(SET\s+DATA\s+)?TYPE\b"
    r"|\bADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)?\w+\s+[^,;]*\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)",
    re.IGNORECASE,
)


def contract_statements(sql: str) -> list[str]:
    """The statements of ``sql`` (comments removed) an older release could not live with.
    Dropping an index the same file builds (again, after a crash left it invalid) is not
    one of them."""
    code = re.sub(r"--[^\n]*", "", sql)
    rebuilt = set(re.findall(r"CREATE\s+INDEX\s+CONCURRENTLY\s+(\w+)", code, re.IGNORECASE))
    for name in rebuilt:
        code = re.sub(
            rf"DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+{name}\b", "", code, flags=re.I
        )
    return [m.group(0) for m in _NOT_EXPAND.finditer(code)]


# An index built in a migration's transaction blocks writes to its table for the whole
# build: on a table the release before already had (the access log, the event log), an
# expand migration builds it CONCURRENTLY, in a file that runs outside a transaction.
INDEXES_CONCURRENT_FROM = 84


def blocking_indexes(sql: str) -> list[str]:
    """Indexes ``sql`` builds inside its transaction on tables it did not create."""
    code = re.sub(r"--[^\n]*", "", sql)
    created = {
        t.lower()
        for t in re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", code, re.I)
    }
    found = re.findall(
        r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY)(?:IF\s+NOT\s+EXISTS\s+)?\w*\s*ON\s+(\w+)",
        code,
        re.I,
    )
    return [t for t in found if t.lower() not in created]


@pytest.mark.parametrize(
    ("sql", "blocking"),
    [
        ("CREATE TABLE t (a int); CREATE INDEX t_a ON t (a);", []),
        ("CREATE INDEX access_a ON access_log (a);", ["access_log"]),
        ("CREATE UNIQUE INDEX IF NOT EXISTS e_a ON events (a);", ["events"]),
        ("CREATE INDEX CONCURRENTLY access_a ON access_log (a);", []),
    ],
)
def test_the_index_check_tells_blocking_builds(sql: str, blocking: list[str]) -> None:
    assert blocking_indexes(sql) == blocking


def test_no_expand_migration_builds_an_index_that_blocks_an_existing_table() -> None:
    offending = {
        f"{m.version:04d}_{m.name}.sql": blocking_indexes(m.sql)
        for m in load_migrations()
        if m.version >= INDEXES_CONCURRENT_FROM
        and m.declared == "expand"
        and blocking_indexes(m.sql)
    }
    assert offending == {}, "build these CONCURRENTLY in a migration run outside a transaction"


def test_a_migration_run_outside_a_transaction_is_split_into_its_statements() -> None:
    m = Migration(
        9002,
        "index",
        "-- careteam-migration: expand\n-- careteam-migration-runs: outside-transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS i;\nCREATE INDEX CONCURRENTLY i ON t\n    (a);\n",
    )
    assert m.outside_transaction and m.compatible
    assert m.statements() == [
        "DROP INDEX CONCURRENTLY IF EXISTS i",
        "CREATE INDEX CONCURRENTLY i ON t\n    (a)",
    ]
    assert not Migration(9003, "t", "CREATE TABLE t (a int);").outside_transaction


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("CREATE TABLE t (a int NOT NULL);", False),
        ("ALTER TABLE t ADD COLUMN b int;", False),
        ("ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 0;", False),
        ("CREATE INDEX t_b ON t (b);", False),
        ("-- DROP TABLE t is what the next release does\nSELECT 1;", False),
        ("ALTER TABLE t ADD COLUMN b int NOT NULL;", True),
        ("ALTER TABLE t DROP COLUMN a;", True),
        ("DROP TABLE t;", True),
        ("ALTER TABLE t RENAME COLUMN a TO b;", True),
        ("ALTER TABLE t ALTER COLUMN a SET NOT NULL;", True),
        ("ALTER TABLE t ALTER COLUMN a TYPE bigint;", True),
    ],
)
def test_the_expand_check_tells_additions_from_removals(sql: str, found: bool) -> None:
    assert bool(contract_statements(sql)) is found


def test_no_migration_declared_expand_removes_or_tightens_anything() -> None:
    offending = {
        f"{m.version:04d}_{m.name}.sql": contract_statements(m.sql)
        for m in load_migrations()
        if m.declared == "expand" and contract_statements(m.sql)
    }
    assert offending == {}, "declare these `contract`: an older release cannot run on them"
