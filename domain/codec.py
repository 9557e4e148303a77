"""The one JSON codec of careteam: values, event payloads and aggregate snapshots.

Everything stored is plain JSON (UUIDs, dates and datetimes as ISO strings, enums as
their value) so that SQL, auditors, the Kafka relay and partner feeds can read it. The
way back is driven by type hints: an event class's field hints decode its payload, an
aggregate's state annotations decode its snapshot. Nothing here lists fields by hand.

An event is declared once, as a class with annotated fields inside its aggregate;
``EVENT_NAME`` and ``class_version`` are its stored name and version, and
``upcast_vN_vM`` static methods bring an older stored payload up to the current shape.
An aggregate's state is declared once, as annotations on the aggregate class (the
library makes an annotated aggregate a dataclass, so :func:`dataclasses.fields` lists
them); :func:`snapshot_aggregate` and :func:`restore_aggregate` work from those.
"""

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, Self, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

# Fields every eventsourcing event has, which the store keeps in columns instead.
ENVELOPE_FIELDS: Final = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

_JSON_SCALARS: Final = (str, int, float, bool)

# --- values -----------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """A value as plain JSON; refuses a naive datetime and anything it cannot store."""
    # The usual exact types first, by identity (an event's fields are mostly these);
    # subclasses (an enum member, a str subclass) take the checks below.
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if kind is UUID:
        return str(value)
    if isinstance(value, enum.Enum):
        return encode_value(value.value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a stored value")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(encode_value(k)): encode_value(v) for k, v in value.items()}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _identity(value: Any) -> Any:
    return value


def _optional(dec: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else dec(v)


def _sequence(origin: Any, args: tuple[Any, ...]) -> Callable[[Any], Any]:
    item = args[0] if args else Any
    dec = decoder_for(item)
    if origin is tuple:
        return lambda v: tuple(dec(x) for x in v)
    if origin in (set, frozenset):
        return lambda v: origin(dec(x) for x in v)
    return lambda v: [dec(x) for x in v]


def _mapping(args: tuple[Any, ...]) -> Callable[[Any], Any]:
    key = decoder_for(args[0]) if len(args) == 2 else _identity
    dec = decoder_for(args[1]) if len(args) == 2 else _identity
    return lambda v: {key(k): dec(x) for k, x in v.items()}


def _dataclass(hint: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(hint)
    decoders = {f.name: decoder_for(hints[f.name]) for f in dataclasses.fields(hint)}
    return lambda v: hint(**{name: dec(v[name]) for name, dec in decoders.items()})


def _of_type(hint: type, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: v if isinstance(v, hint) else parse(v)


@functools.cache
def decoder_for(hint: Any) -> Callable[[Any], Any]:
    """A function turning the JSON form of a value of type ``hint`` back into that type.

    None decodes to None whatever the hint (a forgotten patient's identifying fields
    are None). A hint the codec does not know raises TypeError when the decoder is built,
    so a new field of an unknown type fails the codec tests instead of decoding wrongly.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return _identity
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _optional(decoder_for(inner[0]))
        if all(a in _JSON_SCALARS for a in inner):
            return _identity
        raise TypeError(f"cannot decode a union of {inner!r}")
    if origin in (list, tuple, set, frozenset, Sequence):
        return _optional(_sequence(origin, args))
    if origin in (dict, Mapping):
        return _optional(_mapping(args))
    if hint is UUID:
        return _optional(_of_type(UUID, UUID))
    if hint is datetime:
        return _optional(_of_type(datetime, datetime.fromisoformat))
    if hint is date:
        return _optional(_of_type(date, date.fromisoformat))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _optional(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _optional(_dataclass(hint))
    if hint in _JSON_SCALARS:
        return _identity
    raise TypeError(f"cannot decode a value of type {hint!r}")


def decode_value(hint: Any, value: Any) -> Any:
    """The JSON form ``value`` of a ``hint``-typed value, decoded."""
    return decoder_for(hint)(value)


# --- events -----------------------------------------------------------------------------


def event_name(event: Any) -> str:
    """The stable stored name of an event (its class's ``EVENT_NAME``)."""
    name: str = type(event).EVENT_NAME
    return name


def event_version(event: Any) -> int:
    """The stored version of an event's shape (its class's ``class_version``, default 1)."""
    return int(getattr(type(event), "class_version", 1))


@functools.cache
def payload_decoders(event_cls: Hashable) -> dict[str, Callable[[Any], Any]]:
    """A decoder per payload field of an event class (its dataclass fields, less the
    envelope), built from the class's type hints."""
    cls = cast(Any, event_cls)
    hints = typing.get_type_hints(cls)
    return {
        f.name: decoder_for(hints[f.name])
        for f in dataclasses.fields(cls)
        if f.name not in ENVELOPE_FIELDS
    }


def encode_payload(event: Any) -> dict[str, Any]:
    """The event's own attributes as plain JSON (envelope fields live in columns)."""
    return {k: encode_value(v) for k, v in vars(event).items() if k not in ENVELOPE_FIELDS}


def decode_payload(
    event_cls: type[Any], stored_version: int, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """A stored payload brought up to the class's version (its upcasters, in turn) and
    decoded by the class's type hints."""
    state: dict[str, Any] = dict(payload)
    target = int(getattr(event_cls, "class_version", 1))
    version = stored_version
    while version < target:
        getattr(event_cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    decoders = payload_decoders(cast(Hashable, event_cls))
    return {k: decoders.get(k, _identity)(v) for k, v in state.items()}


# --- snapshots --------------------------------------------------------------------------

A = TypeVar("A", bound=Aggregate)

SNAPSHOT_FORMAT: Final = 1


@functools.cache
def state_fields(aggregate_cls: Hashable) -> dict[str, Any]:
    """The declared state of an aggregate class: its dataclass fields and their hints."""
    cls = cast(Any, aggregate_cls)
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def snapshot_aggregate(agg: Aggregate) -> dict[str, Any]:
    """The library fields plus the declared state of ``agg``, as JSON-native values."""
    return {
        "snapshot_format": SNAPSHOT_FORMAT,
        "id": str(agg.id),
        "version": agg.version,
        "created_on": agg.created_on.isoformat(),
        "modified_on": agg.modified_on.isoformat(),
        "state": {name: encode_value(getattr(agg, name)) for name in state_fields(type(agg))},
    }


def restore_aggregate(cls: type[A], state: Mapping[str, Any]) -> A:
    """Rebuild an aggregate from :func:`snapshot_aggregate` output without replaying."""
    if state.get("snapshot_format") != SNAPSHOT_FORMAT:
        raise ValueError("unsupported snapshot format")
    agg = object.__new__(cls)
    # The library keeps its fields in these private attributes (BaseAggregate.__base_init__);
    # setting them directly mirrors what its own Snapshot.mutate does.
    agg.__dict__.update(
        _id=UUID(state["id"]),
        _version=int(state["version"]),
        _created_on=datetime.fromisoformat(state["created_on"]),
        _modified_on=datetime.fromisoformat(state["modified_on"]),
        _pending_events=[],
    )
    values = state["state"]
    for name, hint in state_fields(cls).items():
        setattr(agg, name, decode_value(hint, values[name]))
    return agg


class Snapshotting:
    """Mixin for an aggregate: its snapshot is its declared state (see above)."""

    def snapshot_state(self) -> dict[str, Any]:
        """The whole state as JSON-native values."""
        return snapshot_aggregate(cast(Aggregate, self))

    @classmethod
    def from_snapshot_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild the aggregate from :meth:`snapshot_state` output."""
        restored: Self = restore_aggregate(cast(Any, cls), state)
        return restored
