"""Care plan commands: create the plan, then goals, targets, interventions, reviews,
revisions and closing. Each answers with ``CarePlanResult``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.patient import Patient as PatientAggregate
from services.api.context import CareteamContext
from services.api.enums import (
    GoalOutcome,
    InterventionKind,
    PsychotherapyModality,
    TargetInstrument,
    TargetKind,
    TreatmentDecision,
)
from services.api.record_commands import INPUT, actor, answer_record, occurred_at_field
from services.api.record_types import CarePlanPayload, CarePlanResult
from services.commands.commands import (
    AddGoal,
    ChangeIntervention,
    CloseCarePlan,
    CloseGoal,
    CreateCarePlan,
    RemoveTarget,
    ReviewCarePlan,
    ReviseCarePlan,
    SetTarget,
    StartIntervention,
    StopIntervention,
)
from services.eventstore import StreamNotFoundError

_PLAN = "The care plan."


@strawberry.input(
    description="Create the care plan of the patient's current episode (the author is the caller)."
)
class CreateCarePlanInput:
    patient_id: UUID = strawberry.field(description="The patient, on the caseload.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Add a goal to the care plan.")
class AddGoalInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    description: str = strawberry.field(description="The goal, in the patient's words if possible.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Close a goal as achieved or dropped.")
class CloseGoalInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    goal_id: UUID = strawberry.field(description="The goal.")
    outcome: GoalOutcome = strawberry.field(description="Achieved or dropped.")
    reason: str | None = strawberry.field(
        default=None, description="Why; required when the goal is dropped."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Set a measurable target, e.g. PHQ-9 below 5 or a 50% reduction.")
class SetTargetInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    instrument: TargetInstrument = strawberry.field(description="The instrument measured.")
    kind: TargetKind = strawberry.field(description="Score below a value, or a reduction.")
    value: int = strawberry.field(
        description="The threshold (within the instrument's range) or the percent (1-100)."
    )
    due_on: date | None = strawberry.field(default=None, description="The day to reach it by.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Remove a target from the care plan.")
class RemoveTargetInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    target_id: UUID = strawberry.field(description="The target.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="Start an intervention: a medication needs a dose, a psychotherapy a modality."
)
class StartInterventionInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    kind: InterventionKind = strawberry.field(description="Medication, psychotherapy or other.")
    name: str = strawberry.field(description="Medication name, or what the treatment is.")
    dose: str | None = strawberry.field(default=None, description="A medication's dose.")
    modality: PsychotherapyModality | None = strawberry.field(
        default=None, description="A psychotherapy's modality."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Change an active intervention; omitted details stay as they are.")
class ChangeInterventionInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    intervention_id: UUID = strawberry.field(description="The intervention.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    dose: str | None = strawberry.field(default=None, description="A new dose.")
    modality: PsychotherapyModality | None = strawberry.field(
        default=None, description="A new psychotherapy modality."
    )
    reason: str | None = strawberry.field(default=None, description="Why it changed.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Stop an active intervention.")
class StopInterventionInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    intervention_id: UUID = strawberry.field(description="The intervention.")
    reason: str | None = strawberry.field(default=None, description="Why it stopped.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="A treat-to-target review and its decision (the reviewer is the caller); "
    "with both PHQ-9 totals the GermanIMPACT suggestion is stored beside the decision."
)
class ReviewCarePlanInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    decision: TreatmentDecision = strawberry.field(description="The team's decision.")
    baseline_total: int | None = strawberry.field(
        default=None, description="The baseline PHQ-9 total considered (0-27)."
    )
    latest_total: int | None = strawberry.field(
        default=None, description="The latest PHQ-9 total considered (0-27)."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Revise the care plan, with a reason.")
class ReviseCarePlanInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    reason: str = strawberry.field(description="Why the plan is revised (required).")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Close the care plan; it accepts no further changes.")
class CloseCarePlanInput:
    care_plan_id: UUID = strawberry.field(description=_PLAN)
    reason: str | None = strawberry.field(default=None, description="Why it is closed.")
    occurred_at: datetime | None = occurred_at_field()


async def _on_caseload(info: Info[CareteamContext, None], patient_id: UUID) -> int | None:
    """The patient's current episode number while on the caseload, else None.

    Read before authorisation but used only once the command is authorised (its result
    never reaches a caller who may not act on the patient)."""
    try:
        patient = await info.context.runtime.app.load(PatientAggregate, patient_id)
    except StreamNotFoundError:
        return None
    return patient.episode_number if patient.is_enrolled else None


@strawberry.type(description="Care plan commands.")
class CarePlanMutation:
    @strawberry.mutation(description="Create the care plan of the patient's current episode.")
    async def create_care_plan(
        self, info: Info[CareteamContext, None], input: Annotated[CreateCarePlanInput, INPUT]
    ) -> CarePlanResult:
        episode = await _on_caseload(info, input.patient_id)
        command = CreateCarePlan(
            patient=input.patient_id,
            episode_number=episode,
            author_id=actor(info),
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Add a goal; createdId is the goal's id.")
    async def add_goal(
        self, info: Info[CareteamContext, None], input: Annotated[AddGoalInput, INPUT]
    ) -> CarePlanResult:
        command = AddGoal(
            care_plan_id=input.care_plan_id,
            description=input.description,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Close a goal as achieved, or dropped with a reason.")
    async def close_goal(
        self, info: Info[CareteamContext, None], input: Annotated[CloseGoalInput, INPUT]
    ) -> CarePlanResult:
        command = CloseGoal(
            care_plan_id=input.care_plan_id,
            goal_id=input.goal_id,
            status=input.outcome.value,
            reason=input.reason,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Set a measurable target; createdId is the target's id.")
    async def set_target(
        self, info: Info[CareteamContext, None], input: Annotated[SetTargetInput, INPUT]
    ) -> CarePlanResult:
        command = SetTarget(
            care_plan_id=input.care_plan_id,
            instrument=input.instrument.value,
            kind=input.kind.value,
            value=input.value,
            due_on=input.due_on,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Remove a target.")
    async def remove_target(
        self, info: Info[CareteamContext, None], input: Annotated[RemoveTargetInput, INPUT]
    ) -> CarePlanResult:
        command = RemoveTarget(
            care_plan_id=input.care_plan_id,
            target_id=input.target_id,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Start an intervention; createdId is its id.")
    async def start_intervention(
        self, info: Info[CareteamContext, None], input: Annotated[StartInterventionInput, INPUT]
    ) -> CarePlanResult:
        command = StartIntervention(
            care_plan_id=input.care_plan_id,
            kind=input.kind.value,
            name=input.name,
            dose=input.dose,
            modality=input.modality.value if input.modality else None,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Change an active intervention (e.g. a new dose).")
    async def change_intervention(
        self, info: Info[CareteamContext, None], input: Annotated[ChangeInterventionInput, INPUT]
    ) -> CarePlanResult:
        command = ChangeIntervention(
            care_plan_id=input.care_plan_id,
            intervention_id=input.intervention_id,
            name=input.name,
            dose=input.dose,
            modality=input.modality.value if input.modality else None,
            reason=input.reason,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Stop an active intervention.")
    async def stop_intervention(
        self, info: Info[CareteamContext, None], input: Annotated[StopInterventionInput, INPUT]
    ) -> CarePlanResult:
        command = StopIntervention(
            care_plan_id=input.care_plan_id,
            intervention_id=input.intervention_id,
            reason=input.reason,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(
        description="Record your treat-to-target review and its decision; createdId is its id."
    )
    async def review_care_plan(
        self, info: Info[CareteamContext, None], input: Annotated[ReviewCarePlanInput, INPUT]
    ) -> CarePlanResult:
        reviewer = actor(info)
        command = ReviewCarePlan(
            care_plan_id=input.care_plan_id,
            decision=input.decision.value,
            reviewer_id=reviewer,
            baseline_total=input.baseline_total,
            latest_total=input.latest_total,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Revise the care plan, with a reason.")
    async def revise_care_plan(
        self, info: Info[CareteamContext, None], input: Annotated[ReviseCarePlanInput, INPUT]
    ) -> CarePlanResult:
        command = ReviseCarePlan(
            care_plan_id=input.care_plan_id, reason=input.reason, occurred_at=input.occurred_at
        )
        return await answer_record(info, command, CarePlanPayload.build)

    @strawberry.mutation(description="Close the care plan.")
    async def close_care_plan(
        self, info: Info[CareteamContext, None], input: Annotated[CloseCarePlanInput, INPUT]
    ) -> CarePlanResult:
        command = CloseCarePlan(
            care_plan_id=input.care_plan_id, reason=input.reason, occurred_at=input.occurred_at
        )
        return await answer_record(info, command, CarePlanPayload.build)
