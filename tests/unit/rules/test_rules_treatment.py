"""GermanIMPACT treatment decision at a case review."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from domain.rules import NoRuleInForceError, ScoreOutOfRangeError
from domain.rules.treatment import TreatmentAction, decide_treatment

REVIEW = date(2024, 6, 1)


@pytest.mark.parametrize(
    ("baseline", "latest", "action"),
    [
        (20, 4, TreatmentAction.RELAPSE_PREVENTION),
        (20, 5, TreatmentAction.KEEP),
        (20, 10, TreatmentAction.KEEP),
        (20, 11, TreatmentAction.CHANGE),
        (27, 13, TreatmentAction.KEEP),
        (27, 14, TreatmentAction.CHANGE),
        (12, 12, TreatmentAction.CHANGE),
        (12, 18, TreatmentAction.CHANGE),
    ],
)
def test_decision_follows_remission_then_half_improvement(
    baseline: int, latest: int, action: TreatmentAction
) -> None:
    """Below 5 is relapse prevention; 50% or more keeps; under 50% (48%, 45%) changes."""
    assert decide_treatment(baseline, latest, REVIEW).action is action


def test_remission_wins_over_a_small_improvement() -> None:
    """From 6 to 4 is only 33% but below 5, so relapse prevention, not a change."""
    assert decide_treatment(6, 4, REVIEW).action is TreatmentAction.RELAPSE_PREVENTION


@pytest.mark.parametrize(
    ("latest", "action"), [(0, TreatmentAction.RELAPSE_PREVENTION), (5, TreatmentAction.CHANGE)]
)
def test_a_baseline_of_zero_keeps_remission_and_changes_on_worsening(
    latest: int, action: TreatmentAction
) -> None:
    """With a baseline of 0, staying below 5 is relapse prevention and rising to 5 is a change."""
    assert decide_treatment(0, latest, REVIEW).action is action


def test_decision_names_its_rule_version_and_inputs() -> None:
    """The decision carries the rule id, version and the values it read."""
    decision = decide_treatment(20, 10, REVIEW)
    assert decision.rule_id == "treatment.german_impact"
    assert decision.rule_version == "2024.1"
    assert decision.inputs["improvement"] == Fraction(1, 2)
    assert decision.inputs["baseline_total"] == 20
    with pytest.raises(TypeError):
        decision.inputs["latest_total"] = 3  # type: ignore[index]


@pytest.mark.parametrize(("baseline", "latest"), [(28, 10), (10, -1)])
def test_scores_outside_the_scale_are_refused(baseline: int, latest: int) -> None:
    """Totals outside 0-27 raise without echoing the value."""
    with pytest.raises(ScoreOutOfRangeError) as error:
        decide_treatment(baseline, latest, REVIEW)
    assert "28" not in str(error.value) and "-1" not in str(error.value)


def test_a_review_before_the_first_rule_version_is_refused() -> None:
    """Reviews dated before 2024 have no rule version."""
    with pytest.raises(NoRuleInForceError):
        decide_treatment(20, 10, date(2023, 12, 31))
