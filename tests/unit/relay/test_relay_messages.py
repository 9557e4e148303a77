"""Kafka records: orjson encoding keeps the standard library's JSON semantics, and records
built from undecoded log rows are byte for byte the records built from decoded events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from services.eventstore import RecordedEvent
from services.relay.messages import (
    decode_json,
    encode_json,
    event_data,
    messages_from_rows,
    rfc3339,
    to_kafka_message,
)

PAYLOADS: list[Any] = [
    {"b": "é ü ✓ \u2028 \x7f </script>", "a": [1, 2.5, None, True], "Z": {"y": 1, "x": {}}},
    {"name": "enc:v1:AbC+/=", "occurred_at": "2026-01-02T03:04:05.000006+00:00"},
    {"big": 123456789012345678901234567890, "neg": -(2**70), "ok": 2**63 - 1},
    {"numbers": [0, -1, 1.5, 1e300, 2**64], "nested": [{"k": [{"deep": "x"}]}]},
    {},
]


def _stdlib(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("value", PAYLOADS)
def test_encoded_json_is_what_the_standard_library_reads_back_with_sorted_keys(value: Any) -> None:
    encoded = encode_json(value)
    assert json.loads(encoded) == value
    if not any(isinstance(v, float) for v in _leaves(value)):
        # Without floats (whose exponent spelling may differ) the bytes are the same too.
        assert encoded == _stdlib(value)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


@pytest.mark.parametrize("value", PAYLOADS)
def test_decoding_stored_json_text_equals_the_standard_library_even_for_huge_integers(
    value: Any,
) -> None:
    # jsonb's text form: spaces after separators, keys in its own order.
    text = json.dumps(value, ensure_ascii=False)
    decoded = decode_json(text)
    assert decoded == json.loads(text)
    assert [type(x) for x in _leaves(decoded)] == [type(x) for x in _leaves(json.loads(text))]


def test_rfc3339_is_utc_with_z_as_isoformat_writes_it() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    assert rfc3339(moment) == "2026-03-04T05:06:07.000890Z"
    assert rfc3339(moment.replace(microsecond=0)) == "2026-03-04T05:06:07Z"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert rfc3339(plus_two) == "2026-03-04T05:06:07.000890Z"
    with pytest.raises(ValueError, match="naive"):
        rfc3339(moment.replace(tzinfo=None))


def _event(
    payload: dict[str, Any], metadata: dict[str, Any], recorded_at: datetime
) -> RecordedEvent:
    return RecordedEvent(
        position=42,
        tx_id=7,
        event_id=uuid4(),
        stream_id=uuid4(),
        stream_type="patient",
        stream_version=3,
        patient_id=uuid4(),
        event_type="patient.contact_logged",
        event_version=2,
        payload=payload,
        metadata=metadata,
        occurred_at=datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
        recorded_at=recorded_at,
    )


def test_records_from_undecoded_rows_are_the_records_of_the_decoded_events() -> None:
    metadata = {"actor_id": "a", "role": "care_manager", "organisation_id": None}
    at = datetime(2026, 1, 1, 17, 0, 0, 123456, tzinfo=UTC)
    events = [
        _event(
            p,
            metadata if i % 2 else {**metadata, "actor_id": f"b{i}"},
            at + timedelta(seconds=i // 2),
        )
        for i, p in enumerate(PAYLOADS * 2)
    ]
    rows = [
        {
            **{f: getattr(e, f) for f in RecordedEvent.__dataclass_fields__},
            "payload": json.dumps(e.payload, ensure_ascii=False),
            "metadata": json.dumps(e.metadata),
        }
        for e in events
    ]
    assert messages_from_rows(rows) == [to_kafka_message(e) for e in events]


def test_the_record_carries_the_envelope_the_payload_and_the_cloudevent_headers() -> None:
    event = _event({"minutes": 15}, {"actor_id": "a"}, datetime(2026, 1, 1, tzinfo=UTC))
    message = to_kafka_message(event)
    assert message.key == str(event.patient_id).encode()
    assert json.loads(message.value) == json.loads(json.dumps(event_data(event)))
    assert json.loads(message.value)["occurred_at"] == "2026-01-01T17:00:00Z"
    headers = dict(message.headers)
    assert headers["ce_time"] == b"2026-01-01T00:00:00Z"
    assert headers["ce_type"] == b"org.careteam.patient.contact_logged.v2"
    assert headers["ce_sequence"] == b"00000000000000000007.00000000000000000042"
    assert [name for name, _ in message.headers] == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_sequence",
        "content-type",
    ]
    assert headers["ce_subject"] == str(event.patient_id).encode()
