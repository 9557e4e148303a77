"""GraphQL shapes of care plans, referrals and consultation notes, and their command results.

A command answers with the record's state right after it, mapped field by field from
the aggregate (``from_aggregate``); the domain objects themselves never leave this
module. The read models of these records are built elsewhere (projections/trackers.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry

from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.referral import Referral
from services.api.commanding import Written
from services.api.enums import (
    CarePlanStatus,
    ConsultationNoteStatus,
    GoalStatus,
    InterventionKind,
    InterventionStatus,
    PsychotherapyModality,
    RecommendationResponse,
    ReferralService,
    ReferralStatus,
    TargetInstrument,
    TargetKind,
    TreatmentDecision,
)
from services.api.errors import (
    CommandError,
    result_union,
)

# --- care plan ------------------------------------------------------------------------


@strawberry.type(description="A goal of the care plan.")
class CarePlanGoal:
    id: UUID = strawberry.field(description="Goal id.")
    description: str | None = strawberry.field(
        description="The goal, in the patient's words if possible; null once forgotten."
    )
    status: GoalStatus = strawberry.field(description="Open, achieved or dropped.")
    added_at: datetime = strawberry.field(description="When the goal was added.")
    closed_at: datetime | None = strawberry.field(description="When it was achieved or dropped.")
    close_reason: str | None = strawberry.field(description="Why it was closed, when given.")


@strawberry.type(description="A measurable treatment target, e.g. PHQ-9 below 5.")
class CarePlanTarget:
    id: UUID = strawberry.field(description="Target id.")
    instrument: TargetInstrument = strawberry.field(description="The instrument measured.")
    kind: TargetKind = strawberry.field(description="Score below a value, or a reduction.")
    value: int = strawberry.field(description="The threshold, or the reduction in percent.")
    due_on: date | None = strawberry.field(description="The day it should be reached by.")
    set_at: datetime = strawberry.field(description="When the target was set.")
    removed_at: datetime | None = strawberry.field(description="When it was removed, if it was.")


@strawberry.type(description="A treatment of the plan: a medication, a psychotherapy or other.")
class CarePlanIntervention:
    id: UUID = strawberry.field(description="Intervention id.")
    kind: InterventionKind = strawberry.field(description="Medication, psychotherapy or other.")
    name: str | None = strawberry.field(
        description="Medication name, or what the treatment is; null once forgotten."
    )
    dose: str | None = strawberry.field(description="A medication's dose.")
    modality: PsychotherapyModality | None = strawberry.field(
        description="A psychotherapy's modality."
    )
    status: InterventionStatus = strawberry.field(description="Active or stopped.")
    started_at: datetime = strawberry.field(description="When it started.")
    changed_at: datetime | None = strawberry.field(description="When it last changed.")
    change_count: int = strawberry.field(description="How many times it changed.")
    stopped_at: datetime | None = strawberry.field(description="When it stopped.")
    stop_reason: str | None = strawberry.field(description="Why it stopped, when given.")


@strawberry.type(description="A treat-to-target review of the plan and its decision.")
class CarePlanReview:
    id: UUID = strawberry.field(description="Review id.")
    decision: TreatmentDecision = strawberry.field(description="The team's decision.")
    suggested_decision: TreatmentDecision | None = strawberry.field(
        description="The GermanIMPACT suggestion from the two PHQ-9 totals, when both were given."
    )
    reviewer_id: UUID | None = strawberry.field(description="Who reviewed.")
    baseline_total: int | None = strawberry.field(description="Baseline PHQ-9 total considered.")
    latest_total: int | None = strawberry.field(description="Latest PHQ-9 total considered.")
    reviewed_at: datetime = strawberry.field(description="When the review took place.")


@strawberry.type(description="A revision of the care plan with its reason.")
class CarePlanRevision:
    number: int = strawberry.field(description="Revision number, from 1.")
    reason: str | None = strawberry.field(
        description="Why the plan was revised; null once forgotten."
    )
    revised_at: datetime = strawberry.field(description="When it was revised.")


@strawberry.type(
    name="CarePlan", description="A patient's care plan for one episode, as it stands."
)
class CarePlanView:
    id: UUID = strawberry.field(description="Care plan id.")
    patient_id: UUID = strawberry.field(description="The patient.")
    episode_number: int = strawberry.field(description="The episode the plan belongs to.")
    author_id: UUID | None = strawberry.field(description="Who created the plan.")
    status: CarePlanStatus = strawberry.field(description="Active or closed.")
    created_at: datetime = strawberry.field(description="When the plan was created.")
    closed_at: datetime | None = strawberry.field(description="When it was closed.")
    close_reason: str | None = strawberry.field(description="Why it was closed, when given.")
    goals: list[CarePlanGoal] = strawberry.field(description="Every goal, in the order added.")
    targets: list[CarePlanTarget] = strawberry.field(
        description="Every target, removed ones included (see removedAt)."
    )
    interventions: list[CarePlanIntervention] = strawberry.field(
        description="Every intervention, stopped ones included."
    )
    reviews: list[CarePlanReview] = strawberry.field(description="Reviews, oldest first.")
    revisions: list[CarePlanRevision] = strawberry.field(description="Revisions, oldest first.")
    version: int = strawberry.field(description="Record version this view reflects.")

    @classmethod
    def from_aggregate(cls, plan: CarePlan) -> CarePlanView:
        return cls(
            id=plan.id,
            patient_id=plan.patient_id,
            episode_number=plan.episode_number,
            author_id=plan.author_id,
            status=CarePlanStatus(plan.status.value),
            created_at=plan.created_at,
            closed_at=plan.closed_at,
            close_reason=plan.close_reason,
            goals=[
                CarePlanGoal(
                    id=g.goal_id,
                    description=g.description,
                    status=GoalStatus(g.status.value),
                    added_at=g.added_at,
                    closed_at=g.closed_at,
                    close_reason=g.close_reason,
                )
                for g in plan.goals.values()
            ],
            targets=[
                CarePlanTarget(
                    id=t.target_id,
                    instrument=TargetInstrument(t.instrument.value),
                    kind=TargetKind(t.kind.value),
                    value=t.value,
                    due_on=t.due_on,
                    set_at=t.set_at,
                    removed_at=t.removed_at,
                )
                for t in plan.targets.values()
            ],
            interventions=[
                CarePlanIntervention(
                    id=i.intervention_id,
                    kind=InterventionKind(i.kind.value),
                    name=i.name,
                    dose=i.dose,
                    modality=PsychotherapyModality(i.modality.value) if i.modality else None,
                    status=InterventionStatus(i.status.value),
                    started_at=i.started_at,
                    changed_at=i.changed_at,
                    change_count=i.change_count,
                    stopped_at=i.stopped_at,
                    stop_reason=i.stop_reason,
                )
                for i in plan.interventions.values()
            ],
            reviews=[
                CarePlanReview(
                    id=r.review_id,
                    decision=TreatmentDecision(r.decision.value),
                    suggested_decision=(
                        TreatmentDecision(r.suggested_decision.value)
                        if r.suggested_decision
                        else None
                    ),
                    reviewer_id=r.reviewer_id,
                    baseline_total=r.baseline_total,
                    latest_total=r.latest_total,
                    reviewed_at=r.reviewed_at,
                )
                for r in plan.reviews
            ],
            revisions=[
                CarePlanRevision(number=r.revision_number, reason=r.reason, revised_at=r.revised_at)
                for r in plan.revisions
            ],
            version=plan.version,
        )


@strawberry.type(description="The care plan after a successful command, already reflecting it.")
class CarePlanPayload:
    care_plan: CarePlanView = strawberry.field(description="The care plan including this change.")
    created_id: UUID | None = strawberry.field(
        description="The id of the goal, target, intervention or review the command created; "
        "null when it created none (the plan's own id is carePlan.id)."
    )
    log_position: str = strawberry.field(description="Log position of the command's last event.")

    @classmethod
    def build(cls, plan: CarePlan, written: Written, created_id: UUID | None) -> CarePlanPayload:
        return cls(
            care_plan=CarePlanView.from_aggregate(plan),
            created_id=created_id,
            log_position=written.log_position,
        )


CarePlanResult = Annotated[
    CarePlanPayload | CommandError,
    result_union("CarePlanResult", "A care plan command's outcome."),
]

# --- referral -------------------------------------------------------------------------


@strawberry.type(
    name="Referral", description="A referral to an outside service, tracked until the loop closes."
)
class ReferralView:
    id: UUID = strawberry.field(description="Referral id.")
    patient_id: UUID = strawberry.field(description="The patient.")
    service: ReferralService = strawberry.field(description="The service referred to.")
    receiving_organisation_id: UUID | None = strawberry.field(
        description="The organisation receiving the referral, when known."
    )
    reason: str | None = strawberry.field(
        description="Why the patient is referred; null once forgotten."
    )
    expected_by: date = strawberry.field(
        description="The day the loop should be closed by; later and not final means overdue."
    )
    requested_by: UUID | None = strawberry.field(description="Who requested the referral.")
    status: ReferralStatus = strawberry.field(description="Where the referral stands.")
    requested_at: datetime = strawberry.field(description="When it was requested.")
    sent_at: datetime | None = strawberry.field(description="When it was sent.")
    accepted_at: datetime | None = strawberry.field(description="When it was accepted.")
    scheduled_at: datetime | None = strawberry.field(description="When it was scheduled.")
    appointment_at: datetime | None = strawberry.field(description="The appointment given.")
    closed_at: datetime | None = strawberry.field(
        description="When it was completed, declined or cancelled."
    )
    decline_reason: str | None = strawberry.field(description="Why the receiver declined.")
    cancel_reason: str | None = strawberry.field(description="Why it was cancelled.")
    report_back_summary: str | None = strawberry.field(
        description="The receiving service's report back, which closes the loop."
    )
    version: int = strawberry.field(description="Record version this view reflects.")

    @classmethod
    def from_aggregate(cls, referral: Referral) -> ReferralView:
        return cls(
            id=referral.id,
            patient_id=referral.patient_id,
            service=ReferralService(referral.service.value),
            receiving_organisation_id=referral.receiving_organisation_id,
            reason=referral.reason,
            expected_by=referral.expected_by,
            requested_by=referral.requested_by,
            status=ReferralStatus(referral.status.value),
            requested_at=referral.requested_at,
            sent_at=referral.sent_at,
            accepted_at=referral.accepted_at,
            scheduled_at=referral.scheduled_at,
            appointment_at=referral.appointment_at,
            closed_at=referral.closed_at,
            decline_reason=referral.decline_reason,
            cancel_reason=referral.cancel_reason,
            report_back_summary=referral.report_back_summary,
            version=referral.version,
        )


@strawberry.type(description="The referral after a successful command, already reflecting it.")
class ReferralPayload:
    referral: ReferralView = strawberry.field(description="The referral including this change.")
    log_position: str = strawberry.field(description="Log position of the command's last event.")

    @classmethod
    def build(cls, referral: Referral, written: Written, _: UUID | None) -> ReferralPayload:
        return cls(
            referral=ReferralView.from_aggregate(referral), log_position=written.log_position
        )


ReferralResult = Annotated[
    ReferralPayload | CommandError,
    result_union("ReferralResult", "A referral command's outcome."),
]

# --- consultation note ----------------------------------------------------------------


@strawberry.type(description="A recommendation of a consultation note and the PCP's response.")
class ConsultationNoteRecommendation:
    id: UUID = strawberry.field(description="Recommendation id.")
    text: str | None = strawberry.field(
        description="What the psychiatric consultant recommends; null once forgotten."
    )
    added_at: datetime = strawberry.field(description="When it was added to the draft.")
    response: RecommendationResponse | None = strawberry.field(
        description="The PCP's answer; null while pending."
    )
    response_text: str | None = strawberry.field(
        description="The change (when modified) or the reason (when declined)."
    )
    responded_by: UUID | None = strawberry.field(description="Who answered.")
    responded_at: datetime | None = strawberry.field(description="When it was answered.")
    implemented_at: datetime | None = strawberry.field(description="When it was put into practice.")


@strawberry.type(description="A correction or addition written after the note was signed.")
class ConsultationNoteAddendum:
    id: UUID = strawberry.field(description="Addendum id.")
    author_id: UUID = strawberry.field(description="Who wrote it.")
    text: str | None = strawberry.field(description="The addendum; null once forgotten.")
    written_at: datetime = strawberry.field(description="When it was written.")


@strawberry.type(
    name="ConsultationNote",
    description="A psychiatric consultation: the question, the note, its follow-up.",
)
class ConsultationNoteView:
    id: UUID = strawberry.field(description="Consultation note id.")
    patient_id: UUID = strawberry.field(description="The patient.")
    requested_by: UUID = strawberry.field(description="Who asked (usually the care manager).")
    consultant_id: UUID | None = strawberry.field(
        description="The psychiatric consultant asked, when named."
    )
    question: str | None = strawberry.field(
        description="The question for the consultant; null once forgotten."
    )
    status: ConsultationNoteStatus = strawberry.field(description="Where the note stands.")
    requested_at: datetime = strawberry.field(description="When it was requested.")
    author_id: UUID | None = strawberry.field(description="Who wrote the latest draft.")
    content: str | None = strawberry.field(description="The note's text (the latest draft).")
    draft_number: int = strawberry.field(description="How many drafts were written (0 before).")
    drafted_at: datetime | None = strawberry.field(description="When the latest draft was written.")
    signed_by: UUID | None = strawberry.field(description="Who signed the note.")
    signed_at: datetime | None = strawberry.field(
        description="When it was signed; immutable from then on."
    )
    acknowledged_by: UUID | None = strawberry.field(description="The PCP who acknowledged it.")
    acknowledged_at: datetime | None = strawberry.field(description="When it was acknowledged.")
    withdrawn_at: datetime | None = strawberry.field(description="When the request was withdrawn.")
    withdraw_reason: str | None = strawberry.field(description="Why it was withdrawn.")
    recommendations: list[ConsultationNoteRecommendation] = strawberry.field(
        description="Recommendations in the order added."
    )
    addenda: list[ConsultationNoteAddendum] = strawberry.field(description="Addenda, oldest first.")
    version: int = strawberry.field(description="Record version this view reflects.")

    @classmethod
    def from_aggregate(cls, note: ConsultationNote) -> ConsultationNoteView:
        return cls(
            id=note.id,
            patient_id=note.patient_id,
            requested_by=note.requested_by,
            consultant_id=note.consultant_id,
            question=note.question,
            status=ConsultationNoteStatus(note.status.value),
            requested_at=note.requested_at,
            author_id=note.author_id,
            content=note.content,
            draft_number=note.draft_number,
            drafted_at=note.drafted_at,
            signed_by=note.signed_by,
            signed_at=note.signed_at,
            acknowledged_by=note.acknowledged_by,
            acknowledged_at=note.acknowledged_at,
            withdrawn_at=note.withdrawn_at,
            withdraw_reason=note.withdraw_reason,
            recommendations=[
                ConsultationNoteRecommendation(
                    id=r.recommendation_id,
                    text=r.text,
                    added_at=r.added_at,
                    response=RecommendationResponse(r.response.value) if r.response else None,
                    response_text=r.response_text,
                    responded_by=r.responded_by,
                    responded_at=r.responded_at,
                    implemented_at=r.implemented_at,
                )
                for r in note.recommendations.values()
            ],
            addenda=[
                ConsultationNoteAddendum(
                    id=a.addendum_id, author_id=a.author_id, text=a.text, written_at=a.written_at
                )
                for a in note.addenda
            ],
            version=note.version,
        )


@strawberry.type(
    description="The consultation note after a successful command, already reflecting it."
)
class ConsultationNotePayload:
    consultation_note: ConsultationNoteView = strawberry.field(
        description="The consultation note including this change."
    )
    created_id: UUID | None = strawberry.field(
        description="The id of the recommendation or addendum the command created; null when "
        "it created none (the note's own id is consultationNote.id)."
    )
    log_position: str = strawberry.field(description="Log position of the command's last event.")

    @classmethod
    def build(
        cls, note: ConsultationNote, written: Written, created_id: UUID | None
    ) -> ConsultationNotePayload:
        return cls(
            consultation_note=ConsultationNoteView.from_aggregate(note),
            created_id=created_id,
            log_position=written.log_position,
        )


ConsultationNoteResult = Annotated[
    ConsultationNotePayload | CommandError,
    result_union("ConsultationNoteResult", "A consultation note command's outcome."),
]
