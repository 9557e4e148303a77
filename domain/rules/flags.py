"""Registry flags of treat-to-target collaborative care.

Source: docs/clinical-rules.md, "Treat-to-target and the registry flags": PHQ-9 protocol and
the NIMH ASQ toolkit (safety risk); the IMPACT trial, change treatment at 10-12 weeks
(not improving); AIMS Center process metrics (overdue contact, a policy choice);
IMPACT weekly review of new and not-improving patients (needs psychiatric review);
measurement-based care and DMS (measurement due, a policy choice).

Rule versions (``RULE_BOOK``), chosen by the as-of day:
    2024.1  from 2024-01-01  item 9 above 0; 10 weeks and under 50% improvement;
                             contact overdue after more than 14 days; PHQ-9 due after
                             more than 30 days

The thresholds are data (``FlagRules``). A practice that wants another limit (the
overdue-contact limit is configurable) passes
``dataclasses.replace(rules_for(day), overdue_contact_after_days=21, version="2024.1-x")``
so every flag it raises names the policy that raised it.

``evaluate_flags(snapshot, as_of)`` is pure: the snapshot holds the registry facts,
``as_of`` is the clinic-local day the flags are computed for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from domain.common import EpisodeStatus
from domain.rules import DatedScore, RuleBook, ScoreOutOfRangeError, calendar_day, improvement

__all__ = [
    "ACTIVE_TREATMENT",
    "RULE_BOOK",
    "AsOfBeforeEnrollmentError",
    "EpisodeStatus",
    "Flag",
    "FlagKind",
    "FlagRules",
    "FlagValue",
    "MissingEnrollmentDateError",
    "RegistrySnapshot",
    "ReviewReason",
    "evaluate_flags",
    "percent_change",
    "rules_for",
    "weeks_in_treatment",
]


# EpisodeStatus is the domain's own enumeration (domain/common.py), re-exported here.
# Choice: "in active treatment" means enrolled or active treatment. An enrolled
# patient's treatment clock has started (weeks count from enrollment) and the team owes
# them contact and measurement. Relapse prevention is left out on purpose: the
# GermanIMPACT step to it *reduces* contacts, so 14-day and 30-day limits would flag
# every patient doing well. Referred (not yet enrolled), discharged and deactivated
# patients are not under treatment.
ACTIVE_TREATMENT = frozenset({EpisodeStatus.ENROLLED, EpisodeStatus.ACTIVE_TREATMENT})


class FlagKind(StrEnum):
    """The registry flags, in the order ``evaluate_flags`` returns them."""

    SAFETY_RISK = "safety_risk"
    NOT_IMPROVING = "not_improving"
    OVERDUE_CONTACT = "overdue_contact"
    MEASUREMENT_DUE = "measurement_due"
    NEEDS_PSYCHIATRIC_REVIEW = "needs_psychiatric_review"


class ReviewReason(StrEnum):
    """Why a patient needs the psychiatric consultant's review."""

    NEW_ENROLLMENT = "new_enrollment"
    NOT_IMPROVING = "not_improving"
    SAFETY_RISK = "safety_risk"
    TEAM_REQUEST = "team_request"


# Static texts: a flag's summary never carries patient data; the values are in inputs.
_SUMMARIES: Mapping[FlagKind, str] = MappingProxyType(
    {
        FlagKind.SAFETY_RISK: "Safety risk: self-harm item or ASQ screen positive",
        FlagKind.NOT_IMPROVING: "Not improving: under the improvement target after the set weeks",
        FlagKind.OVERDUE_CONTACT: "Overdue contact: no contact within the contact interval",
        FlagKind.MEASUREMENT_DUE: "Measurement due: no PHQ-9 within the measurement interval",
        FlagKind.NEEDS_PSYCHIATRIC_REVIEW: "Needs psychiatric review",
    }
)

FlagValue = str | int | bool | date | Fraction | tuple[str, ...] | None


@dataclass(frozen=True)
class FlagRules:
    """One version of the flag thresholds."""

    version: str
    effective_from: date
    # Safety risk when the latest PHQ-9 item 9 answer is above this.
    item9_above: int
    # Not improving: at least this many whole weeks and improvement under the target.
    not_improving_weeks: int
    improvement_target: Fraction
    # Overdue contact when the days since contact are more than this.
    overdue_contact_after_days: int
    # Measurement due when the days since the latest PHQ-9 are more than this.
    measurement_due_after_days: int


RULES_2024 = FlagRules(
    version="2024.1",
    effective_from=date(2024, 1, 1),
    item9_above=0,
    not_improving_weeks=10,
    improvement_target=Fraction(1, 2),
    overdue_contact_after_days=14,
    measurement_due_after_days=30,
)

RULE_BOOK: RuleBook[FlagRules] = RuleBook("flags", (RULES_2024,))


def rules_for(as_of: date) -> FlagRules:
    """Return the flag rules in force on ``as_of`` (``NoRuleInForceError`` before 2024)."""
    return RULE_BOOK.in_force(as_of)


class MissingEnrollmentDateError(ValueError):
    """A patient in active treatment has no enrollment day: no clock can run."""

    def __init__(self) -> None:
        super().__init__("an episode in active treatment needs an enrollment day")


class AsOfBeforeEnrollmentError(ValueError):
    """Weeks in treatment were asked for a day before the enrollment day."""

    def __init__(self) -> None:
        super().__init__("the as-of day lies before the enrollment day")


@dataclass(frozen=True)
class RegistrySnapshot:
    """The registry facts the flags read, for one patient's current episode.

    ``latest_item9`` is the item 9 answer (0-3) of the latest PHQ-9 that answered it,
    complete or not: a self-harm answer counts even on a questionnaire without a
    total. ``baseline_phq9`` and ``latest_phq9`` are complete PHQ-9 totals by
    effective time; ``latest_phq9`` may be the baseline itself (one score only), which
    counts as no follow-up. ``last_case_review_on`` is the latest systematic case review
    that discussed this patient.
    """

    status: EpisodeStatus
    enrolled_on: date | None = None
    latest_item9: int | None = None
    latest_item9_on: date | None = None
    asq_positive: bool = False
    baseline_phq9: DatedScore | None = None
    latest_phq9: DatedScore | None = None
    last_contact_on: date | None = None
    last_case_review_on: date | None = None
    review_requested_by_team: bool = False

    def __post_init__(self) -> None:
        if self.latest_item9 is not None and not 0 <= self.latest_item9 <= 3:
            raise ScoreOutOfRangeError("PHQ-9 item 9 answer", 0, 3)
        if self.status in ACTIVE_TREATMENT and self.enrolled_on is None:
            raise MissingEnrollmentDateError()


@dataclass(frozen=True)
class Flag:
    """A raised flag, explainable: which rule, which version, from which values."""

    kind: FlagKind
    rule_id: str
    rule_version: str
    inputs: Mapping[str, FlagValue] = field(hash=False)

    def __post_init__(self) -> None:
        # A read-only view, so a frozen flag cannot be changed through its inputs.
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    @property
    def summary(self) -> str:
        """A fixed, patient-free description of the flag."""
        return _SUMMARIES[self.kind]


def weeks_in_treatment(enrolled_on: date, as_of: date) -> int:
    """Whole weeks since the enrollment day: days 0-6 are week 0, day 70 is week 10."""
    days = (calendar_day(as_of) - calendar_day(enrolled_on)).days
    if days < 0:
        raise AsOfBeforeEnrollmentError()
    return days // 7


def percent_change(baseline: int, latest: int) -> Fraction | None:
    """Signed percent change from baseline, as the registry shows it (negative = better).

    ``percent_change(20, 10) == -50``. ``None`` for a baseline of 0 (no ratio exists).
    The improvement used by the rules is the same number with the sign turned and
    divided by 100: see ``domain.rules.improvement``.
    """
    if baseline == 0:
        return None
    return Fraction((latest - baseline) * 100, baseline)


def evaluate_flags(
    snapshot: RegistrySnapshot, as_of: date, rules: FlagRules | None = None
) -> list[Flag]:
    """Return the flags raised for a registry row on ``as_of``, in ``FlagKind`` order."""
    today = calendar_day(as_of)
    rules = rules if rules is not None else rules_for(today)
    active = snapshot.status in ACTIVE_TREATMENT
    flags: list[Flag] = []

    def add_flag(kind: FlagKind, inputs: dict[str, FlagValue]) -> Flag:
        flag = Flag(kind, f"flags.{kind.value}", rules.version, inputs)
        flags.append(flag)
        return flag

    # Choice: safety risk is raised in every status, discharged included: a safety
    # signal is never suppressed by a status field (a late-recorded PHQ-9 of a
    # discharged patient must still alert). It clears when a newer PHQ-9 answers
    # item 9 with 0 and the latest ASQ is negative.
    item9_positive = snapshot.latest_item9 is not None and snapshot.latest_item9 > rules.item9_above
    safety = None
    if item9_positive or snapshot.asq_positive:
        safety = add_flag(
            FlagKind.SAFETY_RISK,
            {
                "latest_item9": snapshot.latest_item9,
                "latest_item9_on": snapshot.latest_item9_on,
                "asq_positive": snapshot.asq_positive,
                "item9_above": rules.item9_above,
            },
        )

    # RegistrySnapshot guarantees an enrollment day for every active status.
    enrolled_on: date | None = None
    if active and snapshot.enrolled_on is not None:
        enrolled_on = calendar_day(snapshot.enrolled_on)

    not_improving = None
    baseline = snapshot.baseline_phq9
    follow_up = snapshot.latest_phq9
    # Choice: "less than 50% improvement from baseline" needs a score measured after
    # the baseline. With only a baseline (or a "latest" that is the baseline itself)
    # nothing was measured since, so there is no improvement to compare: the flag is
    # not raised (it used to read such a patient as "improvement 0.0"). Measurement
    # due covers the missing follow-up (no PHQ-9 for more than 30 days).
    if (
        follow_up is not None
        and baseline is not None
        and follow_up.order_key() <= baseline.order_key()
    ):
        follow_up = None
    if enrolled_on is not None and baseline is not None and follow_up is not None:
        weeks = weeks_in_treatment(enrolled_on, today)
        latest = follow_up
        gain = improvement(baseline.total, latest.total)
        # Choice: a baseline of 0 gives no ratio, so the flag is not raised: there
        # were no depressive symptoms to improve (e.g. a patient enrolled for
        # anxiety). Without any PHQ-9 there is no baseline either; Measurement due
        # covers that case. The rule is applied as written even when the latest
        # score is below 5 with under 50% improvement (e.g. 6 -> 4); the treatment
        # decision (domain.rules.treatment) puts remission first.
        if weeks >= rules.not_improving_weeks and gain is not None:
            if gain < rules.improvement_target:
                not_improving = add_flag(
                    FlagKind.NOT_IMPROVING,
                    {
                        "weeks_in_treatment": weeks,
                        "enrolled_on": enrolled_on,
                        "baseline_total": baseline.total,
                        "baseline_on": baseline.day,
                        "latest_total": latest.total,
                        "latest_on": latest.day,
                        "improvement": gain,
                        "improvement_target": rules.improvement_target,
                        "not_improving_weeks": rules.not_improving_weeks,
                    },
                )

    if enrolled_on is not None:
        # Choice: a patient never contacted is counted from the enrollment day: the
        # enrollment itself is the first touch, and counting from nothing would
        # either never flag or flag on day one.
        last_contact = snapshot.last_contact_on
        counted_from = calendar_day(last_contact) if last_contact is not None else enrolled_on
        days = (today - counted_from).days
        if days > rules.overdue_contact_after_days:
            add_flag(
                FlagKind.OVERDUE_CONTACT,
                {
                    "last_contact_on": last_contact,
                    "counted_from": counted_from,
                    "days_since": days,
                    "overdue_after_days": rules.overdue_contact_after_days,
                },
            )

        # Choice: never measured -> due at once: the baseline PHQ-9 is part of the
        # initial assessment and every outcome rule needs it. Only complete PHQ-9s
        # count as a measurement (an incomplete one has no total).
        last_phq9 = snapshot.latest_phq9
        if last_phq9 is None:
            last_phq9 = snapshot.baseline_phq9
        last_on = last_phq9.day if last_phq9 is not None else None
        since_phq9 = (today - last_on).days if last_on is not None else None
        if since_phq9 is None or since_phq9 > rules.measurement_due_after_days:
            add_flag(
                FlagKind.MEASUREMENT_DUE,
                {
                    "last_phq9_on": last_on,
                    "days_since": since_phq9,
                    "due_after_days": rules.measurement_due_after_days,
                },
            )

    reasons: list[ReviewReason] = []
    if enrolled_on is not None:
        review_on = snapshot.last_case_review_on
        # Choice: a review counts for this enrollment only if it took place on or
        # after the enrollment day; one from an earlier episode does not.
        if review_on is None or calendar_day(review_on) < enrolled_on:
            reasons.append(ReviewReason.NEW_ENROLLMENT)
    if not_improving is not None:
        reasons.append(ReviewReason.NOT_IMPROVING)
    if safety is not None:
        reasons.append(ReviewReason.SAFETY_RISK)
    # Choice: a team member's explicit request is honoured in every status.
    if snapshot.review_requested_by_team:
        reasons.append(ReviewReason.TEAM_REQUEST)
    if reasons:
        add_flag(
            FlagKind.NEEDS_PSYCHIATRIC_REVIEW,
            {
                "reasons": tuple(reason.value for reason in reasons),
                "last_case_review_on": snapshot.last_case_review_on,
            },
        )
    return flags
