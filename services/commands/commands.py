"""Commands as data, grouped by aggregate.

A command is a frozen dataclass that knows its ``operation`` (the policy row in
services/api/authz.py), its ``aggregate`` type, its ``stream_id`` (None for a creation),
the ``patient_id`` it concerns (None: looked up from the stream), and how it applies
itself to the loaded aggregate at ``now`` (``apply``; a creation has ``create``). What
``apply`` returns is kept when it is an id (the goal, task, grant... it created).
``occurred_at`` None means "now". ``services/commands/handler.py`` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.errors import PatientNotEnrolledError
from domain.patient import Patient
from domain.referral import Referral
from domain.rules.flags import rules_for


@dataclass(frozen=True, kw_only=True)
class Command:
    """A change to one aggregate's stream."""

    operation: ClassVar[str]
    aggregate: ClassVar[type[Any]]
    # Overrides the actor's purpose of use for the events written (break-the-glass: ETREAT).
    purpose_of_use: ClassVar[str | None] = None
    # False for a stream of no patient (an organisation's calendar): the handler then
    # authorises by role alone and looks up no patient (services/commands/organisation.py).
    patient_scoped: ClassVar[bool] = True

    occurred_at: datetime | None = None

    @property
    def stream_id(self) -> UUID | None:
        raise NotImplementedError

    @property
    def patient_id(self) -> UUID | None:
        return None

    def at(self, now: datetime) -> datetime:
        """The clinical effective time: the one given, else ``now``."""
        return self.occurred_at or now

    def apply(self, aggregate: Any, now: datetime) -> object:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Creation(Command):
    """A command that starts a new stream (``create``) instead of changing one."""

    @property
    def stream_id(self) -> UUID | None:
        return None

    def create(self, now: datetime) -> Any:
        raise NotImplementedError


# --- Patient -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PatientCommand(Command):
    aggregate: ClassVar[type[Any]] = Patient
    patient: UUID

    @property
    def stream_id(self) -> UUID | None:
        return self.patient

    @property
    def patient_id(self) -> UUID | None:
        return self.patient


@dataclass(frozen=True, kw_only=True)
class RegisterPatient(Creation):
    """Registers a patient; the named members join the care team in the same stream."""

    operation: ClassVar[str] = "registerPatient"
    aggregate: ClassVar[type[Any]] = Patient
    given_name: str
    family_name: str
    birth_date: date
    mrn: str
    organisation_id: UUID
    sex: str | None = None
    care_manager_id: UUID | None = None
    pcp_id: UUID | None = None
    psychiatric_consultant_id: UUID | None = None

    def create(self, now: datetime) -> Patient:
        at = self.at(now)
        patient = Patient.register(
            given_name=self.given_name,
            family_name=self.family_name,
            birth_date=self.birth_date,
            mrn=self.mrn,
            organisation_id=self.organisation_id,
            sex=self.sex,
            occurred_at=at,
            now=now,
        )
        if self.care_manager_id or self.pcp_id or self.psychiatric_consultant_id:
            patient.assign_care_team(
                care_manager_id=self.care_manager_id,
                pcp_id=self.pcp_id,
                psychiatric_consultant_id=self.psychiatric_consultant_id,
                occurred_at=at,
                now=now,
            )
        return patient


@dataclass(frozen=True, kw_only=True)
class EnrollPatient(PatientCommand):
    operation: ClassVar[str] = "enrollPatient"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.enroll(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class StartTreatment(PatientCommand):
    operation: ClassVar[str] = "startTreatment"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.start_treatment(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class AssignCareTeam(PatientCommand):
    operation: ClassVar[str] = "assignCareTeam"
    care_manager_id: UUID | None = None
    pcp_id: UUID | None = None
    psychiatric_consultant_id: UUID | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.assign_care_team(
            care_manager_id=self.care_manager_id,
            pcp_id=self.pcp_id,
            psychiatric_consultant_id=self.psychiatric_consultant_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class RecordScreening(PatientCommand):
    operation: ClassVar[str] = "recordScreening"
    instrument: str
    answers: Sequence[int | None]
    screening_id: UUID | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        extra = {} if self.screening_id is None else {"screening_id": self.screening_id}
        return aggregate.record_screening(
            instrument=self.instrument,
            answers=list(self.answers),
            occurred_at=self.at(now),
            now=now,
            **extra,
        )


@dataclass(frozen=True, kw_only=True)
class ImportMeasureTotal(PatientCommand):
    """A historical total brought in without its item answers (a registry that kept
    totals only): checked and judged as a screening's total, no safety flag and no task
    (docs/clinical-rules.md "Imported totals"). Its own policy row, granted to whoever
    records screenings."""

    operation: ClassVar[str] = "importMeasureTotal"
    instrument: str
    total: int

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.import_measure_total(
            instrument=self.instrument, total=self.total, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class LogContact(PatientCommand):
    operation: ClassVar[str] = "logContact"
    activity: str
    modality: str | None
    minutes: int
    # Who did the work and in what role (billing counts only qualifying time).
    performed_by: UUID | None = None
    performer_role: str | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.log_contact(
            activity=self.activity,
            modality=self.modality,
            minutes=self.minutes,
            occurred_at=self.at(now),
            now=now,
            performed_by=self.performed_by,
            performer_role=self.performer_role,
        )


@dataclass(frozen=True, kw_only=True)
class ReferPatient(PatientCommand):
    operation: ClassVar[str] = "referPatient"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.refer(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class ResumeTreatment(PatientCommand):
    operation: ClassVar[str] = "resumeTreatment"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.resume_treatment(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class DischargePatient(PatientCommand):
    operation: ClassVar[str] = "dischargePatient"
    reason: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.discharge(reason=self.reason, occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class DeactivatePatient(PatientCommand):
    operation: ClassVar[str] = "deactivatePatient"
    reason: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.deactivate(reason=self.reason, occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class UnassignCareTeamMember(PatientCommand):
    operation: ClassVar[str] = "unassignCareTeamMember"
    role: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.unassign_care_team_member(
            role=self.role, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class GrantConsent(PatientCommand):
    """Records a consent; with ``given_by`` also who gave it (the patient, or a guardian
    with ``relationship`` and ``giver_name``), under the organisation's age rule
    ``guardian_consent_under`` (docs/minors.md; the domain's default when None)."""

    operation: ClassVar[str] = "grantConsent"
    kind: str
    method: str | None = None
    cost_sharing_explained: bool = False
    partner_organisation_id: UUID | None = None
    expires_on: date | None = None
    given_by: str | None = None
    relationship: str | None = None
    giver_name: str | None = None
    guardian_consent_under: int | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        consent: dict[str, Any] = {
            "kind": self.kind,
            "method": self.method,
            "cost_sharing_explained": self.cost_sharing_explained,
            "partner_organisation_id": self.partner_organisation_id,
            "expires_on": self.expires_on,
            "occurred_at": self.at(now),
            "now": now,
        }
        if self.guardian_consent_under is not None:
            consent["guardian_consent_under"] = self.guardian_consent_under
        if self.given_by is None:
            return aggregate.grant_consent(**consent)
        return aggregate.grant_consent_given_by(
            given_by=self.given_by,
            relationship=self.relationship,
            giver_name=self.giver_name,
            **consent,
        )


@dataclass(frozen=True, kw_only=True)
class RevokeConsent(PatientCommand):
    operation: ClassVar[str] = "revokeConsent"
    consent_id: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.revoke_consent(
            consent_id=self.consent_id, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class RaiseFlag(PatientCommand):
    operation: ClassVar[str] = "raiseFlag"
    kind: str
    rule_id: str
    rule_version: str
    inputs: dict[str, str] = field(default_factory=dict, compare=False)

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.raise_flag(
            kind=self.kind,
            rule_id=self.rule_id,
            rule_version=self.rule_version,
            inputs=dict(self.inputs),
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class ClearFlag(PatientCommand):
    operation: ClassVar[str] = "clearFlag"
    flag_id: UUID
    reason: str | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.clear_flag(
            flag_id=self.flag_id, reason=self.reason, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class CreateTask(PatientCommand):
    operation: ClassVar[str] = "createTask"
    kind: str
    due_on: date
    assignee_id: UUID | None = None
    source_id: UUID | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.create_task(
            kind=self.kind,
            due_on=self.due_on,
            assignee_id=self.assignee_id,
            source_id=self.source_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class CompleteTask(PatientCommand):
    operation: ClassVar[str] = "completeTask"
    task_id: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.complete_task(task_id=self.task_id, occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class RecordCaseReview(PatientCommand):
    operation: ClassVar[str] = "recordCaseReview"
    consultant_id: UUID
    decision: str | None = None
    consultation_note_id: UUID | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.record_case_review(
            consultant_id=self.consultant_id,
            decision=self.decision,
            consultation_note_id=self.consultation_note_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class RecordInitiatingVisit(PatientCommand):
    """The billing practitioner (the caller, from the token) records their initiating visit."""

    operation: ClassVar[str] = "recordInitiatingVisit"
    practitioner_id: UUID
    visit_kind: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.record_initiating_visit(
            practitioner_id=self.practitioner_id,
            visit_kind=self.visit_kind,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class WriteRelapsePreventionPlan(PatientCommand):
    operation: ClassVar[str] = "writeRelapsePreventionPlan"
    warning_signs: Sequence[str]
    strategies: Sequence[str]

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.write_relapse_prevention_plan(
            warning_signs=list(self.warning_signs),
            strategies=list(self.strategies),
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class AdmitInpatient(PatientCommand):
    operation: ClassVar[str] = "admitInpatient"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.admit_inpatient(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class DischargeInpatient(PatientCommand):
    operation: ClassVar[str] = "dischargeInpatient"

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.discharge_inpatient(occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class RecordPsychotherapyNote(PatientCommand):
    operation: ClassVar[str] = "recordPsychotherapyNote"
    author_id: UUID
    text: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.record_psychotherapy_note(
            author_id=self.author_id, text=self.text, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class BreakTheGlass(PatientCommand):
    """Emergency access; its event is written under purpose ETREAT (HL7 PurposeOfUse)."""

    operation: ClassVar[str] = "breakTheGlass"
    purpose_of_use: ClassVar[str | None] = "ETREAT"
    user_id: UUID
    role: str
    reason: str
    minutes: int

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.grant_emergency_access(
            user_id=self.user_id,
            role=self.role,
            reason=self.reason,
            minutes=self.minutes,
            occurred_at=now,
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class ReviewEmergencyAccess(PatientCommand):
    operation: ClassVar[str] = "reviewEmergencyAccess"
    grant_id: UUID
    reviewer_id: UUID
    outcome: str
    note: str | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.review_emergency_access(
            grant_id=self.grant_id,
            reviewer_id=self.reviewer_id,
            outcome=self.outcome,
            note=self.note,
            occurred_at=now,
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class RemindMeasurement(PatientCommand):
    """A reminder that ``instrument`` is due, for a messaging partner to deliver
    (docs/patient-channel.md); due after the registry's measurement interval of the rules
    in force on the day. Authorised as ``recordScreening``: whoever may record the
    screening may remind the patient of it."""

    operation: ClassVar[str] = "recordScreening"
    instrument: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.remind_measurement(
            instrument=self.instrument,
            due_after_days=rules_for(now.date()).measurement_due_after_days,
            occurred_at=now,
            now=now,
        )


# --- Care plan -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateCarePlan(Creation):
    """The care plan of the patient's current episode; ``episode_number`` None when the
    patient is not on the caseload (the domain's refusal)."""

    operation: ClassVar[str] = "createCarePlan"
    aggregate: ClassVar[type[Any]] = CarePlan
    patient: UUID
    episode_number: int | None
    author_id: UUID | None = None

    @property
    def patient_id(self) -> UUID | None:
        return self.patient

    def create(self, now: datetime) -> CarePlan:
        if self.episode_number is None:
            raise PatientNotEnrolledError("a care plan needs the patient on the caseload")
        return CarePlan.create(
            patient_id=self.patient,
            episode_number=self.episode_number,
            author_id=self.author_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class RecordCommand(Command):
    """A change to a care plan, referral or note: its ``method`` called with
    ``arguments()``, the effective time and ``now``."""

    method: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        return {}

    def apply(self, aggregate: Any, now: datetime) -> object:
        method = getattr(aggregate, self.method)
        return method(**self.arguments(), occurred_at=self.at(now), now=now)


@dataclass(frozen=True, kw_only=True)
class CarePlanCommand(RecordCommand):
    """A change to the care plan ``care_plan_id``."""

    aggregate: ClassVar[type[Any]] = CarePlan
    care_plan_id: UUID

    @property
    def stream_id(self) -> UUID | None:
        return self.care_plan_id


@dataclass(frozen=True, kw_only=True)
class AddGoal(CarePlanCommand):
    operation: ClassVar[str] = "addGoal"
    method: ClassVar[str] = "add_goal"
    description: str

    def arguments(self) -> dict[str, Any]:
        return {"description": self.description}


@dataclass(frozen=True, kw_only=True)
class CloseGoal(CarePlanCommand):
    operation: ClassVar[str] = "closeGoal"
    method: ClassVar[str] = "close_goal"
    goal_id: UUID
    status: str
    reason: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "status": self.status, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class SetTarget(CarePlanCommand):
    operation: ClassVar[str] = "setTarget"
    method: ClassVar[str] = "set_target"
    instrument: str
    kind: str
    value: int
    due_on: date | None = None

    def arguments(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "kind": self.kind,
            "value": self.value,
            "due_on": self.due_on,
        }


@dataclass(frozen=True, kw_only=True)
class RemoveTarget(CarePlanCommand):
    operation: ClassVar[str] = "removeTarget"
    method: ClassVar[str] = "remove_target"
    target_id: UUID

    def arguments(self) -> dict[str, Any]:
        return {"target_id": self.target_id}


@dataclass(frozen=True, kw_only=True)
class StartIntervention(CarePlanCommand):
    operation: ClassVar[str] = "startIntervention"
    method: ClassVar[str] = "start_intervention"
    kind: str
    name: str
    dose: str | None = None
    modality: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "dose": self.dose, "modality": self.modality}


@dataclass(frozen=True, kw_only=True)
class ChangeIntervention(CarePlanCommand):
    operation: ClassVar[str] = "changeIntervention"
    method: ClassVar[str] = "change_intervention"
    intervention_id: UUID
    name: str | None = None
    dose: str | None = None
    modality: str | None = None
    reason: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {
            "intervention_id": self.intervention_id,
            "name": self.name,
            "dose": self.dose,
            "modality": self.modality,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class StopIntervention(CarePlanCommand):
    operation: ClassVar[str] = "stopIntervention"
    method: ClassVar[str] = "stop_intervention"
    intervention_id: UUID
    reason: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {"intervention_id": self.intervention_id, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ReviewCarePlan(CarePlanCommand):
    operation: ClassVar[str] = "reviewCarePlan"
    method: ClassVar[str] = "review"
    decision: str
    reviewer_id: UUID
    baseline_total: int | None = None
    latest_total: int | None = None

    def arguments(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reviewer_id": self.reviewer_id,
            "baseline_total": self.baseline_total,
            "latest_total": self.latest_total,
        }


@dataclass(frozen=True, kw_only=True)
class ReviseCarePlan(CarePlanCommand):
    operation: ClassVar[str] = "reviseCarePlan"
    method: ClassVar[str] = "revise"
    reason: str

    def arguments(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class CloseCarePlan(CarePlanCommand):
    operation: ClassVar[str] = "closeCarePlan"
    method: ClassVar[str] = "close"
    reason: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {"reason": self.reason}


# --- Referral ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestReferral(Creation):
    operation: ClassVar[str] = "requestReferral"
    aggregate: ClassVar[type[Any]] = Referral
    patient: UUID
    service: str
    reason: str
    expected_by: date
    receiving_organisation_id: UUID | None = None
    requested_by: UUID | None = None

    @property
    def patient_id(self) -> UUID | None:
        return self.patient

    def create(self, now: datetime) -> Referral:
        return Referral.request(
            patient_id=self.patient,
            service=self.service,
            reason=self.reason,
            expected_by=self.expected_by,
            receiving_organisation_id=self.receiving_organisation_id,
            requested_by=self.requested_by,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class ReferralCommand(RecordCommand):
    """A change to the referral ``referral_id``."""

    aggregate: ClassVar[type[Any]] = Referral
    referral_id: UUID

    @property
    def stream_id(self) -> UUID | None:
        return self.referral_id


@dataclass(frozen=True, kw_only=True)
class SendReferral(ReferralCommand):
    operation: ClassVar[str] = "sendReferral"
    method: ClassVar[str] = "send"


@dataclass(frozen=True, kw_only=True)
class AcceptReferral(ReferralCommand):
    operation: ClassVar[str] = "acceptReferral"
    method: ClassVar[str] = "accept"


@dataclass(frozen=True, kw_only=True)
class DeclineReferral(ReferralCommand):
    operation: ClassVar[str] = "declineReferral"
    method: ClassVar[str] = "decline"
    reason: str

    def arguments(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class ScheduleReferral(ReferralCommand):
    operation: ClassVar[str] = "scheduleReferral"
    method: ClassVar[str] = "schedule"
    appointment_at: datetime

    def arguments(self) -> dict[str, Any]:
        return {"appointment_at": self.appointment_at}


@dataclass(frozen=True, kw_only=True)
class CompleteReferral(ReferralCommand):
    operation: ClassVar[str] = "completeReferral"
    method: ClassVar[str] = "complete"
    report_back_summary: str

    def arguments(self) -> dict[str, Any]:
        return {"report_back_summary": self.report_back_summary}


@dataclass(frozen=True, kw_only=True)
class CancelReferral(ReferralCommand):
    operation: ClassVar[str] = "cancelReferral"
    method: ClassVar[str] = "cancel"
    reason: str

    def arguments(self) -> dict[str, Any]:
        return {"reason": self.reason}


# --- Consultation note ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestConsultation(Creation):
    operation: ClassVar[str] = "requestConsultation"
    aggregate: ClassVar[type[Any]] = ConsultationNote
    patient: UUID
    requested_by: UUID
    question: str
    consultant_id: UUID | None = None

    @property
    def patient_id(self) -> UUID | None:
        return self.patient

    def create(self, now: datetime) -> ConsultationNote:
        return ConsultationNote.request(
            patient_id=self.patient,
            requested_by=self.requested_by,
            question=self.question,
            consultant_id=self.consultant_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class ConsultationCommand(RecordCommand):
    """A change to the consultation note ``consultation_note_id``."""

    aggregate: ClassVar[type[Any]] = ConsultationNote
    consultation_note_id: UUID

    @property
    def stream_id(self) -> UUID | None:
        return self.consultation_note_id


@dataclass(frozen=True, kw_only=True)
class DraftConsultationNote(ConsultationCommand):
    operation: ClassVar[str] = "draftConsultationNote"
    method: ClassVar[str] = "draft"
    author_id: UUID
    content: str

    def arguments(self) -> dict[str, Any]:
        return {"author_id": self.author_id, "content": self.content}


@dataclass(frozen=True, kw_only=True)
class AddRecommendation(ConsultationCommand):
    operation: ClassVar[str] = "addRecommendation"
    method: ClassVar[str] = "add_recommendation"
    text: str

    def arguments(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, kw_only=True)
class RemoveRecommendation(ConsultationCommand):
    operation: ClassVar[str] = "removeRecommendation"
    method: ClassVar[str] = "remove_recommendation"
    recommendation_id: UUID

    def arguments(self) -> dict[str, Any]:
        return {"recommendation_id": self.recommendation_id}


@dataclass(frozen=True, kw_only=True)
class SignConsultationNote(ConsultationCommand):
    operation: ClassVar[str] = "signConsultationNote"
    method: ClassVar[str] = "sign"
    signed_by: UUID

    def arguments(self) -> dict[str, Any]:
        return {"signed_by": self.signed_by}


@dataclass(frozen=True, kw_only=True)
class WithdrawConsultation(ConsultationCommand):
    operation: ClassVar[str] = "withdrawConsultation"
    method: ClassVar[str] = "withdraw"
    reason: str

    def arguments(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class AddAddendum(ConsultationCommand):
    operation: ClassVar[str] = "addAddendum"
    method: ClassVar[str] = "add_addendum"
    author_id: UUID
    text: str

    def arguments(self) -> dict[str, Any]:
        return {"author_id": self.author_id, "text": self.text}


@dataclass(frozen=True, kw_only=True)
class AcknowledgeConsultationNote(ConsultationCommand):
    operation: ClassVar[str] = "acknowledgeConsultationNote"
    method: ClassVar[str] = "acknowledge"
    pcp_id: UUID

    def arguments(self) -> dict[str, Any]:
        return {"pcp_id": self.pcp_id}


@dataclass(frozen=True, kw_only=True)
class RespondToRecommendation(ConsultationCommand):
    operation: ClassVar[str] = "respondToRecommendation"
    method: ClassVar[str] = "respond_to_recommendation"
    recommendation_id: UUID
    response: str
    responded_by: UUID
    text: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
            "response": self.response,
            "responded_by": self.responded_by,
            "text": self.text,
        }


@dataclass(frozen=True, kw_only=True)
class ImplementRecommendation(ConsultationCommand):
    operation: ClassVar[str] = "implementRecommendation"
    method: ClassVar[str] = "implement_recommendation"
    recommendation_id: UUID

    def arguments(self) -> dict[str, Any]:
        return {"recommendation_id": self.recommendation_id}
