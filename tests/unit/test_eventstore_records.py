"""The event store's in-memory records: a record built from its fields by name is the
same record the dataclass's constructor makes, and the metadata's JSON names every field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.eventstore import EventMetadata, LogPosition, RecordedEvent


def _fields() -> dict[str, object]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "position": 7,
        "tx_id": 3,
        "event_id": uuid4(),
        "stream_id": uuid4(),
        "stream_type": "patient",
        "stream_version": 2,
        "patient_id": uuid4(),
        "event_type": "patient.contact_logged",
        "event_version": 1,
        "payload": {"minutes": 20},
        "metadata": {"actor_id": "a"},
        "occurred_at": at,
        "recorded_at": at,
    }


def test_a_record_of_its_fields_equals_the_constructed_one() -> None:
    values = _fields()
    made = RecordedEvent.of(dict(values))
    assert made == RecordedEvent(**values)  # type: ignore[arg-type]
    assert dataclasses.asdict(made) == values
    assert made.log_position == LogPosition(3, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.position = 8  # type: ignore[misc]
    # A copy with a field replaced is a record too (what decryption makes).
    assert dataclasses.replace(made, payload={}).payload == {}


def test_the_metadata_json_has_every_field_and_no_empty_traceparent() -> None:
    metadata = EventMetadata(actor_id="a", role="r", request_id="req-1", traceparent=None)
    expected = {f.name: getattr(metadata, f.name) for f in dataclasses.fields(metadata)}
    del expected["traceparent"]
    assert metadata.as_json() == expected
    traced = EventMetadata(
        actor_id="a", role="r", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    )
    assert traced.as_json()["traceparent"] == traced.traceparent
    assert traced.as_json() is not traced.as_json()  # each caller gets its own dict
