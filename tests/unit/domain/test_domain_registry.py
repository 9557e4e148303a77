"""The registry of aggregates and events: stable, unique names and storable payloads."""

import dataclasses
import inspect
import types
import typing
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

import pytest
from eventsourcing.domain import CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import get_topic

import domain.errors as errors_module
from domain.registry import AGGREGATE_CLASSES, AGGREGATES, EVENT_CLASSES, event_classes_of

ALLOWED_LEAVES = (str, int, bool, type(None), float, UUID, datetime, date)
ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def test_every_aggregate_is_registered_by_its_stream_type() -> None:
    """The four aggregates of a patient's care are keyed by patient, care_plan, referral,
    consultation_note; the organisation's calendar by organisation."""
    assert set(AGGREGATES) == {
        "patient",
        "care_plan",
        "referral",
        "consultation_note",
        "organisation",
    }
    for stream_type, cls in AGGREGATES.items():
        assert cls.STREAM_TYPE == stream_type  # type: ignore[attr-defined]
        assert get_topic(cls) == stream_type


def test_event_names_are_unique_and_every_event_class_has_one() -> None:
    """Each emitted event class has exactly one stable, unique EVENT_NAME."""
    seen: dict[str, type] = {}
    for agg in AGGREGATE_CLASSES:
        for cls in event_classes_of(agg):
            name = cls.EVENT_NAME  # type: ignore[attr-defined]
            assert name not in seen, name
            seen[name] = cls
    assert seen == EVENT_CLASSES


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_event_name_is_dotted_lower_case_with_its_stream_prefix(name: str) -> None:
    """Names look like 'patient.screening_recorded' and start with their stream type."""
    stream, _, rest = name.partition(".")
    assert stream in AGGREGATES
    assert rest and rest == rest.lower() and " " not in rest
    cls = EVENT_CLASSES[name]
    assert cls in event_classes_of(AGGREGATES[stream])


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_event_topic_is_its_stable_name_not_a_python_path(name: str) -> None:
    """The library stores the explicit topic, which equals EVENT_NAME."""
    assert get_topic(EVENT_CLASSES[name]) == name


def test_each_aggregate_has_exactly_one_creation_event() -> None:
    """Exactly one registered event per aggregate creates it."""
    for agg in AGGREGATE_CLASSES:
        created = [c for c in event_classes_of(agg) if issubclass(c, CanInitAggregate)]
        assert len(created) == 1, agg


def _check_hint(hint: Any, where: str) -> None:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            _check_hint(arg, where)
    elif origin in (list, tuple):
        for arg in args:
            if arg is not Ellipsis:
                _check_hint(arg, where)
    elif origin is dict:
        assert args[0] is str, f"{where}: dict keys must be str"
        if args[1] is not Any:  # free-form values are checked JSON-native by the command
            _check_hint(args[1], where)
    else:
        assert hint in ALLOWED_LEAVES, f"{where}: {hint!r} is not an allowed payload type"


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_event_payload_types_are_storable(name: str) -> None:
    """Payload fields are str/int/bool/None/UUID/datetime/date or lists/dicts of them."""
    cls = EVENT_CLASSES[name]
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in ENVELOPE:
            continue
        _check_hint(hints[field.name], f"{name}.{field.name}")


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_event_classes_are_frozen_and_documented(name: str) -> None:
    """Events are immutable and say what happened."""
    cls = EVENT_CLASSES[name]
    assert cls.__dataclass_params__.frozen
    assert issubclass(cls, CanMutateAggregate)
    assert inspect.getdoc(cls)


def test_versioned_events_have_every_upcaster() -> None:
    """A class_version N event has upcast_v1_v2 ... upcast_v(N-1)_vN."""
    versioned = 0
    for cls in EVENT_CLASSES.values():
        version = getattr(cls, "class_version", 1)
        for v in range(1, version):
            assert callable(getattr(cls, f"upcast_v{v}_v{v + 1}"))
        versioned += version > 1
    assert versioned >= 1


def test_error_codes_are_unique_upper_case_and_categorised() -> None:
    """Every error has its own stable code and one of the four categories."""
    base = errors_module.DomainError
    categories = (
        errors_module.ValidationError,
        errors_module.InvalidTransitionError,
        errors_module.NotFoundError,
        errors_module.NotAllowedError,
    )
    classes = [
        c for c in vars(errors_module).values() if isinstance(c, type) and issubclass(c, base)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert cls.code == cls.code.upper()
        assert cls.__name__.endswith("Error")
        if cls is not base:
            assert issubclass(cls, categories), cls


def test_class_var_annotations_are_not_payload_fields() -> None:
    """EVENT_NAME, TOPIC and class_version stay on the class."""
    for cls in EVENT_CLASSES.values():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert not fields & {"EVENT_NAME", "TOPIC", "class_version"}
    assert ClassVar is not None
