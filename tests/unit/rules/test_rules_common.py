"""Shared rule machinery: rule books by date, calendar days and the improvement ratio."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from domain.rules import (
    DatedScore,
    NaiveDatetimeError,
    NoRuleInForceError,
    RuleBook,
    RuleBookError,
    calendar_day,
    improvement,
)


@dataclass(frozen=True)
class Version:
    version: str
    effective_from: date


OLD = Version("1", date(2020, 1, 1))
NEW = Version("2", date(2022, 7, 1))


@pytest.mark.parametrize(
    ("on", "version"),
    [
        (date(2020, 1, 1), "1"),
        (date(2022, 6, 30), "1"),
        (date(2022, 7, 1), "2"),
        (date(2030, 1, 1), "2"),
    ],
)
def test_rule_book_picks_the_latest_version_in_force(on: date, version: str) -> None:
    """The version in force is the last one whose effective date is on or before the day."""
    assert RuleBook("r", (OLD, NEW)).in_force(on).version == version


def test_rule_book_refuses_a_day_before_its_first_version() -> None:
    """A day before every version raises with the rule id and earliest date."""
    with pytest.raises(NoRuleInForceError) as error:
        RuleBook("r", (OLD, NEW)).in_force(date(2019, 12, 31))
    assert error.value.rule_id == "r"
    assert error.value.earliest == date(2020, 1, 1)


@pytest.mark.parametrize(
    "versions", [(), (NEW, OLD), (OLD, Version("1", date(2021, 1, 1))), (OLD, OLD)]
)
def test_rule_book_refuses_empty_unordered_or_duplicate_versions(
    versions: tuple[Version, ...],
) -> None:
    """Versions must exist, be in strictly increasing date order and have unique names."""
    with pytest.raises(RuleBookError):
        RuleBook("r", versions)


def test_calendar_day_reads_an_aware_datetime_in_its_own_zone() -> None:
    """23:30 in New York on 1 March is 1 March, although it is 2 March in UTC."""
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2024, 3, 1, 23, 30, tzinfo=new_york)
    assert calendar_day(moment) == date(2024, 3, 1)
    assert calendar_day(moment.astimezone(UTC)) == date(2024, 3, 2)
    assert calendar_day(date(2024, 3, 1)) == date(2024, 3, 1)


def test_calendar_day_refuses_a_naive_datetime() -> None:
    """A datetime without a zone is refused rather than guessed."""
    with pytest.raises(NaiveDatetimeError):
        calendar_day(datetime(2024, 3, 1, 12, 0))


def test_a_dated_score_refuses_a_naive_datetime() -> None:
    """DatedScore checks its effective time at construction."""
    with pytest.raises(NaiveDatetimeError):
        DatedScore(datetime(2024, 3, 1, 12, 0), 10)


@pytest.mark.parametrize(
    ("baseline", "latest", "ratio"),
    [
        (20, 10, Fraction(1, 2)),
        (100, 51, Fraction(49, 100)),
        (10, 12, Fraction(-1, 5)),
        (0, 0, None),
        (0, 7, None),
    ],
)
def test_improvement_is_exact_and_undefined_for_a_zero_baseline(
    baseline: int, latest: int, ratio: Fraction | None
) -> None:
    """(baseline - latest) / baseline as a Fraction; None when the baseline is 0."""
    assert improvement(baseline, latest) == ratio
