"""Kafka security settings: consistent with each other, named when wrong; TLS files that
are missing or do not load stop the start naming the setting; SASL reaches the client."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.kafka import client_options
from services.settings import Settings, SettingsError, StartupError
from tests.unit.test_migration_declarations import PRODUCTION

BROKERS = {"CARETEAM_KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093"}


def _ca(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed certificate and its key, as PEM files: (ca, cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "careteam test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca = folder / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "client.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca, ca, key_file


def test_plaintext_is_the_default_and_passes_only_the_brokers() -> None:
    options = client_options(Settings.from_env(BROKERS))
    assert options == {"bootstrap_servers": "broker-1:9093", "security_protocol": "PLAINTEXT"}


def test_tls_with_a_ca_and_a_client_certificate_builds_one_ssl_context(tmp_path: Path) -> None:
    ca, cert, key = _ca(tmp_path)
    settings = Settings.from_env(
        {
            **BROKERS,
            "CARETEAM_KAFKA_SECURITY_PROTOCOL": "ssl",
            "CARETEAM_KAFKA_SSL_CAFILE": str(ca),
            "CARETEAM_KAFKA_SSL_CERTFILE": str(cert),
            "CARETEAM_KAFKA_SSL_KEYFILE": str(key),
        }
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "sasl_mechanism" not in options


def test_sasl_over_tls_passes_mechanism_user_and_password(tmp_path: Path) -> None:
    ca, _, _ = _ca(tmp_path)
    settings = Settings.from_env(
        {
            **BROKERS,
            "CARETEAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CARETEAM_KAFKA_SSL_CAFILE": str(ca),
            "CARETEAM_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "CARETEAM_KAFKA_SASL_USERNAME": "careteam",
            "CARETEAM_KAFKA_SASL_PASSWORD": "s3cret-pw",
        }
    )
    assert "s3cret-pw" not in repr(settings)
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "careteam",
        "s3cret-pw",
    )


@pytest.mark.parametrize("setting", ["CAFILE", "CERTFILE", "KEYFILE"])
def test_a_missing_tls_file_stops_the_start_naming_the_setting(
    tmp_path: Path, setting: str
) -> None:
    ca, cert, key = _ca(tmp_path)
    files = {"CAFILE": ca, "CERTFILE": cert, "KEYFILE": key}
    files[setting] = tmp_path / "missing.pem"
    env = {
        **BROKERS,
        "CARETEAM_KAFKA_SECURITY_PROTOCOL": "SSL",
        **{f"CARETEAM_KAFKA_SSL_{name}": str(path) for name, path in files.items()},
    }
    with pytest.raises(StartupError, match=f"CARETEAM_KAFKA_SSL_{setting}: no such file") as e:
        client_options(Settings.from_env(env))
    assert "missing.pem" not in str(e.value)


def test_a_tls_file_that_is_not_pem_names_the_setting(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    env = {
        **BROKERS,
        "CARETEAM_KAFKA_SECURITY_PROTOCOL": "SSL",
        "CARETEAM_KAFKA_SSL_CAFILE": str(junk),
    }
    with pytest.raises(StartupError, match="CARETEAM_KAFKA_SSL_CAFILE"):
        client_options(Settings.from_env(env))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CARETEAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CARETEAM_KAFKA_SECURITY_PROTOCOL"),
        ({"CARETEAM_KAFKA_SECURITY_PROTOCOL": "SSL"}, "CARETEAM_KAFKA_SSL_CAFILE is required"),
        ({"CARETEAM_KAFKA_SSL_CAFILE": "/x.pem"}, "CARETEAM_KAFKA_SSL_CAFILE needs"),
        (
            {"CARETEAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "CARETEAM_KAFKA_SASL_MECHANISM is required",
        ),
        (
            {
                "CARETEAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "CARETEAM_KAFKA_SASL_MECHANISM": "GSSAPI",
                "CARETEAM_KAFKA_SASL_USERNAME": "u",
                "CARETEAM_KAFKA_SASL_PASSWORD": "p",
            },
            "CARETEAM_KAFKA_SASL_MECHANISM must be one of",
        ),
        ({"CARETEAM_KAFKA_SASL_USERNAME": "u"}, "CARETEAM_KAFKA_SASL_USERNAME needs"),
        (
            {
                "CARETEAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "CARETEAM_KAFKA_SSL_CAFILE": "/ca.pem",
                "CARETEAM_KAFKA_SSL_CERTFILE": "/c.pem",
            },
            "CARETEAM_KAFKA_SSL_CERTFILE and CARETEAM_KAFKA_SSL_KEYFILE go together",
        ),
        ({"CARETEAM_KAFKA_TOPIC_PARTITIONS": "0"}, "CARETEAM_KAFKA_TOPIC_PARTITIONS must be"),
        (
            {
                "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR": "2",
                "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "3",
            },
            "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS must not exceed",
        ),
    ],
)
def test_inconsistent_kafka_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**BROKERS, **env})


def test_production_with_kafka_requires_the_topic_s_sizes() -> None:
    with pytest.raises(SettingsError, match="CARETEAM_KAFKA_TOPIC_PARTITIONS is required"):
        Settings.from_env({**PRODUCTION, **BROKERS})
    sized = {
        **PRODUCTION,
        **BROKERS,
        "CARETEAM_KAFKA_TOPIC_PARTITIONS": "12",
        "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR": "3",
        "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "2",
    }
    settings = Settings.from_env(sized)
    assert (settings.kafka_topic_partitions, settings.kafka_topic_min_insync_replicas) == (12, 2)
