"""Audit keys, checkpoints, export and accounting arguments, without a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from joserfc import jws

from services.audit.accounting import AccountingArgumentError, parse_accounting
from services.audit.export import ExportArgumentError, audit_event, parse_request
from services.audit.signing import (
    AuditKeyError,
    CheckpointError,
    generate_key,
    load_pinned_keys,
    load_signing_key,
    read_checkpoint,
    write_private_key,
)
from services.settings import Settings, SettingsError

PRODUCTION = {
    "CARETEAM_ENV": "production",
    "CARETEAM_DATABASE_URL": "postgresql://db/careteam",
    "CARETEAM_OIDC_ISSUER": "https://idp.example",
    "CARETEAM_OIDC_AUDIENCE": "careteam",
    "CARETEAM_OIDC_JWKS_URL": "https://idp.example/jwks",
    "CARETEAM_MASTER_KEY": "a" * 44,
}


def test_production_refuses_to_start_without_an_audit_signing_key() -> None:
    """The missing setting is named; a signing key cannot be generated in production."""
    with pytest.raises(SettingsError, match="CARETEAM_AUDIT_SIGNING_KEY_FILE"):
        Settings.from_env(PRODUCTION)


def test_production_refuses_a_signing_key_inside_the_data_folder(tmp_path: Path) -> None:
    """The key that proves the data untouched must not sit with the data."""
    env = {
        **PRODUCTION,
        "CARETEAM_DATA_DIR": str(tmp_path),
        "CARETEAM_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit" / "key.jwk"),
        "CARETEAM_AUDIT_PUBLIC_KEYS_FILE": str(tmp_path.parent / "public.json"),
        "CARETEAM_AUDIT_CHECKPOINT_DIR": str(tmp_path.parent / "published"),
    }
    with pytest.raises(SettingsError, match="outside CARETEAM_DATA_DIR"):
        Settings.from_env(env)


def test_development_generates_a_key_and_says_it_is_a_development_key(tmp_path: Path) -> None:
    """Without configuration a development key is made once and pinned from the data folder."""
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(AuditKeyError):
        load_signing_key(settings, create=False)
    key = load_signing_key(settings, create=True)
    assert key.development and key.kid.startswith("dev-")
    assert load_signing_key(settings, create=False).kid == key.kid
    pinned = load_pinned_keys(settings, None)
    assert pinned.development and "development only" in pinned.origin


def test_a_checkpoint_is_checked_only_against_the_pinned_key(tmp_path: Path) -> None:
    """The right key verifies; another key under the same kid, or an unknown kid, fails."""
    real = generate_key("k1")
    (tmp_path / "public.json").write_text(json.dumps(real.as_dict(private=False)))
    pinned = load_pinned_keys(Settings(data_dir=tmp_path), tmp_path / "public.json")
    body = json.dumps(
        {
            "chain": "careteam-audit-v2",
            "head_seq": 3,
            "head_hash": "00" * 32,
            "issued_at": datetime.now(UTC).isoformat(),
        }
    ).encode()

    def signed(key: object, kid: str) -> str:
        return jws.serialize_compact(
            {"alg": "Ed25519", "kid": kid}, body, key, algorithms=["Ed25519"]
        )

    assert read_checkpoint(signed(real, "k1"), pinned, "ok").head_seq == 3
    with pytest.raises(CheckpointError, match="signature does not verify"):
        read_checkpoint(signed(generate_key("k1"), "k1"), pinned, "forged")
    with pytest.raises(CheckpointError, match="not pinned"):
        read_checkpoint(signed(generate_key("k2"), "k2"), pinned, "unknown")
    with pytest.raises(CheckpointError, match="not a compact JWS"):
        read_checkpoint("{}", pinned, "junk")


def test_keys_are_never_overwritten(tmp_path: Path) -> None:
    """Writing a key where one exists fails instead of replacing it."""
    write_private_key(generate_key("a"), tmp_path / "k.jwk")
    with pytest.raises(FileExistsError):
        write_private_key(generate_key("b"), tmp_path / "k.jwk")
    assert oct((tmp_path / "k.jwk").stat().st_mode & 0o777) == "0o600"


def test_a_pinned_key_file_that_is_not_a_key_is_a_named_error(tmp_path: Path) -> None:
    """A malformed --public-key names the option."""
    (tmp_path / "bad.json").write_text('{"kty": "RSA"}')
    with pytest.raises(AuditKeyError, match="--public-key"):
        load_pinned_keys(Settings(data_dir=tmp_path), tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("since", "until", "patient", "fmt", "named"),
    [
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", None, "csv", "--until"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", None, "csv", "--until"),
        ("2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z", None, "csv", "--since to --until"),
        ("2026-01-01T00:00:00", "2026-02-01T00:00:00Z", None, "csv", "--since"),
        ("2026-01-01T00:00:00Z", "soon", None, "csv", "--until"),
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "42", "csv", "--patient"),
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", None, "pdf", "--format"),
    ],
)
def test_bad_export_arguments_name_the_option(
    since: str, until: str, patient: str | None, fmt: str, named: str
) -> None:
    """Each bad option is refused with its name in the message."""
    with pytest.raises(ExportArgumentError, match=named):
        parse_request(since, until, patient, None, fmt)


def test_a_refused_read_becomes_an_audit_event_with_a_failure_outcome() -> None:
    """A denial maps to a BALP read with outcome 4 and the refusal's code, and the patient."""
    resource = audit_event(
        {
            "kind": "denial",
            "at": datetime(2026, 12, 4, tzinfo=UTC),
            "table": "access_log",
            "key": 7,
            "actor_id": "00000000-0000-4000-8000-0000000000c1",
            "role": "pcp",
            "organisation_id": None,
            "purpose_of_use": "TREATMENT",
            "request_id": "r-1",
            "patient_id": "00000000-0000-4000-8000-00000000000a",
            "action": "patient",
            "outcome": "denied",
            "reason": "NOT_ON_CARE_TEAM",
            "subject_type": None,
            "subject_id": None,
            "recipient": None,
        }
    )
    assert resource["id"] == "access-log-7" and resource["action"] == "R"
    assert resource["outcome"] == "4" and "NOT_ON_CARE_TEAM" in resource["outcomeDesc"]
    assert resource["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert resource["entity"][0]["what"] == {
        "reference": "Patient/00000000-0000-4000-8000-00000000000a"
    }


def test_each_patient_of_a_list_read_is_its_own_audit_event() -> None:
    """The n-th patient of a list row k is ``access-log-k-n``; a row of one patient is k."""
    entry = {
        "kind": "read",
        "at": datetime(2026, 12, 4, tzinfo=UTC),
        "table": "access_log",
        "key": 7,
        "actor_id": None,
        "role": None,
        "organisation_id": None,
        "purpose_of_use": None,
        "request_id": None,
        "patient_id": "00000000-0000-4000-8000-00000000000a",
        "action": "caseload",
        "outcome": "allowed",
        "reason": None,
        "subject_type": None,
        "subject_id": None,
        "recipient": None,
    }
    assert [audit_event({**entry, "part": part})["id"] for part in (0, 1, 150)] == [
        "access-log-7",
        "access-log-7-1",
        "access-log-7-150",
    ]


@pytest.mark.parametrize(
    ("patient", "since", "until", "named"),
    [
        ("someone", None, None, "--patient"),
        ("00000000-0000-4000-8000-00000000000a", "2026-01-01T00:00:00", None, "--since"),
        ("00000000-0000-4000-8000-00000000000a", "2019-01-01T00:00:00Z", None, "six years"),
        ("00000000-0000-4000-8000-00000000000a", None, "2020-01-01T00:00:00Z", None),
        (
            "00000000-0000-4000-8000-00000000000a",
            "2026-02-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
            "--until",
        ),
    ],
)
def test_accounting_options_default_to_six_years_and_name_what_is_wrong(
    patient: str, since: str | None, until: str | None, named: str | None
) -> None:
    """Bad options are named; without --since the period is the six years before --until."""
    now = datetime(2026, 12, 4, tzinfo=UTC)
    if named is None:
        request = parse_accounting(patient, since, until, now)
        assert request.until.year == 2020 and request.since.year == 2014
        return
    with pytest.raises(AccountingArgumentError, match=named):
        parse_accounting(patient, since, until, now)
