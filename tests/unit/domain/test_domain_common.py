"""Shared checks of the domain."""

import enum
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest

from domain.common import (
    FlagKind,
    check_occurred_at,
    check_payload_mapping,
    optional_text,
    require_enum,
    require_text,
)
from domain.errors import (
    BlankValueError,
    InvalidEnumValueError,
    InvalidPayloadValueError,
    NaiveDatetimeError,
    OccurredInFutureError,
    ValueTooLongError,
)
from domain.patient import Patient
from tests.factories import new_patient

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("occurred", "now", "error"),
    [
        (datetime(2026, 1, 1), NOW, NaiveDatetimeError),
        (NOW, datetime(2026, 6, 1), NaiveDatetimeError),
        (datetime(2026, 6, 2, tzinfo=UTC), NOW, OccurredInFutureError),
    ],
)
def test_check_occurred_at_rejects_naive_and_future_times(
    occurred: datetime, now: datetime, error: type[Exception]
) -> None:
    """Naive times and effective times after now are refused."""
    with pytest.raises(error):
        check_occurred_at(occurred, now)


def test_require_text_strips_and_limits_length() -> None:
    """Text is stripped; blank and overlong text raise."""
    assert require_text("  a ", "f") == "a"
    with pytest.raises(BlankValueError):
        require_text("", "f")
    with pytest.raises(ValueTooLongError):
        require_text("abc", "f", max_length=2)
    assert optional_text("  ", "f") is None


def test_require_enum_accepts_values_and_members() -> None:
    """A member or its string value is accepted; others raise with the field name."""
    assert require_enum(FlagKind, "safety_risk", "kind") is FlagKind.SAFETY_RISK
    assert require_enum(FlagKind, FlagKind.TEAM_MEMBER, "kind") is FlagKind.TEAM_MEMBER
    with pytest.raises(InvalidEnumValueError) as info:
        require_enum(FlagKind, "nope", "kind")
    assert info.value.field == "kind"


class Colour(enum.Enum):
    """A non-str enum for the payload check."""

    RED = 1


def test_payload_mapping_becomes_json_native() -> None:
    """UUIDs, dates, datetimes and enums turn into their JSON forms."""
    ref = uuid4()
    checked = check_payload_mapping(
        {"id": ref, "on": date(2026, 1, 1), "at": NOW, "c": Colour.RED, "l": [1, 2.5, None]},
        "inputs",
    )
    assert checked == {
        "id": str(ref),
        "on": "2026-01-01",
        "at": NOW.isoformat(),
        "c": 1,
        "l": [1, 2.5, None],
    }


@pytest.mark.parametrize(
    "bad",
    [{"x": object()}, {"x": {1: "a"}}, {"x": datetime(2026, 1, 1)}, {"x": {1, 2}}],
)
def test_payload_mapping_refuses_unstorable_values(bad: dict[str, Any]) -> None:
    """Objects, non-str keys, naive datetimes and sets are refused."""
    with pytest.raises((InvalidPayloadValueError, NaiveDatetimeError)):
        check_payload_mapping(bad, "inputs")


def test_an_event_is_triggered_only_with_the_fields_its_class_declares() -> None:
    """A private apply method triggers its event class: a field the class does not declare,
    or one it lacks, is refused and nothing is applied or kept pending."""
    patient = new_patient(now=NOW)
    version = patient.version
    with pytest.raises(TypeError):
        patient._referred(episode_number=1, occurred_at=NOW, timestamp=NOW, extra=1)
    with pytest.raises(TypeError):
        patient._referred(occurred_at=NOW, timestamp=NOW)
    assert patient.version == version
    assert patient.episodes == []
    assert [type(e).__name__ for e in patient.collect_events()] == ["Registered"]


def test_an_event_is_triggered_on_an_aggregate_not_its_class() -> None:
    """The class attribute of an apply method is no callable of its own."""
    with pytest.raises(AttributeError):
        Patient._referred  # noqa: B018


def test_a_creation_event_is_not_triggered_on_an_existing_aggregate() -> None:
    """The creation event's apply method is no trigger: the class method creates."""
    patient = new_patient(now=NOW)
    with pytest.raises(AttributeError):
        patient._registered  # noqa: B018
    assert patient.given_name == "Test"
