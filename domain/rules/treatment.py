"""The treatment decision at a case review (treat-to-target, GermanIMPACT algorithm).

Source: docs/clinical-rules.md, "Treatment decision at review (GermanIMPACT algorithm)":
GermanIMPACT treatment algorithm, Trials 2014, 15:351. With the latest PHQ-9 against
the baseline:
    PHQ-9 below 5               -> write a relapse prevention plan, reduce contacts
    50% or more improvement     -> keep the treatment
    under 50% improvement       -> change the treatment

Rule versions (``RULE_BOOK``), chosen by the review day:
    2024.1  from 2024-01-01  remission below 5; keep from 50% improvement

Choice: the checks run in the order above, so remission wins over the percentage: a
patient from 6 to 4 (33%) is in remission and gets relapse prevention, not a change
of a treatment that worked. When to review (e.g. at 8 or 12 weeks) is the caller's
schedule, not this rule's: the decision is the same whenever it is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from domain.rules import PHQ9_MAX, RuleBook, ScoreOutOfRangeError, calendar_day, improvement

__all__ = [
    "RULE_BOOK",
    "RULE_ID",
    "TreatmentAction",
    "TreatmentDecision",
    "TreatmentRules",
    "decide_treatment",
    "rules_for",
]

RULE_ID = "treatment.german_impact"


class TreatmentAction(StrEnum):
    """What the review recommends."""

    RELAPSE_PREVENTION = "relapse_prevention"
    KEEP = "keep"
    CHANGE = "change"


@dataclass(frozen=True)
class TreatmentRules:
    """One version of the decision thresholds."""

    version: str
    effective_from: date
    # Relapse prevention when the latest total is strictly below this.
    remission_below: int
    # Keep the treatment from this improvement on; change it below.
    keep_from_improvement: Fraction


RULES_2024 = TreatmentRules(
    version="2024.1",
    effective_from=date(2024, 1, 1),
    remission_below=5,
    keep_from_improvement=Fraction(1, 2),
)

RULE_BOOK: RuleBook[TreatmentRules] = RuleBook("treatment", (RULES_2024,))


def rules_for(reviewed_on: date) -> TreatmentRules:
    """Return the decision rules in force on the review day."""
    return RULE_BOOK.in_force(reviewed_on)


@dataclass(frozen=True)
class TreatmentDecision:
    """The recommended action with the rule, its version and the values it read."""

    action: TreatmentAction
    rule_id: str
    rule_version: str
    inputs: Mapping[str, int | Fraction | None] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))


def decide_treatment(
    baseline_total: int,
    latest_total: int,
    reviewed_on: date,
    rules: TreatmentRules | None = None,
) -> TreatmentDecision:
    """Decide relapse prevention, keep or change from the baseline and latest PHQ-9."""
    for value, what in ((baseline_total, "baseline PHQ-9"), (latest_total, "latest PHQ-9")):
        if not 0 <= value <= PHQ9_MAX:
            raise ScoreOutOfRangeError(what, 0, PHQ9_MAX)
    rules = rules if rules is not None else rules_for(calendar_day(reviewed_on))
    gain = improvement(baseline_total, latest_total)
    if latest_total < rules.remission_below:
        action = TreatmentAction.RELAPSE_PREVENTION
    # Choice: a baseline of 0 has no improvement ratio; reaching this line it means
    # the score rose from 0 to 5 or more, a worsening, so the treatment changes.
    elif gain is not None and gain >= rules.keep_from_improvement:
        action = TreatmentAction.KEEP
    else:
        action = TreatmentAction.CHANGE
    return TreatmentDecision(
        action=action,
        rule_id=RULE_ID,
        rule_version=rules.version,
        inputs={
            "baseline_total": baseline_total,
            "latest_total": latest_total,
            "improvement": gain,
            "remission_below": rules.remission_below,
            "keep_from_improvement": rules.keep_from_improvement,
        },
    )
