"""Care-team measures per month, for the organisation or per care manager (issue #19
item 3; docs/outcomes.md, "Care-team measures per month").

Computed from a patient's facts document (projections/outcomes_series.py: the care
manager history, episodes, contacts, psychiatric reviews and PHQ / GAD-7 screens; days,
codes and totals only) with the pure rules of ``domain.rules.care_team_months`` and
``domain.rules.outcomes``. ``PatientFacts.contribution`` is what the read model
projections/care_team_months.py stores per patient, month and stretch of as-of days (the
query sums those rows); ``care_team_series`` is the same over a list of documents, the
reference the tests compare that read model with. Per month:

- caseload size and how many of those patients were contacted that month;
- of the episodes enrolled that month: how many, how many have had a first psychiatric
  case review by the as-of day and the median days to it; PHQ-9 response and remission
  at 12 weeks and at 6 months, and NCQA DRR-E (``projections.outcomes.summarise``:
  rates over closed windows only); GAD-7 response and remission at 12 weeks and at 6
  months (the same windows after the episode's first complete GAD-7);
- NCQA DMS-E: patients with a depression encounter (a contact) that month, and whether
  the four-month period holding it has a complete PHQ-9;
- NCQA DSF-E: patients whose first positive PHQ-2 of the month was followed by a
  complete PHQ-9 the same day or within 30 days.

Aggregates only: the result names care managers (staff), never a patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from domain.instruments import Instrument
from domain.patient import counts_for_episode
from domain.rules import DatedScore
from domain.rules import care_team_months as months_rules
from domain.rules import outcomes as outcome_rules
from domain.rules.outcomes import MeasureStatus, WindowOutcome
from projections.clinic_calendar import day_of, in_zone, parse_instant
from projections.document import Doc
from projections.outcomes import OUTCOME_RULES_START, MeasureSummary, age_on, summarise
from projections.outcomes_series import PHQ9_SCALES

GAD7_SCALES: frozenset[str] = frozenset({Instrument.GAD7.value})


@dataclass(frozen=True)
class StatusCount:
    """How many patients a time-bound measure counts, and its status on the as-of day."""

    eligible: int = 0
    met: int = 0
    open: int = 0

    @property
    def not_met(self) -> int:
        return self.eligible - self.met - self.open

    def add(self, status: MeasureStatus) -> StatusCount:
        return StatusCount(
            self.eligible + 1,
            self.met + (status is MeasureStatus.MET),
            self.open + (status is MeasureStatus.OPEN),
        )


@dataclass(frozen=True)
class CareTeamMonth:
    """The measures of one month for one group (the organisation or a care manager)."""

    year: int
    month: int
    caseload: int
    contacted: int
    enrolled: int
    reviewed: int
    median_days_to_review: float | None
    twelve_weeks: MeasureSummary
    six_months: MeasureSummary
    drr_e: MeasureSummary
    dms_e: StatusCount
    dsf_e: StatusCount
    gad7_twelve_weeks: MeasureSummary
    gad7_six_months: MeasureSummary


@dataclass(frozen=True)
class CareTeamSeries:
    """One group's months, oldest first. ``care_manager_id`` None: the organisation (by
    organisation) or the patients without a care manager (by care manager)."""

    care_manager_id: UUID | None
    months: list[CareTeamMonth]


@dataclass
class MonthAcc:
    caseload: int = 0
    contacted: int = 0
    enrolled: int = 0
    review_days: list[int] = field(default_factory=list)
    twelve_weeks: list[WindowOutcome] = field(default_factory=list)
    six_months: list[WindowOutcome] = field(default_factory=list)
    drr_e: list[WindowOutcome] = field(default_factory=list)
    gad7_twelve_weeks: list[WindowOutcome] = field(default_factory=list)
    gad7_six_months: list[WindowOutcome] = field(default_factory=list)
    dms_e: StatusCount = StatusCount()
    dsf_e: StatusCount = StatusCount()

    def counted(self) -> bool:
        return bool(self.caseload or self.enrolled or self.dms_e.eligible or self.dsf_e.eligible)

    def build(self, year: int, month: int) -> CareTeamMonth:
        return CareTeamMonth(
            year=year,
            month=month,
            caseload=self.caseload,
            contacted=self.contacted,
            enrolled=self.enrolled,
            reviewed=len(self.review_days),
            median_days_to_review=months_rules.median_days(self.review_days),
            twelve_weeks=summarise("twelve_weeks", self.twelve_weeks),
            six_months=summarise("six_months", self.six_months),
            drr_e=summarise("drr_e", self.drr_e),
            dms_e=self.dms_e,
            dsf_e=self.dsf_e,
            gad7_twelve_weeks=summarise("gad7_twelve_weeks", self.gad7_twelve_weeks),
            gad7_six_months=summarise("gad7_six_months", self.gad7_six_months),
        )


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _episode_scores(
    doc: Doc, episode: Doc, scales: frozenset[str] = PHQ9_SCALES
) -> list[DatedScore]:
    """Complete totals of ``scales`` (PHQ-9 / PHQ-A, or GAD-7) of the episode, taken no
    earlier than its intake look-back (as the registry reads them), by effective time."""
    started = parse_instant(episode["started_at"])
    return sorted(
        (
            DatedScore(in_zone(parse_instant(taken)), total)
            for taken, instrument, total, _, number in doc["screens"]
            if instrument in scales
            and number == episode["number"]
            and counts_for_episode(parse_instant(taken), started)
        ),
        key=DatedScore.order_key,
    )


@dataclass(frozen=True)
class MonthFrame:
    """A month as the rules see it on the as-of day: its days up to ``last``."""

    year: int
    month: int
    first: date
    last: date
    # The first day of the DMS-E four-month period holding the month.
    period_start: date


def _frames(wanted: Sequence[tuple[int, int]], as_of: date) -> list[MonthFrame]:
    """The wanted months that have begun by ``as_of``, each ending at ``as_of`` at the latest."""
    rules = outcome_rules.rules_for(max(as_of, OUTCOME_RULES_START))
    return [
        MonthFrame(
            y,
            m,
            months_rules.month_start(y, m),
            min(months_rules.month_end(y, m), as_of),
            outcome_rules.utilisation_period(months_rules.month_start(y, m), rules)[2],
        )
        for y, m in wanted
        if months_rules.month_start(y, m) <= as_of
    ]


class PatientFacts:
    """One patient's document parsed once: the facts every month's contribution reads."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.patient_id = UUID(doc["patient_id"])
        birth = doc.get("birth_date")
        self.birth = None if birth is None else _day(birth)
        self.managers = [
            (_day(d), None if m is None else UUID(m)) for d, m in doc.get("managers", [])
        ]
        self.episodes = [
            (e, _day(e["enrolled_on"]), None if e["ended_on"] is None else _day(e["ended_on"]))
            for e in doc.get("episodes", [])
            if e["enrolled_on"] is not None
        ]
        self.contacts = [(_day(d), n) for d, n in doc.get("contacts", [])]
        self.reviews = [(_day(d), n) for d, n in doc.get("reviews", [])]
        screens = doc.get("screens", [])
        self.phq9_days = [
            day_of(parse_instant(t))
            for t, instrument, _, _, _ in screens
            if instrument in PHQ9_SCALES
        ]
        self.positive_phq2 = sorted(
            day_of(parse_instant(t))
            for t, instrument, _, positive, _ in screens
            if instrument == "phq2" and positive
        )
        # Per episode number: its PHQ-9 and GAD-7 scores (as the registry reads them).
        self.scores = {
            e["number"]: (_episode_scores(doc, e), _episode_scores(doc, e, GAD7_SCALES))
            for e, _, _ in self.episodes
        }

    def contribution(self, frame: MonthFrame, as_of: date) -> tuple[UUID | None, MonthAcc] | None:
        """The patient's contribution to one month on ``as_of`` (an accumulator of one) and
        the care manager it counts under, or None when nothing of theirs is in the month."""
        rules_day = max(as_of, OUTCOME_RULES_START)
        rules = outcome_rules.rules_for(rules_day)
        first, last = frame.first, frame.last
        live = [
            e["number"]
            for e, enrolled_on, ended_on in self.episodes
            if months_rules.on_caseload_in(enrolled_on, ended_on, first, last)
        ]
        encounters = [d for d, _ in self.contacts if first <= d <= last]
        screened = [d for d in self.positive_phq2 if first <= d <= last]
        if not (live or encounters or screened):
            return None  # nothing of this patient in the month (no enrollment without a live one)
        acc = MonthAcc()
        if live:
            acc.caseload = 1
            acc.contacted = int(any(first <= d <= last and n in live for d, n in self.contacts))
        for episode, enrolled_on, _ in self.episodes:
            if not first <= enrolled_on <= last:
                continue
            acc.enrolled += 1
            days = months_rules.days_to_first_review(
                enrolled_on, [d for d, n in self.reviews if n == episode["number"]], as_of
            )
            if days is not None:
                acc.review_days.append(days)
            scores, anxiety = self.scores[episode["number"]]
            if anxiety:  # no index GAD-7: in neither GAD-7 window measure
                acc.gad7_twelve_weeks.append(
                    outcome_rules.gad7_twelve_week_outcome(anxiety, rules_day, rules)
                )
                acc.gad7_six_months.append(
                    outcome_rules.gad7_six_month_outcome(anxiety, rules_day, rules)
                )
            if not scores:
                continue  # no index score: in no window measure (as in the outcomes query)
            age = 0 if self.birth is None else age_on(self.birth, scores[0].day)
            acc.twelve_weeks.append(outcome_rules.twelve_week_outcome(scores, rules_day, rules))
            acc.six_months.append(outcome_rules.six_month_outcome(scores, rules_day, rules))
            acc.drr_e.append(outcome_rules.drr_e(scores, age, rules_day, rules))
        if encounters:
            # DMS-E reads days only: a PHQ-9 anywhere in the four-month period meets it.
            (period,) = outcome_rules.dms_e(
                encounters, [DatedScore(d, 0) for d in self.phq9_days], rules_day, rules
            ).periods
            acc.dms_e = acc.dms_e.add(period.status)
        if screened:
            follow_up = outcome_rules.dsf_e(screened[0], self.phq9_days, rules_day, rules)
            acc.dsf_e = acc.dsf_e.add(follow_up.status)
        if not acc.counted():
            return None
        return months_rules.care_manager_on(self.managers, last), acc


def _patient_months(
    doc: Doc, frames: Sequence[MonthFrame], as_of: date, by_care_manager: bool
) -> Iterable[tuple[UUID | None, tuple[int, int], MonthAcc]]:
    """One patient's contribution to each month it counts in (an accumulator of one)."""
    facts = PatientFacts(doc)
    for frame in frames:
        found = facts.contribution(frame, as_of)
        if found is not None:
            manager, acc = found
            yield manager if by_care_manager else None, (frame.year, frame.month), acc


def _merge(into: MonthAcc, one: MonthAcc) -> None:
    into.caseload += one.caseload
    into.contacted += one.contacted
    into.enrolled += one.enrolled
    into.review_days.extend(one.review_days)
    into.twelve_weeks.extend(one.twelve_weeks)
    into.six_months.extend(one.six_months)
    into.drr_e.extend(one.drr_e)
    into.gad7_twelve_weeks.extend(one.gad7_twelve_weeks)
    into.gad7_six_months.extend(one.gad7_six_months)
    into.dms_e = StatusCount(
        into.dms_e.eligible + one.dms_e.eligible,
        into.dms_e.met + one.dms_e.met,
        into.dms_e.open + one.dms_e.open,
    )
    into.dsf_e = StatusCount(
        into.dsf_e.eligible + one.dsf_e.eligible,
        into.dsf_e.met + one.dsf_e.met,
        into.dsf_e.open + one.dsf_e.open,
    )


def care_team_series(
    docs: Iterable[Doc],
    wanted: Sequence[tuple[int, int]],
    as_of: date,
    *,
    by_care_manager: bool,
) -> tuple[list[CareTeamSeries], set[UUID]]:
    """The series per group (organisation: one; care managers by id, unassigned last),
    each with every wanted month up to ``as_of`` (zeros included), and the patients
    counted anywhere in it (for the read audit)."""
    groups: dict[UUID | None, dict[tuple[int, int], MonthAcc]] = {}
    counted: set[UUID] = set()
    if not by_care_manager:
        groups[None] = {}
    frames = _frames(wanted, as_of)
    for doc in docs:
        for manager, month, acc in _patient_months(doc, frames, as_of, by_care_manager):
            _merge(groups.setdefault(manager, {}).setdefault(month, MonthAcc()), acc)
            counted.add(UUID(doc["patient_id"]))
    shown = [(f.year, f.month) for f in frames]
    series = [
        CareTeamSeries(
            manager,
            [months.get(m, MonthAcc()).build(*m) for m in shown],
        )
        for manager, months in sorted(groups.items(), key=lambda g: (g[0] is None, str(g[0])))
    ]
    return series, counted
