"""One stored event as one Kafka record: a CloudEvent in the Kafka binding's binary mode.

Binary mode keeps the CloudEvents attributes in ``ce_`` headers and the event data as the
record value, so a consumer can route and drop duplicates (by ``ce_id``) without parsing
the value. Headers (UTF-8):

- ``ce_specversion`` ``1.0``
- ``ce_id`` the event id (stable: a re-published event carries the same id)
- ``ce_source`` ``/careteam/{stream_type}/{stream_id}``
- ``ce_type`` ``org.careteam.{event_type}.v{event_version}``, e.g.
  ``org.careteam.patient.screening_recorded.v1`` (a new event version is a new type)
- ``ce_subject`` the patient id (the record key too), so a consumer can route by patient
  from the attributes alone
- ``ce_time`` when the event was recorded (RFC 3339, UTC)
- ``ce_sequence`` the log position, zero-padded so that it sorts as text (the CloudEvents
  sequence extension); ``LogPosition.decode`` reads it back
- ``content-type`` ``application/json`` (the binding's home for ``datacontenttype``)
- ``ce_traceparent`` the W3C trace context of the request that wrote the event (the
  CloudEvents distributed-tracing extension), and ``ce_requestid`` that request's
  ``X-Request-Id`` (an extension attribute: CloudEvents names are lower-case letters and
  digits only); both only on events written while serving a request

The key is the patient id (an opaque UUID, no patient data), so one patient's events
share a partition and keep their order. The value is JSON with a small envelope around
the stored payload: what a consumer needs to rebuild or check a stream without asking
PostgreSQL (stream id, type and version; event type and version; both times; the
position) plus the write metadata (actor, role, organisation, purpose, correlation).
The payload is the stored one: identity and free-text fields are ciphertext
(``{"$enc": "v1:..."}``, services/crypto.py) that no consumer can decrypt, and nobody can
once the patient is forgotten (docs/erasure.md).
Serialisation is deterministic (compact UTF-8 JSON with sorted keys, by orjson; times in
UTC with a ``Z``), so a duplicate is byte-identical. ``to_kafka_message`` builds a record
from a ``RecordedEvent``; ``messages_from_rows`` builds the same bytes from log rows whose
payload and metadata are still JSON text (what the relay reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from services import jsontext
from services.eventstore import LogPosition, RecordedEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "org.careteam"
# Digits of each half of a padded position: xid8 and bigint both fit in 20 digits.
_POSITION_DIGITS = 20
# Headers that are the same on every record (aiokafka only reads them).
_SPEC_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


class LogRow(Protocol):
    """A row of ``EventStore.read_log_rows`` (an asyncpg record), by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


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
    # A zero offset always ends isoformat's text with "+00:00".
    return _utc(moment).isoformat()[:-6] + "Z"


def _utc(moment: datetime) -> datetime:
    """The same instant with ``UTC`` as its tzinfo (asyncpg's datetimes already have it)."""
    if moment.tzinfo is UTC:
        return moment
    if moment.utcoffset() is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys (no ASCII escaping), deterministic for a value;
    datetimes (UTC) as ``rfc3339`` writes them.

    orjson for speed; the standard library for what orjson refuses (integers beyond 64
    bits), with the same separators, key order and datetime text."""
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
        )
        return text.encode()


def decode_json(text: str) -> Any:
    """JSON text as Python values, exactly as the standard library's ``json.loads`` reads
    it (PostgreSQL's jsonb text: no NaN, no duplicate keys)."""
    return jsontext.loads(text)


def event_data(event: RecordedEvent) -> dict[str, Any]:
    """The record value before encoding: envelope fields plus the stored payload."""
    return {
        **_data(
            str(event.event_id),
            event.event_type,
            event.event_version,
            event.stream_type,
            str(event.stream_id),
            event.stream_version,
            str(event.patient_id),
            _utc(event.occurred_at),
            _utc(event.recorded_at),
            sequence_of(event.log_position),
            event.metadata,
            event.payload,
        ),
        "occurred_at": rfc3339(event.occurred_at),
        "recorded_at": rfc3339(event.recorded_at),
    }


def _data(
    event_id: str,
    event_type: str,
    event_version: int,
    stream_type: str,
    stream_id: str,
    stream_version: int,
    patient_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    position: str,
    metadata: Any,
    payload: Any,
) -> dict[str, Any]:
    """The value with both times still datetimes in UTC (``encode_json`` writes them)."""
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
    occurred_at: datetime,
    recorded_at: datetime,
    recorded_text: bytes,
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
    headers = [
        _SPEC_HEADER,
        ("ce_id", event_id.encode()),
        ("ce_source", cloudevent_source(stream_type, stream_id).encode()),
        ("ce_type", cloudevent_type(event_type, event_version).encode()),
        ("ce_subject", patient_id.encode()),
        ("ce_time", recorded_text),
        ("ce_sequence", sequence.encode()),
        _CONTENT_TYPE_HEADER,
    ]
    if isinstance(metadata, dict):
        headers += tracing_headers(metadata)
    return KafkaMessage(key=patient_id.encode(), value=value, headers=headers)


def tracing_headers(metadata: dict[str, Any]) -> list[tuple[str, bytes]]:
    """``ce_traceparent`` and ``ce_requestid`` from an event's write metadata, when set."""
    out: list[tuple[str, bytes]] = []
    if traceparent := metadata.get("traceparent"):
        out.append(("ce_traceparent", str(traceparent).encode()))
    if request_id := metadata.get("request_id"):
        out.append(("ce_requestid", str(request_id).encode()))
    return out


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
        _utc(event.occurred_at),
        _utc(event.recorded_at),
        rfc3339(event.recorded_at).encode(),
        sequence_of(event.log_position),
        event.metadata,
        event.payload,
    )


def messages_from_rows(rows: Iterable[LogRow]) -> list[KafkaMessage]:
    """The Kafka records for log rows whose payload and metadata are still JSON text
    (``EventStore.read_log_rows``): byte for byte the records ``to_kafka_message`` builds
    from the same events decoded, without building a ``RecordedEvent`` for each.

    Events of one append share ``recorded_at`` and the metadata, so the previous row's
    ``ce_time`` text and decoded metadata are reused when they are equal (both are only
    read afterwards)."""
    out: list[KafkaMessage] = []
    last_recorded: datetime | None = None
    recorded_text = b""
    last_metadata_text: str | None = None
    metadata: Any = None
    for row in rows:
        recorded = _utc(row["recorded_at"])
        if recorded != last_recorded:
            last_recorded, recorded_text = recorded, rfc3339(recorded).encode()
        metadata_text = row["metadata"]
        if metadata_text != last_metadata_text:
            last_metadata_text, metadata = metadata_text, decode_json(metadata_text)
        out.append(
            _message(
                str(row["event_id"]),
                row["event_type"],
                row["event_version"],
                row["stream_type"],
                str(row["stream_id"]),
                row["stream_version"],
                str(row["patient_id"]),
                _utc(row["occurred_at"]),
                recorded,
                recorded_text,
                _sequence(row["tx_id"], row["position"]),
                metadata,
                decode_json(row["payload"]),
            )
        )
    return out
