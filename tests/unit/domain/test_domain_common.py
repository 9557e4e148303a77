"""Shared checks and the snapshot codec."""

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.common import (
    FlagKind,
    check_occurred_at,
    check_payload_mapping,
    from_json,
    optional_text,
    require_enum,
    require_text,
    to_json,
)
from domain.errors import (
    BlankValueError,
    InvalidEnumValueError,
    InvalidPayloadValueError,
    NaiveDatetimeError,
    OccurredInFutureError,
    ValueTooLongError,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass
class Sample:
    """A record with every snapshot type."""

    when: datetime
    day: date
    ref: UUID
    kind: FlagKind
    maybe: int | None
    items: list[int | None]
    by_id: dict[UUID, str]


def test_to_json_and_from_json_round_trip_a_dataclass() -> None:
    """Datetimes, dates, UUIDs, enums, optionals, lists and UUID-keyed dicts survive."""
    key = uuid4()
    sample = Sample(
        NOW, date(2026, 1, 2), uuid4(), FlagKind.SAFETY_RISK, None, [1, None], {key: "x"}
    )
    data = to_json(sample)
    assert data["when"] == NOW.isoformat()
    assert data["by_id"] == {str(key): "x"}
    assert from_json(Sample, data) == sample


def test_to_json_refuses_unknown_objects() -> None:
    """Only known types are snapshotted."""
    with pytest.raises(TypeError):
        to_json(object())


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
