"""Registry flags: thresholds, statuses, explanations and rule versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest

from domain.rules import DatedScore, NaiveDatetimeError, NoRuleInForceError, ScoreOutOfRangeError
from domain.rules.flags import (
    ACTIVE_TREATMENT,
    AsOfBeforeEnrollmentError,
    EpisodeStatus,
    Flag,
    FlagKind,
    MissingEnrollmentDateError,
    RegistrySnapshot,
    evaluate_flags,
    percent_change,
    rules_for,
    weeks_in_treatment,
)

ENROLLED = date(2024, 3, 1)


def day(n: int) -> date:
    """The day ``n`` days after enrollment."""
    return ENROLLED + timedelta(days=n)


def calm(as_of_day: int, **changes: object) -> RegistrySnapshot:
    """A patient in active treatment with nothing to flag on ``as_of_day``."""
    snapshot = RegistrySnapshot(
        status=EpisodeStatus.ACTIVE_TREATMENT,
        enrolled_on=ENROLLED,
        latest_item9=0,
        latest_item9_on=day(as_of_day),
        baseline_phq9=DatedScore(ENROLLED, 20),
        latest_phq9=DatedScore(day(as_of_day), 8),
        last_contact_on=day(as_of_day),
        last_case_review_on=day(1),
    )
    return replace(snapshot, **changes)  # type: ignore[arg-type]


def kinds(flags: list[Flag]) -> list[FlagKind]:
    return [flag.kind for flag in flags]


def flag(flags: list[Flag], kind: FlagKind) -> Flag:
    (found,) = [f for f in flags if f.kind is kind]
    return found


def review_reasons(flags: list[Flag]) -> tuple[str, ...]:
    reasons = flag(flags, FlagKind.NEEDS_PSYCHIATRIC_REVIEW).inputs["reasons"]
    assert isinstance(reasons, tuple)
    return reasons


def test_a_patient_doing_well_has_no_flags() -> None:
    """Recent contact, recent PHQ-9, improving, reviewed: nothing is raised."""
    assert evaluate_flags(calm(80), day(80)) == []


@pytest.mark.parametrize(("item9", "raised"), [(0, False), (1, True), (3, True)])
def test_item_9_above_zero_raises_safety_risk(item9: int, raised: bool) -> None:
    """Item 9 at 0 raises nothing; at 1 or more it raises Safety risk and a review."""
    flags = evaluate_flags(calm(20, latest_item9=item9), day(20))
    assert (FlagKind.SAFETY_RISK in kinds(flags)) is raised
    if raised:
        assert review_reasons(flags) == ("safety_risk",)


def test_positive_asq_raises_safety_risk() -> None:
    """A positive ASQ screen raises Safety risk even with item 9 at 0."""
    flags = evaluate_flags(calm(20, asq_positive=True), day(20))
    safety = flag(flags, FlagKind.SAFETY_RISK)
    assert safety.inputs["asq_positive"] is True
    assert safety.inputs["latest_item9"] == 0


@pytest.mark.parametrize("status", list(EpisodeStatus))
def test_safety_risk_is_raised_in_every_status(status: EpisodeStatus) -> None:
    """A safety signal is never suppressed by the episode status."""
    snapshot = calm(20, status=status, latest_item9=2)
    assert FlagKind.SAFETY_RISK in kinds(evaluate_flags(snapshot, day(20)))


@pytest.mark.parametrize(
    ("baseline", "latest", "raised"),
    [(20, 10, False), (20, 11, True), (27, 14, True), (27, 13, False), (10, 5, False)],
)
def test_not_improving_needs_under_half_improvement(
    baseline: int, latest: int, raised: bool
) -> None:
    """At week 10, exactly 50% improvement is enough; 45% or 48% is not."""
    snapshot = calm(
        70, baseline_phq9=DatedScore(ENROLLED, baseline), latest_phq9=DatedScore(day(70), latest)
    )
    assert (FlagKind.NOT_IMPROVING in kinds(evaluate_flags(snapshot, day(70)))) is raised


@pytest.mark.parametrize(("days", "raised"), [(69, False), (70, True)])
def test_not_improving_starts_at_week_ten(days: int, raised: bool) -> None:
    """No improvement on day 69 (week 9) raises nothing; on day 70 (week 10) it does."""
    snapshot = calm(days, latest_phq9=DatedScore(day(days), 20))
    flags = evaluate_flags(snapshot, day(days))
    assert (FlagKind.NOT_IMPROVING in kinds(flags)) is raised
    if raised:
        found = flag(flags, FlagKind.NOT_IMPROVING)
        assert found.inputs["weeks_in_treatment"] == 10
        assert found.inputs["improvement"] == 0
        assert "not_improving" in review_reasons(flags)


@pytest.mark.parametrize("as_of", [70, 71, 200])
def test_not_improving_is_not_raised_with_only_a_baseline(as_of: int) -> None:
    """No follow-up PHQ-9 means no improvement was measured: from week 10 on, with only
    a baseline, Not improving stays off (it used to read "improvement 0.0"); the missing
    measurement is Measurement due's, and the review queue does not gain not_improving."""
    for latest in (None, DatedScore(ENROLLED, 20)):  # absent, or the baseline itself
        snapshot = calm(as_of, latest_phq9=latest)
        flags = evaluate_flags(snapshot, day(as_of))
        assert FlagKind.NOT_IMPROVING not in kinds(flags)
        assert kinds(flags) == [FlagKind.MEASUREMENT_DUE]  # and no review for it


def test_not_improving_is_raised_by_the_first_follow_up_without_improvement() -> None:
    """The boundary: one follow-up after the baseline, at the same total, on day 70."""
    snapshot = calm(70, latest_phq9=DatedScore(day(70), 20))
    found = flag(evaluate_flags(snapshot, day(70)), FlagKind.NOT_IMPROVING)
    assert found.inputs["improvement"] == 0 and found.inputs["latest_on"] == day(70)


def test_not_improving_is_not_raised_for_a_baseline_of_zero() -> None:
    """A baseline of 0 has no improvement ratio, so Not improving stays off."""
    snapshot = calm(70, baseline_phq9=DatedScore(ENROLLED, 0), latest_phq9=DatedScore(day(70), 3))
    assert FlagKind.NOT_IMPROVING not in kinds(evaluate_flags(snapshot, day(70)))


def test_not_improving_follows_the_rule_as_written_below_five() -> None:
    """From 6 to 4 is 33%: the flag is raised although the score is below 5."""
    snapshot = calm(70, baseline_phq9=DatedScore(ENROLLED, 6), latest_phq9=DatedScore(day(70), 4))
    assert FlagKind.NOT_IMPROVING in kinds(evaluate_flags(snapshot, day(70)))


@pytest.mark.parametrize(("days_since", "raised"), [(14, False), (15, True)])
def test_overdue_contact_after_more_than_14_days(days_since: int, raised: bool) -> None:
    """Fourteen days without contact is fine; fifteen is overdue."""
    snapshot = calm(40, last_contact_on=day(40 - days_since))
    flags = evaluate_flags(snapshot, day(40))
    assert (FlagKind.OVERDUE_CONTACT in kinds(flags)) is raised
    if raised:
        assert flag(flags, FlagKind.OVERDUE_CONTACT).inputs["days_since"] == 15


@pytest.mark.parametrize(("as_of_day", "raised"), [(14, False), (15, True)])
def test_never_contacted_is_counted_from_enrollment(as_of_day: int, raised: bool) -> None:
    """Without any contact, the days count from the enrollment day."""
    snapshot = calm(as_of_day, last_contact_on=None)
    flags = evaluate_flags(snapshot, day(as_of_day))
    assert (FlagKind.OVERDUE_CONTACT in kinds(flags)) is raised
    if raised:
        found = flag(flags, FlagKind.OVERDUE_CONTACT)
        assert found.inputs["counted_from"] == ENROLLED
        assert found.inputs["last_contact_on"] is None


@pytest.mark.parametrize(("days_since", "raised"), [(30, False), (31, True)])
def test_measurement_due_after_more_than_30_days(days_since: int, raised: bool) -> None:
    """A PHQ-9 30 days ago is recent enough; 31 days ago makes one due."""
    snapshot = calm(60, latest_phq9=DatedScore(day(60 - days_since), 8))
    assert (FlagKind.MEASUREMENT_DUE in kinds(evaluate_flags(snapshot, day(60)))) is raised


def test_measurement_is_due_at_once_without_any_phq9() -> None:
    """An enrolled patient never measured has a PHQ-9 due on the first day."""
    snapshot = RegistrySnapshot(EpisodeStatus.ENROLLED, enrolled_on=ENROLLED)
    flags = evaluate_flags(snapshot, ENROLLED)
    assert kinds(flags) == [FlagKind.MEASUREMENT_DUE, FlagKind.NEEDS_PSYCHIATRIC_REVIEW]
    assert flag(flags, FlagKind.MEASUREMENT_DUE).inputs["last_phq9_on"] is None


@pytest.mark.parametrize("status", list(EpisodeStatus))
def test_only_enrolled_and_active_treatment_count_as_active(status: EpisodeStatus) -> None:
    """Overdue contact and measurement due are raised only for enrolled or active patients."""
    snapshot = calm(100, status=status, last_contact_on=day(1), latest_phq9=DatedScore(day(1), 8))
    flags = kinds(evaluate_flags(snapshot, day(100)))
    active = status in {EpisodeStatus.ENROLLED, EpisodeStatus.ACTIVE_TREATMENT}
    assert (FlagKind.OVERDUE_CONTACT in flags) is active
    assert (FlagKind.MEASUREMENT_DUE in flags) is active
    assert (FlagKind.NOT_IMPROVING in flags) is False


def test_active_treatment_is_exactly_enrolled_and_active() -> None:
    """Relapse prevention, referred, discharged and deactivated are not active treatment."""
    assert ACTIVE_TREATMENT == {EpisodeStatus.ENROLLED, EpisodeStatus.ACTIVE_TREATMENT}


def test_new_enrollment_without_review_needs_psychiatric_review() -> None:
    """No case review since enrollment raises Needs psychiatric review for a new enrollment."""
    flags = evaluate_flags(calm(5, last_case_review_on=None), day(5))
    assert review_reasons(flags) == ("new_enrollment",)


def test_a_review_from_an_earlier_episode_does_not_count() -> None:
    """A case review dated before this enrollment still leaves the patient new."""
    flags = evaluate_flags(calm(5, last_case_review_on=day(-30)), day(5))
    assert review_reasons(flags) == ("new_enrollment",)


def test_a_review_on_the_enrollment_day_counts() -> None:
    """A case review on the enrollment day itself clears the new-enrollment reason."""
    assert evaluate_flags(calm(5, last_case_review_on=ENROLLED), day(5)) == []


@pytest.mark.parametrize("status", list(EpisodeStatus))
def test_team_request_needs_review_in_any_status(status: EpisodeStatus) -> None:
    """A team member's request raises Needs psychiatric review whatever the status."""
    flags = evaluate_flags(calm(20, status=status, review_requested_by_team=True), day(20))
    assert "team_request" in review_reasons(flags)


def test_review_reasons_accumulate_in_a_fixed_order() -> None:
    """All four reasons appear together, in rule order."""
    snapshot = calm(
        70,
        latest_item9=1,
        latest_phq9=DatedScore(day(70), 19),
        last_case_review_on=None,
        review_requested_by_team=True,
    )
    flags = evaluate_flags(snapshot, day(70))
    assert kinds(flags) == [
        FlagKind.SAFETY_RISK,
        FlagKind.NOT_IMPROVING,
        FlagKind.NEEDS_PSYCHIATRIC_REVIEW,
    ]
    assert review_reasons(flags) == (
        "new_enrollment",
        "not_improving",
        "safety_risk",
        "team_request",
    )


def test_flags_name_their_rule_and_version_and_keep_patient_data_out_of_text() -> None:
    """Each flag carries a rule id and version; its summary is fixed text."""
    flags = evaluate_flags(calm(70, latest_item9=2, latest_phq9=DatedScore(day(70), 17)), day(70))
    for found in flags:
        assert found.rule_id == f"flags.{found.kind.value}"
        assert found.rule_version == "2024.1"
        assert not any(ch.isdigit() for ch in found.summary)


def test_flag_inputs_cannot_be_changed() -> None:
    """A flag's inputs are a read-only view."""
    found = evaluate_flags(calm(20, asq_positive=True), day(20))[0]
    with pytest.raises(TypeError):
        found.inputs["asq_positive"] = False  # type: ignore[index]
    assert hash(found) == hash(found)


def test_the_contact_limit_is_configurable() -> None:
    """A practice policy of 21 days leaves a 15-day gap unflagged and names its version."""
    rules = replace(rules_for(day(40)), overdue_contact_after_days=21, version="2024.1-clinic")
    snapshot = calm(40, last_contact_on=day(25))
    assert evaluate_flags(snapshot, day(40), rules) == []
    flags = evaluate_flags(calm(40, last_contact_on=day(18)), day(40), rules)
    assert flag(flags, FlagKind.OVERDUE_CONTACT).rule_version == "2024.1-clinic"


def test_flag_rules_before_their_first_version_are_refused() -> None:
    """Asking for flags in 2023 raises NoRuleInForceError."""
    with pytest.raises(NoRuleInForceError):
        rules_for(date(2023, 12, 31))


def test_an_active_patient_needs_an_enrollment_day() -> None:
    """A snapshot in active treatment without an enrollment day is refused."""
    with pytest.raises(MissingEnrollmentDateError):
        RegistrySnapshot(EpisodeStatus.ACTIVE_TREATMENT)


def test_item_9_answers_outside_0_to_3_are_refused() -> None:
    """Item 9 answers lie between 0 and 3."""
    with pytest.raises(ScoreOutOfRangeError):
        RegistrySnapshot(EpisodeStatus.REFERRED, latest_item9=4)


@pytest.mark.parametrize(("days", "weeks"), [(0, 0), (6, 0), (7, 1), (69, 9), (70, 10)])
def test_weeks_in_treatment_are_whole_weeks_since_enrollment(days: int, weeks: int) -> None:
    """Day 69 is week 9 and day 70 is week 10."""
    assert weeks_in_treatment(ENROLLED, day(days)) == weeks


def test_weeks_in_treatment_before_enrollment_are_refused() -> None:
    """An as-of day before enrollment raises instead of returning a negative week."""
    with pytest.raises(AsOfBeforeEnrollmentError):
        weeks_in_treatment(ENROLLED, day(-1))


@pytest.mark.parametrize(
    ("baseline", "latest", "change"),
    [(20, 10, Fraction(-50)), (20, 25, Fraction(25)), (15, 15, Fraction(0)), (0, 4, None)],
)
def test_percent_change_is_signed_and_negative_when_better(
    baseline: int, latest: int, change: Fraction | None
) -> None:
    """percent_change(20, 10) is -50; a baseline of 0 has none."""
    assert percent_change(baseline, latest) == change


def test_as_of_may_be_an_aware_datetime_but_not_a_naive_one() -> None:
    """An aware now is read as its calendar day; a naive one is refused."""
    aware = datetime(2024, 5, 10, 9, 0, tzinfo=UTC)
    assert evaluate_flags(calm(70), aware) == evaluate_flags(calm(70), aware.date())
    with pytest.raises(NaiveDatetimeError):
        evaluate_flags(calm(70), datetime(2024, 5, 10, 9, 0))
