"""Depression outcome measures of an episode, always by effective time.

Source: docs/clinical-rules.md, "Outcomes (NCQA, CMS)": baseline (index score), response,
remission; NCQA HEDIS DRR-E (depression remission or response), DMS-E (utilisation
of the PHQ-9), DSF-E (depression screening and follow-up); eCQI CMS159 (remission at
twelve months) and CMS160 (PHQ-9 utilisation, the same four-month periods as DMS-E).

Rule versions (``RULE_BOOK``), chosen by the as-of day:
    2024.1  from 2024-01-01  response 50% below baseline, remission below 5; 12-week
                             window days 70-98; DRR-E ages 12+, index above 9, days
                             120-240; CMS159 index above 9, 12 months +/- 60 days;
                             DMS-E periods Jan-Apr, May-Aug, Sep-Dec; DSF-E 30 days;
                             6-month window days 120-240

Every rule reads the *effective* day of a score (when it was taken), never when it was
recorded, so a late-recorded score changes the results when they are recomputed, e.g.
an older-dated score becomes the new baseline. ``as_of`` drops scores taken after that
day and says whether a window is still open; which scores were *known* at some time
(recorded-time travel) is the caller's filter.

Scores are ``DatedScore``: complete PHQ-9 totals only, so an incomplete questionnaire
can never be a baseline, a response or a remission. Scores on the same day keep their
time of day when they have one, else the caller's (recorded) order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from fractions import Fraction

from domain.rules import DatedScore, RuleBook, calendar_day, improvement

__all__ = [
    "RULE_BOOK",
    "CohortUtilisation",
    "EnrolledPatient",
    "EpisodeFacts",
    "EpisodeOutcomes",
    "Ineligibility",
    "MeasureStatus",
    "OutcomeRules",
    "PeriodUtilisation",
    "ScreenFollowUp",
    "Utilisation",
    "UtilisationKind",
    "UtilisationWindow",
    "WindowOutcome",
    "baseline",
    "cms159",
    "cohort_utilisation",
    "dms_e",
    "drr_e",
    "dsf_e",
    "episode_outcomes",
    "gad7_remission",
    "gad7_response",
    "gad7_six_month_outcome",
    "gad7_twelve_week_outcome",
    "is_remission",
    "is_response",
    "rules_for",
    "six_month_outcome",
    "twelve_week_outcome",
    "utilisation_period",
    "utilisation_window",
]


class Ineligibility(StrEnum):
    """Why an episode is outside a measure's denominator."""

    NO_INDEX_SCORE = "no_index_score"
    AGE_BELOW_MINIMUM = "age_below_minimum"
    INDEX_NOT_ABOVE_THRESHOLD = "index_not_above_threshold"


class MeasureStatus(StrEnum):
    """State of a time-bound requirement on the as-of day."""

    MET = "met"
    NOT_MET = "not_met"
    # The period or deadline has not passed yet and is not met so far.
    OPEN = "open"


@dataclass(frozen=True)
class OutcomeRules:
    """One version of the outcome thresholds and windows."""

    version: str
    effective_from: date
    # Response: improvement from baseline of at least this fraction.
    response_improvement: Fraction
    # Remission: a total strictly below this.
    remission_below: int
    # Response / remission "at 12 weeks": days after the index score, inclusive.
    twelve_week_from_day: int
    twelve_week_to_day: int
    drr_min_age: int
    drr_index_above: int
    drr_from_day: int
    drr_to_day: int
    cms159_index_above: int
    # None: docs/clinical-rules.md gives CMS159 no age limit; the eCQI measure itself is for
    # ages 12 and over, so a later version may set 12 here.
    cms159_min_age: int | None
    cms159_months: int
    cms159_tolerance_days: int
    dms_period_months: int
    dsf_follow_up_days: int
    # Response / remission "at 6 months": days after the index score, inclusive.
    six_month_from_day: int
    six_month_to_day: int


RULES_2024 = OutcomeRules(
    version="2024.1",
    effective_from=date(2024, 1, 1),
    response_improvement=Fraction(1, 2),
    remission_below=5,
    # Choice: "at 12 weeks" is the most recent score taken on days 70-98 after the
    # index score (week 12 +/- 2 weeks). IMPACT reviews treatment at 10-12 weeks, so
    # the window opens at week 10 (day 70, the day the Not improving flag can first
    # fire), and closes at week 14 so a visit delayed by a fortnight still counts;
    # "most recent" follows the DRR-E and CMS159 convention. Days count from the
    # index score, not from enrollment, because response is relative to that score.
    twelve_week_from_day=70,
    twelve_week_to_day=98,
    drr_min_age=12,
    drr_index_above=9,
    drr_from_day=120,
    drr_to_day=240,
    cms159_index_above=9,
    cms159_min_age=None,
    cms159_months=12,
    cms159_tolerance_days=60,
    dms_period_months=4,
    dsf_follow_up_days=30,
    # Choice: "at 6 months" is the most recent score taken on days 120-240 after the
    # index score (month 6 +/- 2 months, i.e. day 180 +/- 60): the follow-up period of
    # NCQA HEDIS DRR-E ("4-8 months after the index episode start"), without DRR-E's
    # age and index limits, so every episode with an index score has a 6-month result,
    # as every one has a 12-week result.
    six_month_from_day=120,
    six_month_to_day=240,
)

RULE_BOOK: RuleBook[OutcomeRules] = RuleBook("outcomes", (RULES_2024,))


def rules_for(as_of: date) -> OutcomeRules:
    """Return the outcome rules in force on ``as_of`` (``NoRuleInForceError`` before 2024)."""
    return RULE_BOOK.in_force(as_of)


@dataclass(frozen=True)
class WindowOutcome:
    """A window measure for one episode: eligibility, the score that counts, the rates.

    ``counted`` is the most recent score in the window (``None``: no follow-up);
    ``follow_up``, ``response`` and ``remission`` are the three per-patient results
    (false when ineligible or without a score). ``window_closed`` is false while a
    later score could still change the result.
    """

    measure: str
    rule_version: str
    index: DatedScore | None
    ineligible: Ineligibility | None
    window_start: date | None
    window_end: date | None
    window_closed: bool
    counted: DatedScore | None
    response: bool
    remission: bool

    @property
    def eligible(self) -> bool:
        """True when the episode is in the measure's denominator."""
        return self.ineligible is None

    @property
    def follow_up(self) -> bool:
        """True when a score was taken in the window."""
        return self.counted is not None


@dataclass(frozen=True)
class EpisodeFacts:
    """An episode's outcome inputs: age at the index score and its complete PHQ-9s."""

    age_at_index: int
    scores: tuple[DatedScore, ...]


@dataclass(frozen=True)
class EpisodeOutcomes:
    """All score-based outcomes of an episode as of one day.

    ``latest`` is the most recent score after the baseline (``None`` with only a
    baseline); ``response`` and ``remission`` are read from it.
    """

    rule_version: str
    baseline: DatedScore | None
    latest: DatedScore | None
    improvement: Fraction | None
    response: bool
    remission: bool
    twelve_weeks: WindowOutcome
    drr_e: WindowOutcome
    cms159: WindowOutcome


@dataclass(frozen=True)
class PeriodUtilisation:
    """One four-month period that had a depression encounter, and its PHQ-9 status."""

    year: int
    period: int
    start: date
    end: date
    first_phq9_on: date | None
    status: MeasureStatus


@dataclass(frozen=True)
class Utilisation:
    """DMS-E / CMS160 utilisation: the periods with an encounter and whether each has a PHQ-9."""

    rule_version: str
    periods: tuple[PeriodUtilisation, ...]

    @property
    def all_met(self) -> bool:
        """True when every period with an encounter has a PHQ-9 (vacuously with none)."""
        return all(p.status is MeasureStatus.MET for p in self.periods)


@dataclass(frozen=True)
class ScreenFollowUp:
    """DSF-E: whether a positive depression screen was followed up in time."""

    rule_version: str
    screened_on: date
    deadline: date
    follow_up_on: date | None
    status: MeasureStatus


def _taken_by(scores: Iterable[DatedScore], as_of: date) -> list[DatedScore]:
    """Scores taken on or before ``as_of``, sorted by effective time (stable)."""
    return sorted((s for s in scores if s.day <= as_of), key=DatedScore.order_key)


def baseline(scores: Sequence[DatedScore], as_of: date | None = None) -> DatedScore | None:
    """The index score: the first complete PHQ-9 of the episode by effective time."""
    day = calendar_day(as_of) if as_of is not None else date.max
    ordered = _taken_by(scores, day)
    return ordered[0] if ordered else None


def is_response(baseline_total: int, total: int, rules: OutcomeRules) -> bool:
    """At least the response fraction (50%) below baseline; never for a baseline of 0."""
    gain = improvement(baseline_total, total)
    return gain is not None and gain >= rules.response_improvement


def is_remission(total: int, rules: OutcomeRules) -> bool:
    """A total below the remission limit (5)."""
    return total < rules.remission_below


def _window(
    measure: str,
    rules: OutcomeRules,
    ordered: list[DatedScore],
    as_of: date,
    ineligible: Ineligibility | None,
    bounds: tuple[date, date] | None,
    scale: str = "phq9",
) -> WindowOutcome:
    index = ordered[0] if ordered else None
    if index is None or bounds is None or ineligible is not None:
        return WindowOutcome(
            measure=measure,
            rule_version=rules.version,
            index=index,
            ineligible=ineligible if index is not None else Ineligibility.NO_INDEX_SCORE,
            window_start=bounds[0] if bounds else None,
            window_end=bounds[1] if bounds else None,
            window_closed=bounds is not None and as_of > bounds[1],
            counted=None,
            response=False,
            remission=False,
        )
    start, end = bounds
    in_window = [s for s in ordered if start <= s.day <= end]
    # The most recent score in the window counts (NCQA DRR-E; CMS159 likewise).
    counted = in_window[-1] if in_window else None
    return WindowOutcome(
        measure=measure,
        rule_version=rules.version,
        index=index,
        ineligible=None,
        window_start=start,
        window_end=end,
        window_closed=as_of > end,
        counted=counted,
        response=counted is not None and _responds(scale, index.total, counted.total, rules),
        remission=counted is not None and _remits(scale, counted.total, rules),
    )


def _responds(scale: str, baseline_total: int, total: int, rules: OutcomeRules) -> bool:
    if scale == "gad7":
        return gad7_response(baseline_total, total)
    return is_response(baseline_total, total, rules)


def _remits(scale: str, total: int, rules: OutcomeRules) -> bool:
    return gad7_remission(total) if scale == "gad7" else is_remission(total, rules)


def _days_after(index: DatedScore, from_day: int, to_day: int) -> tuple[date, date]:
    return index.day + timedelta(days=from_day), index.day + timedelta(days=to_day)


def twelve_week_outcome(
    scores: Sequence[DatedScore], as_of: date, rules: OutcomeRules | None = None
) -> WindowOutcome:
    """Response and remission at 12 weeks: the latest score on days 70-98 after the index."""
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    return _index_window(
        "twelve_weeks", scores, day, rules, rules.twelve_week_from_day, rules.twelve_week_to_day
    )


def _index_window(
    measure: str,
    scores: Sequence[DatedScore],
    day: date,
    rules: OutcomeRules,
    from_day: int,
    to_day: int,
    scale: str = "phq9",
) -> WindowOutcome:
    """A window measure with no eligibility limit: days ``from_day``-``to_day`` after the index."""
    ordered = _taken_by(scores, day)
    bounds = _days_after(ordered[0], from_day, to_day) if ordered else None
    return _window(measure, rules, ordered, day, None, bounds, scale)


def six_month_outcome(
    scores: Sequence[DatedScore], as_of: date, rules: OutcomeRules | None = None
) -> WindowOutcome:
    """Response and remission at 6 months: the latest score on days 120-240 after the index."""
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    return _index_window(
        "six_months", scores, day, rules, rules.six_month_from_day, rules.six_month_to_day
    )


def gad7_twelve_week_outcome(
    scores: Sequence[DatedScore], as_of: date, rules: OutcomeRules | None = None
) -> WindowOutcome:
    """GAD-7 response and remission at 12 weeks: the latest complete GAD-7 on days 70-98
    after the episode's first (index) GAD-7, judged with the GAD-7 thresholds (at least
    50% below the index; below 5). The window is the PHQ-9's, so the two read alike."""
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    return _index_window(
        "gad7_twelve_weeks",
        scores,
        day,
        rules,
        rules.twelve_week_from_day,
        rules.twelve_week_to_day,
        "gad7",
    )


def gad7_six_month_outcome(
    scores: Sequence[DatedScore], as_of: date, rules: OutcomeRules | None = None
) -> WindowOutcome:
    """GAD-7 response and remission at 6 months: the latest complete GAD-7 on days 120-240
    after the index GAD-7 (the PHQ-9's 6-month window), GAD-7 thresholds."""
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    return _index_window(
        "gad7_six_months",
        scores,
        day,
        rules,
        rules.six_month_from_day,
        rules.six_month_to_day,
        "gad7",
    )


def drr_e(
    scores: Sequence[DatedScore],
    age_at_index: int,
    as_of: date,
    rules: OutcomeRules | None = None,
) -> WindowOutcome:
    """NCQA DRR-E for one episode: ages 12+, index above 9, latest score on days 120-240."""
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    ordered = _taken_by(scores, day)
    ineligible = None
    bounds = None
    if ordered:
        index = ordered[0]
        bounds = _days_after(index, rules.drr_from_day, rules.drr_to_day)
        if age_at_index < rules.drr_min_age:
            ineligible = Ineligibility.AGE_BELOW_MINIMUM
        elif index.total <= rules.drr_index_above:
            ineligible = Ineligibility.INDEX_NOT_ABOVE_THRESHOLD
    return _window("drr_e", rules, ordered, day, ineligible, bounds)


def _add_months(day: date, months: int) -> date:
    """Same day of the month ``months`` later, clamped to the month's end (29 Feb -> 28)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    first = date(year, month, 1)
    last = ((first + timedelta(days=32)).replace(day=1) - timedelta(days=1)).day
    return first.replace(day=min(day.day, last))


def cms159(
    scores: Sequence[DatedScore],
    age_at_index: int,
    as_of: date,
    rules: OutcomeRules | None = None,
) -> WindowOutcome:
    """CMS159 remission at 12 months: index above 9, latest score in 12 months +/- 60 days.

    The anniversary is the same calendar day a year after the index (29 February ->
    28 February); the window runs 60 days either side of it, both ends included.
    Choice: when several scores fall in the window, the most recent counts, as in
    CMS159's own guidance and in DRR-E: it is the best picture of the state at the end
    of the year, and the result stays the same whichever order scores are recorded in.
    """
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    ordered = _taken_by(scores, day)
    ineligible = None
    bounds = None
    if ordered:
        index = ordered[0]
        anniversary = _add_months(index.day, rules.cms159_months)
        tolerance = timedelta(days=rules.cms159_tolerance_days)
        bounds = (anniversary - tolerance, anniversary + tolerance)
        if rules.cms159_min_age is not None and age_at_index < rules.cms159_min_age:
            ineligible = Ineligibility.AGE_BELOW_MINIMUM
        elif index.total <= rules.cms159_index_above:
            ineligible = Ineligibility.INDEX_NOT_ABOVE_THRESHOLD
    return _window("cms159", rules, ordered, day, ineligible, bounds)


def utilisation_period(day: date, rules: OutcomeRules) -> tuple[int, int, date, date]:
    """The four-month period of a day: (year, number 1-3, first day, last day)."""
    day = calendar_day(day)
    span = rules.dms_period_months
    number = (day.month - 1) // span + 1
    start = date(day.year, (number - 1) * span + 1, 1)
    end = _add_months(start, span) - timedelta(days=1)
    return day.year, number, start, end


def dms_e(
    encounter_days: Sequence[date],
    scores: Sequence[DatedScore],
    as_of: date,
    rules: OutcomeRules | None = None,
) -> Utilisation:
    """DMS-E / CMS160: a PHQ-9 in every four-month period with a depression encounter.

    Periods are Jan-Apr, May-Aug, Sep-Dec. Any complete PHQ-9 taken in the period
    counts, before or after the encounter (the rule asks for one *in the period*).
    A period not yet over on ``as_of`` and without a PHQ-9 so far is OPEN.
    """
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    ordered = _taken_by(scores, day)
    periods = sorted(
        {utilisation_period(e, rules) for e in encounter_days if calendar_day(e) <= day}
    )
    results = []
    for year, number, start, end in periods:
        taken = [s.day for s in ordered if start <= s.day <= end]
        if taken:
            status = MeasureStatus.MET
        elif day <= end:
            status = MeasureStatus.OPEN
        else:
            status = MeasureStatus.NOT_MET
        results.append(
            PeriodUtilisation(year, number, start, end, taken[0] if taken else None, status)
        )
    return Utilisation(rules.version, tuple(results))


def dsf_e(
    positive_screen_on: date,
    follow_up_days: Sequence[date],
    as_of: date,
    rules: OutcomeRules | None = None,
) -> ScreenFollowUp:
    """DSF-E: a positive depression screen followed up within 30 days.

    Choice: "within 30 days" is the screen day itself through 30 days after it, both
    included (NCQA: "on or up to 30 days after the date of the first positive
    screen"); a follow-up before the screen does not count. The earliest qualifying
    follow-up is reported.
    """
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    screened = calendar_day(positive_screen_on)
    deadline = screened + timedelta(days=rules.dsf_follow_up_days)
    qualifying = sorted(
        d for d in (calendar_day(f) for f in follow_up_days) if screened <= d <= min(deadline, day)
    )
    if qualifying:
        status = MeasureStatus.MET
    elif day <= deadline:
        status = MeasureStatus.OPEN
    else:
        status = MeasureStatus.NOT_MET
    return ScreenFollowUp(
        rule_version=rules.version,
        screened_on=screened,
        deadline=deadline,
        follow_up_on=qualifying[0] if qualifying else None,
        status=status,
    )


def episode_outcomes(
    facts: EpisodeFacts, as_of: date, rules: OutcomeRules | None = None
) -> EpisodeOutcomes:
    """Baseline, latest, response and remission now, at 12 weeks, DRR-E and CMS159.

    Choice: current response and remission read the latest score *after* the
    baseline; with only a baseline both are false, since an outcome of treatment
    needs a score taken after treatment began (a low baseline is not a remission).
    """
    day = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(day)
    ordered = _taken_by(facts.scores, day)
    first = ordered[0] if ordered else None
    latest = ordered[-1] if len(ordered) > 1 else None
    gain = (
        improvement(first.total, latest.total) if first is not None and latest is not None else None
    )
    return EpisodeOutcomes(
        rule_version=rules.version,
        baseline=first,
        latest=latest,
        improvement=gain,
        response=gain is not None and gain >= rules.response_improvement,
        remission=latest is not None and is_remission(latest.total, rules),
        twelve_weeks=twelve_week_outcome(facts.scores, day, rules),
        drr_e=drr_e(facts.scores, facts.age_at_index, day, rules),
        cms159=cms159(facts.scores, facts.age_at_index, day, rules),
    )


# --- Outcomes over time (issue #19 item 3): GAD-7 and system-level utilisation ----------
#
# GAD-7 (Spitzer RL, Kroenke K, Williams JBW, Loewe B. "A brief measure for assessing
# generalized anxiety disorder: the GAD-7." Arch Intern Med 2006;166:1092-1097): cut
# points 5, 10 and 15 for mild, moderate and severe anxiety. Response and remission
# mirror the PHQ-9 definitions above, the convention of measurement-based collaborative
# care (University of Washington AIMS Center, "treat to target"):
#   GAD-7 response   a GAD-7 at least 50% below the episode's first GAD-7 (never for a
#                    baseline of 0, as for the PHQ-9);
#   GAD-7 remission  a GAD-7 below 5 (below the "mild" cut point).
#
# System-level utilisation (emergency department visits, hospitalisations, specialty
# mental-health referrals), each an event with its own effective day, counted per 1,000
# enrolled patients of an enrollment-month cohort:
#   before  the 365 days before the enrollment day (days -365 to -1);
#   after   the 365 days after it (days 1 to 365).
# The enrollment day itself is in neither window: an emergency visit that day is often
# the reason for the referral and cannot be an effect of care. A patient counts in the
# "after" denominator only once their after-window has closed (day 365 has passed on the
# as-of day), so a young cohort's rate is never diluted by follow-up still to come.

GAD7_RESPONSE_IMPROVEMENT = Fraction(1, 2)
GAD7_REMISSION_BELOW = 5
UTILISATION_WINDOW_DAYS = 365
PER_PATIENTS = 1000


class UtilisationKind(StrEnum):
    """A use of the wider health system a collaborative-care program means to change."""

    EMERGENCY_VISIT = "emergency_visit"
    HOSPITALISATION = "hospitalisation"
    SPECIALTY_MENTAL_HEALTH_REFERRAL = "specialty_mental_health_referral"


class UtilisationSource(StrEnum):
    """Where careteam learned of a utilisation event (a closed set)."""

    CLAIMS = "claims"
    EHR = "ehr"
    HEALTH_INFORMATION_EXCHANGE = "health_information_exchange"
    PATIENT_REPORT = "patient_report"


class UtilisationWindow(StrEnum):
    """Where an event's effective day lies relative to the patient's enrollment day."""

    BEFORE = "before"
    AFTER = "after"


def gad7_response(baseline_total: int, total: int) -> bool:
    """A GAD-7 at least 50% below the baseline GAD-7 (never for a baseline of 0)."""
    gain = improvement(baseline_total, total)
    return gain is not None and gain >= GAD7_RESPONSE_IMPROVEMENT


def gad7_remission(total: int) -> bool:
    """A GAD-7 below 5."""
    return total < GAD7_REMISSION_BELOW


def utilisation_window(enrolled_on: date, effective_on: date) -> UtilisationWindow | None:
    """The window of an event day, or None (the enrollment day, or outside both)."""
    days = (effective_on - enrolled_on).days
    if -UTILISATION_WINDOW_DAYS <= days <= -1:
        return UtilisationWindow.BEFORE
    if 1 <= days <= UTILISATION_WINDOW_DAYS:
        return UtilisationWindow.AFTER
    return None


@dataclass(frozen=True)
class EnrolledPatient:
    """One enrolled patient's enrollment day and their utilisation events (kind, day)."""

    enrolled_on: date
    events: tuple[tuple[UtilisationKind, date], ...] = ()


@dataclass(frozen=True)
class CohortUtilisation:
    """One kind of utilisation for the patients enrolled in one month."""

    year: int
    month: int
    kind: UtilisationKind
    enrolled: int
    before_events: int
    # Patients whose after-window has closed on the as-of day, and their events after.
    after_patients: int
    after_events: int

    @property
    def before_per_1000(self) -> Fraction | None:
        return (
            None
            if not self.enrolled
            else Fraction(self.before_events * PER_PATIENTS, self.enrolled)
        )

    @property
    def after_per_1000(self) -> Fraction | None:
        if not self.after_patients:
            return None
        return Fraction(self.after_events * PER_PATIENTS, self.after_patients)


def cohort_utilisation(
    patients: Iterable[EnrolledPatient], kind: UtilisationKind, as_of: date
) -> list[CohortUtilisation]:
    """Per enrollment month (oldest first): events of ``kind`` before and after enrollment,
    counting only patients enrolled and events effective on or before ``as_of``."""
    groups: dict[tuple[int, int], list[EnrolledPatient]] = {}
    for p in patients:
        if p.enrolled_on <= as_of:
            groups.setdefault((p.enrolled_on.year, p.enrolled_on.month), []).append(p)
    out = []
    for (year, month), cohort in sorted(groups.items()):
        before = after = closed = 0
        for p in cohort:
            window_closed = (as_of - p.enrolled_on).days > UTILISATION_WINDOW_DAYS
            closed += window_closed
            for event_kind, day in p.events:
                if event_kind is not kind or day > as_of:
                    continue
                where = utilisation_window(p.enrolled_on, day)
                before += where is UtilisationWindow.BEFORE
                after += where is UtilisationWindow.AFTER and window_closed
        out.append(CohortUtilisation(year, month, kind, len(cohort), before, closed, after))
    return out


# GAD-7 per enrollment-month cohort (docs/outcomes.md, "Outcomes over time"): a patient's
# baseline is their first complete GAD-7 taken from 30 days before the enrollment day on
# (the intake look-back of docs/clinical-time.md); their latest is the last complete
# GAD-7 after the baseline day, on or before the as-of day. Response and remission are
# judged on the latest score (gad7_response, gad7_remission), among the patients with a
# follow-up score; a patient with a baseline only counts in ``with_baseline``.
GAD7_BASELINE_LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class Gad7Course:
    """One enrolled patient's enrollment day and complete GAD-7 totals (day, total)."""

    enrolled_on: date
    scores: tuple[tuple[date, int], ...] = ()


@dataclass(frozen=True)
class CohortGad7:
    """GAD-7 outcomes of the patients enrolled in one month, as of a day."""

    year: int
    month: int
    enrolled: int
    with_baseline: int
    followed_up: int
    response: int
    remission: int


def cohort_gad7(patients: Iterable[Gad7Course], as_of: date) -> list[CohortGad7]:
    """Per enrollment month (oldest first), counting patients enrolled by ``as_of``."""
    groups: dict[tuple[int, int], list[Gad7Course]] = {}
    for p in patients:
        if p.enrolled_on <= as_of:
            groups.setdefault((p.enrolled_on.year, p.enrolled_on.month), []).append(p)
    out = []
    for (year, month), cohort in sorted(groups.items()):
        baseline_n = followed = responded = remitted = 0
        for p in cohort:
            start = p.enrolled_on - timedelta(days=GAD7_BASELINE_LOOKBACK_DAYS)
            scores = sorted(s for s in p.scores if start <= s[0] <= as_of)
            if not scores:
                continue
            baseline_n += 1
            base_day, base_total = scores[0]
            later = [s for s in scores if s[0] > base_day]
            if not later:
                continue
            followed += 1
            latest = later[-1][1]
            responded += gad7_response(base_total, latest)
            remitted += gad7_remission(latest)
        out.append(CohortGad7(year, month, len(cohort), baseline_n, followed, responded, remitted))
    return out
