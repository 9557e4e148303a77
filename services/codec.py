"""Turns domain events into stored rows and back.

Payloads are plain JSON (UUIDs and datetimes as strings) so that SQL, auditors, the
Kafka relay and partner feeds can all read them; the event class's type hints say how
to turn each value back into a Python object. Stored names are the stable
``EVENT_NAME`` of each class (never a Python path) plus ``class_version``; older
versions are upcast with the class's ``upcast_vN_vM`` functions before decoding.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Hashable, Mapping
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.registry import AGGREGATES, EVENT_CLASSES

# Fields every eventsourcing event has, which the store keeps in columns instead.
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)


class UnknownEventTypeError(LookupError):
    """The log holds an event type this code does not know (a newer writer?)."""


def encode_value(value: Any) -> Any:
    """A payload value as plain JSON."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in an event payload")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot store a {type(value).__name__} in an event payload")


def _identity(value: Any) -> Any:
    return value


def _decoder_for(hint: Any) -> Callable[[Any], Any]:
    """A function turning the JSON form of a value of type ``hint`` back into that type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return _identity
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            dec = _decoder_for(inner[0])
            return lambda v: None if v is None else dec(v)
        return _identity
    if origin in (list, tuple, typing.Sequence, frozenset, set) or (
        origin is not None and getattr(origin, "__name__", "") in ("Sequence",)
    ):
        item = args[0] if args else Any
        dec = _decoder_for(item)
        container: Callable[[Any], Any] = tuple if origin is tuple else list
        if origin in (frozenset, set):
            container = origin
        return lambda v: container(dec(x) for x in v)
    if origin in (dict, typing.Mapping) or (origin is not None and origin.__name__ == "Mapping"):
        dec = _decoder_for(args[1]) if len(args) == 2 else _identity
        return lambda v: {k: dec(x) for k, x in v.items()}
    if hint is UUID:
        return lambda v: v if isinstance(v, UUID) else UUID(v)
    if hint is datetime:
        return lambda v: v if isinstance(v, datetime) else datetime.fromisoformat(v)
    if hint is date:
        return lambda v: v if isinstance(v, date) else date.fromisoformat(v)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    return _identity


@functools.cache
def _field_decoders(cls: Any) -> dict[str, Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {name: _decoder_for(h) for name, h in hints.items() if name not in _ENVELOPE_FIELDS}


@functools.cache
def _aggregate_topic_for(event_cls: Any) -> str | None:
    """The originator_topic a Created event needs: the topic of its aggregate class."""
    for agg in AGGREGATES.values():
        if any(v is event_cls for v in vars(agg).values()):
            return get_topic(agg)
    return None


@functools.cache
def _created_topic(event_cls: Any) -> str | None:
    """The aggregate topic a creation event carries (None for other events); cached, since
    type hints are costly and every decoded event asks."""
    topic = _aggregate_topic_for(event_cls)
    if topic is not None and "originator_topic" in typing.get_type_hints(event_cls):
        return topic
    return None


def event_name(event: Any) -> str:
    name: str = type(event).EVENT_NAME
    return name


def event_version(event: Any) -> int:
    return int(getattr(type(event), "class_version", 1))


def encode_payload(event: Any) -> dict[str, Any]:
    """The event's own attributes as plain JSON (envelope fields live in columns)."""
    return {k: encode_value(v) for k, v in vars(event).items() if k not in _ENVELOPE_FIELDS}


def decode_event(
    *,
    event_type: str,
    event_version: int,
    payload: Mapping[str, Any],
    stream_id: UUID,
    stream_version: int,
    recorded_at: datetime,
) -> Any:
    """Rebuilds the domain event object, upcasting old versions first."""
    try:
        cls = EVENT_CLASSES[event_type]
    except KeyError:
        raise UnknownEventTypeError(event_type) from None
    state: dict[str, Any] = dict(payload)
    target = int(getattr(cls, "class_version", 1))
    version = event_version
    while version < target:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    decoders = _field_decoders(cast(Hashable, cls))
    # None passes through every decoder: a forgotten patient's identifying fields are None.
    decoded = {k: None if v is None else decoders.get(k, _identity)(v) for k, v in state.items()}
    decoded["originator_id"] = stream_id
    decoded["originator_version"] = stream_version
    decoded["timestamp"] = recorded_at
    topic = _created_topic(cast(Hashable, cls))
    if topic is not None:
        decoded["originator_topic"] = topic
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", decoded)
    return obj


__all__ = [
    "UnknownEventTypeError",
    "decode_event",
    "encode_payload",
    "encode_value",
    "event_name",
    "event_version",
]
