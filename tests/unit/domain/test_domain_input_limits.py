"""Values no record may hold: instants outside 1900-2199 UTC and control characters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain.common import check_occurred_at, check_payload_mapping, require_aware, require_text
from domain.errors import ControlCharacterError, DatetimeOutOfRangeError
from tests.factories import new_patient

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "instant",
    [
        datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
    ],
)
def test_instants_outside_the_accepted_years_are_refused(instant: datetime) -> None:
    """Before 1900 UTC, or beyond what UTC conversion can hold, is a validation error."""
    with pytest.raises(DatetimeOutOfRangeError):
        require_aware(instant, "appointment_at")
    if instant < NOW:
        with pytest.raises(DatetimeOutOfRangeError):
            check_occurred_at(instant, NOW)


def test_the_first_accepted_instant_is_midnight_1900_utc() -> None:
    """The boundary itself is accepted."""
    check_occurred_at(datetime(1900, 1, 1, tzinfo=UTC), NOW)


@pytest.mark.parametrize("text", ["a\x00b", "x\x1by", "\x07"])
def test_text_with_control_characters_is_refused(text: str) -> None:
    """NUL (which jsonb cannot store) and other C0 controls are refused."""
    with pytest.raises(ControlCharacterError):
        require_text(text, "note")
    with pytest.raises(ControlCharacterError):
        check_payload_mapping({"k": text}, "inputs")


def test_tabs_and_newlines_are_ordinary_text() -> None:
    """Multi-line notes stay possible."""
    assert require_text("line one\n\tline two", "note") == "line one\n\tline two"


def test_a_registration_with_a_nul_in_a_name_is_refused_before_any_event() -> None:
    """The command fails, so nothing reaches the log or the read models."""
    with pytest.raises(ControlCharacterError):
        new_patient(given_name="a\x00b", birth_date=date(1980, 1, 1))
