"""Every aggregate by stream type and every event class by stable event name.

The event store and the codec look classes up here; they never store Python paths.
Built from class attributes at import time (no I/O).
"""

from typing import Any

from eventsourcing.domain import Aggregate, CanMutateAggregate

from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.patient import Patient
from domain.referral import Referral

AGGREGATE_CLASSES: tuple[type[Aggregate], ...] = (Patient, CarePlan, Referral, ConsultationNote)


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
