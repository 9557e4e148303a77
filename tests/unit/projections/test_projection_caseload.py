"""The caseload registry projection: facts from events, rows and flags for a given day."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.patient import Patient, counts_for_episode
from domain.rules import flags as flag_rules
from projections.caseload import (
    ALWAYS,
    RelapsePlanStatus,
    _remembered_onsets,
    caseload_row,
    derive_columns,
    evolve,
    flag_onsets,
    flags_on,
    registry_snapshot,
)
from tests.unit.projections.projection_support import (
    NOW,
    PSYCHIATRIST,
    T0,
    Log,
    day,
    enrolled_patient,
    fold,
    gad7,
    on,
    phq9,
)


def registry(*patients: Patient, log: Log | None = None) -> dict[str, Any]:
    """The registry document of the (single) patient after its pending events."""
    log = log or Log()
    for patient in patients:
        log.take(patient)
    return fold(evolve, log.records)


def kinds(doc: dict[str, Any], today: date) -> set[str]:
    return {f.kind for f in flags_on(doc, today)}


def test_the_baseline_and_latest_phq9_follow_the_time_the_scores_were_taken() -> None:
    """Scores are ordered by effective time: the first taken is the baseline."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(1), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(9), occurred_at=day(30), now=NOW)
    row = caseload_row(registry(patient), on(31))
    assert row.baseline_phq9 is not None and row.baseline_phq9.total == 18
    assert row.latest_phq9 is not None and row.latest_phq9.total == 9
    assert row.phq9_percent_change == -50


def test_a_late_recorded_older_score_becomes_the_new_baseline() -> None:
    """A questionnaire taken before the baseline but recorded after it replaces it."""
    patient = enrolled_patient()
    log = Log()
    log.take(patient)
    patient.record_screening(instrument="phq9", answers=phq9(12), occurred_at=day(5), now=day(5))
    log.take(patient)
    before = caseload_row(fold(evolve, log.records), on(6))
    assert before.baseline_phq9 is not None and before.baseline_phq9.total == 12
    patient.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(1), now=day(20))
    log.take(patient)
    after = caseload_row(fold(evolve, log.records), on(21))
    assert after.baseline_phq9 is not None and after.baseline_phq9.total == 20
    assert after.latest_phq9 is not None and after.latest_phq9.total == 12
    assert after.phq9_percent_change == -40


def test_one_score_has_no_percent_change_and_an_incomplete_one_is_not_a_score() -> None:
    """Percent change needs a later score; a questionnaire with a missing item has no total."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(15), occurred_at=day(1), now=NOW)
    partial = phq9(3)
    partial[0] = None
    patient.record_screening(instrument="phq9", answers=partial, occurred_at=day(2), now=NOW)
    row = caseload_row(registry(patient), on(3))
    assert row.latest_phq9 is not None and row.latest_phq9.total == 15
    assert row.phq9_percent_change is None


def test_gad7_baseline_and_latest_are_kept_apart_from_phq9() -> None:
    """The GAD-7 columns read GAD-7 scores only."""
    patient = enrolled_patient()
    patient.record_screening(instrument="gad7", answers=gad7(16), occurred_at=day(1), now=NOW)
    patient.record_screening(instrument="gad7", answers=gad7(8), occurred_at=day(29), now=NOW)
    row = caseload_row(registry(patient), on(30))
    assert row.baseline_phq9 is None
    assert row.baseline_gad7 is not None and row.baseline_gad7.total == 16
    assert row.gad7_percent_change == -50


def test_not_improving_is_raised_in_week_ten_but_not_in_week_nine() -> None:
    """The same stored facts give different flags for different days of the clock."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(0), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(14), occurred_at=day(60), now=NOW)
    doc = registry(patient)
    week9 = caseload_row(doc, on(69))
    week10 = caseload_row(doc, on(70))
    assert week9.weeks_in_treatment == 9 and week10.weeks_in_treatment == 10
    assert "not_improving" not in {f.kind for f in week9.flags}
    (flag,) = [f for f in week10.flags if f.kind == "not_improving"]
    assert flag.rule_id == "flags.not_improving" and flag.rule_version == "2024.1"
    assert flag.inputs["baseline_total"] == 20 and flag.inputs["latest_total"] == 14
    assert flag.inputs["weeks_in_treatment"] == 10
    assert "not_improving" in week10.review_reasons


def test_overdue_contact_is_raised_when_fifteen_days_pass_without_a_contact() -> None:
    """Days since the last contact grow with the clock, not with events."""
    patient = enrolled_patient()
    patient.log_contact(
        activity="contact", modality="phone", minutes=20, occurred_at=day(3), now=NOW
    )
    doc = registry(patient)
    assert "overdue_contact" not in kinds(doc, on(17))
    assert "overdue_contact" in kinds(doc, on(18))
    assert caseload_row(doc, on(18)).days_since_last_contact == 15


def test_outreach_attempts_and_reviews_are_not_counted_as_contacts() -> None:
    """Only contacts with the patient count as contacts and reset the overdue clock."""
    patient = enrolled_patient()
    patient.log_contact(
        activity="contact", modality="phone", minutes=20, occurred_at=day(1), now=NOW
    )
    patient.log_contact(
        activity="outreach", modality="phone", minutes=5, occurred_at=day(10), now=NOW
    )
    patient.log_contact(activity="registry_review", minutes=5, occurred_at=day(11), now=NOW)
    row = caseload_row(registry(patient), on(12))
    assert (row.contact_count, row.outreach_count) == (1, 1)
    assert row.last_contact_at == day(1)


def test_a_late_recorded_older_contact_does_not_move_the_last_contact_back() -> None:
    """The last contact is the latest by effective time, whatever the recording order."""
    patient = enrolled_patient()
    patient.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=day(9), now=NOW
    )
    patient.log_contact(
        activity="contact", modality="video", minutes=10, occurred_at=day(2), now=NOW
    )
    row = caseload_row(registry(patient), on(10))
    assert row.last_contact_at == day(9) and row.contact_count == 2


def test_a_new_episode_starts_its_contacts_and_reviews_from_zero() -> None:
    """Contacts, reviews and the relapse plan belong to one episode."""
    patient = enrolled_patient()
    patient.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=day(2), now=NOW
    )
    patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=day(3), now=NOW)
    patient.discharge(reason="completed", occurred_at=day(40), now=NOW)
    patient.enroll(occurred_at=day(100), now=NOW)
    row = caseload_row(registry(patient), on(101))
    assert row.episode_number == 2 and row.status == "enrolled"
    assert (row.contact_count, row.case_review_count, row.last_contact_at) == (0, 0, None)
    assert "new_enrollment" in row.review_reasons


def test_a_case_review_after_enrollment_removes_the_new_enrollment_reason() -> None:
    """A reviewed new patient no longer needs review for being new."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(15), occurred_at=day(1), now=NOW)
    patient.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=day(1), now=NOW
    )
    log = Log()
    before = registry(patient, log=log)
    assert "new_enrollment" in caseload_row(before, on(2)).review_reasons
    patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    after = caseload_row(registry(patient, log=log), on(3))
    assert after.review_reasons == ()
    assert after.last_case_review_at == day(2)


def test_a_safety_answer_raises_the_safety_flag_and_puts_safety_first_in_review() -> None:
    """Item 9 above 0 is a safety risk whatever the total, explained by the rule's inputs."""
    patient = enrolled_patient()
    patient.record_screening(
        instrument="phq9", answers=phq9(6, item9=1), occurred_at=day(1), now=NOW
    )
    row = caseload_row(registry(patient), on(1))
    safety = [f for f in row.flags if f.kind == "safety_risk" and f.source == "rule"]
    assert safety and safety[0].inputs["latest_item9"] == 1
    assert "safety_risk" in row.review_reasons


def test_a_recorded_safety_flag_stays_until_cleared_after_a_calm_rescreen() -> None:
    """A later item 9 of 0 ends the rule's flag; the recorded flag waits for a clinician."""
    patient = enrolled_patient()
    patient.record_screening(
        instrument="phq9", answers=phq9(12, item9=2), occurred_at=day(1), now=NOW
    )
    patient.record_screening(instrument="phq9", answers=phq9(10), occurred_at=day(5), now=NOW)
    log = Log()
    log.take(patient)
    doc = fold(evolve, log.records)
    (recorded,) = [f for f in flags_on(doc, on(6)) if f.kind == "safety_risk"]
    assert recorded.source == "recorded" and recorded.flag_id is not None
    assert "safety_risk" in caseload_row(doc, on(6)).review_reasons
    assert derive_columns(doc)["needs_review_on"] == ALWAYS
    flag_id = recorded.flag_id
    patient.clear_flag(flag_id=flag_id, occurred_at=day(6), now=NOW, reason="assessed")
    log.take(patient)
    cleared = fold(evolve, log.records)
    assert "safety_risk" not in kinds(cleared, on(6))


def test_the_relapse_prevention_plan_is_due_at_remission_and_written_once_recorded() -> None:
    """The treatment rule says relapse prevention below 5; writing the plan settles it."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(16), occurred_at=day(1), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(4), occurred_at=day(60), now=NOW)
    log = Log()
    log.take(patient)
    assert caseload_row(fold(evolve, log.records), on(61)).relapse_prevention_plan is (
        RelapsePlanStatus.DUE
    )
    patient.write_relapse_prevention_plan(
        warning_signs=["sleep"], strategies=["walks"], occurred_at=day(62), now=NOW
    )
    log.take(patient)
    row = caseload_row(fold(evolve, log.records), on(63))
    assert row.relapse_prevention_plan is RelapsePlanStatus.WRITTEN
    assert row.status == "relapse_prevention"


def test_the_derived_columns_place_the_row_on_the_caseload_with_its_team() -> None:
    """The SQL columns mirror the facts: status, team, latest score, flag onset days."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(20), occurred_at=day(0), now=NOW)
    patient.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=day(0), now=NOW
    )
    columns = derive_columns(registry(patient))
    assert columns["on_caseload"] is True and columns["status"] == "active_treatment"
    assert columns["psychiatric_consultant_id"] == PSYCHIATRIST
    assert columns["latest_phq9_total"] == 20
    # Only a baseline: no follow-up was measured, so Not improving never comes on.
    assert columns["not_improving_on"] is None
    assert columns["overdue_contact_on"] == on(15)
    assert columns["measurement_due_on"] == on(31)
    assert columns["needs_review_on"] == ALWAYS  # new enrollment, never reviewed
    assert columns["flagged_on"] == ALWAYS


def test_a_registered_patient_without_an_episode_is_not_on_the_caseload() -> None:
    """Before enrollment there is no registry row to work, and no rule flag."""
    patient = enrolled_patient()
    log = Log()
    log.take(patient)
    registered_only = fold(evolve, log.records[:2])
    assert registry_snapshot(registered_only) is None
    assert derive_columns(registered_only)["on_caseload"] is False
    assert flags_on(registered_only, on(1)) == []


def test_events_of_other_streams_and_unknown_patients_are_ignored() -> None:
    """Only patient streams whose registration was seen build a row."""
    patient = enrolled_patient()
    log = Log()
    log.take(patient)
    assert evolve(None, log.records[1]) is None


# --- flag onsets agree with evaluating every day -----------------------------------------


def _onsets_by_scanning(doc: dict[str, Any], first: date, days: int) -> dict[str, date | None]:
    found: dict[str, date | None] = {k.value: None for k in flag_rules.FlagKind}
    for n in range(days):
        today = first + timedelta(days=n)
        for kind in kinds(doc, today):
            if found.get(kind) is None:
                found[kind] = today
    return found


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 24)), min_size=0, max_size=4),
    contacts=st.lists(st.integers(0, 120), max_size=3),
    review=st.one_of(st.none(), st.integers(0, 120)),
)
def test_stored_onset_days_match_a_day_by_day_evaluation_of_the_rules(
    scores: list[tuple[int, int]], contacts: list[int], review: int | None
) -> None:
    """For any facts, "onset <= today" says exactly which flags the rules raise today."""
    patient = enrolled_patient()
    for offset, total in scores:
        patient.record_screening(
            instrument="phq9", answers=phq9(total), occurred_at=day(offset), now=NOW
        )
    for offset in contacts:
        patient.log_contact(
            activity="contact", modality="phone", minutes=5, occurred_at=day(offset), now=NOW
        )
    if review is not None:
        patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=day(review), now=NOW)
    doc = registry(patient)
    onsets = flag_onsets(doc)
    horizon = 260
    scanned = _onsets_by_scanning(doc, T0.date(), horizon)
    for kind, scanned_day in scanned.items():
        stored = onsets[kind]
        if scanned_day == T0.date():
            assert stored in (ALWAYS, T0.date()), kind
        elif scanned_day is None:
            assert stored is None or stored >= T0.date() + timedelta(days=horizon), kind
        else:
            assert stored == scanned_day, kind


def test_onsets_remembered_per_snapshot_are_not_changed_by_another_rows_recorded_flags() -> None:
    """The rules' onsets are remembered per snapshot (most events change no fact a flag
    reads); a row's recorded flags are laid over a copy, so a row with the same facts and
    none recorded gets the rules' onsets alone, the same as with nothing remembered."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(1), now=NOW)
    doc = registry(patient)
    _remembered_onsets.cache_clear()
    cold = flag_onsets(doc)
    flagged = flag_onsets({**doc, "recorded_flags": [{"kind": "safety_risk"}]})
    assert flagged["safety_risk"] == flagged["needs_psychiatric_review"] == ALWAYS
    assert registry_snapshot({**doc, "recorded_flags": [{"kind": "safety_risk"}]}) == (
        registry_snapshot(doc)
    )
    warm = flag_onsets(doc)
    assert _remembered_onsets.cache_info().hits >= 2
    assert warm == cold
    assert cold["safety_risk"] != ALWAYS


def test_onsets_are_remembered_apart_for_a_rows_snapshots_in_two_clinic_zones() -> None:
    """A complete PHQ-9 at 03:00 UTC on day 10 (the evening of day 9 in Los Angeles), then
    an incomplete one that answers item 9 on day 12: the row's two snapshots compare equal
    (scores compare by instant) while the rules read the latest score on different days,
    so the measurement is due a day apart, and neither zone's onsets are served for the
    other's, in either order."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(1), now=NOW)
    patient.record_screening(
        instrument="phq9", answers=phq9(12), occurred_at=day(10).replace(hour=3), now=NOW
    )
    partial: list[int | None] = list(phq9(10))
    partial[0] = None
    patient.record_screening(instrument="phq9", answers=partial, occurred_at=day(12), now=NOW)
    doc = registry(patient)
    in_utc = registry_snapshot(doc, UTC)
    in_la = registry_snapshot(doc, ZoneInfo("America/Los_Angeles"))
    assert in_utc == in_la
    for first in (in_utc, in_la):
        _remembered_onsets.cache_clear()
        flag_onsets(doc, first)
        assert flag_onsets(doc, in_utc)["measurement_due"] == on(41)
        assert flag_onsets(doc, in_la)["measurement_due"] == on(40)


def test_a_score_dated_years_before_the_episode_is_history_not_the_baseline() -> None:
    """A mistyped year (2016 for 2026) recorded mid-episode: the registry row's baseline,
    latest, percent change and flags are those without it, whether the event carries no
    episode (recorded under the intake look-back rule) or, recorded before the rule,
    carries the episode's number; the score stays in the row's history."""
    patient, log = enrolled_patient(), Log()
    patient.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(1), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(10), occurred_at=day(72), now=NOW)
    without = registry(patient, log=log)
    typo = day(1).replace(year=2016)
    assert not counts_for_episode(typo, T0)
    patient.record_screening(instrument="phq9", answers=phq9(5), occurred_at=typo, now=NOW)
    with_new = registry(patient, log=log)
    # The same mistake stored before the rule existed: the event names episode 1.
    old = enrolled_patient()
    old.record_screening(instrument="phq9", answers=phq9(18), occurred_at=day(1), now=NOW)
    old.record_screening(instrument="phq9", answers=phq9(10), occurred_at=day(72), now=NOW)
    old._screening_recorded(
        screening_id=old.id,
        instrument="phq9",
        answers=phq9(5),
        occurred_at=typo,
        episode_number=1,
        complete=True,
        total=5,
        severity="mild",
        positive=None,
        safety_alert=False,
        needs_follow_up=False,
        rules_version="instruments-2026.1",
        loinc_panel="44249-1",
        loinc_total="44261-6",
        safety_items=[],
        timestamp=NOW,
    )
    with_old = registry(old)
    expected = caseload_row(without, on(73))
    for doc in (with_new, with_old):
        assert len(doc["screenings"]) == 3  # kept in the history
        row = caseload_row(doc, on(73))
        assert row.baseline_phq9 == expected.baseline_phq9
        assert row.baseline_phq9 is not None and row.baseline_phq9.total == 18
        assert row.latest_phq9 == expected.latest_phq9
        assert row.phq9_percent_change == expected.phq9_percent_change
        assert [f.kind for f in row.flags] == [f.kind for f in expected.flags]
        assert "not_improving" in kinds(doc, on(73))  # 18 -> 10 at week 10, as without


def test_the_row_shows_the_latest_sdq_with_both_band_schemes() -> None:
    """The most recently *taken* SDQ counts: one recorded later but taken earlier does not
    replace it. A teacher's total of 12 is "slightly raised" (four bands: 12-15) but
    "borderline" (three bands: 12-15); a missing item leaves the total and bands empty."""
    # Born 2016: 10 on the SDQ days (the parent and teacher forms are for 4-17).
    patient = enrolled_patient(birth_date=date(2016, 1, 10))
    log = Log()
    assert caseload_row(registry(patient, log=log), on(1)).latest_sdq is None
    # Emotional items all "certainly true" (10); item 7 (conduct, reverse-scored) "not
    # true" (2); the other reverse-scored items "certainly true" (0): total 12.
    teacher = [0] * 25
    for n in (3, 8, 13, 16, 24, 11, 14, 21, 25):
        teacher[n - 1] = 2
    patient.record_sdq(informant="teacher", items=teacher, occurred_at=day(20), now=NOW)
    patient.record_sdq(informant="parent", items=[1] * 25, occurred_at=day(10), now=NOW)
    row = caseload_row(registry(patient, log=log), on(30))
    assert row.latest_sdq is not None
    assert (row.latest_sdq.informant, row.latest_sdq.total_difficulties) == ("teacher", 12)
    assert (row.latest_sdq.band, row.latest_sdq.category) == ("slightly_raised", "borderline")
    patient.record_sdq(
        informant="parent", items=[1, 1, None] + [1] * 22, occurred_at=day(25), now=NOW
    )
    later = caseload_row(registry(patient, log=log), on(30)).latest_sdq
    assert later is not None and later.informant == "parent"
    assert (later.total_difficulties, later.band, later.category) == (None, None, None)
