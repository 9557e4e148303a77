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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.eventstore import LogPosition, RecordedEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "org.careteam"
# Digits of each half of a padded position: xid8 and bigint both fit in 20 digits.
_POSITION_DIGITS = 20
# Headers that are the same on every record (aiokafka only reads them).
_SPEC_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
# A run of 19 digits may be an integer beyond 64 bits (or a float written out in full by
# PostgreSQL's numeric): orjson would read it as a float, so such JSON is read by json.
_LONG_NUMBER = re.compile(r"[0-9]{19}")


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
    return _sequence(position.tx_id, position.position)


def _sequence(tx_id: int, position: int) -> str:
    return f"{tx_id:0{_POSITION_DIGITS}d}.{position:0{_POSITION_DIGITS}d}"


def rfc3339(moment: datetime) -> str:
    """An aware datetime in UTC with a ``Z`` suffix (RFC 3339), as ``isoformat`` writes it
    (microseconds only when not zero)."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime")
    if offset:
        moment = moment.astimezone(UTC)
    # A zero offset always ends the text with "+00:00".
    return moment.isoformat()[:-6] + "Z"


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys (no ASCII escaping), deterministic for a value.

    orjson for speed; the standard library for what orjson refuses (integers beyond 64
    bits), with the same separators and key order."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode()


def decode_json(text: str) -> Any:
    """Stored JSON text as Python values, exactly as the standard library reads it."""
    if _LONG_NUMBER.search(text) is not None:
        return json.loads(text)
    return orjson.loads(text)


def event_data(event: RecordedEvent) -> dict[str, Any]:
    """The record value before encoding: envelope fields plus the stored payload."""
    return _data(
        str(event.event_id),
        event.event_type,
        event.event_version,
        event.stream_type,
        str(event.stream_id),
        event.stream_version,
        str(event.patient_id),
        rfc3339(event.occurred_at),
        rfc3339(event.recorded_at),
        sequence_of(event.log_position),
        event.metadata,
        event.payload,
    )


def _data(
    event_id: str,
    event_type: str,
    event_version: int,
    stream_type: str,
    stream_id: str,
    stream_version: int,
    patient_id: str,
    occurred_at: str,
    recorded_at: str,
    position: str,
    metadata: Any,
    payload: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_version": event_version,
        "stream_type": stream_type,
        "stream_id": stream_id,
        "stream_version": stream_version,
        "patient_id": patient_id,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "position": position,
        "metadata": metadata,
        "payload": payload,
    }


def _message(
    event_id: str,
    event_type: str,
    event_version: int,
    stream_type: str,
    stream_id: str,
    stream_version: int,
    patient_id: str,
    occurred_at: str,
    recorded_at: str,
    sequence: str,
    metadata: Any,
    payload: Any,
) -> KafkaMessage:
    value = encode_json(
        _data(
            event_id,
            event_type,
            event_version,
            stream_type,
            stream_id,
            stream_version,
            patient_id,
            occurred_at,
            recorded_at,
            sequence,
            metadata,
            payload,
        )
    )
    return KafkaMessage(
        key=patient_id.encode(),
        value=value,
        headers=[
            _SPEC_HEADER,
            ("ce_id", event_id.encode()),
            ("ce_source", cloudevent_source(stream_type, stream_id).encode()),
            ("ce_type", cloudevent_type(event_type, event_version).encode()),
            ("ce_time", recorded_at.encode()),
            ("ce_sequence", sequence.encode()),
            _CONTENT_TYPE_HEADER,
        ],
    )


def to_kafka_message(event: RecordedEvent) -> KafkaMessage:
    """The Kafka record for one stored event."""
    return _message(
        str(event.event_id),
        event.event_type,
        event.event_version,
        event.stream_type,
        str(event.stream_id),
        event.stream_version,
        str(event.patient_id),
        rfc3339(event.occurred_at),
        rfc3339(event.recorded_at),
        sequence_of(event.log_position),
        event.metadata,
        event.payload,
    )


def messages_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[KafkaMessage]:
    """The Kafka records for log rows whose payload and metadata are still JSON text
    (``EventStore.read_log_rows``): the same records ``to_kafka_message`` builds from the
    decoded events, byte for byte, without building a ``RecordedEvent`` for each.

    Events of one transaction share ``recorded_at``, so its text is reused from the
    previous row when equal."""
    out: list[KafkaMessage] = []
    last_moment: datetime | None = None
    last_text = ""
    for row in rows:
        recorded = row["recorded_at"]
        if recorded != last_moment or last_moment is None:
            last_moment, last_text = recorded, rfc3339(recorded)
        out.append(
            _message(
                str(row["event_id"]),
                row["event_type"],
                row["event_version"],
                row["stream_type"],
                str(row["stream_id"]),
                row["stream_version"],
                str(row["patient_id"]),
                rfc3339(row["occurred_at"]),
                last_text,
                _sequence(row["tx_id"], row["position"]),
                decode_json(row["metadata"]),
                decode_json(row["payload"]),
            )
        )
    return out
