"""Rolling deploys: each migration declares expand or contract; migrating on start is a
setting, on in development and off in production."""

from __future__ import annotations

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
