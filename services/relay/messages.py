"""One stored event as one Kafka record: a CloudEvent in the Kafka binding's binary mode.

Binary mode keeps the CloudEvents attributes in ``ce_`` headers and the event data as the
record value, so a consumer can route and drop duplicates (by ``ce_id``) without parsing
the value. Headers (UTF-8):

- ``ce_specversion`` ``1.0``
- ``ce_id`` the event id (stable: a re-published event carries the same id)
- ``ce_source`` ``/careteam/{stream_type}/{stream_id}``
- ``ce_type`` ``org.careteam.{event_type}.v{event_version}``, e.g.
  ``org.careteam.patient.screening_recorded.v1`` (a new event version is a new type)
- ``ce_time`` when the event was recorded (RFC 3339, UTC)
- ``ce_sequence`` the log position, zero-padded so that it sorts as text (the CloudEvents
  sequence extension); ``LogPosition.decode`` reads it back
- ``content-type`` ``application/json`` (the binding's home for ``datacontenttype``)

The key is the patient id (an opaque UUID, no patient data), so one patient's events
share a partition and keep their order. The value is JSON with a small envelope around
the stored payload: what a consumer needs to rebuild or check a stream without asking
PostgreSQL (stream id, type and version; event type and version; both times; the
position) plus the write metadata (actor, role, organisation, purpose, correlation).
Serialisation is deterministic (sorted keys), so a duplicate is byte-identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.eventstore import LogPosition, RecordedEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "org.careteam"
# Digits of each half of a padded position: xid8 and bigint both fit in 20 digits.
_POSITION_DIGITS = 20


@dataclass(frozen=True)
class KafkaMessage:
    """What the producer sends for one event."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def cloudevent_type(event_type: str, event_version: int) -> str:
    """``patient.screening_recorded`` v1 -> ``org.careteam.patient.screening_recorded.v1``."""
    return f"{TYPE_PREFIX}.{event_type}.v{event_version}"


def cloudevent_source(stream_type: str, stream_id: object) -> str:
    return f"/careteam/{stream_type}/{stream_id}"


def sequence_of(position: LogPosition) -> str:
    """A log position as text whose lexicographic order is the log order."""
    return f"{position.tx_id:0{_POSITION_DIGITS}d}.{position.position:0{_POSITION_DIGITS}d}"


def rfc3339(moment: datetime) -> str:
    """An aware datetime in UTC with a ``Z`` suffix (RFC 3339)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_data(event: RecordedEvent) -> dict[str, Any]:
    """The record value before encoding: envelope fields plus the stored payload."""
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "event_version": event.event_version,
        "stream_type": event.stream_type,
        "stream_id": str(event.stream_id),
        "stream_version": event.stream_version,
        "patient_id": str(event.patient_id),
        "occurred_at": rfc3339(event.occurred_at),
        "recorded_at": rfc3339(event.recorded_at),
        "position": sequence_of(event.log_position),
        "metadata": event.metadata,
        "payload": event.payload,
    }


def to_kafka_message(event: RecordedEvent) -> KafkaMessage:
    """The Kafka record for one stored event."""
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", str(event.event_id)),
        ("ce_source", cloudevent_source(event.stream_type, event.stream_id)),
        ("ce_type", cloudevent_type(event.event_type, event.event_version)),
        ("ce_time", rfc3339(event.recorded_at)),
        ("ce_sequence", sequence_of(event.log_position)),
        ("content-type", CONTENT_TYPE),
    ]
    value = json.dumps(event_data(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return KafkaMessage(
        key=str(event.patient_id).encode(),
        value=value.encode(),
        headers=[(name, text.encode()) for name, text in headers],
    )
