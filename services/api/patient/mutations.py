"""Patient commands beyond registration, enrollment, treatment start, screening and contacts:
the rest of the episode, the care team, consent, flags, tasks, reviews and hospital stays.

Each answers with ``PatientResult``: the patient's view including the change, or a typed
error (nothing written).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from services.api.context import CareteamContext
from services.api.enums import (
    CareTeamRole,
    ConsentKind,
    ConsentMethod,
    DeactivationReason,
    DischargeReason,
    FlagKind,
    InitiatingVisitKind,
    TaskKind,
    TreatmentDecision,
)
from services.api.patient.minors import guardian_consent_under
from services.api.patient_types import PatientResult
from services.api.record_commands import INPUT, actor, answer_patient, occurred_at_field
from services.commands.commands import (
    AdmitInpatient,
    ClearFlag,
    CompleteTask,
    CreateTask,
    DeactivatePatient,
    DischargeInpatient,
    DischargePatient,
    GrantConsent,
    RaiseFlag,
    RecordCaseReview,
    RecordInitiatingVisit,
    ReferPatient,
    ResumeTreatment,
    RevokeConsent,
    UnassignCareTeamMember,
    WriteRelapsePreventionPlan,
)

# Provenance of a flag a team member raises by hand (rule-raised flags name their rule).
TEAM_MEMBER_FLAG_RULE_ID = "team_member.manual"
TEAM_MEMBER_FLAG_RULE_VERSION = "1"

_PATIENT = "The patient."


@strawberry.input(description="Refer a patient to collaborative care (starts a new episode).")
class ReferPatientInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Return a patient from relapse prevention to active treatment.")
class ResumeTreatmentInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="End the patient's episode with a clinical discharge.")
class DischargePatientInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    reason: DischargeReason = strawberry.field(description="Why the episode ends.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="End the patient's episode without a clinical discharge.")
class DeactivatePatientInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    reason: DeactivationReason = strawberry.field(description="Why the patient leaves.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Leave one care team role without a member.")
class UnassignCareTeamMemberInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    role: CareTeamRole = strawberry.field(description="The role to leave empty.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="A consent the patient gave.")
class GrantConsentInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    kind: ConsentKind = strawberry.field(description="What the consent covers.")
    method: ConsentMethod | None = strawberry.field(
        default=None, description="Verbal or written; required for collaborative care consent."
    )
    cost_sharing_explained: bool = strawberry.field(
        default=False, description="Whether cost sharing was explained (billing needs it)."
    )
    partner_organisation_id: UUID | None = strawberry.field(
        default=None, description="The partner a data-sharing consent covers (required then)."
    )
    expires_on: date | None = strawberry.field(
        default=None, description="The last day the consent holds; none for no expiry."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The patient revoked a consent.")
class RevokeConsentInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    consent_id: UUID = strawberry.field(description="The consent revoked.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="A team member flags the patient on the registry.")
class RaiseFlagInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    kind: FlagKind = strawberry.field(description="The flag; at most one active flag of each kind.")
    note: str | None = strawberry.field(
        default=None, description="Why, for the team (kept with the flag's inputs)."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Clear an active registry flag.")
class ClearFlagInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    flag_id: UUID = strawberry.field(description="The flag to clear.")
    reason: str | None = strawberry.field(default=None, description="Why it no longer holds.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="A task for the care team.")
class CreateTaskInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    kind: TaskKind = strawberry.field(description="What must be done.")
    due_on: date = strawberry.field(description="The day it is due.")
    assignee_id: UUID | None = strawberry.field(
        default=None, description="Who should do it; none for the whole team."
    )
    source_id: UUID | None = strawberry.field(
        default=None, description="The record that caused it, if any (e.g. a screening)."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Mark a task done.")
class CompleteTaskInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    task_id: UUID = strawberry.field(description="The task done.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="The billing practitioner's initiating visit for CoCM or general BHI (the "
    "practitioner is the caller, the patient's PCP)."
)
class RecordInitiatingVisitInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    visit_kind: InitiatingVisitKind = strawberry.field(description="Which visit it was.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="The psychiatric consultant reviewed the patient in the caseload review "
    "(the consultant is the caller)."
)
class RecordCaseReviewInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    decision: TreatmentDecision | None = strawberry.field(
        default=None, description="The treatment decision, if one was taken."
    )
    consultation_note_id: UUID | None = strawberry.field(
        default=None, description="The consultation note written for this review, if any."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="The relapse prevention plan; from active treatment it also moves the "
    "episode to relapse prevention."
)
class WriteRelapsePreventionPlanInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    warning_signs: list[str] = strawberry.field(description="Early warning signs, at least one.")
    strategies: list[str] = strawberry.field(description="What to do then, at least one.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The patient was admitted to hospital.")
class AdmitInpatientInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The patient left hospital.")
class DischargeInpatientInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.type(description="Patient commands: episode, care team, consent, flags and tasks.")
class PatientCareMutation:
    @strawberry.mutation(description="Refer a patient to collaborative care (a new episode).")
    async def refer_patient(
        self, info: Info[CareteamContext, None], input: Annotated[ReferPatientInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            ReferPatient(patient=input.patient_id, occurred_at=input.occurred_at),
        )

    @strawberry.mutation(description="Resume active treatment after relapse prevention.")
    async def resume_treatment(
        self, info: Info[CareteamContext, None], input: Annotated[ResumeTreatmentInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            ResumeTreatment(patient=input.patient_id, occurred_at=input.occurred_at),
        )

    @strawberry.mutation(description="Discharge the patient: the episode ends.")
    async def discharge_patient(
        self, info: Info[CareteamContext, None], input: Annotated[DischargePatientInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            DischargePatient(
                patient=input.patient_id, reason=input.reason.value, occurred_at=input.occurred_at
            ),
        )

    @strawberry.mutation(description="Deactivate the patient: the episode ends without discharge.")
    async def deactivate_patient(
        self, info: Info[CareteamContext, None], input: Annotated[DeactivatePatientInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            DeactivatePatient(
                patient=input.patient_id, reason=input.reason.value, occurred_at=input.occurred_at
            ),
        )

    @strawberry.mutation(description="Leave a care team role without a member.")
    async def unassign_care_team_member(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[UnassignCareTeamMemberInput, INPUT],
    ) -> PatientResult:
        return await answer_patient(
            info,
            UnassignCareTeamMember(
                patient=input.patient_id, role=input.role.value, occurred_at=input.occurred_at
            ),
        )

    @strawberry.mutation(
        description="Record a consent; createdId is the consent's id. A minor's (under the "
        "organisation's age, default 18) treatment and data-sharing consent is refused here "
        "(GUARDIAN_CONSENT_REQUIRED on kind): record it with grantConsentGivenBy."
    )
    async def grant_consent(
        self, info: Info[CareteamContext, None], input: Annotated[GrantConsentInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            GrantConsent(
                patient=input.patient_id,
                kind=input.kind.value,
                method=input.method.value if input.method else None,
                cost_sharing_explained=input.cost_sharing_explained,
                partner_organisation_id=input.partner_organisation_id,
                expires_on=input.expires_on,
                guardian_consent_under=await guardian_consent_under(info.context),
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(description="Record that the patient revoked a consent.")
    async def revoke_consent(
        self, info: Info[CareteamContext, None], input: Annotated[RevokeConsentInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            RevokeConsent(
                patient=input.patient_id, consent_id=input.consent_id, occurred_at=input.occurred_at
            ),
        )

    @strawberry.mutation(
        description="Flag the patient on the registry by hand; createdId is the flag's id."
    )
    async def raise_flag(
        self, info: Info[CareteamContext, None], input: Annotated[RaiseFlagInput, INPUT]
    ) -> PatientResult:
        inputs = {"raised_by": str(actor(info))}
        if input.note is not None:
            inputs["note"] = input.note
        return await answer_patient(
            info,
            RaiseFlag(
                patient=input.patient_id,
                kind=input.kind.value,
                rule_id=TEAM_MEMBER_FLAG_RULE_ID,
                rule_version=TEAM_MEMBER_FLAG_RULE_VERSION,
                inputs=inputs,
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(description="Clear an active registry flag.")
    async def clear_flag(
        self, info: Info[CareteamContext, None], input: Annotated[ClearFlagInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            ClearFlag(
                patient=input.patient_id,
                flag_id=input.flag_id,
                reason=input.reason,
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(description="Create a task for the care team; createdId is its id.")
    async def create_task(
        self, info: Info[CareteamContext, None], input: Annotated[CreateTaskInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            CreateTask(
                patient=input.patient_id,
                kind=input.kind.value,
                due_on=input.due_on,
                assignee_id=input.assignee_id,
                source_id=input.source_id,
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(description="Mark a task done.")
    async def complete_task(
        self, info: Info[CareteamContext, None], input: Annotated[CompleteTaskInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            CompleteTask(
                patient=input.patient_id, task_id=input.task_id, occurred_at=input.occurred_at
            ),
        )

    @strawberry.mutation(
        description="Record your initiating visit with the patient (as their PCP, the billing "
        "practitioner): CoCM and general BHI billing list it as missing without one within "
        "the year before the episode started or since."
    )
    async def record_initiating_visit(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RecordInitiatingVisitInput, INPUT],
    ) -> PatientResult:
        return await answer_patient(
            info,
            RecordInitiatingVisit(
                patient=input.patient_id,
                practitioner_id=actor(info),
                visit_kind=input.visit_kind.value,
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(
        description="Record your psychiatric case review of the patient; createdId is its id."
    )
    async def record_case_review(
        self, info: Info[CareteamContext, None], input: Annotated[RecordCaseReviewInput, INPUT]
    ) -> PatientResult:
        consultant = actor(info)
        return await answer_patient(
            info,
            RecordCaseReview(
                patient=input.patient_id,
                consultant_id=consultant,
                decision=input.decision.value if input.decision else None,
                consultation_note_id=input.consultation_note_id,
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(
        description="Write the relapse prevention plan (from active treatment, also moves the "
        "episode to relapse prevention); createdId is the plan's id."
    )
    async def write_relapse_prevention_plan(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[WriteRelapsePreventionPlanInput, INPUT],
    ) -> PatientResult:
        return await answer_patient(
            info,
            WriteRelapsePreventionPlan(
                patient=input.patient_id,
                warning_signs=tuple(input.warning_signs),
                strategies=tuple(input.strategies),
                occurred_at=input.occurred_at,
            ),
        )

    @strawberry.mutation(
        description="Record a hospital admission (care manager minutes then do not count)."
    )
    async def admit_inpatient(
        self, info: Info[CareteamContext, None], input: Annotated[AdmitInpatientInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            AdmitInpatient(patient=input.patient_id, occurred_at=input.occurred_at),
        )

    @strawberry.mutation(description="Record the end of a hospital stay.")
    async def discharge_inpatient(
        self, info: Info[CareteamContext, None], input: Annotated[DischargeInpatientInput, INPUT]
    ) -> PatientResult:
        return await answer_patient(
            info,
            DischargeInpatient(patient=input.patient_id, occurred_at=input.occurred_at),
        )
