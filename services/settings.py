"""One frozen settings object, read once from ``CARETEAM_``-prefixed environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


class StartupError(RuntimeError):
    """The process cannot start as configured (the database or Kafka disagrees with it);
    the message names the setting or the migration, never a secret. Exit code 2."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Browser origins on the loopback names, any port (a front end's development server such
# as http://localhost:3000): allowed by CORS and for WebSockets in development only.
LOCALHOST_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"


# The parts of careteam one process can run (``serve --components``, CARETEAM_COMPONENTS).
COMPONENTS = ("api", "projector", "relay", "partners", "sealer")


def parse_components(raw: str) -> frozenset[str]:
    """A comma-separated subset of COMPONENTS; anything else is a SettingsError naming
    the setting and the unknown name."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = sorted({n for n in names if n not in COMPONENTS})
    if unknown or not names:
        what = f"unknown component {', '.join(repr(n) for n in unknown)}" if unknown else "empty"
        raise SettingsError(
            f"CARETEAM_COMPONENTS (--components): {what}; "
            f"choose from {', '.join(COMPONENTS)} (default: all)"
        )
    return frozenset(names)


LOG_FORMATS = ("text", "json")
TRACES_EXPORTERS = ("none", "otlp")


def log_format_from(env: Mapping[str, str]) -> str:
    """``CARETEAM_LOG_FORMAT``: ``text`` (default) or ``json``."""
    raw = (env.get("CARETEAM_LOG_FORMAT") or "text").strip().lower()
    if raw not in LOG_FORMATS:
        raise SettingsError("CARETEAM_LOG_FORMAT must be text or json")
    return raw


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka_security(text: Callable[[str], str | None]) -> dict[str, object]:
    """The CARETEAM_KAFKA_* security settings, consistent with each other. Whether the
    TLS files exist and load is checked when a process opens Kafka (services/kafka.py)."""
    values: dict[str, object] = {}
    protocol = (text("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise SettingsError(
            f"CARETEAM_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}"
        )
    values["kafka_security_protocol"] = protocol
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol.startswith("SASL_")
    for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
        if (raw := text(name)) is not None:
            if not tls:
                raise SettingsError(
                    f"CARETEAM_{name} needs CARETEAM_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL"
                )
            values[name.lower()] = Path(raw)
    if tls and "kafka_ssl_cafile" not in values:
        raise SettingsError(f"CARETEAM_KAFKA_SSL_CAFILE is required with {protocol}")
    if ("kafka_ssl_certfile" in values) != ("kafka_ssl_keyfile" in values):
        raise SettingsError(
            "CARETEAM_KAFKA_SSL_CERTFILE and CARETEAM_KAFKA_SSL_KEYFILE go together"
        )
    if (raw := text("KAFKA_SSL_KEY_PASSWORD")) is not None:
        values["kafka_ssl_key_password"] = Secret(raw)
    sasl_values = {
        "kafka_sasl_mechanism": text("KAFKA_SASL_MECHANISM"),
        "kafka_sasl_username": text("KAFKA_SASL_USERNAME"),
        "kafka_sasl_password": text("KAFKA_SASL_PASSWORD"),
    }
    given = [k for k, v in sasl_values.items() if v is not None]
    if given and not sasl:
        raise SettingsError(
            f"CARETEAM_{given[0].upper()} needs CARETEAM_KAFKA_SECURITY_PROTOCOL "
            "SASL_PLAINTEXT or SASL_SSL"
        )
    if sasl:
        for key, value in sasl_values.items():
            if value is None:
                raise SettingsError(f"CARETEAM_{key.upper()} is required with {protocol}")
        mechanism = str(sasl_values["kafka_sasl_mechanism"]).upper()
        if mechanism not in KAFKA_SASL_MECHANISMS:
            raise SettingsError(
                f"CARETEAM_KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}"
            )
        values["kafka_sasl_mechanism"] = mechanism
        values["kafka_sasl_username"] = sasl_values["kafka_sasl_username"]
        values["kafka_sasl_password"] = Secret(str(sasl_values["kafka_sasl_password"]))
    return values


def _check_kafka_topic(settings: Settings) -> None:
    sizes = {
        "CARETEAM_KAFKA_TOPIC_PARTITIONS": settings.kafka_topic_partitions,
        "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR": settings.kafka_topic_replication_factor,
        "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": settings.kafka_topic_min_insync_replicas,
    }
    for name, value in sizes.items():
        if value is not None and value < 1:
            raise SettingsError(f"{name} must be at least 1")
        if value is None and settings.is_production and settings.kafka_bootstrap_servers:
            raise SettingsError(
                f"{name} is required when CARETEAM_ENV=production and Kafka is configured"
            )
    replicas, insync = (
        settings.kafka_topic_replication_factor,
        settings.kafka_topic_min_insync_replicas,
    )
    if replicas is not None and insync is not None and insync > replicas:
        raise SettingsError(
            "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS must not exceed "
            "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR"
        )


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"CARETEAM_{name} must be true or false")


def _aware_instant(name: str, raw: str) -> datetime:
    """An ISO 8601 instant with its offset, e.g. 2026-03-09T06:30:00+00:00."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"CARETEAM_{name} must be an ISO 8601 instant") from None
    if value.utcoffset() is None:
        raise SettingsError(f"CARETEAM_{name} needs an offset (e.g. +00:00)")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a careteam process needs to know about where it runs."""

    environment: Environment = Environment.DEVELOPMENT
    database_url: Secret | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8000
    # ``serve --components`` without ``api``: the port of its /healthz and /readyz (for a
    # Kubernetes probe), on ``host``; None opens no port.
    health_port: int | None = None
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str = "careteam.events.v1"
    # Kafka security (services/kafka.py): PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: Secret | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    # The internal topic as careteam creates or checks it at start; None = not checked
    # (a new topic gets 1 partition and 1 replica). Required in production.
    kafka_topic_partitions: int | None = None
    kafka_topic_replication_factor: int | None = None
    kafka_topic_min_insync_replicas: int | None = None
    projector_poll_seconds: float = 0.1
    projector_page_size: int = 500
    # The log split by patient (services/projector/partitions.py): how many partitions,
    # fixed in the database by the first process to start, and how often a worker rebalances
    # (takes a dead worker's partitions, hands some to a new one).
    projector_partitions: int = 16
    projector_lease_seconds: float = 1.0
    read_your_writes_timeout_seconds: float = 5.0
    db_pool_min: int = 2
    db_pool_max: int = 10
    snapshot_every: int = 50
    # Aggregates kept in memory between commands (services.eventstore.EventStore.keep).
    kept_aggregates: int = 1024
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    allowed_origins: tuple[str, ...] = ()
    master_key: Secret | None = None
    # Master keys being rotated away from (base64, comma-separated, newest first): they
    # only unwrap keys they wrapped; CARETEAM_MASTER_KEY wraps every new one.
    master_key_previous: Secret | None = None
    # Audit evidence (docs/compliance.md): the checkpoint signing key lives outside the
    # data folder, verifiers pin the public keys, checkpoints are published to a folder.
    audit_signing_key: Secret | None = None
    audit_signing_key_file: Path | None = None
    audit_public_keys_file: Path | None = None
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_seconds: float = 300.0
    audit_verify_seconds: float = 3600.0
    # Where partners reach this deployment: CloudEvents ``source`` and ``dataschema`` of
    # partner feeds and the published contract (/schemas, /asyncapi.json) are under it.
    public_base_url: str | None = None
    # What ``careteam serve`` runs in this process (default all of COMPONENTS).
    components: frozenset[str] = frozenset(COMPONENTS)
    # Whether a starting process applies pending migrations (CARETEAM_MIGRATE_ON_START);
    # from_env's default: yes in development, no in production, where `careteam migrate`
    # runs as its own deploy step and replicas only check the schema.
    migrate_on_start: bool = True
    # Log lines as key=value words (text) or one JSON object each (json).
    log_format: str = "text"
    # CARETEAM_TRACES_EXPORTER: none, or otlp (OpenTelemetry spans over OTLP/HTTP to the
    # collector in OTEL_EXPORTER_OTLP_ENDPOINT; services/tracing.py).
    traces_exporter: str = "none"
    # Test only (issue 18, clinic calendars): the injected clock starts at this aware
    # instant and runs on from there; refused in production.
    test_clock_start: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def allowed_origin_regex(self) -> str | None:
        """Origins allowed beside ``allowed_origins``: the loopback ones, in development."""
        return None if self.is_production else LOCALHOST_ORIGIN_REGEX

    @property
    def public_url(self) -> str:
        """``CARETEAM_PUBLIC_BASE_URL`` without a trailing slash, else where ``serve`` listens."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def postgres_data_dir(self) -> Path:
        return (self.data_dir / "postgres").resolve()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Reads ``CARETEAM_*`` variables; explicit overrides (e.g. CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}

        def text(name: str) -> str | None:
            raw = env.get(f"CARETEAM_{name}")
            return raw if raw not in (None, "") else None

        def number(name: str, kind: type[int] | type[float]) -> int | float | None:
            raw = text(name)
            if raw is None:
                return None
            try:
                return kind(raw)
            except ValueError:
                raise SettingsError(f"CARETEAM_{name} must be a {kind.__name__}") from None

        if (raw := text("ENV")) is not None:
            try:
                values["environment"] = Environment(raw)
            except ValueError:
                allowed = ", ".join(e.value for e in Environment)
                raise SettingsError(f"CARETEAM_ENV must be one of: {allowed}") from None
        if (raw := text("DATABASE_URL")) is not None:
            values["database_url"] = Secret(raw)
        if (raw := text("DATA_DIR")) is not None:
            values["data_dir"] = Path(raw)
        if (raw := text("HOST")) is not None:
            values["host"] = raw
        if (raw := text("KAFKA_BOOTSTRAP_SERVERS")) is not None:
            values["kafka_bootstrap_servers"] = raw
        for name in ("OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"):
            if (raw := text(name)) is not None:
                values[name.lower()] = raw
        if (raw := text("OIDC_ALGORITHMS")) is not None:
            algorithms = tuple(a.strip() for a in raw.split(",") if a.strip())
            if any(a.upper().startswith("HS") or a.lower() == "none" for a in algorithms):
                raise SettingsError("CARETEAM_OIDC_ALGORITHMS allows asymmetric algorithms only")
            values["oidc_algorithms"] = algorithms
        if (raw := text("ALLOWED_ORIGINS")) is not None:
            values["allowed_origins"] = tuple(o.strip() for o in raw.split(",") if o.strip())
        if (raw := text("MASTER_KEY")) is not None:
            values["master_key"] = Secret(raw)
        if (raw := text("MASTER_KEY_PREVIOUS")) is not None:
            values["master_key_previous"] = Secret(raw)
        if (raw := text("AUDIT_SIGNING_KEY")) is not None:
            values["audit_signing_key"] = Secret(raw)
        for name in ("AUDIT_SIGNING_KEY_FILE", "AUDIT_PUBLIC_KEYS_FILE", "AUDIT_CHECKPOINT_DIR"):
            if (raw := text(name)) is not None:
                values[name.lower()] = Path(raw)
        if (raw := text("KAFKA_TOPIC")) is not None:
            values["kafka_topic"] = raw
        values.update(_kafka_security(text))
        if (raw := text("PUBLIC_BASE_URL")) is not None:
            if not raw.startswith(("https://", "http://")):
                raise SettingsError("CARETEAM_PUBLIC_BASE_URL must be an http(s) URL")
            values["public_base_url"] = raw
        for name, attr, kind in (
            ("PORT", "port", int),
            ("HEALTH_PORT", "health_port", int),
            ("PROJECTOR_POLL_SECONDS", "projector_poll_seconds", float),
            ("PROJECTOR_PAGE_SIZE", "projector_page_size", int),
            ("PROJECTOR_PARTITIONS", "projector_partitions", int),
            ("PROJECTOR_LEASE_SECONDS", "projector_lease_seconds", float),
            ("READ_YOUR_WRITES_TIMEOUT_SECONDS", "read_your_writes_timeout_seconds", float),
            ("DB_POOL_MIN", "db_pool_min", int),
            ("DB_POOL_MAX", "db_pool_max", int),
            ("SNAPSHOT_EVERY", "snapshot_every", int),
            ("KEPT_AGGREGATES", "kept_aggregates", int),
            ("AUDIT_CHECKPOINT_SECONDS", "audit_checkpoint_seconds", float),
            ("AUDIT_VERIFY_SECONDS", "audit_verify_seconds", float),
            ("KAFKA_TOPIC_PARTITIONS", "kafka_topic_partitions", int),
            ("KAFKA_TOPIC_REPLICATION_FACTOR", "kafka_topic_replication_factor", int),
            ("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "kafka_topic_min_insync_replicas", int),
        ):
            value = number(name, kind)
            if value is not None:
                values[attr] = value
        kept = values.get("kept_aggregates")
        if isinstance(kept, int) and kept < 0:
            raise SettingsError("CARETEAM_KEPT_AGGREGATES must be 0 (keep none) or more")
        if (raw := text("COMPONENTS")) is not None:
            values["components"] = parse_components(raw)
        values["log_format"] = log_format_from(env)
        if (raw := text("TRACES_EXPORTER")) is not None:
            if raw.lower() not in TRACES_EXPORTERS:
                raise SettingsError("CARETEAM_TRACES_EXPORTER must be none or otlp")
            values["traces_exporter"] = raw.lower()
        raw = text("MIGRATE_ON_START")
        values["migrate_on_start"] = (
            _boolean("MIGRATE_ON_START", raw)
            if raw is not None
            else values.get("environment", Environment.DEVELOPMENT) is not Environment.PRODUCTION
        )
        if (raw := text("TEST_CLOCK_START")) is not None:
            values["test_clock_start"] = _aware_instant("TEST_CLOCK_START", raw)
        if isinstance(overrides.get("components"), str):
            overrides = {**overrides, "components": parse_components(str(overrides["components"]))}
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.is_production and settings.test_clock_start is not None:
            raise SettingsError("CARETEAM_TEST_CLOCK_START is for tests, not production")
        if settings.is_production:
            for attr in (
                "database_url",
                "oidc_issuer",
                "oidc_audience",
                "oidc_jwks_url",
                "master_key",
            ):
                if getattr(settings, attr) is None:
                    name = f"CARETEAM_{attr.upper()}"
                    raise SettingsError(f"{name} is required when CARETEAM_ENV=production")
        if settings.audit_checkpoint_seconds <= 0 or settings.audit_verify_seconds <= 0:
            raise SettingsError(
                "CARETEAM_AUDIT_CHECKPOINT_SECONDS and CARETEAM_AUDIT_VERIFY_SECONDS must be "
                "positive"
            )
        if settings.is_production:
            if settings.audit_signing_key is None and settings.audit_signing_key_file is None:
                raise SettingsError(
                    "CARETEAM_AUDIT_SIGNING_KEY_FILE or CARETEAM_AUDIT_SIGNING_KEY is required "
                    "when CARETEAM_ENV=production"
                )
            for attr in ("audit_public_keys_file", "audit_checkpoint_dir"):
                if getattr(settings, attr) is None:
                    name = f"CARETEAM_{attr.upper()}"
                    raise SettingsError(f"{name} is required when CARETEAM_ENV=production")
            key_file = settings.audit_signing_key_file
            if key_file is not None and key_file.resolve().is_relative_to(
                settings.data_dir.resolve()
            ):
                raise SettingsError(
                    "CARETEAM_AUDIT_SIGNING_KEY_FILE must be outside CARETEAM_DATA_DIR"
                )
        _check_kafka_topic(settings)
        if not 1 <= settings.projector_partitions <= 1024:
            raise SettingsError("CARETEAM_PROJECTOR_PARTITIONS must be between 1 and 1024")
        if settings.projector_lease_seconds <= 0:
            raise SettingsError("CARETEAM_PROJECTOR_LEASE_SECONDS must be positive")
        if settings.oidc_jwks_url is not None and (
            settings.oidc_issuer is None or settings.oidc_audience is None
        ):
            raise SettingsError(
                "CARETEAM_OIDC_ISSUER and CARETEAM_OIDC_AUDIENCE are required with "
                "CARETEAM_OIDC_JWKS_URL"
            )
        return settings
