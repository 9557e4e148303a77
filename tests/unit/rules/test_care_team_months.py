"""Care-team measures per month: the 6-month window's boundaries (and the 12-week one's
around week 12), who a patient counts under in a month, the caseload in a month, the time
to first psychiatric review and its median."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from domain.rules import DatedScore
from domain.rules.care_team_months import (
    care_manager_on,
    days_to_first_review,
    median_days,
    month_end,
    months_from_to,
    on_caseload_in,
)
from domain.rules.outcomes import six_month_outcome, twelve_week_outcome

INDEX = date(2026, 1, 10)
LATER = date(2027, 6, 1)
A = UUID("00000000-0000-4000-8000-0000000000a1")
B = UUID("00000000-0000-4000-8000-0000000000b2")


def at(days: int, total: int) -> DatedScore:
    return DatedScore(INDEX + timedelta(days=days), total)


@pytest.mark.parametrize(
    ("days", "counted"),
    [(119, False), (120, True), (180, True), (240, True), (241, False)],
)
def test_six_month_window_is_day_180_plus_or_minus_60(days: int, counted: bool) -> None:
    """Days 120 and 240 (6 months minus and plus 60 days) are in; 119 and 241 are out."""
    result = six_month_outcome([at(0, 20), at(days, 4)], LATER)
    assert result.measure == "six_months"
    assert result.follow_up is counted
    assert result.response is counted and result.remission is counted
    assert (result.window_start, result.window_end) == (at(120, 0).day, at(240, 0).day)


@pytest.mark.parametrize(
    ("days", "counted"),
    [(69, False), (70, True), (83, True), (84, True), (85, True), (98, True), (99, False)],
)
def test_twelve_weeks_is_day_84_minus_14_to_plus_14(days: int, counted: bool) -> None:
    """12 weeks (day 84) minus or plus a day is in, as are its ends 70 and 98; 69, 99 out."""
    assert twelve_week_outcome([at(0, 20), at(days, 4)], LATER).follow_up is counted


@pytest.mark.parametrize(("as_of_day", "closed"), [(240, False), (241, True)])
def test_six_month_window_closes_the_day_after_day_240(as_of_day: int, closed: bool) -> None:
    result = six_month_outcome([at(0, 20)], INDEX + timedelta(days=as_of_day))
    assert result.window_closed is closed
    assert not result.follow_up


def test_six_months_counts_the_most_recent_score_in_the_window_and_has_no_age_limit() -> None:
    result = six_month_outcome([at(0, 8), at(130, 2), at(230, 6)], LATER)
    assert result.eligible  # an index of 8 is outside DRR-E, not outside 6 months
    assert result.counted == at(230, 6)
    assert not result.response and not result.remission


def test_the_care_manager_of_a_day_is_the_last_assignment_on_or_before_it() -> None:
    history = [(date(2026, 1, 10), A), (date(2026, 3, 15), B), (date(2026, 5, 1), None)]
    assert care_manager_on(history, date(2026, 1, 9)) is None
    assert care_manager_on(history, date(2026, 1, 10)) == A
    assert care_manager_on(history, date(2026, 3, 14)) == A
    assert care_manager_on(history, date(2026, 3, 15)) == B
    assert care_manager_on(history, date(2026, 5, 1)) is None


def test_two_assignments_on_one_day_keep_their_recorded_order() -> None:
    history = [(date(2026, 2, 1), B), (date(2026, 1, 1), A), (date(2026, 2, 1), A)]
    assert care_manager_on(history, date(2026, 2, 28)) == A


@pytest.mark.parametrize(
    ("enrolled", "ended", "on"),
    [
        (date(2026, 3, 31), None, True),  # enrolled on the month's last day
        (date(2026, 4, 1), None, False),  # the day after
        (date(2026, 1, 5), date(2026, 3, 1), True),  # ended on the month's first day
        (date(2026, 1, 5), date(2026, 2, 28), False),  # ended the day before it
        (date(2026, 1, 5), None, True),
    ],
)
def test_on_the_caseload_in_a_month(enrolled: date, ended: date | None, on: bool) -> None:
    assert on_caseload_in(enrolled, ended, date(2026, 3, 1), date(2026, 3, 31)) is on


def test_time_to_first_review_counts_from_enrollment_and_only_reviews_by_as_of() -> None:
    enrolled = date(2026, 1, 10)
    assert days_to_first_review(enrolled, [date(2026, 1, 10)], LATER) == 0
    assert days_to_first_review(enrolled, [date(2026, 2, 9), date(2026, 1, 17)], LATER) == 7
    # A review before the enrollment day is not this enrollment's review.
    assert days_to_first_review(enrolled, [date(2026, 1, 9)], LATER) is None
    assert days_to_first_review(enrolled, [date(2026, 1, 17)], date(2026, 1, 16)) is None


def test_median_days_of_odd_and_even_counts_and_of_none() -> None:
    assert median_days([30, 7, 4]) == 7.0
    assert median_days([30, 7]) == 18.5
    assert median_days([]) is None


def test_months_run_across_the_year_end_and_end_on_their_last_day() -> None:
    assert months_from_to(date(2025, 11, 30), date(2026, 2, 1)) == [
        (2025, 11),
        (2025, 12),
        (2026, 1),
        (2026, 2),
    ]
    assert month_end(2024, 2) == date(2024, 2, 29)
    assert month_end(2026, 12) == date(2026, 12, 31)
