"""The accounting of disclosures (45 CFR 164.528): every delivery to a partner, per patient.

One row per message sent: delivered, or sent by a webhook attempt that failed (the
receiver may have kept it; ``outcome`` and ``attempt`` say which). When, to whom (the
recipient organisation and the name it had then), what (the public event type and its
description), why (the purpose the partner was registered for) and on which consents.
Rows are written in the same transaction that moves the feed past the event (or records
the attempt), so the accounting and the feed never disagree; UPDATE and DELETE are
refused by trigger.

Disclosures made on the patient's own authorisation are strictly exempt from the
HIPAA accounting (164.528(a)(1)(iv)); they are recorded all the same, because 42 CFR
Part 2 and our patients expect to learn who received their data, and six years of
small rows cost little. The answer is ordered oldest first and paged by keyset.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.database import Conn
from services.partners.messages import PartnerMessage
from services.partners.registry import DeliveryKind, Partner
from services.partners.rules import RULES_VERSION

MAX_PAGE = 200
DELIVERED = "delivered"
FAILED = "failed"  # the body was sent but the receiver did not confirm it


@dataclass(frozen=True)
class Disclosure:
    """One disclosure, as the accounting shows it."""

    id: int
    disclosed_at: datetime
    patient_id: UUID
    partner_id: UUID
    recipient_organisation_id: UUID
    recipient_name: str
    description: str
    purpose: str
    channel: DeliveryKind
    event_type: str
    public_type: str
    part2: bool
    consent_ids: tuple[UUID, ...]
    outcome: str = DELIVERED
    attempt: int | None = None
    # Where it went (the partner's webhook URL or Kafka topic, as registered now; the
    # registry's chained history has every earlier address) and the event's own date.
    recipient_address: str | None = None
    event_occurred_at: datetime | None = None


@dataclass(frozen=True)
class DisclosurePage:
    disclosures: list[Disclosure]
    end_cursor: str | None
    has_next_page: bool


def describe(message: PartnerMessage) -> str:
    """What was disclosed, in words."""
    text = f"{message.public.description} [{message.public.key}]"
    if message.part2:
        text += "; 42 CFR Part 2 record, with the redisclosure notice"
    return text


async def record(
    conn: Conn,
    partner: Partner,
    messages: Sequence[PartnerMessage],
    *,
    channel: DeliveryKind,
    at: datetime,
    outcome: str = DELIVERED,
    attempt: int | None = None,
    error: str | None = None,
) -> None:
    """Records that ``messages`` went to ``partner`` (call inside the checkpoint's
    transaction): delivered, or sent in a webhook attempt that failed (``FAILED``, with
    the attempt number and the error), since the receiver may have kept them anyway."""
    if not messages:
        return
    await conn.executemany(
        """INSERT INTO disclosures (disclosed_at, patient_id, partner_id,
               recipient_organisation_id, recipient_name, description, purpose, channel,
               event_id, event_type, public_type, message_id, part2, consent_ids,
               rules_version, outcome, attempt, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18)""",
        [
            (
                at,
                m.event.patient_id,
                partner.partner_id,
                partner.organisation_id,
                partner.name,
                describe(m),
                partner.purpose,
                channel.value,
                m.event.event_id,
                m.event.event_type,
                m.public.key,
                m.id,
                m.part2,
                list(m.consent_ids),
                RULES_VERSION,
                outcome,
                attempt,
                error,
            )
            for m in messages
        ],
    )


def encode_cursor(disclosure_id: int) -> str:
    return base64.urlsafe_b64encode(f"d:{disclosure_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything but a cursor this module made."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a disclosure cursor") from None
    kind, _, number = text.partition(":")
    if kind != "d" or not number.isdigit():
        raise ValueError("not a disclosure cursor")
    return int(number)


async def for_patient(
    conn: Conn, patient_id: UUID, *, first: int = 50, after: str | None = None
) -> DisclosurePage:
    """The patient's disclosures, oldest first, ``first`` at a time after ``after``."""
    first = max(1, min(first, MAX_PAGE))
    after_id = decode_cursor(after) if after else None
    start_at: datetime | None = None
    if after_id is not None:
        start_at = await conn.fetchval(
            "SELECT disclosed_at FROM disclosures WHERE id = $1 AND patient_id = $2",
            after_id,
            patient_id,
        )
        if start_at is None:
            raise ValueError("not a disclosure cursor of this patient")
    rows = await conn.fetch(
        """SELECT d.id, d.disclosed_at, d.patient_id, d.partner_id,
                  d.recipient_organisation_id, d.recipient_name, d.description, d.purpose,
                  d.channel, d.event_type, d.public_type, d.part2, d.consent_ids, d.outcome,
                  d.attempt, COALESCE(p.webhook_url, p.kafka_topic) AS recipient_address,
                  e.occurred_at AS event_occurred_at
           FROM disclosures d
           LEFT JOIN partners p ON p.partner_id = d.partner_id
           LEFT JOIN events e ON e.event_id = d.event_id
           WHERE d.patient_id = $1
             AND ($2::timestamptz IS NULL OR (d.disclosed_at, d.id) > ($2, $3::bigint))
           ORDER BY d.disclosed_at, d.id LIMIT $4""",
        patient_id,
        start_at,
        after_id,
        first + 1,
    )
    page = [
        Disclosure(
            id=r["id"],
            disclosed_at=r["disclosed_at"],
            patient_id=r["patient_id"],
            partner_id=r["partner_id"],
            recipient_organisation_id=r["recipient_organisation_id"],
            recipient_name=r["recipient_name"],
            description=r["description"],
            purpose=r["purpose"],
            channel=DeliveryKind(r["channel"]),
            event_type=r["event_type"],
            public_type=r["public_type"],
            part2=r["part2"],
            consent_ids=tuple(r["consent_ids"]),
            outcome=r["outcome"],
            attempt=r["attempt"],
            recipient_address=r["recipient_address"],
            event_occurred_at=r["event_occurred_at"],
        )
        for r in rows[:first]
    ]
    return DisclosurePage(
        disclosures=page,
        end_cursor=encode_cursor(page[-1].id) if page else None,
        has_next_page=len(rows) > first,
    )
