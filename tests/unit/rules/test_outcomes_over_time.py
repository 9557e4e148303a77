"""GAD-7 response and remission; utilisation before and after enrollment per 1,000."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest

from domain.rules import DatedScore
from domain.rules.outcomes import (
    CohortGad7,
    EnrolledPatient,
    Gad7Course,
    UtilisationKind,
    UtilisationWindow,
    cohort_gad7,
    cohort_utilisation,
    gad7_remission,
    gad7_response,
    gad7_six_month_outcome,
    gad7_twelve_week_outcome,
    utilisation_window,
)

ED = UtilisationKind.EMERGENCY_VISIT
HOSPITAL = UtilisationKind.HOSPITALISATION


@pytest.mark.parametrize(
    ("baseline", "total", "expected"),
    [(10, 5, True), (10, 6, False), (15, 7, True), (15, 8, False), (0, 0, False), (1, 0, True)],
)
def test_gad7_response_is_at_least_half_below_baseline(
    baseline: int, total: int, expected: bool
) -> None:
    assert gad7_response(baseline, total) is expected


@pytest.mark.parametrize(("total", "expected"), [(0, True), (4, True), (5, False), (21, False)])
def test_gad7_remission_is_below_five(total: int, expected: bool) -> None:
    assert gad7_remission(total) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-366, None),
        (-365, UtilisationWindow.BEFORE),
        (-1, UtilisationWindow.BEFORE),
        (0, None),
        (1, UtilisationWindow.AFTER),
        (365, UtilisationWindow.AFTER),
        (366, None),
    ],
)
def test_windows_are_365_days_each_side_without_the_enrollment_day(
    offset: int, expected: UtilisationWindow | None
) -> None:
    enrolled = date(2025, 3, 1)
    assert utilisation_window(enrolled, enrolled + timedelta(days=offset)) is expected


def test_cohort_rates_per_1000_by_enrollment_month_equal_a_hand_computation() -> None:
    jan = date(2025, 1, 10)
    feb = date(2025, 2, 1)
    patients = [
        # January cohort, 4 patients: ED visits before 3 (2 + 1), after 1; one hospital stay.
        EnrolledPatient(
            jan,
            (
                (ED, jan - timedelta(days=5)),
                (ED, jan - timedelta(days=300)),
                (ED, jan + timedelta(days=20)),
                (HOSPITAL, jan - timedelta(1)),
            ),
        ),
        EnrolledPatient(jan, ((ED, jan - timedelta(days=1)), (ED, jan))),  # enrollment day: none
        EnrolledPatient(jan, ((ED, jan - timedelta(days=400)),)),  # outside the window
        EnrolledPatient(jan),
        # February cohort, 1 patient: whose after-window is still open on the as-of day.
        EnrolledPatient(feb, ((ED, feb - timedelta(days=2)), (ED, feb + timedelta(days=3)))),
        # Enrolled after the as-of day: not counted.
        EnrolledPatient(date(2026, 6, 1), ((ED, date(2026, 5, 1)),)),
    ]
    as_of = jan + timedelta(days=366)  # January's windows closed, February's not
    rows = cohort_utilisation(patients, ED, as_of)
    assert [
        (r.year, r.month, r.enrolled, r.before_events, r.after_patients, r.after_events)
        for r in rows
    ] == [(2025, 1, 4, 3, 4, 1), (2025, 2, 1, 1, 0, 0)]
    assert rows[0].before_per_1000 == Fraction(750)
    assert rows[0].after_per_1000 == Fraction(250)
    assert rows[1].before_per_1000 == Fraction(1000)
    assert rows[1].after_per_1000 is None
    assert [r.before_events for r in cohort_utilisation(patients, HOSPITAL, as_of)] == [1, 0]


def test_events_after_the_as_of_day_are_not_counted() -> None:
    enrolled = date(2025, 1, 10)
    patient = EnrolledPatient(enrolled, ((ED, enrolled + timedelta(days=30)),))
    day_29 = cohort_utilisation([patient], ED, enrolled + timedelta(days=29))
    assert day_29[0].after_patients == 0
    assert cohort_utilisation([patient], ED, enrolled + timedelta(days=366))[0].after_events == 1


# --- GAD-7 per enrollment-month cohort ---------------------------------------------------


def test_gad7_cohort_counts_baseline_follow_up_response_and_remission() -> None:
    jan = date(2025, 1, 15)
    patients = [
        # baseline 16 (30 days before enrollment still counts), latest 4: both.
        Gad7Course(
            jan, ((jan - timedelta(days=30), 16), (date(2025, 3, 1), 9), (date(2025, 4, 1), 4))
        ),
        # a score 31 days before enrollment is no baseline: the baseline is 10, latest 5.
        Gad7Course(jan, ((jan - timedelta(days=31), 20), (jan, 10), (date(2025, 4, 1), 5))),
        # baseline only.
        Gad7Course(jan, ((jan, 8),)),
        # nothing.
        Gad7Course(date(2025, 1, 31)),
        # enrolled after the as-of day: not counted.
        Gad7Course(date(2025, 5, 1), ((date(2025, 5, 1), 12),)),
    ]
    assert cohort_gad7(patients, date(2025, 4, 30)) == [CohortGad7(2025, 1, 4, 3, 2, 2, 1)]


def test_gad7_cohort_ignores_scores_after_the_as_of_day() -> None:
    jan = date(2025, 1, 15)
    course = Gad7Course(jan, ((jan, 16), (date(2025, 6, 1), 2)))
    assert cohort_gad7([course], date(2025, 5, 31)) == [CohortGad7(2025, 1, 1, 1, 0, 0, 0)]
    assert cohort_gad7([course], date(2025, 6, 1)) == [CohortGad7(2025, 1, 1, 1, 1, 1, 1)]


# --- GAD-7 at 12 weeks and 6 months: the PHQ-9 windows, GAD-7 thresholds -----------------

INDEX_DAY = date(2026, 1, 10)


def _gad7(*scores: tuple[int, int]) -> list[DatedScore]:
    """(days after the index, total) -> dated scores."""
    return [DatedScore(INDEX_DAY + timedelta(days=d), t) for d, t in scores]


@pytest.mark.parametrize(
    ("day", "total", "follow_up", "response", "remission"),
    [
        (69, 2, False, False, False),  # before the window
        (70, 6, True, True, False),  # first day; exactly half of 12 responds; 6 is not < 5
        (98, 4, True, True, True),  # last day
        (99, 0, False, False, False),  # after it
        (84, 7, True, False, False),  # 7 is less than half below 12
    ],
)
def test_gad7_at_12_weeks_reads_days_70_to_98_after_the_first_gad7(
    day: int, total: int, follow_up: bool, response: bool, remission: bool
) -> None:
    outcome = gad7_twelve_week_outcome(_gad7((0, 12), (day, total)), date(2026, 12, 1))
    assert (outcome.follow_up, outcome.response, outcome.remission) == (
        follow_up,
        response,
        remission,
    )
    assert outcome.window_closed and outcome.measure == "gad7_twelve_weeks"


@pytest.mark.parametrize(
    ("day", "follow_up"), [(119, False), (120, True), (240, True), (241, False)]
)
def test_gad7_at_6_months_reads_days_120_to_240(day: int, follow_up: bool) -> None:
    outcome = gad7_six_month_outcome(_gad7((0, 10), (day, 4)), date(2026, 12, 1))
    assert outcome.follow_up is follow_up
    assert outcome.remission is follow_up and outcome.response is follow_up


def test_gad7_window_is_open_until_its_last_day_has_passed_and_the_latest_score_counts() -> None:
    scores = _gad7((0, 12), (72, 3), (90, 8))
    running = gad7_twelve_week_outcome(scores, INDEX_DAY + timedelta(days=98))
    assert not running.window_closed
    closed = gad7_twelve_week_outcome(scores, INDEX_DAY + timedelta(days=99))
    assert closed.window_closed
    # The most recent score in the window (8 on day 90), not the best one (3 on day 72).
    assert closed.counted == DatedScore(INDEX_DAY + timedelta(days=90), 8)
    assert (closed.response, closed.remission) == (False, False)
    # As of day 80 only the score of day 72 was taken.
    early = gad7_twelve_week_outcome(scores, INDEX_DAY + timedelta(days=80))
    assert (early.response, early.remission) == (True, True)


def test_gad7_window_with_a_baseline_of_zero_never_responds() -> None:
    outcome = gad7_twelve_week_outcome(_gad7((0, 0), (84, 0)), date(2026, 12, 1))
    assert (outcome.response, outcome.remission) == (False, True)
