"""The one JSON codec (domain.codec): values, event payloads, snapshots, and the stored
forms written before the codec was merged.

``tests/stored/stored_events.json`` holds one event of every type as the store kept it before
this codec replaced the two older ones (payload, name, version), with the repr of what the
old decoder made of it; ``tests/stored/stored_snapshots.json`` holds snapshots written then.
"""

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.codec import (
    decode_value,
    decoder_for,
    encode_payload,
    encode_value,
    event_name,
    event_version,
    payload_decoders,
    state_fields,
)
from domain.common import FlagKind
from domain.registry import (
    AGGREGATE_CLASSES,
    AGGREGATES,
    EVENT_CLASSES,
    UnknownEventTypeError,
    decode_event,
)

_STORED = Path(__file__).parents[2] / "stored"
STORED_EVENTS: list[dict[str, Any]] = json.loads((_STORED / "stored_events.json").read_text())
STORED_SNAPSHOTS: list[dict[str, Any]] = json.loads((_STORED / "stored_snapshots.json").read_text())
_LIBRARY_ATTRIBUTES = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}

NOW = datetime(2026, 6, 1, tzinfo=UTC)

# Fields added to an event class with a default after the fixture was written: a stored
# payload without them decodes with the default (docs/architecture.md, "How an event is
# declared"). By stored name, field and default.
ADDED_WITH_DEFAULT: dict[str, dict[str, Any]] = {
    "patient.screening_recorded": {"total_only": False},
}


@dataclass
class Sample:
    """A record with every kind of value the codec knows."""

    when: datetime
    day: date
    ref: UUID
    kind: FlagKind
    maybe: int | None
    items: list[int | None]
    by_id: dict[UUID, str]
    pair: tuple[int, ...]


def _decode(stored: dict[str, Any]) -> Any:
    return decode_event(
        event_type=stored["event_type"],
        event_version=stored["event_version"],
        payload=stored["payload"],
        stream_id=UUID(stored["stream_id"]),
        stream_version=stored["stream_version"],
        recorded_at=datetime.fromisoformat(stored["recorded_at"]),
    )


def test_values_round_trip_through_a_dataclass_hint() -> None:
    """Datetimes, dates, UUIDs, enums, optionals, lists, tuples and UUID-keyed dicts."""
    key = uuid4()
    sample = Sample(
        NOW, date(2026, 1, 2), uuid4(), FlagKind.SAFETY_RISK, None, [1, None], {key: "x"}, (1, 2)
    )
    data = json.loads(json.dumps(encode_value(sample)))
    assert data["when"] == NOW.isoformat()
    assert data["by_id"] == {str(key): "x"}
    assert decode_value(Sample, data) == sample


def test_the_codec_refuses_what_it_cannot_store_or_decode() -> None:
    """Unknown objects and naive datetimes are not stored; an unknown hint has no decoder."""
    with pytest.raises(TypeError):
        encode_value(object())
    with pytest.raises(ValueError, match="naive"):
        encode_value(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        decoder_for(complex)
    with pytest.raises(TypeError):
        decoder_for(UUID | date)


def test_every_event_class_has_a_decoder_for_each_field() -> None:
    """Built from the type hints alone; no event field has a type the codec cannot decode."""
    for cls in EVENT_CLASSES.values():
        assert payload_decoders(cls)


def test_a_stored_event_of_every_type_is_in_the_fixture() -> None:
    """Each event type has a stored example, so the tests below cover every type."""
    assert {e["event_type"] for e in STORED_EVENTS} == set(EVENT_CLASSES)


@pytest.mark.parametrize("stored", STORED_EVENTS, ids=[e["event_type"] for e in STORED_EVENTS])
def test_events_stored_before_still_decode_the_same(stored: dict[str, Any]) -> None:
    """The event the old decoder made of this stored payload is the one decoded now."""
    decoded = _decode(stored)
    added = ADDED_WITH_DEFAULT.get(stored["event_type"], {})
    for name, default in added.items():
        assert name not in stored["payload"] and getattr(decoded, name) == default
    before = {k: v for k, v in vars(decoded).items() if k not in added}
    assert repr(dict(sorted(before.items()))) == stored["decoded_repr"]


@pytest.mark.parametrize("stored", STORED_EVENTS, ids=[e["event_type"] for e in STORED_EVENTS])
def test_every_event_round_trips_through_the_codec(stored: dict[str, Any]) -> None:
    """Decoded and encoded again, an event has its stored name, version and payload; and
    decoding that payload gives an equal event (through real JSON text each way)."""
    decoded = _decode(stored)
    assert event_name(decoded) == stored["event_type"]
    assert event_version(decoded) == stored["event_version"]
    payload = json.loads(json.dumps(encode_payload(decoded)))
    assert payload == stored["payload"]  # a field added with a default is not written in
    again = _decode({**stored, "payload": payload})
    assert vars(again) == vars(decoded)


def test_fields_added_with_a_default_are_declared_on_their_event_class() -> None:
    """Each listed field is a field of its class with that default (so a stored payload
    without it decodes), and a payload with the field set decodes it."""
    for name, added in ADDED_WITH_DEFAULT.items():
        cls = EVENT_CLASSES[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for field_name, default in added.items():
            assert fields[field_name].default == default
    stored = next(e for e in STORED_EVENTS if e["event_type"] == "patient.screening_recorded")
    total_only = {**stored["payload"], "answers": [], "total_only": True}
    decoded = _decode({**stored, "payload": total_only})
    assert decoded.total_only is True and decoded.answers == []
    assert json.loads(json.dumps(encode_payload(decoded))) == total_only


def test_an_unknown_stored_name_is_refused() -> None:
    """A name no class declares is an error, never a guess."""
    with pytest.raises(UnknownEventTypeError):
        _decode({**STORED_EVENTS[0], "event_type": "patient.no_such_event"})


def test_every_aggregate_declares_exactly_the_state_it_keeps() -> None:
    """A creation event builds an aggregate whose attributes are its declared state, so
    nothing set in ``__init__`` is left out of the snapshot."""
    created = [e for e in STORED_EVENTS if e["stream_version"] == 1]
    built = {type(_decode(e).mutate(None)) for e in created}
    assert built == set(AGGREGATE_CLASSES)
    for stored in created:
        aggregate = _decode(stored).mutate(None)
        declared = set(state_fields(type(aggregate)))
        assert set(vars(aggregate)) - _LIBRARY_ATTRIBUTES == declared


def test_snapshots_of_every_aggregate_were_stored_before() -> None:
    """The snapshot fixture covers each aggregate."""
    assert {s["aggregate"] for s in STORED_SNAPSHOTS} == {
        cls.__name__ for cls in AGGREGATES.values()
    }


@pytest.mark.parametrize(
    "stored",
    STORED_SNAPSHOTS,
    ids=[f"{s['aggregate']}-v{s['state']['version']}" for s in STORED_SNAPSHOTS],
)
def test_snapshots_written_before_restore_to_an_equal_state(stored: dict[str, Any]) -> None:
    """A snapshot written before the change restores under the same state version, and the
    restored aggregate snapshots to the same JSON and restores to an equal aggregate."""
    cls = next(c for c in AGGREGATES.values() if c.__name__ == stored["aggregate"])
    # The store's state version (services.eventstore): snapshots of another are ignored.
    version = getattr(cls, "SNAPSHOT_VERSION", 1)
    assert stored["state_version"] == f"{cls.STREAM_TYPE}:{version}"  # type: ignore[attr-defined]
    restored = cls.from_snapshot_state(stored["state"])  # type: ignore[attr-defined]
    again = json.loads(json.dumps(restored.snapshot_state()))
    assert again == stored["state"]
    assert cls.from_snapshot_state(again) == restored  # type: ignore[attr-defined]


def test_exact_types_and_their_subclasses_encode_as_before() -> None:
    import enum

    from domain.codec import encode_value as encode

    class Colour(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    assert encode(True) is True and encode(0) == 0 and encode(1.5) == 1.5
    assert encode(None) is None and encode("text") == "text"
    assert encode(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert encode(Colour.RED) == "red" and type(encode(Colour.RED)) is str
    assert encode(Level.HIGH) == 3 and type(encode(Level.HIGH)) is int
    assert type(encode(Name("x"))) is str
