"""The API's enumerations mirror the domain's value for value."""

from __future__ import annotations

import enum

import pytest

from domain import common
from domain.instruments import Instrument
from services.api import enums

MIRRORS: list[tuple[type[enum.Enum], type[enum.Enum]]] = [
    (enums.DischargeReason, common.DischargeReason),
    (enums.DeactivationReason, common.DeactivationReason),
    (enums.CareTeamRole, common.CareTeamRole),
    (enums.ConsentKind, common.ConsentKind),
    (enums.ConsentMethod, common.ConsentMethod),
    (enums.FlagKind, common.FlagKind),
    (enums.TaskKind, common.TaskKind),
    (enums.TreatmentDecision, common.TreatmentDecision),
    (enums.CarePlanStatus, common.CarePlanStatus),
    (enums.GoalStatus, common.GoalStatus),
    (enums.TargetKind, common.TargetKind),
    (enums.InterventionKind, common.InterventionKind),
    (enums.InterventionStatus, common.InterventionStatus),
    (enums.PsychotherapyModality, common.PsychotherapyModality),
    (enums.ReferralService, common.ReferralService),
    (enums.ReferralStatus, common.ReferralStatus),
    (enums.ConsultationNoteStatus, common.NoteStatus),
    (enums.RecommendationResponse, common.RecommendationResponse),
]


@pytest.mark.parametrize(("api", "domain"), MIRRORS, ids=lambda cls: cls.__name__)
def test_each_api_enumeration_has_exactly_the_domain_values(
    api: type[enum.Enum], domain: type[enum.Enum]
) -> None:
    """A value added to the domain must be added to the API, and none may be invented."""
    assert {(m.name, m.value) for m in api} == {(m.name, m.value) for m in domain}


def test_goal_outcomes_are_the_closing_goal_statuses() -> None:
    """A goal closes as achieved or dropped, never as open."""
    closing = {m.value for m in common.GoalStatus} - {common.GoalStatus.OPEN.value}
    assert {m.value for m in enums.GoalOutcome} == closing


def test_target_instruments_are_the_instruments_with_a_total() -> None:
    """Every instrument but the ASQ (which has no total) can be a target's instrument."""
    assert {m.value for m in enums.TargetInstrument} == {m.value for m in Instrument} - {"asq"}
