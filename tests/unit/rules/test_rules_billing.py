"""Billing codes of a patient-month: thresholds, exclusions, consent and rule versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pytest

from domain.rules import NoRuleInForceError
from domain.rules.billing import (
    RULE_BOOK,
    ActivityType,
    BillingMode,
    EntryOutsideMonthError,
    MinuteEntry,
    MonthBeforeEpisodeError,
    MonthBilling,
    MonthNotFirstDayError,
    NegativeMinutesError,
    PatientMonth,
    RequiredElement,
    bill_month,
    month_end,
    rules_for,
)

MARCH = date(2024, 3, 1)


def entry(
    minutes: int, day: int = 5, *, inpatient: bool = False, month: date = MARCH
) -> MinuteEntry:
    return MinuteEntry(month.replace(day=day), minutes, ActivityType.CONTACT, inpatient)


def episode_start(month: date, first: bool) -> date:
    """The month's first day for a first month, else the 20th of the previous month."""
    if first:
        return month
    return (month - timedelta(days=1)).replace(day=20)


def patient_month(
    entries: tuple[MinuteEntry, ...],
    *,
    month: date = MARCH,
    first: bool = True,
    consent_on: date | Literal["at_start"] | None = "at_start",
    mode: BillingMode = BillingMode.COCM,
    documented: bool = True,
) -> PatientMonth:
    """A patient-month; consent defaults to the episode's start, before any entry."""
    start = episode_start(month, first)
    return PatientMonth(
        month=month,
        episode_started_on=start,
        entries=entries,
        consent_on=start if consent_on == "at_start" else consent_on,
        initial_assessment_documented=documented,
        care_plan_documented=documented,
        psychiatric_review_documented=documented,
        registry_tracking_documented=documented,
        mode=mode,
        initiating_visit_documented=documented,
    )


def bill(
    minutes: int,
    *,
    first: bool = True,
    consent_on: date | Literal["at_start"] | None = "at_start",
    mode: BillingMode = BillingMode.COCM,
    documented: bool = True,
) -> MonthBilling:
    facts = patient_month(
        (entry(minutes),), first=first, consent_on=consent_on, mode=mode, documented=documented
    )
    return bill_month(facts)


@pytest.mark.parametrize(
    ("minutes", "codes"),
    [
        (0, ()),
        (15, ()),
        (16, (("G2214", 1),)),
        (35, (("G2214", 1),)),
        (36, (("99492", 1),)),
        (54, (("99492", 1),)),
        (85, (("99492", 1),)),
        (86, (("99492", 1), ("99494", 1))),
        (115, (("99492", 1), ("99494", 1))),
        (116, (("99492", 1), ("99494", 2))),
        (145, (("99492", 1), ("99494", 2))),
        (146, (("99492", 1), ("99494", 3))),
    ],
)
def test_first_month_codes_follow_the_midpoint_thresholds(
    minutes: int, codes: tuple[tuple[str, int], ...]
) -> None:
    """The first month bills G2214 from 16, 99492 from 36 and a 99494 unit from 86, 116, 146."""
    result = bill(minutes, first=True)
    assert result.first_month
    assert result.codes == codes


@pytest.mark.parametrize(
    ("minutes", "codes"),
    [
        (15, ()),
        (16, (("G2214", 1),)),
        (30, (("G2214", 1),)),
        (31, (("99493", 1),)),
        (75, (("99493", 1),)),
        (76, (("99493", 1), ("99494", 1))),
        (105, (("99493", 1), ("99494", 1))),
        (106, (("99493", 1), ("99494", 2))),
    ],
)
def test_later_month_codes_follow_the_midpoint_thresholds(
    minutes: int, codes: tuple[tuple[str, int], ...]
) -> None:
    """A later month bills G2214 from 16, 99493 from 31 and a 99494 unit from 76, 106."""
    result = bill(minutes, first=False)
    assert not result.first_month
    assert result.codes == codes


@pytest.mark.parametrize("first", [True, False])
def test_code_combinations_stay_legal_for_every_minute_count(first: bool) -> None:
    """For 0-400 minutes: one base code at most, add-on only with it, G2214 only without it."""
    previous_units = 0
    for minutes in range(401):
        codes = dict(bill(minutes, first=first).codes)
        assert not ("99492" in codes and "99493" in codes)
        assert all(units == 1 for code, units in codes.items() if code != "99494")
        if "99494" in codes:
            assert ("99492" if first else "99493") in codes
        if "G2214" in codes:
            assert codes.keys() == {"G2214"}
        units = codes.get("99494", 0)
        assert units >= previous_units
        previous_units = units


@pytest.mark.parametrize(
    ("minutes", "codes"), [(19, ()), (20, (("99484", 1),)), (200, (("99484", 1),))]
)
def test_general_bhi_month_bills_99484_from_20_minutes_and_never_cocm_codes(
    minutes: int, codes: tuple[tuple[str, int], ...]
) -> None:
    """A BHI-mode month bills only 99484, one unit, from 20 minutes, however long."""
    assert bill(minutes, mode=BillingMode.GENERAL_BHI).codes == codes


def test_minutes_add_up_across_entries_of_the_month() -> None:
    """Several entries sum to the month's counted minutes."""
    entries = (entry(20, 1), entry(10, 15), entry(6, 31))
    result = bill_month(patient_month(entries))
    assert result.logged_minutes == result.counted_minutes == 36
    assert result.codes == (("99492", 1),)


def test_inpatient_minutes_do_not_count() -> None:
    """Time while the patient is inpatient is logged but excluded, which can lower the code."""
    entries = (entry(30), entry(10, 6, inpatient=True))
    result = bill_month(patient_month(entries))
    assert result.logged_minutes == 40
    assert result.inpatient_minutes == 10
    assert result.counted_minutes == 30
    assert result.codes == (("G2214", 1),)


def test_no_consent_means_no_codes_and_not_billable() -> None:
    """Without consent no minute counts: no codes, not billable, consent listed as missing."""
    result = bill(90, consent_on=None)
    assert result.codes == ()
    assert not result.billable
    assert result.minutes_before_consent == 90
    assert result.counted_minutes == 0
    assert result.missing_documentation == (RequiredElement.CONSENT,)


def test_consent_after_the_month_is_missing_for_that_month() -> None:
    """Consent dated after the month's last day does not make the month billable."""
    result = bill(90, consent_on=date(2024, 4, 1))
    assert not result.billable
    assert RequiredElement.CONSENT in result.missing_documentation


def test_minutes_before_the_consent_day_do_not_count_but_the_consent_day_does() -> None:
    """Consent on the 10th: time on the 9th is excluded, time on the 10th counts."""
    entries = (entry(30, 9), entry(40, 10), entry(5, 20))
    result = bill_month(patient_month(entries, consent_on=date(2024, 3, 10)))
    assert result.minutes_before_consent == 30
    assert result.counted_minutes == 45
    assert result.codes == (("99492", 1),)
    assert result.billable
    assert result.missing_documentation == ()


def test_inpatient_time_before_consent_is_reported_once_as_inpatient() -> None:
    """A minute excluded for both reasons is counted under inpatient only."""
    entries = (entry(10, 2, inpatient=True), entry(20, 3))
    result = bill_month(patient_month(entries, consent_on=date(2024, 3, 10)))
    assert (result.inpatient_minutes, result.minutes_before_consent) == (10, 20)


def test_missing_elements_are_listed_without_hiding_the_code() -> None:
    """A month with consent but no assessment, plan, review or registry keeps its code."""
    result = bill(40, documented=False)
    assert result.codes == (("99492", 1),)
    assert result.billable
    assert not result.ready_to_submit
    assert result.missing_documentation == (
        RequiredElement.INITIAL_ASSESSMENT,
        RequiredElement.CARE_PLAN,
        RequiredElement.PSYCHIATRIC_CONSULTANT_REVIEW,
        RequiredElement.REGISTRY_TRACKING,
        RequiredElement.INITIATING_VISIT,
    )


def test_general_bhi_does_not_ask_for_psychiatric_review_or_registry() -> None:
    """A BHI month lists only consent, assessment, care plan and initiating visit."""
    result = bill(25, mode=BillingMode.GENERAL_BHI, documented=False)
    assert result.missing_documentation == (
        RequiredElement.INITIAL_ASSESSMENT,
        RequiredElement.CARE_PLAN,
        RequiredElement.INITIATING_VISIT,
    )


def test_complete_month_is_ready_to_submit() -> None:
    """Consent, every element and a code make the month ready to submit."""
    result = bill(40)
    assert result.billable and result.ready_to_submit
    assert result.rule_id == "billing.cocm"
    assert result.rule_version == "2021.1"


def test_first_month_is_the_calendar_month_in_which_services_started() -> None:
    """Services started on 31 January: January bills 99492, February 99493."""
    start = date(2024, 1, 31)

    def at(month: date, day: int) -> MonthBilling:
        return bill_month(
            PatientMonth(
                month=month,
                episode_started_on=start,
                entries=(entry(40, day, month=month),),
                consent_on=start,
                initial_assessment_documented=True,
                care_plan_documented=True,
                psychiatric_review_documented=True,
                registry_tracking_documented=True,
                initiating_visit_documented=True,
            )
        )

    january, february = at(date(2024, 1, 1), 31), at(date(2024, 2, 1), 1)
    assert january.first_month and january.codes == (("99492", 1),)
    assert not february.first_month and february.codes == (("99493", 1),)


@pytest.mark.parametrize(
    ("month", "version", "codes"),
    [
        (date(2017, 6, 1), "2017.1", (("G0503", 1),)),
        (date(2018, 1, 1), "2018.1", (("99493", 1),)),
        (date(2020, 12, 1), "2018.1", (("99493", 1),)),
        (date(2021, 1, 1), "2021.1", (("99493", 1),)),
    ],
)
def test_past_months_use_the_rules_in_force_then(
    month: date, version: str, codes: tuple[tuple[str, int], ...]
) -> None:
    """A later month of 40 minutes bills the code of its year's rule version."""
    result = bill_month(patient_month((entry(40, month=month),), month=month, first=False))
    assert result.rule_version == version
    assert result.codes == codes


@pytest.mark.parametrize(
    ("month", "codes"), [(date(2020, 12, 1), ()), (date(2021, 1, 1), (("G2214", 1),))]
)
def test_g2214_exists_only_from_2021(month: date, codes: tuple[tuple[str, int], ...]) -> None:
    """Twenty minutes bill nothing in December 2020 and G2214 in January 2021."""
    result = bill_month(patient_month((entry(20, month=month),), month=month, first=False))
    assert result.codes == codes


def test_2017_first_month_uses_the_g_codes_with_the_same_thresholds() -> None:
    """In 2017 a first month of 90 minutes bills G0502 and one G0504."""
    month = date(2017, 3, 1)
    result = bill_month(patient_month((entry(90, month=month),), month=month))
    assert result.codes == (("G0502", 1), ("G0504", 1))


def test_a_month_before_the_first_rule_version_has_no_rules() -> None:
    """Asking for 2016 raises NoRuleInForceError instead of guessing."""
    with pytest.raises(NoRuleInForceError):
        rules_for(date(2016, 12, 1))


def test_rules_for_picks_the_version_by_the_month_of_any_day() -> None:
    """Any day of a month selects that month's rule version."""
    assert rules_for(date(2020, 12, 31)).version == "2018.1"
    assert rules_for(date(2021, 1, 31)).version == "2021.1"
    assert rules_for(date(2025, 12, 31)).version == "2021.1"
    assert rules_for(date(2026, 1, 1)).version == "2026.1"
    assert [v.version for v in RULE_BOOK.versions] == ["2017.1", "2018.1", "2021.1", "2026.1"]


def test_an_explicit_rule_set_overrides_the_date_lookup() -> None:
    """Passing rules re-derives a month under that version."""
    facts = patient_month((entry(20),), first=False)
    older = rules_for(date(2018, 1, 1))
    assert bill_month(facts, older).codes == ()
    assert bill_month(facts, older).rule_version == "2018.1"


def test_month_must_be_given_as_its_first_day() -> None:
    """A mid-month day as the month is refused."""
    with pytest.raises(MonthNotFirstDayError):
        bill_month(patient_month((), month=date(2024, 3, 2)))


def test_entries_outside_the_month_are_refused() -> None:
    """An entry dated in another month raises with its index, not its date."""
    facts = patient_month((entry(10), MinuteEntry(date(2024, 4, 1), 5, ActivityType.OUTREACH)))
    with pytest.raises(EntryOutsideMonthError) as error:
        bill_month(facts)
    assert error.value.index == 1
    assert "2024" not in str(error.value)


def test_negative_minutes_are_refused() -> None:
    """A negative duration raises."""
    with pytest.raises(NegativeMinutesError):
        bill(-1)


def test_a_month_before_the_episode_started_is_refused() -> None:
    """Billing February for an episode that started in March raises."""
    facts = patient_month((), month=MARCH)
    early = PatientMonth(
        month=date(2024, 2, 1),
        episode_started_on=MARCH,
        entries=(),
        consent_on=facts.consent_on,
        initial_assessment_documented=True,
        care_plan_documented=True,
        psychiatric_review_documented=True,
        registry_tracking_documented=True,
    )
    with pytest.raises(MonthBeforeEpisodeError):
        bill_month(early)


def test_aware_datetimes_are_read_as_their_calendar_day() -> None:
    """Entries and consent may be timezone-aware datetimes; their local day is used."""
    at = datetime(2024, 3, 10, 23, 30, tzinfo=UTC)
    facts = PatientMonth(
        month=MARCH,
        episode_started_on=MARCH,
        entries=(MinuteEntry(at, 40, ActivityType.CASE_REVIEW),),
        consent_on=at,
        initial_assessment_documented=True,
        care_plan_documented=True,
        psychiatric_review_documented=True,
        registry_tracking_documented=True,
    )
    assert bill_month(facts).codes == (("99492", 1),)


@pytest.mark.parametrize(
    ("month", "last"),
    [
        (date(2024, 2, 1), date(2024, 2, 29)),
        (date(2023, 2, 1), date(2023, 2, 28)),
        (date(2024, 12, 1), date(2024, 12, 31)),
    ],
)
def test_month_end_is_the_last_calendar_day(month: date, last: date) -> None:
    """month_end handles leap years and December."""
    assert month_end(month) == last


def test_without_an_initiating_visit_the_code_stays_but_the_month_is_not_ready() -> None:
    """CMS requires the billing practitioner's initiating visit (MLN909432): the minutes
    still support the code, the visit is listed as missing, and the month is not ready."""
    facts = replace(patient_month((entry(40, 3),)), initiating_visit_documented=False)
    result = bill_month(facts)
    assert result.codes == (("99492", 1),) and result.billable
    assert result.missing_documentation == (RequiredElement.INITIATING_VISIT,)
    assert not result.ready_to_submit
