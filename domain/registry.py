"""Every aggregate by stream type and every event class by stable event name, and the
decoding of a stored event by its name.

The event store looks classes up here; it never stores Python paths. Built from class
attributes at import time (no I/O). Payload values go through :mod:`domain.codec`.
"""

import functools
import typing
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import get_topic

from domain.care_plan import CarePlan
from domain.codec import decode_payload
from domain.consultation import ConsultationNote
from domain.organisation import Organisation
from domain.patient import Patient
from domain.referral import Referral

AGGREGATE_CLASSES: tuple[type[Aggregate], ...] = (
    Patient,
    CarePlan,
    Referral,
    ConsultationNote,
    Organisation,
)


def event_classes_of(aggregate_cls: type[Aggregate]) -> list[type[CanMutateAggregate[Any]]]:
    """The event classes an aggregate can emit (those with an ``EVENT_NAME``)."""
    found: list[type[CanMutateAggregate[Any]]] = []
    for value in vars(aggregate_cls).values():
        if (
            isinstance(value, type)
            and issubclass(value, CanMutateAggregate)
            and isinstance(getattr(value, "EVENT_NAME", None), str)
        ):
            found.append(value)
    return found


def _build_aggregates() -> dict[str, type[Aggregate]]:
    out: dict[str, type[Aggregate]] = {}
    for cls in AGGREGATE_CLASSES:
        stream_type = getattr(cls, "STREAM_TYPE", None)
        if not isinstance(stream_type, str) or stream_type in out:
            raise RuntimeError(f"bad or duplicate STREAM_TYPE on {cls.__name__}")
        out[stream_type] = cls
    return out


def _build_events() -> dict[str, type[Any]]:
    out: dict[str, type[Any]] = {}
    for cls in AGGREGATE_CLASSES:
        for event_cls in event_classes_of(cls):
            name: str = event_cls.EVENT_NAME  # type: ignore[attr-defined]
            if name in out:
                raise RuntimeError(f"duplicate EVENT_NAME {name}")
            out[name] = event_cls
    return out


AGGREGATES: dict[str, type[Aggregate]] = _build_aggregates()
EVENT_CLASSES: dict[str, type[Any]] = _build_events()


class UnknownEventTypeError(LookupError):
    """The log holds an event type this code does not know (a newer writer?)."""


@functools.cache
def _created_topic(event_cls: Hashable) -> str | None:
    """The originator_topic a creation event carries: its aggregate's topic (None for
    other events); cached, since type hints are costly and every decoded event asks."""
    for agg in AGGREGATES.values():
        if any(v is event_cls for v in vars(agg).values()):
            if "originator_topic" in typing.get_type_hints(cast(Any, event_cls)):
                return get_topic(agg)
            return None
    return None


def decode_event(
    *,
    event_type: str,
    event_version: int,
    payload: Mapping[str, Any],
    stream_id: UUID,
    stream_version: int,
    recorded_at: datetime,
) -> Any:
    """Rebuilds the domain event object from its stored form, upcasting old versions."""
    try:
        cls = EVENT_CLASSES[event_type]
    except KeyError:
        raise UnknownEventTypeError(event_type) from None
    decoded = decode_payload(cls, event_version, payload)
    decoded["originator_id"] = stream_id
    decoded["originator_version"] = stream_version
    decoded["timestamp"] = recorded_at
    topic = _created_topic(cast(Hashable, cls))
    if topic is not None:
        decoded["originator_topic"] = topic
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", decoded)
    return obj
