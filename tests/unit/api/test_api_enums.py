"""The API serves the domain's enumerations; its own subsets stay within the domain's."""

from __future__ import annotations

import enum

import pytest

from domain import common
from domain.instruments import Instrument
from services.api import enums

SERVED: list[tuple[str, type[enum.Enum]]] = [
    ("DischargeReason", common.DischargeReason),
    ("DeactivationReason", common.DeactivationReason),
    ("CareTeamRole", common.CareTeamRole),
    ("ConsentKind", common.ConsentKind),
    ("ConsentMethod", common.ConsentMethod),
    ("FlagKind", common.FlagKind),
    ("TaskKind", common.TaskKind),
    ("TreatmentDecision", common.TreatmentDecision),
    ("CarePlanStatus", common.CarePlanStatus),
    ("GoalStatus", common.GoalStatus),
    ("TargetKind", common.TargetKind),
    ("InterventionKind", common.InterventionKind),
    ("InterventionStatus", common.InterventionStatus),
    ("PsychotherapyModality", common.PsychotherapyModality),
    ("ReferralService", common.ReferralService),
    ("ReferralStatus", common.ReferralStatus),
    ("ConsultationNoteStatus", common.NoteStatus),
    ("RecommendationResponse", common.RecommendationResponse),
]


@pytest.mark.parametrize(("graphql_name", "domain"), SERVED, ids=lambda v: str(v))
def test_each_graphql_enumeration_is_served_from_the_domain_enumeration(
    graphql_name: str, domain: type[enum.Enum]
) -> None:
    """The schema's enumeration has exactly the domain's members, because it is the domain's."""
    from services.api.schema import build_schema

    served = build_schema().get_type_by_name(graphql_name)
    assert served is not None
    assert {v.name: v.value for v in served.values} == {m.name: m.value for m in domain}
    assert getattr(enums, graphql_name) is domain


def test_goal_outcomes_are_the_closing_goal_statuses() -> None:
    """A goal closes as achieved or dropped, never as open."""
    closing = {m.value for m in common.GoalStatus} - {common.GoalStatus.OPEN.value}
    assert {m.value for m in enums.GoalOutcome} == closing


def test_target_instruments_are_the_instruments_with_a_total() -> None:
    """Every instrument but the ASQ (which has no total) can be a target's instrument."""
    assert {m.value for m in enums.TargetInstrument} == {m.value for m in Instrument} - {"asq"}
