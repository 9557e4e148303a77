"""The partner registry: who receives a feed, of what, how; every change kept in history.

Storage: ``partners`` (current configuration), ``partner_keys`` (secrets, apart),
``partner_changes`` (append-only history: who changed what, when, with which request),
``partner_feeds`` (each feed's checkpoint) and ``partner_dead_letters``. A table with a
history rather than a ``Partner`` event stream, because the event log is clinical: every
event belongs to a patient, goes to the internal Kafka topic and is kept forever, while
a partner's keys must stay out of Kafka and must be deletable. The history rows carry
the configuration (never the secrets) and are refused UPDATE and DELETE by trigger.

Each partner belongs to the organisation of the administrator who registered it (the
owner): its feed discloses only that organisation's patients, and only its
administrators manage it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg

from services.database import Conn
from services.eventstore import START, LogPosition
from services.partners.contract import BY_KEY
from services.partners.signing import new_secret
from services.settings import Secret

MAX_NAME = 200
MAX_PURPOSE = 500
MAX_URL = 2_000
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# How long a rotated-out webhook secret keeps signing beside the new one, unless the
# caller says otherwise (CARETEAM_PARTNERS_WEBHOOK_SECRET_OVERLAP_SECONDS in the API).
DEFAULT_SECRET_OVERLAP = timedelta(hours=24)


class DeliveryKind(StrEnum):
    """How a partner receives its feed."""

    KAFKA = "kafka"
    WEBHOOK = "webhook"
    GRAPHQL = "graphql"


class ChangeKind(StrEnum):
    """What a history row records."""

    REGISTERED = "registered"
    UPDATED = "updated"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    SECRET_ROTATED = "secret_rotated"
    REPLAYED = "replayed"
    REDELIVERY_REQUESTED = "redelivery_requested"


class DeadLetterStatus(StrEnum):
    """Where a set-aside webhook message (or a Kafka dead letter) stands."""

    RETRYING = "retrying"  # an attempt failed; tried again at next_attempt_at
    HELD = "held"  # waits behind an earlier set-aside message of the same patient
    DEAD = "dead"  # every attempt failed; its patient's later messages wait behind it
    REDELIVERY_REQUESTED = "redelivery_requested"
    DELIVERED = "delivered"  # delivered after being set aside
    REDELIVERED = "redelivered"  # delivered after an administrator asked for it again
    WITHHELD = "withheld"


class PartnerRegistryError(ValueError):
    """A registry request breaks a rule; ``code`` is stable, ``field`` names the input."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class PartnerNotFoundError(LookupError):
    """No partner with this id in the caller's organisation."""

    def __init__(self, partner_id: UUID) -> None:
        super().__init__(f"no partner {partner_id}")
        self.partner_id = partner_id


@dataclass(frozen=True)
class Actor:
    """Who asks for a registry change (recorded in the history)."""

    actor_id: UUID | None
    role: str | None
    organisation_id: UUID | None
    request_id: str | None = None


@dataclass(frozen=True)
class Partner:
    """A partner's current configuration (no secrets)."""

    partner_id: UUID
    owner_organisation_id: UUID
    organisation_id: UUID
    name: str
    purpose: str
    allowed_event_types: frozenset[str]
    delivery: DeliveryKind
    kafka_topic: str | None
    webhook_url: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    def public_config(self) -> dict[str, Any]:
        """What the history records of this version."""
        return {
            "organisation_id": str(self.organisation_id),
            "name": self.name,
            "purpose": self.purpose,
            "allowed_event_types": sorted(self.allowed_event_types),
            "delivery": self.delivery.value,
            "kafka_topic": self.kafka_topic,
            "webhook_url": self.webhook_url,
            "active": self.active,
        }


@dataclass(frozen=True)
class PartnerKeys:
    """A partner's keys: the pseudonym key and its webhook secrets (the one a rotation
    replaced signs too until ``previous_retires_at``)."""

    pseudonym_key: bytes
    webhook_secret: Secret | None
    previous_webhook_secret: Secret | None = None
    previous_retires_at: datetime | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets every webhook request is signed with at ``now``, newest first."""
        found = [self.webhook_secret.reveal()] if self.webhook_secret is not None else []
        previous, retires = self.previous_webhook_secret, self.previous_retires_at
        if previous is not None and retires is not None and now < retires:
            found.append(previous.reveal())
        return found

    def rotation_in_progress(self, now: datetime) -> bool:
        return self.previous_retires_at is not None and now < self.previous_retires_at


@dataclass(frozen=True)
class PartnerChange:
    """One row of a partner's history."""

    id: int
    partner_id: UUID
    version: int
    change: ChangeKind
    at: datetime
    actor_id: UUID | None
    role: str | None
    request_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class PartnerSpec:
    """A partner's configuration as an administrator gives it."""

    organisation_id: UUID
    name: str
    purpose: str
    allowed_event_types: Sequence[str]
    delivery: DeliveryKind
    kafka_topic: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class PartnerUpdate:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    purpose: str | None = None
    allowed_event_types: Sequence[str] | None = None
    delivery: DeliveryKind | None = None
    kafka_topic: str | None = None
    webhook_url: str | None = None
    rotate_webhook_secret: bool = False


@dataclass(frozen=True)
class DeadLetter:
    id: int
    partner_id: UUID
    event_id: UUID
    patient_id: UUID
    public_type: str
    status: DeadLetterStatus
    attempts: int
    last_error: str
    dead_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Registered:
    """A registry change's result: the partner, and a new webhook secret to show once."""

    partner: Partner
    webhook_secret: str | None = field(default=None, repr=False)


# --- validation ---------------------------------------------------------------------


def _text(value: str, name: str, limit: int) -> str:
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped:
        raise PartnerRegistryError("BLANK_VALUE", f"{name} must not be blank", field=name)
    if len(stripped) > limit:
        raise PartnerRegistryError(
            "VALUE_TOO_LONG", f"{name} is longer than {limit} characters", field=name
        )
    return stripped


def check_event_types(keys: Iterable[str]) -> frozenset[str]:
    """Known public event type keys (``referral.requested.v1``), at least one."""
    chosen = frozenset(k.strip() for k in keys)
    if not chosen:
        raise PartnerRegistryError(
            "NO_EVENT_TYPES", "allow at least one event type", field="allowed_event_types"
        )
    unknown = sorted(chosen - set(BY_KEY))
    if unknown:
        raise PartnerRegistryError(
            "UNKNOWN_EVENT_TYPE",
            f"not public event types: {', '.join(unknown)}",
            field="allowed_event_types",
        )
    return chosen


def check_webhook_url(url: str) -> str:
    """HTTPS, or plain HTTP to this machine only (development and tests)."""
    url = _text(url, "webhook_url", MAX_URL)
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return url
    raise PartnerRegistryError(
        "WEBHOOK_URL_NOT_HTTPS", "webhook_url must be an https URL", field="webhook_url"
    )


def _check_delivery(
    delivery: DeliveryKind, kafka_topic: str | None, webhook_url: str | None
) -> tuple[str | None, str | None]:
    if delivery is DeliveryKind.KAFKA:
        if kafka_topic is None or not _TOPIC.match(kafka_topic):
            raise PartnerRegistryError(
                "KAFKA_TOPIC_INVALID",
                "Kafka delivery needs a topic name (letters, digits, '.', '_', '-')",
                field="kafka_topic",
            )
        return kafka_topic, None
    if delivery is DeliveryKind.WEBHOOK:
        if webhook_url is None:
            raise PartnerRegistryError(
                "WEBHOOK_URL_REQUIRED", "webhook delivery needs a URL", field="webhook_url"
            )
        return None, check_webhook_url(webhook_url)
    return None, None


# --- reading ------------------------------------------------------------------------

_PARTNER_COLUMNS = """partner_id, owner_organisation_id, organisation_id, name, purpose,
    allowed_event_types, delivery, kafka_topic, webhook_url, active, version, created_at,
    updated_at"""


def _partner(row: asyncpg.Record) -> Partner:
    return Partner(
        partner_id=row["partner_id"],
        owner_organisation_id=row["owner_organisation_id"],
        organisation_id=row["organisation_id"],
        name=row["name"],
        purpose=row["purpose"],
        allowed_event_types=frozenset(row["allowed_event_types"]),
        delivery=DeliveryKind(row["delivery"]),
        kafka_topic=row["kafka_topic"],
        webhook_url=row["webhook_url"],
        active=row["active"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_partner(conn: Conn, partner_id: UUID, *, owner: UUID | None = None) -> Partner:
    """A partner (of ``owner`` when given); raises PartnerNotFoundError."""
    row = await conn.fetchrow(
        f"SELECT {_PARTNER_COLUMNS} FROM partners WHERE partner_id = $1"
        " AND ($2::uuid IS NULL OR owner_organisation_id = $2)",
        partner_id,
        owner,
    )
    if row is None:
        raise PartnerNotFoundError(partner_id)
    return _partner(row)


async def list_partners(
    conn: Conn, *, owner: UUID | None = None, include_inactive: bool = False
) -> list[Partner]:
    """Partners (of ``owner`` when given), by name."""
    rows = await conn.fetch(
        f"""SELECT {_PARTNER_COLUMNS} FROM partners
            WHERE ($1::uuid IS NULL OR owner_organisation_id = $1) AND (active OR $2)
            ORDER BY name, partner_id""",
        owner,
        include_inactive,
    )
    return [_partner(r) for r in rows]


async def graphql_partners(conn: Conn, organisation_id: UUID) -> list[Partner]:
    """Active partners of a recipient organisation that take their feed by subscription."""
    rows = await conn.fetch(
        f"""SELECT {_PARTNER_COLUMNS} FROM partners
            WHERE organisation_id = $1 AND active AND delivery = 'graphql'
            ORDER BY name, partner_id""",
        organisation_id,
    )
    return [_partner(r) for r in rows]


async def get_keys(conn: Conn, partner_id: UUID) -> PartnerKeys:
    row = await conn.fetchrow(
        """SELECT pseudonym_key, webhook_secret, previous_webhook_secret,
                  previous_secret_retires_at
           FROM partner_keys WHERE partner_id = $1""",
        partner_id,
    )
    if row is None:
        raise PartnerNotFoundError(partner_id)
    secret, previous = row["webhook_secret"], row["previous_webhook_secret"]
    return PartnerKeys(
        bytes(row["pseudonym_key"]),
        Secret(secret) if secret else None,
        Secret(previous) if previous else None,
        row["previous_secret_retires_at"],
    )


async def history(conn: Conn, partner_id: UUID) -> list[PartnerChange]:
    """The partner's history, oldest first."""
    rows = await conn.fetch(
        """SELECT id, partner_id, version, change, at, actor_id, role, request_id, details
           FROM partner_changes WHERE partner_id = $1 ORDER BY id""",
        partner_id,
    )
    return [
        PartnerChange(
            id=r["id"],
            partner_id=r["partner_id"],
            version=r["version"],
            change=ChangeKind(r["change"]),
            at=r["at"],
            actor_id=r["actor_id"],
            role=r["role"],
            request_id=r["request_id"],
            details=r["details"],
        )
        for r in rows
    ]


async def feed_position(conn: Conn, partner_id: UUID) -> tuple[LogPosition, int]:
    """The feed's checkpoint and epoch."""
    row = await conn.fetchrow(
        """SELECT tx_id::text::bigint AS tx_id, position, epoch FROM partner_feeds
           WHERE partner_id = $1""",
        partner_id,
    )
    if row is None:
        raise PartnerNotFoundError(partner_id)
    return LogPosition(row["tx_id"], row["position"]), row["epoch"]


# --- writing ------------------------------------------------------------------------


async def _record_change(
    conn: Conn,
    partner: Partner,
    change: ChangeKind,
    actor: Actor,
    now: datetime,
    details: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO partner_changes (partner_id, version, change, at, actor_id, role,
                                        organisation_id, request_id, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        partner.partner_id,
        partner.version,
        change.value,
        now,
        actor.actor_id,
        actor.role,
        actor.organisation_id,
        actor.request_id,
        details,
    )


async def log_head(conn: Conn) -> LogPosition:
    """The last position every reader can already see (feeds start after it)."""
    row = await conn.fetchrow(
        """SELECT tx_id::text::bigint AS tx_id, position FROM events
           WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY events.tx_id DESC, events.position DESC LIMIT 1"""
    )
    return START if row is None else LogPosition(row["tx_id"], row["position"])


async def register(
    conn: Conn, spec: PartnerSpec, *, owner: UUID, actor: Actor, now: datetime
) -> Registered:
    """Registers a partner whose feed starts at the head of the log (replay reaches back)."""
    name = _text(spec.name, "name", MAX_NAME)
    purpose = _text(spec.purpose, "purpose", MAX_PURPOSE)
    types = check_event_types(spec.allowed_event_types)
    topic, url = _check_delivery(spec.delivery, spec.kafka_topic, spec.webhook_url)
    secret = new_secret() if spec.delivery is DeliveryKind.WEBHOOK else None
    partner_id = uuid4()
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO partners (partner_id, owner_organisation_id, organisation_id, name,
                    purpose, allowed_event_types, delivery, kafka_topic, webhook_url,
                    created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                RETURNING {_PARTNER_COLUMNS}""",
            partner_id,
            owner,
            spec.organisation_id,
            name,
            purpose,
            sorted(types),
            spec.delivery.value,
            topic,
            url,
            now,
        )
        assert row is not None
        partner = _partner(row)
        await conn.execute(
            """INSERT INTO partner_keys (partner_id, pseudonym_key, webhook_secret)
               VALUES ($1, $2, $3)""",
            partner_id,
            secrets.token_bytes(32),
            secret,
        )
        head = await log_head(conn)
        await conn.execute(
            """INSERT INTO partner_feeds (partner_id, tx_id, position)
               VALUES ($1, $2::text::xid8, $3)""",
            partner_id,
            str(head.tx_id),
            head.position,
        )
        details = {**partner.public_config(), "feed_starts_after": head.encode()}
        await _record_change(conn, partner, ChangeKind.REGISTERED, actor, now, details)
    return Registered(partner, secret)


async def update(
    conn: Conn,
    partner_id: UUID,
    changes: PartnerUpdate,
    *,
    owner: UUID,
    actor: Actor,
    now: datetime,
    secret_overlap: timedelta = DEFAULT_SECRET_OVERLAP,
) -> Registered:
    """Changes a partner's configuration (a new version); may issue a new webhook secret.

    A rotation keeps the replaced secret signing beside the new one for
    ``secret_overlap``; another rotation before that ends is refused
    (``ROTATION_IN_PROGRESS``), so no secret a partner may still rely on is dropped early.
    """
    async with conn.transaction():
        current = await _lock(conn, partner_id, owner)
        name = _text(changes.name, "name", MAX_NAME) if changes.name is not None else current.name
        purpose = (
            _text(changes.purpose, "purpose", MAX_PURPOSE)
            if changes.purpose is not None
            else current.purpose
        )
        types = (
            check_event_types(changes.allowed_event_types)
            if changes.allowed_event_types is not None
            else current.allowed_event_types
        )
        delivery = changes.delivery or current.delivery
        topic, url = _check_delivery(
            delivery,
            changes.kafka_topic if changes.kafka_topic is not None else current.kafka_topic,
            changes.webhook_url if changes.webhook_url is not None else current.webhook_url,
        )
        keys = await get_keys(conn, partner_id)
        if changes.rotate_webhook_secret and keys.rotation_in_progress(now):
            raise PartnerRegistryError(
                "ROTATION_IN_PROGRESS",
                "the previous rotation's overlap has not ended; rotate again after it",
                field="rotate_webhook_secret",
            )
        secret: str | None = None
        if delivery is DeliveryKind.WEBHOOK and (
            changes.rotate_webhook_secret or keys.webhook_secret is None
        ):
            secret = new_secret()
        elif changes.rotate_webhook_secret:
            raise PartnerRegistryError(
                "NOT_A_WEBHOOK",
                "only webhook partners have a secret",
                field="rotate_webhook_secret",
            )
        row = await conn.fetchrow(
            f"""UPDATE partners SET name = $2, purpose = $3, allowed_event_types = $4,
                    delivery = $5, kafka_topic = $6, webhook_url = $7, version = version + 1,
                    updated_at = $8
                WHERE partner_id = $1 RETURNING {_PARTNER_COLUMNS}""",
            partner_id,
            name,
            purpose,
            sorted(types),
            delivery.value,
            topic,
            url,
            now,
        )
        assert row is not None
        partner = _partner(row)
        retires_at: datetime | None = None
        if secret is not None:
            previous = keys.webhook_secret.reveal() if keys.webhook_secret is not None else None
            retires_at = now + secret_overlap if previous is not None else None
            await conn.execute(
                """UPDATE partner_keys SET webhook_secret = $2, previous_webhook_secret = $3,
                       previous_secret_retires_at = $4
                   WHERE partner_id = $1""",
                partner_id,
                secret,
                previous if retires_at is not None else None,
                retires_at,
            )
        elif delivery is not DeliveryKind.WEBHOOK and keys.webhook_secret is not None:
            # A secret nobody uses any more is a secret that can only leak.
            await conn.execute(
                """UPDATE partner_keys SET webhook_secret = NULL, previous_webhook_secret = NULL,
                       previous_secret_retires_at = NULL
                   WHERE partner_id = $1""",
                partner_id,
            )
        await _record_change(conn, partner, ChangeKind.UPDATED, actor, now, partner.public_config())
        if secret is not None and keys.webhook_secret is not None:
            overlap = {"previous_secret_retires_at": retires_at.isoformat() if retires_at else None}
            await _record_change(conn, partner, ChangeKind.SECRET_ROTATED, actor, now, overlap)
    return Registered(partner, secret)


async def set_active(
    conn: Conn, partner_id: UUID, active: bool, *, owner: UUID, actor: Actor, now: datetime
) -> Partner:
    """Deactivates (the feed stops; nothing is deleted) or reactivates a partner."""
    async with conn.transaction():
        current = await _lock(conn, partner_id, owner)
        if current.active == active:
            return current
        row = await conn.fetchrow(
            f"""UPDATE partners SET active = $2, version = version + 1, updated_at = $3
                WHERE partner_id = $1 RETURNING {_PARTNER_COLUMNS}""",
            partner_id,
            active,
            now,
        )
        assert row is not None
        partner = _partner(row)
        change = ChangeKind.REACTIVATED if active else ChangeKind.DEACTIVATED
        await _record_change(conn, partner, change, actor, now, {"active": active})
    return partner


async def _lock(conn: Conn, partner_id: UUID, owner: UUID) -> Partner:
    row = await conn.fetchrow(
        f"""SELECT {_PARTNER_COLUMNS} FROM partners
            WHERE partner_id = $1 AND owner_organisation_id = $2 FOR UPDATE""",
        partner_id,
        owner,
    )
    if row is None:
        raise PartnerNotFoundError(partner_id)
    return _partner(row)


async def position_before(conn: Conn, moment: datetime) -> LogPosition:
    """The checkpoint that replays every event recorded at or after ``moment``.

    It is the position just before the first event, in log order, recorded at or after
    ``moment``; everything before it in the log was recorded earlier. (A few events
    recorded earlier may follow it: they are sent again, which at least once allows.)
    """
    first = await conn.fetchrow(
        """SELECT tx_id::text::bigint AS tx_id, position FROM events
           WHERE recorded_at >= $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY events.tx_id, events.position LIMIT 1""",
        moment,
    )
    if first is None:
        return await log_head(conn)
    row = await conn.fetchrow(
        """SELECT tx_id::text::bigint AS tx_id, position FROM events
           WHERE (tx_id, position) < ($1::text::xid8, $2::bigint)
           ORDER BY events.tx_id DESC, events.position DESC LIMIT 1""",
        str(first["tx_id"]),
        first["position"],
    )
    return START if row is None else LogPosition(row["tx_id"], row["position"])


_BIGINT_MAX = 2**63 - 1


def parse_position(text: str, *, field: str = "after_position") -> LogPosition:
    """A log position as partners see it (``sequence``, zero-padded or not, or ``0.0``)."""
    tx, dot, pos = text.strip().partition(".")
    if not (dot and tx.isdigit() and pos.isdigit()):
        raise PartnerRegistryError(
            "INVALID_POSITION", f"{_camel(field)} is not a log position", field=field
        )
    position = LogPosition(int(tx), int(pos))
    if position.tx_id > _BIGINT_MAX or position.position > _BIGINT_MAX:
        raise PartnerRegistryError(
            "INVALID_POSITION", f"{_camel(field)} is not a log position", field=field
        )
    return position


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


async def check_position(conn: Conn, position: LogPosition, *, field: str) -> None:
    """Refuses a position beyond the head of the log or that no event of this log has.

    ``0.0`` (the start) is always accepted; any other position must be the place of an
    event that every reader can already see, as the ``sequence`` of a delivered message is.
    """
    if position == START:
        return
    name = _camel(field)
    head = await log_head(conn)
    if position > head:
        raise PartnerRegistryError(
            "POSITION_BEYOND_HEAD", f"{name} is beyond the head of the log", field=field
        )
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM events WHERE tx_id = $1::text::xid8 AND position = $2)",
        str(position.tx_id),
        position.position,
    )
    if not found:
        raise PartnerRegistryError(
            "POSITION_NOT_IN_LOG", f"{name} is not a position of this log", field=field
        )


async def replay(
    conn: Conn,
    partner_id: UUID,
    after: LogPosition,
    *,
    owner: UUID,
    actor: Actor,
    now: datetime,
    requested: dict[str, Any],
) -> LogPosition:
    """Moves the feed's checkpoint to ``after`` (its worker notices and follows).

    ``after`` must be the start or a visible event's position (``check_position``):
    a checkpoint anywhere else would leave the feed waiting for events that never come.
    """
    async with conn.transaction():
        partner = await _lock(conn, partner_id, owner)
        await check_position(conn, after, field="after_position")
        previous, _ = await feed_position(conn, partner_id)
        await conn.execute(
            """UPDATE partner_feeds SET tx_id = $2::text::xid8, position = $3,
                   epoch = epoch + 1, updated_at = now()
               WHERE partner_id = $1""",
            partner_id,
            str(after.tx_id),
            after.position,
        )
        details = {**requested, "from": previous.encode(), "to": after.encode()}
        await _record_change(conn, partner, ChangeKind.REPLAYED, actor, now, details)
    return after


async def dead_letters(
    conn: Conn,
    partner_id: UUID,
    *,
    status: DeadLetterStatus | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    rows = await conn.fetch(
        """SELECT id, partner_id, event_id, patient_id, public_type, status, attempts,
                  last_error, dead_at, updated_at
           FROM partner_dead_letters
           WHERE partner_id = $1 AND ($2::text IS NULL OR status = $2) AND id > $3
           ORDER BY id LIMIT $4""",
        partner_id,
        status.value if status else None,
        after_id,
        limit,
    )
    return [
        DeadLetter(
            id=r["id"],
            partner_id=r["partner_id"],
            event_id=r["event_id"],
            patient_id=r["patient_id"],
            public_type=r["public_type"],
            status=DeadLetterStatus(r["status"]),
            attempts=r["attempts"],
            last_error=r["last_error"],
            dead_at=r["dead_at"],
            updated_at=r["updated_at"],
        )
        for r in rows
    ]


async def request_redelivery(
    conn: Conn,
    partner_id: UUID,
    ids: Sequence[int] | None,
    *,
    owner: UUID,
    actor: Actor,
    now: datetime,
) -> int:
    """Marks dead letters (all of the partner's when ``ids`` is None) for redelivery."""
    async with conn.transaction():
        partner = await _lock(conn, partner_id, owner)
        rows = await conn.fetch(
            """UPDATE partner_dead_letters SET status = 'redelivery_requested', updated_at = $3,
                   attempts_at_request = attempts, next_attempt_at = $3
               WHERE partner_id = $1 AND status = 'dead' AND ($2::bigint[] IS NULL OR id = ANY($2))
               RETURNING id""",
            partner_id,
            list(ids) if ids is not None else None,
            now,
        )
        marked = sorted(r["id"] for r in rows)
        if marked:
            await _record_change(
                conn,
                partner,
                ChangeKind.REDELIVERY_REQUESTED,
                actor,
                now,
                {"dead_letter_ids": marked},
            )
    return len(marked)
