"""Outcome measures: baseline, response, remission, DRR-E, CMS159, DMS-E and DSF-E."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from domain.rules import DatedScore, NoRuleInForceError, ScoreOutOfRangeError
from domain.rules.outcomes import (
    EpisodeFacts,
    Ineligibility,
    MeasureStatus,
    baseline,
    cms159,
    dms_e,
    drr_e,
    dsf_e,
    episode_outcomes,
    is_remission,
    is_response,
    rules_for,
    twelve_week_outcome,
    utilisation_period,
)

INDEX = date(2024, 2, 1)
LATER = date(2026, 1, 1)
RULES = rules_for(INDEX)


def at(days: int, total: int) -> DatedScore:
    """A complete PHQ-9 taken ``days`` after the index day."""
    return DatedScore(INDEX + timedelta(days=days), total)


def test_baseline_is_the_first_score_by_effective_time_not_by_input_order() -> None:
    """The earliest-taken score is the baseline whatever order the scores arrive in."""
    scores = [at(30, 12), at(0, 18), at(60, 9)]
    assert baseline(scores) == at(0, 18)


def test_a_late_recorded_older_score_becomes_the_baseline_and_changes_response() -> None:
    """Recording a score taken before the old baseline moves the baseline and the response."""
    scores = [at(0, 12), at(90, 7)]
    before = episode_outcomes(EpisodeFacts(30, tuple(scores)), LATER)
    assert before.baseline == at(0, 12)
    assert not before.response
    with_late = [*scores, at(-5, 16)]
    after = episode_outcomes(EpisodeFacts(30, tuple(with_late)), LATER)
    assert after.baseline == at(-5, 16)
    assert after.response
    assert after.improvement == Fraction(9, 16)


def test_scores_on_the_same_day_are_ordered_by_time_then_by_recorded_order() -> None:
    """A timed score sorts by its time; same keys keep the caller's order."""
    tz = timezone(timedelta(hours=-5))
    morning = DatedScore(datetime(2024, 2, 1, 8, 0, tzinfo=tz), 15)
    evening = DatedScore(datetime(2024, 2, 1, 19, 0, tzinfo=tz), 11)
    assert baseline([evening, morning]) == morning
    first, second = DatedScore(INDEX, 14), DatedScore(INDEX, 13)
    assert baseline([first, second]) == first
    assert baseline([second, first]) == second


def test_baseline_ignores_scores_taken_after_as_of() -> None:
    """As of a day, only scores taken by then exist."""
    assert baseline([at(10, 9)], as_of=INDEX) is None
    assert baseline([]) is None


@pytest.mark.parametrize(
    ("base", "total", "response"),
    [
        (20, 10, True),
        (20, 11, False),
        (27, 13, True),
        (27, 14, False),
        (100, 50, True),
        (100, 51, False),
        (0, 0, False),
    ],
)
def test_response_is_at_least_half_below_baseline(base: int, total: int, response: bool) -> None:
    """Exactly 50% is a response, 49% is not; a baseline of 0 never responds."""
    assert is_response(base, total, RULES) is response


@pytest.mark.parametrize(("total", "remission"), [(4, True), (5, False), (0, True)])
def test_remission_is_a_score_below_five(total: int, remission: bool) -> None:
    """PHQ-9 4 is remission, 5 is not."""
    assert is_remission(total, RULES) is remission


def test_current_outcomes_need_a_score_after_the_baseline() -> None:
    """A low baseline alone is neither response nor remission."""
    result = episode_outcomes(EpisodeFacts(30, (at(0, 3),)), LATER)
    assert result.baseline == at(0, 3)
    assert result.latest is None
    assert not result.response and not result.remission
    assert result.rule_version == "2024.1"


def test_current_outcomes_read_the_latest_score() -> None:
    """The latest score after the baseline gives improvement, response and remission."""
    result = episode_outcomes(EpisodeFacts(30, (at(0, 20), at(40, 12), at(80, 4))), LATER)
    assert result.latest == at(80, 4)
    assert result.improvement == Fraction(4, 5)
    assert result.response and result.remission


@pytest.mark.parametrize(
    ("days", "counted"), [(69, False), (70, True), (84, True), (98, True), (99, False)]
)
def test_twelve_week_window_is_days_70_to_98(days: int, counted: bool) -> None:
    """A score on day 69 or 99 is outside the 12-week window; 70 and 98 are inside."""
    result = twelve_week_outcome([at(0, 20), at(days, 8)], LATER)
    assert result.follow_up is counted
    assert result.response is counted
    assert result.window_start == at(70, 0).effective
    assert result.window_end == at(98, 0).effective


def test_twelve_week_outcome_counts_the_most_recent_score_in_the_window() -> None:
    """With two scores in the window the later one decides."""
    result = twelve_week_outcome([at(0, 20), at(75, 4), at(95, 12)], LATER)
    assert result.counted == at(95, 12)
    assert not result.response and not result.remission


@pytest.mark.parametrize(
    ("days", "counted"), [(119, False), (120, True), (240, True), (241, False)]
)
def test_drr_e_window_is_days_120_to_240(days: int, counted: bool) -> None:
    """Day 119 and 241 are outside the DRR-E window; 120 and 240 are inside."""
    result = drr_e([at(0, 15), at(days, 4)], 30, LATER)
    assert result.eligible
    assert result.follow_up is counted
    assert result.remission is counted
    assert result.response is counted


def test_drr_e_counts_the_most_recent_score_in_the_window() -> None:
    """An early remission followed by a relapse in the window is not a remission."""
    result = drr_e([at(0, 15), at(130, 3), at(200, 11), at(260, 2)], 30, LATER)
    assert result.counted == at(200, 11)
    assert result.follow_up and not result.remission and not result.response


@pytest.mark.parametrize(("age", "eligible"), [(11, False), (12, True)])
def test_drr_e_starts_at_age_twelve(age: int, eligible: bool) -> None:
    """An 11-year-old is outside DRR-E; a 12-year-old is in."""
    result = drr_e([at(0, 15), at(150, 4)], age, LATER)
    assert result.eligible is eligible
    assert result.remission is eligible
    if not eligible:
        assert result.ineligible is Ineligibility.AGE_BELOW_MINIMUM


@pytest.mark.parametrize(("index", "eligible"), [(9, False), (10, True)])
def test_drr_e_needs_an_index_score_above_nine(index: int, eligible: bool) -> None:
    """An index of 9 is outside DRR-E; 10 is in."""
    result = drr_e([at(0, index), at(150, 4)], 30, LATER)
    assert result.eligible is eligible
    if not eligible:
        assert result.ineligible is Ineligibility.INDEX_NOT_ABOVE_THRESHOLD


def test_drr_e_without_scores_has_no_index() -> None:
    """No score means no index and no eligibility."""
    result = drr_e([], 30, LATER)
    assert result.ineligible is Ineligibility.NO_INDEX_SCORE
    assert result.window_start is None


@pytest.mark.parametrize(("as_of_day", "closed"), [(240, False), (241, True)])
def test_drr_e_window_closes_the_day_after_day_240(as_of_day: int, closed: bool) -> None:
    """On day 240 a score may still come; from day 241 the result is final."""
    result = drr_e([at(0, 15)], 30, at(as_of_day, 0).effective)
    assert result.window_closed is closed


def test_drr_e_as_of_ignores_scores_taken_later() -> None:
    """As of day 150, a score taken on day 200 does not exist yet."""
    scores = [at(0, 15), at(130, 9), at(200, 4)]
    assert drr_e(scores, 30, at(150, 0).effective).counted == at(130, 9)
    assert drr_e(scores, 30, LATER).counted == at(200, 4)


@pytest.mark.parametrize(
    ("offset", "counted"), [(-61, False), (-60, True), (0, True), (60, True), (61, False)]
)
def test_cms159_window_is_twelve_months_plus_or_minus_60_days(offset: int, counted: bool) -> None:
    """A score 60 days either side of the anniversary counts; 61 days does not."""
    anniversary = date(2025, 2, 1)
    score = DatedScore(anniversary + timedelta(days=offset), 3)
    result = cms159([at(0, 15), score], 40, LATER)
    assert result.window_start == anniversary - timedelta(days=60)
    assert result.window_end == anniversary + timedelta(days=60)
    assert result.remission is counted


def test_cms159_counts_the_most_recent_score_in_the_window() -> None:
    """Remission early in the window followed by a score of 6 is not a remission."""
    scores = [at(0, 15), DatedScore(date(2025, 1, 1), 2), DatedScore(date(2025, 3, 1), 6)]
    result = cms159(scores, 40, LATER)
    assert result.counted == DatedScore(date(2025, 3, 1), 6)
    assert not result.remission


@pytest.mark.parametrize(("index", "eligible"), [(9, False), (10, True)])
def test_cms159_needs_an_index_score_above_nine(index: int, eligible: bool) -> None:
    """An index of 9 is outside CMS159; 10 is in."""
    result = cms159([at(0, index), DatedScore(date(2025, 2, 1), 2)], 40, LATER)
    assert result.eligible is eligible
    assert result.remission is eligible


def test_cms159_has_no_age_limit_in_our_rules() -> None:
    """docs/clinical-rules.md gives CMS159 no age limit, so an 11-year-old is eligible."""
    assert cms159([at(0, 15)], 11, LATER).eligible


def test_cms159_anniversary_of_29_february_is_28_february() -> None:
    """An index on a leap day centres the window on 28 February of the next year."""
    result = cms159([DatedScore(date(2024, 2, 29), 15)], 40, LATER)
    assert result.window_start == date(2025, 2, 28) - timedelta(days=60)


@pytest.mark.parametrize(
    ("day", "period"),
    [
        (date(2024, 1, 1), (2024, 1, date(2024, 1, 1), date(2024, 4, 30))),
        (date(2024, 4, 30), (2024, 1, date(2024, 1, 1), date(2024, 4, 30))),
        (date(2024, 5, 1), (2024, 2, date(2024, 5, 1), date(2024, 8, 31))),
        (date(2024, 9, 1), (2024, 3, date(2024, 9, 1), date(2024, 12, 31))),
    ],
)
def test_utilisation_periods_are_jan_apr_may_aug_sep_dec(
    day: date, period: tuple[int, int, date, date]
) -> None:
    """30 April closes the first period and 1 May opens the second."""
    assert utilisation_period(day, RULES) == period


def test_dms_e_needs_a_phq9_in_each_period_with_an_encounter() -> None:
    """Encounters in three periods: met, not met (score the day after), and no encounter."""
    encounters = [date(2024, 2, 10), date(2024, 4, 30), date(2024, 6, 1)]
    scores = [DatedScore(date(2024, 3, 1), 12), DatedScore(date(2024, 9, 1), 8)]
    result = dms_e(encounters, scores, LATER)
    assert [(p.period, p.status) for p in result.periods] == [
        (1, MeasureStatus.MET),
        (2, MeasureStatus.NOT_MET),
    ]
    assert result.periods[0].first_phq9_on == date(2024, 3, 1)
    assert not result.all_met


def test_dms_e_counts_a_score_before_the_encounter_in_the_same_period() -> None:
    """A PHQ-9 in January covers an encounter in April of the same period."""
    result = dms_e([date(2024, 4, 20)], [DatedScore(date(2024, 1, 5), 10)], LATER)
    assert result.all_met


def test_dms_e_period_still_running_is_open() -> None:
    """Until the period ends without a PHQ-9, the period is open, not failed."""
    result = dms_e([date(2024, 5, 2)], [], date(2024, 8, 31))
    assert result.periods[0].status is MeasureStatus.OPEN
    assert dms_e([date(2024, 5, 2)], [], date(2024, 9, 1)).periods[0].status is (
        MeasureStatus.NOT_MET
    )


@pytest.mark.parametrize(
    ("follow_up_day", "status"),
    [
        (-1, MeasureStatus.NOT_MET),
        (0, MeasureStatus.MET),
        (30, MeasureStatus.MET),
        (31, MeasureStatus.NOT_MET),
    ],
)
def test_dsf_e_follow_up_is_due_within_30_days(follow_up_day: int, status: MeasureStatus) -> None:
    """A follow-up on the screen day through day 30 counts; day 31 or before the screen do not."""
    follow_up = INDEX + timedelta(days=follow_up_day)
    result = dsf_e(INDEX, [follow_up], LATER)
    assert result.status is status
    assert result.deadline == INDEX + timedelta(days=30)


def test_dsf_e_is_open_until_the_deadline_passes() -> None:
    """Without a follow-up, the screen is open through day 30 and not met on day 31."""
    assert dsf_e(INDEX, [], INDEX + timedelta(days=30)).status is MeasureStatus.OPEN
    assert dsf_e(INDEX, [], INDEX + timedelta(days=31)).status is MeasureStatus.NOT_MET


def test_dsf_e_reports_the_earliest_qualifying_follow_up() -> None:
    """Of several follow-ups in time, the first is reported."""
    days = [INDEX + timedelta(days=n) for n in (20, 3, 40)]
    assert dsf_e(INDEX, days, LATER).follow_up_on == INDEX + timedelta(days=3)


def test_phq9_totals_outside_0_to_27_are_refused() -> None:
    """A total of 28 or -1 is not a PHQ-9 score."""
    for total in (-1, 28):
        with pytest.raises(ScoreOutOfRangeError):
            DatedScore(INDEX, total)


def test_outcome_rules_before_their_first_version_are_refused() -> None:
    """Outcomes as of 2023 raise NoRuleInForceError."""
    with pytest.raises(NoRuleInForceError):
        drr_e([at(0, 15)], 30, date(2023, 6, 1))
