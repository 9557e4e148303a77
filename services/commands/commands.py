"""Commands as data, grouped by aggregate.

A command is a frozen dataclass that knows its ``operation`` (the policy row in
services/api/authz.py), its ``aggregate`` type, its ``stream_id`` (None for a creation),
the ``patient_id`` it concerns (None: looked up from the stream), and how it applies
itself to the loaded aggregate at ``now`` (``apply``; a creation has ``create``). What
``apply`` returns is kept when it is an id (the goal, task, grant... it created).
``occurred_at`` None means "now". ``services/commands/handler.py`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.patient import Patient


@dataclass(frozen=True, kw_only=True)
class Command:
    """A change to one aggregate's stream."""

    operation: ClassVar[str]
    aggregate: ClassVar[type[Any]]
    # Overrides the actor's purpose of use for the events written (break-the-glass: ETREAT).
    purpose_of_use: ClassVar[str | None] = None

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
class PatientStep(PatientCommand):
    """Compatibility for mutations written against ``record_commands.patient_command``:
    ``step(now)`` returns the function applied to the patient. New code writes a command
    class instead (docs/architecture.md, 'How to add a command')."""

    name: str
    step: Callable[[datetime], Callable[[Any], object]] = field(compare=False)

    @property
    def operation(self) -> str:  # type: ignore[override]
        return self.name

    def apply(self, aggregate: Any, now: datetime) -> object:
        return self.step(now)(aggregate)


@dataclass(frozen=True, kw_only=True)
class RecordStep(Command):
    """Compatibility for ``record_commands.record_command``: ``step(now)`` applied to the
    care plan, referral or note ``record``."""

    name: str
    kind: type[Any] = field(compare=False)
    record: UUID
    step: Callable[[datetime], Callable[[Any], object]] = field(compare=False)

    @property
    def operation(self) -> str:  # type: ignore[override]
        return self.name

    @property
    def aggregate(self) -> type[Any]:  # type: ignore[override]
        return self.kind

    @property
    def stream_id(self) -> UUID | None:
        return self.record

    def apply(self, aggregate: Any, now: datetime) -> object:
        return self.step(now)(aggregate)


@dataclass(frozen=True, kw_only=True)
class RecordCreate(Creation):
    """Compatibility for ``record_commands.record_command``: ``make(now)`` creates a record
    of patient ``of``."""

    name: str
    kind: type[Any] = field(compare=False)
    of: UUID
    make: Callable[[datetime], Any] = field(compare=False)

    @property
    def operation(self) -> str:  # type: ignore[override]
        return self.name

    @property
    def aggregate(self) -> type[Any]:  # type: ignore[override]
        return self.kind

    @property
    def patient_id(self) -> UUID | None:
        return self.of

    def create(self, now: datetime) -> Any:
        return self.make(now)


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
class LogContact(PatientCommand):
    operation: ClassVar[str] = "logContact"
    activity: str
    modality: str | None
    minutes: int

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.log_contact(
            activity=self.activity,
            modality=self.modality,
            minutes=self.minutes,
            occurred_at=self.at(now),
            now=now,
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
    operation: ClassVar[str] = "grantConsent"
    kind: str
    method: str | None = None
    cost_sharing_explained: bool = False
    partner_organisation_id: UUID | None = None
    expires_on: date | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.grant_consent(
            kind=self.kind,
            method=self.method,
            cost_sharing_explained=self.cost_sharing_explained,
            partner_organisation_id=self.partner_organisation_id,
            expires_on=self.expires_on,
            occurred_at=self.at(now),
            now=now,
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
