"""GAD-7 response and remission; utilisation before and after enrollment per 1,000."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest

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
