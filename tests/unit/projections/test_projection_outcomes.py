"""Outcome measures from the registry's stored scores, by effective time."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from projections.caseload import evolve
from projections.outcomes import by_care_manager, episode_outcomes
from tests.unit.projections.projection_support import (
    CARE_MANAGER,
    NOW,
    Log,
    day,
    enrolled_patient,
    fold,
    gad7,
    on,
    phq9,
)


def test_a_halved_score_in_the_twelve_week_window_is_a_response() -> None:
    """Days 70-98 after the index score: the latest score there counts."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(0), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(9), occurred_at=day(84), now=NOW)
    log = Log()
    log.take(patient)
    (episode,) = episode_outcomes(fold(evolve, log.records), on(120))
    twelve = episode.outcomes.twelve_weeks
    assert twelve.window_closed and twelve.response and not twelve.remission
    assert episode.care_manager_id == CARE_MANAGER


def test_a_late_recorded_score_in_the_window_changes_the_result_when_recomputed() -> None:
    """A score taken on day 90 but entered later replaces day 84 as the one that counts."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(0), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(9), occurred_at=day(84), now=NOW)
    log = Log()
    log.take(patient)
    (before,) = episode_outcomes(fold(evolve, log.records), on(120))
    patient.record_screening(instrument="phq9", answers=phq9(3), occurred_at=day(90), now=NOW)
    log.take(patient)
    (after,) = episode_outcomes(fold(evolve, log.records), on(120))
    assert not before.outcomes.twelve_weeks.remission
    assert after.outcomes.twelve_weeks.remission


def test_drr_e_excludes_an_index_score_of_nine_or_less() -> None:
    """NCQA DRR-E starts from an index PHQ-9 above 9."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(9), occurred_at=day(0), now=NOW)
    log = Log()
    log.take(patient)
    (episode,) = episode_outcomes(fold(evolve, log.records), on(300))
    assert episode.outcomes.drr_e.ineligible is not None
    assert episode.outcomes.drr_e.ineligible.value == "index_not_above_threshold"


def test_episodes_without_a_complete_phq9_are_not_reported() -> None:
    """No index score, no outcome."""
    patient = enrolled_patient()
    log = Log()
    log.take(patient)
    assert episode_outcomes(fold(evolve, log.records), on(10)) == []


def test_the_care_manager_summary_counts_only_closed_windows_as_final() -> None:
    """An open window is in progress, not a failure."""
    closed = enrolled_patient()
    closed.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(0), now=NOW)
    closed.record_screening(instrument="phq9", answers=phq9(4), occurred_at=day(80), now=NOW)
    still_open = enrolled_patient()
    still_open.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(50), now=NOW)
    episodes = []
    for patient in (closed, still_open):
        log = Log()
        log.take(patient)
        episodes.extend(episode_outcomes(fold(evolve, log.records), on(110)))
    (summary,) = by_care_manager(episodes)
    twelve = summary.twelve_weeks
    assert (twelve.episodes, twelve.final, twelve.in_progress) == (2, 1, 1)
    assert (twelve.response, twelve.remission, twelve.follow_up) == (1, 1, 1)


def test_an_as_of_day_before_a_score_leaves_that_score_out() -> None:
    """Outcomes as of a past day read only the scores taken by then."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(0), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(4), occurred_at=day(80), now=NOW)
    log = Log()
    log.take(patient)
    (episode,) = episode_outcomes(fold(evolve, log.records), on(79))
    assert episode.outcomes.latest is None and not episode.outcomes.remission
    baseline = episode.outcomes.baseline
    assert baseline is not None and baseline.day == date(2026, 3, 2)


def test_the_twelve_week_window_is_cut_on_the_clinics_local_days() -> None:
    """Index at 10:00 on 3 March 2026 in Los Angeles; the follow-up at 20:00 local 98 days
    later (after the change to daylight saving time) is on day 98, the window's last, in
    the clinic's calendar, though it is day 99 in UTC: it counts in Los Angeles only."""
    la = ZoneInfo("America/Los_Angeles")
    index = datetime(2026, 3, 3, 10, 0, tzinfo=la)
    follow_up = datetime(2026, 6, 9, 20, 0, tzinfo=la)  # 03:00 UTC on 10 June
    assert (follow_up.date() - index.date()).days == 98
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=index, now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(4), occurred_at=follow_up, now=NOW)
    log = Log()
    log.take(patient)
    doc = fold(evolve, log.records)
    (local,) = episode_outcomes(doc, date(2026, 7, 31), la)
    (utc,) = episode_outcomes(doc, date(2026, 7, 31))
    assert local.outcomes.twelve_weeks.window_end == date(2026, 6, 9)
    assert local.outcomes.twelve_weeks.remission
    assert utc.outcomes.twelve_weeks.window_end == date(2026, 6, 9)
    assert not utc.outcomes.twelve_weeks.remission


def test_gad7_outcomes_per_episode_and_per_care_manager() -> None:
    """GAD-7 12 -> 6 on day 84 (exactly half: response; 6 is not below 5) and 4 on day
    200 (response and remission at 6 months); an episode without a GAD-7 has none and is
    not in the care manager's GAD-7 counts."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(0), now=NOW)
    for offset, total in ((0, 12), (84, 6), (200, 4)):
        patient.record_screening(
            instrument="gad7", answers=gad7(total), occurred_at=day(offset, 1), now=NOW
        )
    other = enrolled_patient()
    other.record_screening(instrument="phq9", answers=phq9(12), occurred_at=day(0), now=NOW)
    log = Log()
    log.take(patient)
    log.take(other)
    (episode,) = episode_outcomes(fold(evolve, log.records, patient.id), on(300))
    assert episode.gad7_twelve_weeks is not None and episode.gad7_six_months is not None
    twelve, six = episode.gad7_twelve_weeks, episode.gad7_six_months
    assert (twelve.window_closed, twelve.response, twelve.remission) == (True, True, False)
    assert (six.window_closed, six.response, six.remission) == (True, True, True)
    (without,) = episode_outcomes(fold(evolve, log.records, other.id), on(300))
    assert without.gad7_twelve_weeks is None and without.gad7_six_months is None
    (manager,) = by_care_manager([episode, without])
    assert manager.episodes == 2
    assert (manager.gad7_twelve_weeks.episodes, manager.gad7_twelve_weeks.response) == (1, 1)
    assert (manager.gad7_six_months.final, manager.gad7_six_months.remission) == (1, 1)
