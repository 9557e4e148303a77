"""The Patient aggregate: identity, enrollment episodes, care team, consent, measurement,
contacts and minutes, flags, tasks, case reviews, relapse prevention and discharge.

Each event is declared once, as a class with annotated fields below; the state is
declared once, as annotations on :class:`Patient` (snapshots derive from both, see
:mod:`domain.codec`). Commands (public methods) validate and then trigger an event by
calling a private method declared with :func:`~domain.common.applies`, which takes the
event; those bodies only change state, because they run again on every replay. Times: every command
takes ``occurred_at`` (clinical effective time) and ``now`` (the caller's clock), both
timezone-aware; the event ``timestamp`` is ``now`` (when it was recorded).

Episode status machine (docs/clinical-rules.md, 'Episode status')::

    (none) | discharged | deactivated --refer--> referred
    (none) | discharged | deactivated | referred --enroll--> enrolled
    enrolled --start_treatment--> active_treatment
    active_treatment --write_relapse_prevention_plan--> relapse_prevention
    relapse_prevention --resume_treatment--> active_treatment
    referred | enrolled | active_treatment | relapse_prevention --deactivate--> deactivated
    enrolled | active_treatment | relapse_prevention --discharge--> discharged

A referral or enrollment after a discharge or deactivation starts a new episode with the
next episode number.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Final, Self, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

# pcbh block imports (the wider team and PCBH, issue 18)
from domain.codec import Snapshotting
from domain.common import (
    MAX_SHORT_TEXT_LENGTH,
    ActivityType,
    CaregiverRelationship,
    CaregiverScope,
    CareTeamRole,
    ConsentKind,
    ConsentMethod,
    DeactivationReason,
    DischargeReason,
    EpisodeStatus,
    FlagKind,
    InitiatingVisitKind,
    Modality,
    Problems,
    Sex,
    TaskKind,
    TreatmentDecision,
    WarmHandoffStatus,
    WiderTeamRole,
    applies,
    check_occurred_at,
    check_payload_mapping,
    optional_text,
    require_aware,
    require_enum,
    require_text,
    require_uuid,
)
from domain.errors import (
    AlreadyInpatientError,
    AlreadyOnCareTeamError,
    BriefVisitDurationError,
    CaregiverNotFoundError,
    CaregiverNotStaffError,
    CareTeamMemberNotAssignedError,
    ConsentAlreadyRevokedError,
    ConsentMethodRequiredError,
    ConsentNotFoundError,
    ContactAfterDischargeError,
    ContactBeforeEnrollmentError,
    DuplicateIdError,
    EmergencyGrantAlreadyReviewedError,
    EmergencyGrantNotFoundError,
    EmptyCareTeamChangeError,
    FlagAlreadyClearedError,
    FlagAlreadyRaisedError,
    FlagNotFoundError,
    InstrumentNotForAgeError,
    InvalidBirthDateError,
    InvalidEmergencyWindowError,
    InvalidEnumValueError,
    InvalidEpisodeTransitionError,
    InvalidMinutesError,
    InvalidPayloadValueError,
    ModalityRequiredError,
    NotABehavioralHealthConsultantError,
    NotInpatientError,
    NotTheHandoffsConsultantError,
    OccurredBeforeBirthError,
    OccurredInFutureError,
    OutOfOrderError,
    PartnerOrganisationRequiredError,
    PatientNotEnrolledError,
    StaffRoleNotHeldError,
    TaskAlreadyCompletedError,
    TaskNotFoundError,
    WarmHandoffClosedError,
    WarmHandoffNotFoundError,
)
from domain.instruments import (
    RULES_VERSION,
    SDQ_AGES,
    Instrument,
    ScoreResult,
    SdqInformant,
    SdqScore,
    Severity,
    score,
    score_sdq,
    score_total,
    spec_for,
)
from domain.minors import (  # minors block (issue #19)
    DEFAULT_GUARDIAN_CONSENT_UNDER,
    MAX_GIVER_NAME_LENGTH,
    ConsentGiver,
    GuardianConsentRequiredError,
    GuardianDetailsRequiredError,
    GuardianRelationship,
    MeasurementNotDueError,
    check_age_rule,
    needs_guardian,
)
from domain.rules.outcomes import (  # utilisation block (issue #19 item 3)
    UtilisationKind,
    UtilisationSource,
)

# Longest single activity we accept, in minutes: a whole working day plus margin.
# (Policy choice: larger entries are almost always typing errors.)
MAX_CONTACT_MINUTES: Final = 600
# A day is "in the future" once it has begun nowhere on Earth (UTC+14): utilisation block.
LATEST_UTC_OFFSET: Final = timedelta(hours=14)
# Oldest plausible age at registration, in years.
MAX_AGE_YEARS: Final = 130
# Due dates of tasks raised by a screening (policy choices; the same-day risk
# assessment is docs/clinical-rules.md's).
SEVERE_FOLLOW_UP_DAYS: Final = 7
POSITIVE_SCREEN_FOLLOW_UP_DAYS: Final = 30
# Intake look-back (docs/clinical-time.md): a screening taken up to this long before its
# episode began (the referral or enrollment) is the episode's intake score and may be its
# baseline; one taken earlier is kept in the patient's history but belongs to no episode.
# 30 days: NCQA DSF-E follows a positive screen up within 30 days, so the screen that
# led to the referral is at most that old; a PHQ-9 asks about the past two weeks, so an
# older one no longer describes the patient at the start of care.
INTAKE_LOOKBACK: Final = timedelta(days=30)
# Rule ids recorded on flags and tasks raised by screenings.
SAFETY_RULE_ID: Final = "instruments.safety_item"
# Flags by which the team asks for the psychiatric consultant's review; a recorded case
# review answers (clears) those raised on or before it (docs/clinical-time.md).
TEAM_REVIEW_REQUEST_KINDS: Final = frozenset(
    {FlagKind.NEEDS_PSYCHIATRIC_REVIEW, FlagKind.TEAM_MEMBER}
)
CASE_REVIEW_CLEAR_REASON: Final = "answered by a psychiatric case review"

_OPEN_STATUSES: Final = frozenset(
    {
        EpisodeStatus.REFERRED,
        EpisodeStatus.ENROLLED,
        EpisodeStatus.ACTIVE_TREATMENT,
        EpisodeStatus.RELAPSE_PREVENTION,
    }
)
# Statuses in which the patient is on the caseload (care manager works with them).
_ENROLLED_STATUSES: Final = frozenset(
    {EpisodeStatus.ENROLLED, EpisodeStatus.ACTIVE_TREATMENT, EpisodeStatus.RELAPSE_PREVENTION}
)
_ENDED_STATUSES: Final = frozenset({EpisodeStatus.DISCHARGED, EpisodeStatus.DEACTIVATED})
# Activities with the patient need a modality; internal work (reviews) does not.
_MODALITY_REQUIRED: Final = frozenset({ActivityType.CONTACT, ActivityType.OUTREACH})


# --- state records ---------------------------------------------------------------------


@dataclass
class Episode:
    """One collaborative care episode, from referral or enrollment to its end."""

    number: int
    status: EpisodeStatus
    started_at: datetime
    last_change_at: datetime
    referred_at: datetime | None = None
    enrolled_at: datetime | None = None
    treatment_started_at: datetime | None = None
    relapse_prevention_at: datetime | None = None
    ended_at: datetime | None = None
    discharge_reason: DischargeReason | None = None
    deactivation_reason: DeactivationReason | None = None


@dataclass
class CareTeam:
    """The user ids of the three CoCM roles (None while unassigned)."""

    care_manager_id: UUID | None = None
    pcp_id: UUID | None = None
    psychiatric_consultant_id: UUID | None = None


@dataclass
class Consent:
    """One consent, granted and possibly revoked."""

    consent_id: UUID
    kind: ConsentKind
    method: ConsentMethod | None
    cost_sharing_explained: bool
    partner_organisation_id: UUID | None
    granted_at: datetime
    expires_on: date | None = None
    revoked_at: datetime | None = None

    def is_active(self, at: datetime | None = None) -> bool:
        """Granted, not revoked (before ``at``) and not expired (on ``at``)."""
        if at is None:
            return self.revoked_at is None
        if at < self.granted_at:
            return False
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return not (self.expires_on is not None and at.date() > self.expires_on)


@dataclass
class Screening:
    """A recorded questionnaire with every answer and its score."""

    screening_id: UUID
    instrument: Instrument
    occurred_at: datetime
    episode_number: int | None
    answers: list[int | None]
    complete: bool
    total: int | None
    severity: Severity | None
    positive: bool | None
    safety_alert: bool
    needs_follow_up: bool
    rules_version: str
    loinc_panel: str | None
    loinc_total: str | None
    safety_items: list[int] = field(default_factory=list)

    @property
    def total_only(self) -> bool:
        """A total imported without its answers (``Patient.import_measure_total``): a
        questionnaire always has one answer (or None) per item, so no answers means none
        were given. Derived, so the snapshot's shape is unchanged."""
        return not self.answers


@dataclass
class Contact:
    """One care manager activity with its minutes."""

    contact_id: UUID
    activity: ActivityType
    modality: Modality | None
    minutes: int
    occurred_at: datetime
    episode_number: int
    performed_by: UUID | None = None


@dataclass
class Flag:
    """A registry flag with the rule that raised it."""

    flag_id: UUID
    kind: FlagKind
    rule_id: str
    rule_version: str
    inputs: dict[str, Any]
    raised_at: datetime
    cleared_at: datetime | None = None
    clear_reason: str | None = None

    @property
    def active(self) -> bool:
        """Raised and not cleared."""
        return self.cleared_at is None


@dataclass
class EmergencyGrant:
    """Break-the-glass: time-limited access for a clinician outside the care team."""

    grant_id: UUID
    user_id: UUID
    role: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    review_outcome: str | None = None
    reviewed_by: UUID | None = None
    review_note: str | None = None

    def active(self, at: datetime) -> bool:
        """Within its window."""
        return self.granted_at <= at < self.expires_at


# HIPAA 164.312(a)(2)(ii) emergency access. Policy choice: at most 4 hours per grant, so a
# longer emergency needs a new reason (and a new review item) every 4 hours.
MAX_EMERGENCY_MINUTES: Final = 240
EMERGENCY_REVIEW_OUTCOMES: Final = frozenset({"appropriate", "inappropriate"})


@dataclass
class Task:
    """A work item for the care team."""

    task_id: UUID
    kind: TaskKind
    due_on: date
    created_at: datetime
    source_id: UUID | None = None
    assignee_id: UUID | None = None
    completed_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Not completed yet."""
        return self.completed_at is None


@dataclass
class CaseReview:
    """A systematic caseload review of this patient by the psychiatric consultant."""

    review_id: UUID
    consultant_id: UUID
    occurred_at: datetime
    episode_number: int
    decision: TreatmentDecision | None = None
    consultation_note_id: UUID | None = None


# Long enough for a session's notes; longer text belongs in a document system.
PSYCHOTHERAPY_NOTE_MAX_LENGTH = 20_000


@dataclass
class RelapsePreventionPlan:
    """The plan written when the patient reaches remission."""

    plan_id: UUID
    written_at: datetime
    episode_number: int
    warning_signs: list[str]
    strategies: list[str]


@dataclass
class InpatientStay:
    """A hospital stay; care manager time during it does not count for billing."""

    admitted_at: datetime
    discharged_at: datetime | None = None


# === the wider team and PCBH: state (issue 18, items 3-4; owner: pcbh) =================
# Reiter, Dobmeyer & Hunter 2018, "The Primary Care Behavioral Health (PCBH) Model: An
# Overview and Operational Definition", J Clin Psychol Med Settings 25(2):109-126.
# docs/team-roles.md, docs/pcbh.md.

BRIEF_VISIT_MIN_MINUTES: Final = 15
BRIEF_VISIT_MAX_MINUTES: Final = 30
"""A PCBH brief visit lasts 15 to 30 minutes, both bounds included (docs/pcbh.md)."""


@dataclass
class WarmHandoff:
    """The PCP hands the patient to the BHC during the visit."""

    handoff_id: UUID
    from_user_id: UUID
    to_user_id: UUID
    offered_at: datetime
    status: WarmHandoffStatus = WarmHandoffStatus.OFFERED
    closed_at: datetime | None = None


@dataclass
class BriefVisit:
    """A brief BHC visit (15-30 minutes)."""

    visit_id: UUID
    bhc_id: UUID
    minutes: int
    occurred_at: datetime
    episode_number: int
    handoff_id: UUID | None = None


@dataclass
class Caregiver:
    """A parent, guardian or other caregiver: a participant, never staff."""

    caregiver_id: UUID
    relationship: CaregiverRelationship
    scopes: list[CaregiverScope] = field(default_factory=list)


@dataclass
class IntegratedCare:
    """The wider team, warm handoffs, brief visits and caregivers of one patient."""

    # user id -> the wider-team role they hold on this patient's team
    members: dict[UUID, WiderTeamRole] = field(default_factory=dict)
    handoffs: dict[UUID, WarmHandoff] = field(default_factory=dict)
    brief_visits: list[BriefVisit] = field(default_factory=list)
    caregivers: dict[UUID, Caregiver] = field(default_factory=dict)


# === end of the wider team and PCBH: state =============================================


def _ts(now: datetime) -> datetime:
    """The event timestamp: the caller's clock, checked aware (no clock read here)."""
    require_aware(now, "now")
    return now


def _consent_kind_or_none(kind: str) -> ConsentKind | None:
    """The consent kind, or None when it is not one (the full check reports that)."""
    try:
        return ConsentKind(kind)
    except (ValueError, TypeError):
        return None


class Patient(Snapshotting, Aggregate):
    """A person in collaborative care, with every episode of their care."""

    STREAM_TYPE: ClassVar[str] = "patient"
    # Bumped when the state's shape changes, so older snapshots are ignored and replayed.
    SNAPSHOT_VERSION: ClassVar[int] = 3
    # Explicit topics make the stored names stable strings instead of Python paths.
    TOPIC: ClassVar[str] = STREAM_TYPE

    # --- state: declared once; snapshots and their codec derive from it (domain.codec) --

    given_name: str
    family_name: str
    birth_date: date
    sex: Sex | None
    mrn: str
    organisation_id: UUID
    registered_at: datetime
    episodes: list[Episode]
    care_team: CareTeam
    consents: dict[UUID, Consent]
    screenings: list[Screening]
    contacts: list[Contact]
    flags: dict[UUID, Flag]
    tasks: dict[UUID, Task]
    case_reviews: list[CaseReview]
    relapse_prevention_plans: list[RelapsePreventionPlan]
    inpatient_stays: list[InpatientStay]
    emergency_grants: dict[UUID, EmergencyGrant]
    integrated_care: IntegratedCare

    class Event(Aggregate.Event):
        """Base of the patient's events."""

        # The library derives an unused ``Patient.Created`` class from this base; with
        # explicit topics every event class needs one, and this is the one it inherits.
        TOPIC: ClassVar[str] = "patient.created"

    class Registered(Aggregate.Created):
        """A patient was registered with minimal identity."""

        EVENT_NAME: ClassVar[str] = "patient.registered"
        TOPIC: ClassVar[str] = EVENT_NAME
        # Identifying fields: stored encrypted with the patient's data key, and unreadable
        # (None) once the patient is forgotten (crypto-shredding). Free text (notes,
        # reasons, questions) is declared the same way on each event class, as
        # ``FREE_TEXT_FIELDS``, and treated the same way by the event store.
        PERSONAL_FIELDS: ClassVar[frozenset[str]] = frozenset(
            {"given_name", "family_name", "birth_date", "mrn"}
        )
        given_name: str
        family_name: str
        birth_date: date
        sex: str | None
        mrn: str
        organisation_id: UUID
        occurred_at: datetime

    class Referred(Aggregate.Event):
        """A new episode started with a referral to collaborative care."""

        EVENT_NAME: ClassVar[str] = "patient.referred"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        occurred_at: datetime

    class Enrolled(Aggregate.Event):
        """The patient was enrolled (starting a new episode when none was open)."""

        EVENT_NAME: ClassVar[str] = "patient.enrolled"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        new_episode: bool
        occurred_at: datetime

    class TreatmentStarted(Aggregate.Event):
        """Active treatment began."""

        EVENT_NAME: ClassVar[str] = "patient.treatment_started"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        occurred_at: datetime

    class RelapsePreventionStarted(Aggregate.Event):
        """The patient moved from active treatment to relapse prevention."""

        EVENT_NAME: ClassVar[str] = "patient.relapse_prevention_started"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        occurred_at: datetime

    class TreatmentResumed(Aggregate.Event):
        """Active treatment resumed after relapse prevention (a relapse)."""

        EVENT_NAME: ClassVar[str] = "patient.treatment_resumed"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        occurred_at: datetime

    class Discharged(Aggregate.Event):
        """The episode ended with a clinical discharge."""

        EVENT_NAME: ClassVar[str] = "patient.discharged"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        reason: str
        occurred_at: datetime

    class Deactivated(Aggregate.Event):
        """The episode ended without a clinical discharge."""

        EVENT_NAME: ClassVar[str] = "patient.deactivated"
        TOPIC: ClassVar[str] = EVENT_NAME
        episode_number: int
        reason: str
        occurred_at: datetime

    class CareTeamAssigned(Aggregate.Event):
        """Care team members were assigned; the event holds the whole resulting team."""

        EVENT_NAME: ClassVar[str] = "patient.care_team_assigned"
        TOPIC: ClassVar[str] = EVENT_NAME
        care_manager_id: UUID | None
        pcp_id: UUID | None
        psychiatric_consultant_id: UUID | None
        changed_roles: list[str]
        occurred_at: datetime

    class CareTeamMemberUnassigned(Aggregate.Event):
        """A care team role was left without a member."""

        EVENT_NAME: ClassVar[str] = "patient.care_team_member_unassigned"
        TOPIC: ClassVar[str] = EVENT_NAME
        role: str
        user_id: UUID
        occurred_at: datetime

    class ConsentGranted(Aggregate.Event):
        """The patient granted a consent."""

        EVENT_NAME: ClassVar[str] = "patient.consent_granted"
        TOPIC: ClassVar[str] = EVENT_NAME
        consent_id: UUID
        kind: str
        method: str | None
        cost_sharing_explained: bool
        partner_organisation_id: UUID | None
        expires_on: date | None
        occurred_at: datetime

    class ConsentRevoked(Aggregate.Event):
        """The patient revoked a consent."""

        EVENT_NAME: ClassVar[str] = "patient.consent_revoked"
        TOPIC: ClassVar[str] = EVENT_NAME
        consent_id: UUID
        kind: str
        occurred_at: datetime

    class ScreeningRecorded(Aggregate.Event):
        """A questionnaire was recorded with every item answer and its computed score.

        ``total_only`` (added with a default, so stored events without it decode as
        False): an imported historical total without item answers (``answers`` empty,
        no safety alert); see ``Patient.import_measure_total``.
        """

        EVENT_NAME: ClassVar[str] = "patient.screening_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        screening_id: UUID
        instrument: str
        answers: list[int | None]
        occurred_at: datetime
        episode_number: int | None
        complete: bool
        total: int | None
        severity: str | None
        positive: bool | None
        safety_alert: bool
        needs_follow_up: bool
        rules_version: str
        loinc_panel: str | None
        loinc_total: str | None
        safety_items: list[int]
        total_only: bool = False

    class ContactLogged(Aggregate.Event):
        """A care manager activity was logged with its minutes.

        Version 2 added ``performed_by`` (the care manager who did the work); version 1
        events did not say, and upcast to None.
        """

        EVENT_NAME: ClassVar[str] = "patient.contact_logged"
        TOPIC: ClassVar[str] = EVENT_NAME
        class_version: ClassVar[int] = 3
        contact_id: UUID
        activity: str
        modality: str | None
        minutes: int
        occurred_at: datetime
        episode_number: int
        performed_by: UUID | None
        # issue 18 (billing programs): version 3 adds the performer's role.
        performer_role: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """v1 -> v2: add ``performed_by`` (unknown for old entries)."""
            state["performed_by"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """v2 -> v3: add ``performer_role`` (unknown for old entries)."""
            state["performer_role"] = None

    class FlagRaised(Aggregate.Event):
        """A registry flag was raised by a rule or a team member."""

        EVENT_NAME: ClassVar[str] = "patient.flag_raised"
        TOPIC: ClassVar[str] = EVENT_NAME
        # A team member's flag carries their note among the inputs.
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"inputs"})
        flag_id: UUID
        kind: str
        rule_id: str
        rule_version: str
        inputs: dict[str, Any]
        occurred_at: datetime

    class FlagCleared(Aggregate.Event):
        """A registry flag was cleared."""

        EVENT_NAME: ClassVar[str] = "patient.flag_cleared"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        flag_id: UUID
        kind: str
        reason: str | None
        occurred_at: datetime

    class TaskCreated(Aggregate.Event):
        """A task was created for the care team."""

        EVENT_NAME: ClassVar[str] = "patient.task_created"
        TOPIC: ClassVar[str] = EVENT_NAME
        task_id: UUID
        kind: str
        due_on: date
        source_id: UUID | None
        assignee_id: UUID | None
        occurred_at: datetime

    class TaskCompleted(Aggregate.Event):
        """A task was completed."""

        EVENT_NAME: ClassVar[str] = "patient.task_completed"
        TOPIC: ClassVar[str] = EVENT_NAME
        task_id: UUID
        kind: str
        occurred_at: datetime

    class PsychiatricCaseReviewRecorded(Aggregate.Event):
        """The psychiatric consultant reviewed the patient in the caseload review."""

        EVENT_NAME: ClassVar[str] = "patient.psychiatric_case_review_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        review_id: UUID
        consultant_id: UUID
        episode_number: int
        decision: str | None
        consultation_note_id: UUID | None
        occurred_at: datetime

    class InitiatingVisitRecorded(Aggregate.Event):
        """The billing practitioner's initiating visit (an E/M visit, annual wellness
        visit or initial preventive physical examination) that CoCM and general BHI
        billing requires (docs/clinical-rules.md, "Billing")."""

        EVENT_NAME: ClassVar[str] = "patient.initiating_visit_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        visit_kind: str
        practitioner_id: UUID
        occurred_at: datetime

    class RelapsePreventionPlanWritten(Aggregate.Event):
        """A relapse prevention plan was written (or rewritten) for the episode."""

        EVENT_NAME: ClassVar[str] = "patient.relapse_prevention_plan_written"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"warning_signs", "strategies"})
        plan_id: UUID
        episode_number: int
        warning_signs: list[str]
        strategies: list[str]
        occurred_at: datetime

    class PsychotherapyNoteRecorded(Aggregate.Event):
        """A clinician recorded a psychotherapy note: their own notes of a counselling
        session, kept apart from the rest of the record (45 CFR 164.501, 164.508(a)(2))."""

        EVENT_NAME: ClassVar[str] = "patient.psychotherapy_note_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"text"})
        note_id: UUID
        author_id: UUID
        text: str
        occurred_at: datetime

    class EmergencyAccessGranted(Aggregate.Event):
        """A clinician outside the care team opened break-the-glass access, with a reason."""

        EVENT_NAME: ClassVar[str] = "patient.emergency_access_granted"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        grant_id: UUID
        user_id: UUID
        role: str
        reason: str
        expires_at: datetime
        occurred_at: datetime

    class EmergencyAccessReviewed(Aggregate.Event):
        """Compliance reviewed a break-the-glass access."""

        EVENT_NAME: ClassVar[str] = "patient.emergency_access_reviewed"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"note"})
        grant_id: UUID
        reviewer_id: UUID
        outcome: str
        note: str | None
        occurred_at: datetime

    class Forgotten(Aggregate.Event):
        """The patient's identifying data was erased (their data key destroyed)."""

        EVENT_NAME: ClassVar[str] = "patient.forgotten"
        TOPIC: ClassVar[str] = EVENT_NAME
        # The erasure's own record: encrypted with a key that is never shredded (the
        # reason is written as the patient's key is destroyed, and must stay readable to
        # account for the erasure); it should name a request, not the patient.
        ERASURE_RECORD_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        reason: str
        occurred_at: datetime

    class InpatientAdmitted(Aggregate.Event):
        """The patient was admitted to hospital (minutes during the stay do not count)."""

        EVENT_NAME: ClassVar[str] = "patient.inpatient_admitted"
        TOPIC: ClassVar[str] = EVENT_NAME
        occurred_at: datetime

    class InpatientDischarged(Aggregate.Event):
        """The patient left hospital."""

        EVENT_NAME: ClassVar[str] = "patient.inpatient_discharged"
        TOPIC: ClassVar[str] = EVENT_NAME
        occurred_at: datetime

    # --- creation ---------------------------------------------------------------------

    def __init__(self) -> None:
        """Nothing: the state is set from the creation event by :meth:`_registered`."""

    @applies(Registered)
    def _registered(self, e: Registered) -> None:
        """Initial state (runs on replay too: no checks here)."""
        self.given_name = e.given_name
        self.family_name = e.family_name
        self.birth_date = e.birth_date
        self.sex = Sex(e.sex) if e.sex is not None else None
        self.mrn = e.mrn
        self.organisation_id = e.organisation_id
        self.registered_at = e.occurred_at
        self.episodes = []
        self.care_team = CareTeam()
        self.consents = {}
        self.screenings = []
        self.contacts = []
        self.flags = {}
        self.tasks = {}
        self.case_reviews = []
        self.relapse_prevention_plans = []
        self.inpatient_stays = []
        self.emergency_grants = {}
        self.integrated_care = IntegratedCare()  # pcbh block

    @classmethod
    def register(
        cls,
        *,
        given_name: str,
        family_name: str,
        birth_date: date,
        mrn: str,
        organisation_id: UUID,
        occurred_at: datetime,
        now: datetime,
        sex: Sex | str | None = None,
        id: UUID | None = None,  # the library's name for the aggregate id
    ) -> Self:
        """Register a patient with minimal identity; ``id`` lets the caller choose the id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(check_occurred_at, occurred_at, now)
        short = MAX_SHORT_TEXT_LENGTH
        given = problems.check(require_text, given_name, "given_name", max_length=short)
        family = problems.check(require_text, family_name, "family_name", max_length=short)
        record_number = problems.check(require_text, mrn, "mrn", max_length=short)
        problems.check(require_uuid, organisation_id, "organisation_id")
        if id is not None:
            problems.check(require_uuid, id, "id")
        problems.check(_check_birth_date, birth_date, occurred_at)
        sex_value = None
        if sex is not None:
            member = problems.check(require_enum, Sex, sex, "sex")
            sex_value = member.value if member is not None else None
        problems.raise_any()
        return cls._create(
            cls.Registered,
            id=id,
            timestamp=_ts(now),
            given_name=given,
            family_name=family,
            birth_date=birth_date,
            sex=sex_value,
            mrn=record_number,
            organisation_id=organisation_id,
            occurred_at=occurred_at,
        )

    # --- queries ----------------------------------------------------------------------

    @property
    def patient_id(self) -> UUID:
        """The patient's id (the aggregate id), for symmetry with the other aggregates."""
        return self.id

    @property
    def current_episode(self) -> Episode | None:
        """The latest episode, open or ended; None before the first referral."""
        return self.episodes[-1] if self.episodes else None

    @property
    def status(self) -> EpisodeStatus | None:
        """Status of the latest episode; None before the first referral or enrollment."""
        episode = self.current_episode
        return episode.status if episode else None

    @property
    def episode_number(self) -> int:
        """Number of the latest episode (1-based); 0 before the first."""
        return len(self.episodes)

    @property
    def is_enrolled(self) -> bool:
        """On the caseload: enrolled, in active treatment or in relapse prevention."""
        return self.status in _ENROLLED_STATUSES

    @property
    def is_inpatient(self) -> bool:
        """In hospital now (an admission without a discharge)."""
        return bool(self.inpatient_stays) and self.inpatient_stays[-1].discharged_at is None

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day``."""
        return _age_on(self.birth_date, day)

    def has_active_consent(
        self,
        kind: ConsentKind,
        *,
        partner_organisation_id: UUID | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Whether a consent of ``kind`` (for the partner, if given) is in force."""
        return any(
            c.kind == kind
            and (
                partner_organisation_id is None
                or c.partner_organisation_id == partner_organisation_id
            )
            and c.is_active(at)
            for c in self.consents.values()
        )

    def active_flag(self, kind: FlagKind) -> Flag | None:
        """The raised, uncleared flag of ``kind``, if any."""
        for flag in self.flags.values():
            if flag.kind == kind and flag.active:
                return flag
        return None

    @property
    def active_flags(self) -> list[Flag]:
        """Every raised, uncleared flag."""
        return [f for f in self.flags.values() if f.active]

    @property
    def open_tasks(self) -> list[Task]:
        """Every task not yet completed."""
        return [t for t in self.tasks.values() if t.open]

    # --- episode commands -------------------------------------------------------------

    def refer(self, *, occurred_at: datetime, now: datetime) -> None:
        """Start a new episode with a referral to collaborative care."""
        self._check_time(occurred_at, now)
        self._check_transition(EpisodeStatus.REFERRED, occurred_at)
        self._referred(
            episode_number=self.episode_number + 1, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def enroll(self, *, occurred_at: datetime, now: datetime) -> None:
        """Enroll the patient: continues a referred episode, otherwise starts a new one."""
        self._check_time(occurred_at, now)
        self._check_transition(EpisodeStatus.ENROLLED, occurred_at)
        new_episode = self.status is not EpisodeStatus.REFERRED
        number = self.episode_number + 1 if new_episode else self.episode_number
        self._enrolled(
            episode_number=number,
            new_episode=new_episode,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def start_treatment(self, *, occurred_at: datetime, now: datetime) -> None:
        """Move an enrolled patient into active treatment."""
        self._check_time(occurred_at, now)
        self._check_transition(EpisodeStatus.ACTIVE_TREATMENT, occurred_at)
        if self.status is EpisodeStatus.RELAPSE_PREVENTION:
            # Relapse is its own event so outcome rules can see it.
            self.resume_treatment(occurred_at=occurred_at, now=now)
            return
        self._treatment_started(
            episode_number=self.episode_number, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def resume_treatment(self, *, occurred_at: datetime, now: datetime) -> None:
        """Return from relapse prevention to active treatment (a relapse)."""
        self._check_time(occurred_at, now)
        if self.status is not EpisodeStatus.RELAPSE_PREVENTION:
            raise InvalidEpisodeTransitionError(
                f"cannot resume treatment from {self._status_name()}", aggregate_id=self.id
            )
        self._check_transition(EpisodeStatus.ACTIVE_TREATMENT, occurred_at)
        self._treatment_resumed(
            episode_number=self.episode_number, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def discharge(
        self, *, reason: DischargeReason | str, occurred_at: datetime, now: datetime
    ) -> None:
        """End the episode with a clinical discharge."""
        self._check_time(occurred_at, now)
        why = require_enum(DischargeReason, reason, "reason")
        self._check_transition(EpisodeStatus.DISCHARGED, occurred_at)
        self._discharged(
            episode_number=self.episode_number,
            reason=why.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def deactivate(
        self, *, reason: DeactivationReason | str, occurred_at: datetime, now: datetime
    ) -> None:
        """End the episode without a clinical discharge (declined, error, moved, ...)."""
        self._check_time(occurred_at, now)
        why = require_enum(DeactivationReason, reason, "reason")
        self._check_transition(EpisodeStatus.DEACTIVATED, occurred_at)
        self._deactivated(
            episode_number=self.episode_number,
            reason=why.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- care team and consent --------------------------------------------------------

    def assign_care_team(
        self,
        *,
        occurred_at: datetime,
        now: datetime,
        care_manager_id: UUID | None = None,
        pcp_id: UUID | None = None,
        psychiatric_consultant_id: UUID | None = None,
    ) -> None:
        """Assign one or more care team members; None leaves a role as it is."""
        self._check_time(occurred_at, now)
        given = {
            CareTeamRole.CARE_MANAGER: care_manager_id,
            CareTeamRole.PCP: pcp_id,
            CareTeamRole.PSYCHIATRIC_CONSULTANT: psychiatric_consultant_id,
        }
        for role, user_id in given.items():
            if user_id is not None:
                require_uuid(user_id, f"{role.value}_id")
        current = self.care_team
        changed = [
            role.value
            for role, user_id in given.items()
            if user_id is not None and user_id != _member(current, role)
        ]
        if not changed:
            raise EmptyCareTeamChangeError(
                "the assignment changes no care team member", aggregate_id=self.id
            )
        self._care_team_assigned(
            care_manager_id=care_manager_id or current.care_manager_id,
            pcp_id=pcp_id or current.pcp_id,
            psychiatric_consultant_id=psychiatric_consultant_id
            or current.psychiatric_consultant_id,
            changed_roles=changed,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def unassign_care_team_member(
        self, *, role: CareTeamRole | str, occurred_at: datetime, now: datetime
    ) -> None:
        """Leave a care team role without a member."""
        self._check_time(occurred_at, now)
        which = require_enum(CareTeamRole, role, "role")
        user_id = _member(self.care_team, which)
        if user_id is None:
            raise CareTeamMemberNotAssignedError(
                f"no {which.value} is assigned", aggregate_id=self.id
            )
        self._care_team_member_unassigned(
            role=which.value, user_id=user_id, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def grant_consent(
        self,
        *,
        kind: ConsentKind | str,
        occurred_at: datetime,
        now: datetime,
        guardian_consent_under: int = DEFAULT_GUARDIAN_CONSENT_UNDER,
        **consent: Any,
    ) -> UUID:
        """Record a consent without saying who gave it; returns its id.

        A consent a guardian must give (treatment or data sharing, for a patient younger
        than ``guardian_consent_under`` on the day: the organisation's rule) is refused
        here: it is recorded with who gave it, by ``grant_consent_given_by``
        (docs/minors.md).
        """
        what = kind if isinstance(kind, ConsentKind) else _consent_kind_or_none(kind)
        if what is not None and isinstance(occurred_at, datetime) and self.birth_date is not None:
            age_rule = check_age_rule(guardian_consent_under)
            if needs_guardian(what, self.age_on(occurred_at.date()), age_rule):
                raise GuardianConsentRequiredError(
                    f"{what.value} consent for a patient under {age_rule} must be given by a "
                    "guardian: record it with who gave it (grantConsentGivenBy)",
                    aggregate_id=self.id,
                    field="kind",
                )
        return self._record_consent(kind=kind, occurred_at=occurred_at, now=now, **consent)

    def _record_consent(
        self,
        *,
        kind: ConsentKind | str,
        occurred_at: datetime,
        now: datetime,
        method: ConsentMethod | str | None = None,
        cost_sharing_explained: bool = False,
        partner_organisation_id: UUID | None = None,
        expires_on: date | None = None,
        consent_id: UUID | None = None,
    ) -> UUID:
        """Record a consent; returns its id.

        Collaborative care consent must say how it was given (verbal or written) and
        whether cost sharing was explained: billing reads both (docs/clinical-rules.md).
        Data-sharing consent names its partner organisation.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        what = problems.check(require_enum, ConsentKind, kind, "kind")
        how = (
            problems.check(require_enum, ConsentMethod, method, "method")
            if method is not None
            else None
        )
        if what is ConsentKind.COCM_TREATMENT and method is None:
            problems.add(
                ConsentMethodRequiredError(
                    "cocm_treatment consent needs a method", aggregate_id=self.id, field="method"
                )
            )
        if what is ConsentKind.DATA_SHARING and partner_organisation_id is None:
            problems.add(
                PartnerOrganisationRequiredError(
                    "data_sharing consent needs a partner organisation",
                    aggregate_id=self.id,
                    field="partner_organisation_id",
                )
            )
        if partner_organisation_id is not None:
            problems.check(require_uuid, partner_organisation_id, "partner_organisation_id")
        if not isinstance(cost_sharing_explained, bool):
            problems.add(
                InvalidPayloadValueError(
                    "cost_sharing_explained must be a boolean", field="cost_sharing_explained"
                )
            )
        if expires_on is not None and (
            isinstance(expires_on, datetime) or not isinstance(expires_on, date)
        ):
            problems.add(InvalidPayloadValueError("expires_on must be a date", field="expires_on"))
        problems.raise_any()
        assert what is not None  # checked above
        new_id = self._new_id(consent_id, self.consents, "consent_id")
        self._consent_granted(
            consent_id=new_id,
            kind=what.value,
            method=how.value if how is not None else None,
            cost_sharing_explained=cost_sharing_explained,
            partner_organisation_id=partner_organisation_id,
            expires_on=expires_on,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def revoke_consent(self, *, consent_id: UUID, occurred_at: datetime, now: datetime) -> None:
        """Record that the patient revoked a consent."""
        self._check_time(occurred_at, now)
        consent = self.consents.get(consent_id)
        if consent is None:
            raise ConsentNotFoundError(f"no consent {consent_id}", aggregate_id=self.id)
        if consent.revoked_at is not None:
            raise ConsentAlreadyRevokedError(
                f"consent {consent_id} was revoked already", aggregate_id=self.id
            )
        if occurred_at < consent.granted_at:
            raise OutOfOrderError("a consent cannot be revoked before it was granted")
        self._consent_revoked(
            consent_id=consent_id,
            kind=consent.kind.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- measurement ------------------------------------------------------------------

    def record_screening(
        self,
        *,
        instrument: Instrument | str,
        answers: Sequence[int | None],
        occurred_at: datetime,
        now: datetime,
        screening_id: UUID | None = None,
    ) -> ScoreResult:
        """Record a questionnaire with every answer (None for a missing one) and score it.

        In the same command: a safety alert (PHQ-9 item 9 above 0, whatever the total)
        raises a safety flag (unless one is active) and a same-day suicide risk
        assessment task; a PHQ-9 total of 20 or more raises a follow-up task; a positive
        PHQ-2 raises a task to complete a full PHQ-9 (NCQA DSF-E, 30 days).
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        checked_spec = problems.check(spec_for, instrument)
        scored = (
            problems.check(score, checked_spec.instrument, answers)
            if checked_spec is not None
            else None
        )
        problems.raise_any()
        assert checked_spec is not None and scored is not None  # checked above
        spec, result = checked_spec, scored
        new_id = self._append_screening(result, occurred_at, now, screening_id)
        if result.safety_alert:
            if self.active_flag(FlagKind.SAFETY_RISK) is None:
                self._flag_raised(
                    flag_id=uuid4(),
                    kind=FlagKind.SAFETY_RISK.value,
                    rule_id=SAFETY_RULE_ID,
                    rule_version=RULES_VERSION,
                    inputs={
                        "screening_id": str(new_id),
                        "instrument": spec.instrument.value,
                        "safety_items": list(result.safety_items),
                    },
                    occurred_at=occurred_at,
                    timestamp=_ts(now),
                )
            # Same day as it becomes known: the caller's ``now`` date, never earlier.
            self._add_task(TaskKind.SUICIDE_RISK_ASSESSMENT, now.date(), new_id, occurred_at, now)
        if result.needs_follow_up:
            if spec.instrument is Instrument.PHQ2:
                kind, days = TaskKind.POSITIVE_SCREEN_FOLLOW_UP, POSITIVE_SCREEN_FOLLOW_UP_DAYS
            else:
                kind, days = TaskKind.SEVERE_SCORE_FOLLOW_UP, SEVERE_FOLLOW_UP_DAYS
            self._add_task(kind, now.date() + timedelta(days=days), new_id, occurred_at, now)
        return result

    def import_measure_total(
        self,
        *,
        instrument: Instrument | str,
        total: int,
        occurred_at: datetime,
        now: datetime,
        screening_id: UUID | None = None,
    ) -> ScoreResult:
        """Record a historical total brought in without its item answers (a registry
        that kept totals only), as a screening marked ``total_only``.

        The same rules as :meth:`record_screening` for what can be checked: the total in
        the instrument's range (``score_total``: severity, positivity and the follow-up
        threshold from the same thresholds), the time rules (aware, not in the future,
        not before birth), the instrument valid for the age on the day, and the episode
        it belongs to (taken in the current episode or its intake look-back). Nothing
        else happens: no safety flag and no task. The safety items are unknown, not 0; a
        clinician did not see the answers when it was imported; history is not a new
        screening, and the next real screening decides (docs/clinical-rules.md). Its
        ``needs_follow_up`` is the threshold's judgement of the total (a PHQ-9 of 20 or
        more is severe and needs follow-up, as a typed one does), even though the import
        raises no task for it.
        """
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        scored = problems.check(score_total, instrument, total)
        problems.raise_any()
        assert scored is not None  # checked above
        self._append_screening(scored, occurred_at, now, screening_id, total_only=True)
        return scored

    def _append_screening(
        self,
        result: ScoreResult,
        occurred_at: datetime,
        now: datetime,
        screening_id: UUID | None,
        *,
        total_only: bool = False,
    ) -> UUID:
        """The age rule, the id and the episode of a scored questionnaire, then its event."""
        spec = spec_for(result.instrument)
        # The age on the day it was taken (not today): a PHQ-A taken at 17 stays valid.
        if self.birth_date is not None and not spec.allows_age(self.age_on(occurred_at.date())):
            raise InstrumentNotForAgeError(
                f"{spec.title} is not validated for the patient's age on occurredAt",
                aggregate_id=self.id,
                field="occurredAt",
            )
        new_id = self._new_id(
            screening_id, {s.screening_id for s in self.screenings}, "screening_id"
        )
        episode = self.current_episode
        # Only a score taken in the episode, or within the intake look-back before it
        # began, belongs to it (and may become its baseline); an older one is history.
        episode_number = (
            episode.number
            if episode is not None
            and episode.status in _OPEN_STATUSES
            and counts_for_episode(occurred_at, episode.started_at)
            else None
        )
        self._screening_recorded(
            screening_id=new_id,
            occurred_at=occurred_at,
            episode_number=episode_number,
            timestamp=_ts(now),
            total_only=total_only,
            **result.to_payload(),
        )
        return new_id

    # --- contacts and minutes ---------------------------------------------------------

    def log_contact(
        self,
        *,
        activity: ActivityType | str,
        minutes: int,
        occurred_at: datetime,
        now: datetime,
        modality: Modality | str | None = None,
        performed_by: UUID | None = None,
        contact_id: UUID | None = None,
        performer_role: str | None = None,  # issue 18: the performer's role
    ) -> UUID:
        """Log a care manager activity and its minutes; returns the contact id.

        Only while the patient is on the caseload and not before the enrollment of the
        current episode; never for a discharged or deactivated episode.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        kind = problems.check(require_enum, ActivityType, activity, "activity")
        how = (
            problems.check(require_enum, Modality, modality, "modality")
            if modality is not None
            else None
        )
        if kind in _MODALITY_REQUIRED and how is None and modality is None:
            problems.add(
                ModalityRequiredError(
                    f"a {kind.value} needs a modality", aggregate_id=self.id, field="modality"
                )
            )
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            problems.add(
                InvalidMinutesError(
                    "minutes must be a whole number", aggregate_id=self.id, field="minutes"
                )
            )
        elif not 0 < minutes <= MAX_CONTACT_MINUTES:
            problems.add(
                InvalidMinutesError(
                    f"minutes must be between 1 and {MAX_CONTACT_MINUTES}",
                    aggregate_id=self.id,
                    field="minutes",
                )
            )
        if performed_by is not None:
            problems.check(require_uuid, performed_by, "performed_by")
        problems.raise_any()
        assert kind is not None  # checked above
        episode = self.current_episode
        if episode is None or episode.status is EpisodeStatus.REFERRED:
            raise ContactBeforeEnrollmentError(
                "the patient is not enrolled yet", aggregate_id=self.id
            )
        if episode.status in _ENDED_STATUSES:
            raise ContactAfterDischargeError(
                f"episode {episode.number} is {episode.status.value}", aggregate_id=self.id
            )
        if episode.enrolled_at is not None and occurred_at < episode.enrolled_at:
            raise ContactBeforeEnrollmentError(
                f"the contact precedes the enrollment of episode {episode.number}",
                aggregate_id=self.id,
            )
        new_id = self._new_id(contact_id, {c.contact_id for c in self.contacts}, "contact_id")
        self._contact_logged(
            contact_id=new_id,
            activity=kind.value,
            modality=how.value if how is not None else None,
            minutes=minutes,
            occurred_at=occurred_at,
            episode_number=episode.number,
            performed_by=performed_by,
            performer_role=performer_role,
            timestamp=_ts(now),
        )
        return new_id

    def admit_inpatient(self, *, occurred_at: datetime, now: datetime) -> None:
        """Record a hospital admission (care manager minutes then do not count)."""
        self._check_time(occurred_at, now)
        if self.is_inpatient:
            raise AlreadyInpatientError("an admission is still open", aggregate_id=self.id)
        if self.inpatient_stays:
            last = self.inpatient_stays[-1].discharged_at
            if last is not None and occurred_at < last:
                raise OutOfOrderError("the admission precedes the previous discharge")
        self._inpatient_admitted(occurred_at=occurred_at, timestamp=_ts(now))

    def discharge_inpatient(self, *, occurred_at: datetime, now: datetime) -> None:
        """Record the end of a hospital stay."""
        self._check_time(occurred_at, now)
        if not self.is_inpatient:
            raise NotInpatientError("no admission is open", aggregate_id=self.id)
        if occurred_at < self.inpatient_stays[-1].admitted_at:
            raise OutOfOrderError("the discharge precedes the admission")
        self._inpatient_discharged(occurred_at=occurred_at, timestamp=_ts(now))

    # --- flags and tasks --------------------------------------------------------------

    def raise_flag(
        self,
        *,
        kind: FlagKind | str,
        rule_id: str,
        rule_version: str,
        inputs: Mapping[str, Any],
        occurred_at: datetime,
        now: datetime,
        flag_id: UUID | None = None,
    ) -> UUID:
        """Raise a registry flag, recording the rule, its version and its inputs.

        At most one active flag per kind: the registry shows a flag, not a count.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        what = problems.check(require_enum, FlagKind, kind, "kind")
        short = MAX_SHORT_TEXT_LENGTH
        rule = problems.check(require_text, rule_id, "rule_id", max_length=short)
        version = problems.check(require_text, rule_version, "rule_version", max_length=short)
        checked = problems.check(check_payload_mapping, inputs, "inputs")
        problems.raise_any()
        assert what is not None and rule is not None and version is not None  # checked above
        assert checked is not None
        if self.active_flag(what) is not None:
            raise FlagAlreadyRaisedError(f"a {what.value} flag is active", aggregate_id=self.id)
        new_id = self._new_id(flag_id, self.flags, "flag_id")
        self._flag_raised(
            flag_id=new_id,
            kind=what.value,
            rule_id=rule,
            rule_version=version,
            inputs=checked,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def clear_flag(
        self,
        *,
        flag_id: UUID,
        occurred_at: datetime,
        now: datetime,
        reason: str | None = None,
    ) -> None:
        """Clear a raised flag (a rule no longer holds, or a team member resolved it)."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        why = problems.check(optional_text, reason, "reason", max_length=MAX_SHORT_TEXT_LENGTH)
        problems.raise_any()
        flag = self.flags.get(flag_id)
        if flag is None:
            raise FlagNotFoundError(f"no flag {flag_id}", aggregate_id=self.id)
        if not flag.active:
            raise FlagAlreadyClearedError(
                f"flag {flag_id} was cleared already", aggregate_id=self.id
            )
        if occurred_at < flag.raised_at:
            raise OutOfOrderError("a flag cannot be cleared before it was raised")
        self._flag_cleared(
            flag_id=flag_id,
            kind=flag.kind.value,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def create_task(
        self,
        *,
        kind: TaskKind | str,
        due_on: date,
        occurred_at: datetime,
        now: datetime,
        source_id: UUID | None = None,
        assignee_id: UUID | None = None,
        task_id: UUID | None = None,
    ) -> UUID:
        """Create a task for the care team; returns its id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        what = problems.check(require_enum, TaskKind, kind, "kind")
        if isinstance(due_on, datetime) or not isinstance(due_on, date):
            problems.add(InvalidPayloadValueError("due_on must be a date", field="due_on"))
        for name, value in (("source_id", source_id), ("assignee_id", assignee_id)):
            if value is not None:
                problems.check(require_uuid, value, name)
        problems.raise_any()
        assert what is not None  # checked above
        new_id = self._new_id(task_id, self.tasks, "task_id")
        self._task_created(
            task_id=new_id,
            kind=what.value,
            due_on=due_on,
            source_id=source_id,
            assignee_id=assignee_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def complete_task(self, *, task_id: UUID, occurred_at: datetime, now: datetime) -> None:
        """Mark a task done."""
        self._check_time(occurred_at, now)
        task = self.tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id}", aggregate_id=self.id)
        if not task.open:
            raise TaskAlreadyCompletedError(
                f"task {task_id} was completed already", aggregate_id=self.id
            )
        self._task_completed(
            task_id=task_id, kind=task.kind.value, occurred_at=occurred_at, timestamp=_ts(now)
        )

    # --- review and relapse prevention ------------------------------------------------

    def record_initiating_visit(
        self,
        *,
        practitioner_id: UUID,
        visit_kind: InitiatingVisitKind | str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Record the billing practitioner's initiating visit (any time: it may precede the
        episode, by up to a year for billing, docs/clinical-rules.md)."""
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        problems.check(require_uuid, practitioner_id, "practitioner_id")
        kind = problems.check(require_enum, InitiatingVisitKind, visit_kind, "visit_kind")
        problems.raise_any()
        assert kind is not None
        self._initiating_visit_recorded(
            visit_kind=kind.value,
            practitioner_id=practitioner_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def record_case_review(
        self,
        *,
        consultant_id: UUID,
        occurred_at: datetime,
        now: datetime,
        decision: TreatmentDecision | str | None = None,
        consultation_note_id: UUID | None = None,
        review_id: UUID | None = None,
    ) -> UUID:
        """Record a psychiatric case review of this patient; returns its id.

        The review answers the team's request for one: every active flag by which the
        team asked for review (``needs_psychiatric_review`` or ``team_member``) raised on
        or before the review's effective time is cleared in the same command. A request
        raised after it (a late-entered review) stays.
        """
        self._check_time(occurred_at, now)
        require_uuid(consultant_id, "consultant_id")
        what = (
            require_enum(TreatmentDecision, decision, "decision") if decision is not None else None
        )
        if consultation_note_id is not None:
            require_uuid(consultation_note_id, "consultation_note_id")
        episode = self._require_enrolled(occurred_at)
        new_id = self._new_id(review_id, {r.review_id for r in self.case_reviews}, "review_id")
        self._case_review_recorded(
            review_id=new_id,
            consultant_id=consultant_id,
            episode_number=episode.number,
            decision=what.value if what is not None else None,
            consultation_note_id=consultation_note_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        for flag in list(self.flags.values()):
            if (
                flag.active
                and flag.kind in TEAM_REVIEW_REQUEST_KINDS
                and flag.raised_at <= occurred_at
            ):
                self._flag_cleared(
                    flag_id=flag.flag_id,
                    kind=flag.kind.value,
                    reason=CASE_REVIEW_CLEAR_REASON,
                    occurred_at=occurred_at,
                    timestamp=_ts(now),
                )
        return new_id

    def write_relapse_prevention_plan(
        self,
        *,
        warning_signs: Sequence[str],
        strategies: Sequence[str],
        occurred_at: datetime,
        now: datetime,
        plan_id: UUID | None = None,
    ) -> UUID:
        """Write the relapse prevention plan; from active treatment this also moves the
        episode to relapse prevention (GermanIMPACT: PHQ-9 below 5). Returns the plan id.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        signs = problems.check(_required_texts, warning_signs, "warning_signs")
        steps = problems.check(_required_texts, strategies, "strategies")
        problems.raise_any()
        assert signs is not None and steps is not None  # checked above
        episode = self._require_enrolled(occurred_at)
        new_id = self._new_id(
            plan_id, {p.plan_id for p in self.relapse_prevention_plans}, "plan_id"
        )
        self._relapse_prevention_plan_written(
            plan_id=new_id,
            episode_number=episode.number,
            warning_signs=signs,
            strategies=steps,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        if episode.status is EpisodeStatus.ACTIVE_TREATMENT:
            self._relapse_prevention_started(
                episode_number=episode.number, occurred_at=occurred_at, timestamp=_ts(now)
            )
        return new_id

    # --- psychotherapy notes ----------------------------------------------------------------

    def record_psychotherapy_note(
        self, *, author_id: UUID, text: str, occurred_at: datetime, now: datetime
    ) -> UUID:
        """Record the author's psychotherapy note of a session; returns the note id. The
        note is part of the log (encrypted with the patient's key) but of no view: only
        its author reads it back (the API enforces it)."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        problems.check(require_uuid, author_id, "author_id")
        longest = PSYCHOTHERAPY_NOTE_MAX_LENGTH
        body = problems.check(require_text, text, "text", max_length=longest)
        problems.raise_any()
        assert body is not None  # checked above
        note_id = uuid4()
        self._psychotherapy_note_recorded(
            note_id=note_id,
            author_id=author_id,
            text=body,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return note_id

    # --- erasure ---------------------------------------------------------------------------

    def forget(self, *, reason: str, occurred_at: datetime, now: datetime) -> None:
        """Erase the patient's identity: the event store destroys their data key with it."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        why = problems.check(require_text, reason, "reason")
        problems.raise_any()
        assert why is not None  # checked above
        self._forgotten(reason=why, occurred_at=occurred_at, timestamp=_ts(now))

    @applies(Forgotten)
    def _forgotten(self, e: Forgotten) -> None:
        self.given_name = None  # type: ignore[assignment]
        self.family_name = None  # type: ignore[assignment]
        self.birth_date = None  # type: ignore[assignment]
        self.mrn = None  # type: ignore[assignment]

    # --- break-the-glass -----------------------------------------------------------------

    def grant_emergency_access(
        self,
        *,
        user_id: UUID,
        role: str,
        reason: str,
        minutes: int,
        occurred_at: datetime,
        now: datetime,
        grant_id: UUID | None = None,
    ) -> UUID:
        """Open time-limited emergency access for ``user_id``; the reason is required.

        Refused for a member of the patient's care team (any role): they have access
        already, and a grant would tag their ordinary reads as emergency reads and put a
        needless item on compliance's review queue.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        problems.check(require_uuid, user_id, "user_id")
        why = problems.check(require_text, reason, "reason")
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            problems.add(
                InvalidEmergencyWindowError("minutes must be a whole number", field="minutes")
            )
        elif not 1 <= minutes <= MAX_EMERGENCY_MINUTES:
            problems.add(
                InvalidEmergencyWindowError(
                    f"minutes must be 1..{MAX_EMERGENCY_MINUTES}",
                    aggregate_id=self.id,
                    field="minutes",
                )
            )
        problems.raise_any()
        assert why is not None  # checked above
        team = self.care_team
        if user_id in (team.care_manager_id, team.pcp_id, team.psychiatric_consultant_id):
            raise AlreadyOnCareTeamError(
                "a care team member has access already; break-the-glass is for clinicians "
                "outside the care team",
                aggregate_id=self.id,
            )
        new_id = self._new_id(grant_id, self.emergency_grants, "grant_id")
        self._emergency_access_granted(
            grant_id=new_id,
            user_id=user_id,
            role=require_text(role, "role", max_length=MAX_SHORT_TEXT_LENGTH),
            reason=why,
            expires_at=occurred_at + timedelta(minutes=minutes),
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def review_emergency_access(
        self,
        *,
        grant_id: UUID,
        reviewer_id: UUID,
        outcome: str,
        occurred_at: datetime,
        now: datetime,
        note: str | None = None,
    ) -> None:
        """Record compliance's review of a break-the-glass access (once per grant)."""
        self._check_time(occurred_at, now)
        grant = self.emergency_grants.get(grant_id)
        if grant is None:
            raise EmergencyGrantNotFoundError(f"no grant {grant_id}", aggregate_id=self.id)
        if grant.review_outcome is not None:
            raise EmergencyGrantAlreadyReviewedError(
                f"grant {grant_id} was reviewed already", aggregate_id=self.id
            )
        if outcome not in EMERGENCY_REVIEW_OUTCOMES:
            raise InvalidEnumValueError(
                f"outcome must be one of {sorted(EMERGENCY_REVIEW_OUTCOMES)}",
                aggregate_id=self.id,
            )
        self._emergency_access_reviewed(
            grant_id=grant_id,
            reviewer_id=reviewer_id,
            outcome=outcome,
            note=optional_text(note, "note"),
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    @applies(EmergencyAccessGranted)
    def _emergency_access_granted(self, e: EmergencyAccessGranted) -> None:
        self.emergency_grants[e.grant_id] = EmergencyGrant(
            grant_id=e.grant_id,
            user_id=e.user_id,
            role=e.role,
            reason=e.reason,
            granted_at=e.occurred_at,
            expires_at=e.expires_at,
        )

    @applies(EmergencyAccessReviewed)
    def _emergency_access_reviewed(self, e: EmergencyAccessReviewed) -> None:
        grant = self.emergency_grants[e.grant_id]
        grant.review_outcome = e.outcome
        grant.reviewed_by = e.reviewer_id
        grant.review_note = e.note

    # === the wider team and PCBH (issue 18, items 3-4; owner: pcbh) ==============
    # Events, commands and their apply methods in one place. Rules (docs/pcbh.md):
    # - a wider-team role is given only to a staff member the directory lists in it
    #   (``held_roles`` comes from the directory), never to a caregiver;
    # - a caregiver is a participant, not staff: no staff role, and sees nothing until the
    #   patient or guardian grants a scope (CaregiverAccessGranted), one grant per scope;
    # - a warm handoff goes to a BHC on the patient's team; it is then accepted or missed;
    # - a brief visit lasts 15-30 minutes, both included, and is the BHC's own.

    class WiderTeamMemberAdded(Aggregate.Event):
        """A staff member joined the patient's team in a wider-team role."""

        EVENT_NAME: ClassVar[str] = "patient.wider_team_member_added"
        TOPIC: ClassVar[str] = EVENT_NAME
        user_id: UUID
        role: str
        occurred_at: datetime

    class WiderTeamMemberRemoved(Aggregate.Event):
        """A wider-team member left the patient's team."""

        EVENT_NAME: ClassVar[str] = "patient.wider_team_member_removed"
        TOPIC: ClassVar[str] = EVENT_NAME
        user_id: UUID
        occurred_at: datetime

    class CaregiverAdded(Aggregate.Event):
        """A parent, guardian or other caregiver became a participant (sees nothing yet)."""

        EVENT_NAME: ClassVar[str] = "patient.caregiver_added"
        TOPIC: ClassVar[str] = EVENT_NAME
        caregiver_id: UUID
        relationship: str
        occurred_at: datetime

    class CaregiverAccessGranted(Aggregate.Event):
        """The patient or guardian allowed a caregiver to see one scope."""

        EVENT_NAME: ClassVar[str] = "patient.caregiver_access_granted"
        TOPIC: ClassVar[str] = EVENT_NAME
        caregiver_id: UUID
        scope: str
        occurred_at: datetime

    class CaregiverAccessRevoked(Aggregate.Event):
        """The patient or guardian withdrew a caregiver's scope."""

        EVENT_NAME: ClassVar[str] = "patient.caregiver_access_revoked"
        TOPIC: ClassVar[str] = EVENT_NAME
        caregiver_id: UUID
        scope: str
        occurred_at: datetime

    class WarmHandoffOffered(Aggregate.Event):
        """The PCP handed the patient to the BHC during the visit."""

        EVENT_NAME: ClassVar[str] = "patient.warm_handoff_offered"
        TOPIC: ClassVar[str] = EVENT_NAME
        handoff_id: UUID
        from_user_id: UUID
        to_user_id: UUID
        occurred_at: datetime

    class WarmHandoffAccepted(Aggregate.Event):
        """The BHC saw the patient handed over."""

        EVENT_NAME: ClassVar[str] = "patient.warm_handoff_accepted"
        TOPIC: ClassVar[str] = EVENT_NAME
        handoff_id: UUID
        occurred_at: datetime

    class WarmHandoffMissed(Aggregate.Event):
        """The handoff did not happen (the BHC was not free, the patient left)."""

        EVENT_NAME: ClassVar[str] = "patient.warm_handoff_missed"
        TOPIC: ClassVar[str] = EVENT_NAME
        handoff_id: UUID
        occurred_at: datetime

    class BriefVisitRecorded(Aggregate.Event):
        """A brief BHC visit of 15-30 minutes."""

        EVENT_NAME: ClassVar[str] = "patient.brief_visit_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        visit_id: UUID
        bhc_id: UUID
        minutes: int
        handoff_id: UUID | None
        occurred_at: datetime

    def wider_team_role_of(self, user_id: UUID) -> WiderTeamRole | None:
        """The wider-team role ``user_id`` holds on this patient's team, if any."""
        return self.integrated_care.members.get(user_id)

    def add_wider_team_member(
        self,
        *,
        user_id: UUID,
        role: WiderTeamRole | str,
        held_roles: frozenset[str],
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Put a staff member on the team in ``role``, which the directory lists them in
        (``held_roles``). A caregiver relationship is not a staff role."""
        self._check_time(occurred_at, now)
        require_uuid(user_id, "user_id")
        if str(role) in {r.value for r in CaregiverRelationship}:
            raise CaregiverNotStaffError(
                "a caregiver relationship is not a staff role", aggregate_id=self.id, field="role"
            )
        which = require_enum(WiderTeamRole, role, "role")
        if user_id in self.integrated_care.caregivers:
            raise CaregiverNotStaffError(
                "a caregiver cannot hold a staff role", aggregate_id=self.id, field="userId"
            )
        if which.value not in held_roles:
            raise StaffRoleNotHeldError(
                f"the staff member does not hold {which.value}",
                aggregate_id=self.id,
                field="userId",
            )
        self._wider_team_member_added(
            user_id=user_id, role=which.value, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def remove_wider_team_member(
        self, *, user_id: UUID, occurred_at: datetime, now: datetime
    ) -> None:
        """Take a wider-team member off the team."""
        self._check_time(occurred_at, now)
        if user_id not in self.integrated_care.members:
            raise CareTeamMemberNotAssignedError(
                "no wider-team member with this id", aggregate_id=self.id, field="userId"
            )
        self._wider_team_member_removed(
            user_id=user_id, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def add_caregiver(
        self,
        *,
        caregiver_id: UUID,
        relationship: CaregiverRelationship | str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Add a parent, guardian or other caregiver as a participant with no access."""
        self._check_time(occurred_at, now)
        require_uuid(caregiver_id, "caregiver_id")
        if str(relationship) in {r.value for r in WiderTeamRole}:
            raise CaregiverNotStaffError(
                "a caregiver cannot be given a staff role",
                aggregate_id=self.id,
                field="relationship",
            )
        which = require_enum(CaregiverRelationship, relationship, "relationship")
        if caregiver_id in self.integrated_care.members or caregiver_id in _team_ids(
            self.care_team
        ):
            raise CaregiverNotStaffError(
                "a staff member on the team cannot be a caregiver",
                aggregate_id=self.id,
                field="caregiverId",
            )
        if caregiver_id in self.integrated_care.caregivers:
            raise DuplicateIdError(
                "caregiver already added", aggregate_id=self.id, field="caregiverId"
            )
        self._caregiver_added(
            caregiver_id=caregiver_id,
            relationship=which.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def grant_caregiver_access(
        self,
        *,
        caregiver_id: UUID,
        scope: CaregiverScope | str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """The patient or guardian lets a caregiver see one scope (idempotent per scope)."""
        self._check_time(occurred_at, now)
        which = require_enum(CaregiverScope, scope, "scope")
        carer = self._caregiver(caregiver_id)
        if which in carer.scopes:
            return
        self._caregiver_access_granted(
            caregiver_id=caregiver_id,
            scope=which.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def revoke_caregiver_access(
        self,
        *,
        caregiver_id: UUID,
        scope: CaregiverScope | str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Withdraw one scope from a caregiver (nothing happens if it was not granted)."""
        self._check_time(occurred_at, now)
        which = require_enum(CaregiverScope, scope, "scope")
        carer = self._caregiver(caregiver_id)
        if which not in carer.scopes:
            return
        self._caregiver_access_revoked(
            caregiver_id=caregiver_id,
            scope=which.value,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def offer_warm_handoff(
        self,
        *,
        from_user_id: UUID,
        to_user_id: UUID,
        occurred_at: datetime,
        now: datetime,
        handoff_id: UUID | None = None,
    ) -> UUID:
        """The PCP hands the patient to a BHC on the team; returns the handoff id."""
        self._check_time(occurred_at, now)
        require_uuid(from_user_id, "from_user_id")
        require_uuid(to_user_id, "to_user_id")
        if self.wider_team_role_of(to_user_id) is not WiderTeamRole.BEHAVIORAL_HEALTH_CONSULTANT:
            raise NotABehavioralHealthConsultantError(
                "a warm handoff goes to a BHC on the patient's team",
                aggregate_id=self.id,
                field="toUserId",
            )
        new_id = self._new_id(handoff_id, self.integrated_care.handoffs, "handoffId")
        self._warm_handoff_offered(
            handoff_id=new_id,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def accept_warm_handoff(
        self, *, handoff_id: UUID, accepted_by: UUID, occurred_at: datetime, now: datetime
    ) -> None:
        """The BHC the handoff was offered to (``accepted_by``) saw the patient."""
        handoff = self._open_handoff(handoff_id, occurred_at, now)
        if accepted_by != handoff.to_user_id:
            raise NotTheHandoffsConsultantError(
                "only the BHC the handoff was offered to can accept it",
                aggregate_id=self.id,
                field="handoffId",
            )
        self._warm_handoff_accepted(
            handoff_id=handoff_id, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def miss_warm_handoff(self, *, handoff_id: UUID, occurred_at: datetime, now: datetime) -> None:
        """The handoff did not happen."""
        self._open_handoff(handoff_id, occurred_at, now)
        self._warm_handoff_missed(
            handoff_id=handoff_id, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def record_brief_visit(
        self,
        *,
        bhc_id: UUID,
        minutes: int,
        occurred_at: datetime,
        now: datetime,
        handoff_id: UUID | None = None,
        visit_id: UUID | None = None,
    ) -> UUID:
        """A BHC on the team saw the patient for 15-30 minutes; returns the visit id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written;
        # who may record the visit is checked once the input is valid.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not BRIEF_VISIT_MIN_MINUTES <= minutes <= BRIEF_VISIT_MAX_MINUTES
        ):
            problems.add(
                BriefVisitDurationError(
                    f"minutes must be {BRIEF_VISIT_MIN_MINUTES}-{BRIEF_VISIT_MAX_MINUTES}",
                    aggregate_id=self.id,
                    field="minutes",
                )
            )
        problems.raise_any()
        if self.wider_team_role_of(bhc_id) is not WiderTeamRole.BEHAVIORAL_HEALTH_CONSULTANT:
            raise NotABehavioralHealthConsultantError(
                "a brief visit is recorded by a BHC on the patient's team",
                aggregate_id=self.id,
                field="bhcId",
            )
        if handoff_id is not None and handoff_id not in self.integrated_care.handoffs:
            raise WarmHandoffNotFoundError(
                "no warm handoff with this id", aggregate_id=self.id, field="handoffId"
            )
        new_id = self._new_id(
            visit_id, {v.visit_id for v in self.integrated_care.brief_visits}, "visitId"
        )
        self._brief_visit_recorded(
            visit_id=new_id,
            bhc_id=bhc_id,
            minutes=minutes,
            handoff_id=handoff_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def _caregiver(self, caregiver_id: UUID) -> Caregiver:
        found = self.integrated_care.caregivers.get(caregiver_id)
        if found is None:
            raise CaregiverNotFoundError(
                "no caregiver with this id", aggregate_id=self.id, field="caregiverId"
            )
        return found

    def _open_handoff(self, handoff_id: UUID, occurred_at: datetime, now: datetime) -> WarmHandoff:
        self._check_time(occurred_at, now)
        found = self.integrated_care.handoffs.get(handoff_id)
        if found is None:
            raise WarmHandoffNotFoundError(
                "no warm handoff with this id", aggregate_id=self.id, field="handoffId"
            )
        if found.status is not WarmHandoffStatus.OFFERED:
            raise WarmHandoffClosedError(
                f"the warm handoff is already {found.status.value}",
                aggregate_id=self.id,
                field="handoffId",
            )
        if occurred_at < found.offered_at:
            raise OutOfOrderError(
                "occurredAt lies before the handoff was offered",
                aggregate_id=self.id,
                field="occurredAt",
            )
        return found

    @applies(WiderTeamMemberAdded)
    def _wider_team_member_added(self, e: WiderTeamMemberAdded) -> None:
        self.integrated_care.members[e.user_id] = WiderTeamRole(e.role)

    @applies(WiderTeamMemberRemoved)
    def _wider_team_member_removed(self, e: WiderTeamMemberRemoved) -> None:
        self.integrated_care.members.pop(e.user_id, None)

    @applies(CaregiverAdded)
    def _caregiver_added(self, e: CaregiverAdded) -> None:
        self.integrated_care.caregivers[e.caregiver_id] = Caregiver(
            e.caregiver_id, CaregiverRelationship(e.relationship)
        )

    @applies(CaregiverAccessGranted)
    def _caregiver_access_granted(self, e: CaregiverAccessGranted) -> None:
        self.integrated_care.caregivers[e.caregiver_id].scopes.append(CaregiverScope(e.scope))

    @applies(CaregiverAccessRevoked)
    def _caregiver_access_revoked(self, e: CaregiverAccessRevoked) -> None:
        self.integrated_care.caregivers[e.caregiver_id].scopes.remove(CaregiverScope(e.scope))

    @applies(WarmHandoffOffered)
    def _warm_handoff_offered(self, e: WarmHandoffOffered) -> None:
        self.integrated_care.handoffs[e.handoff_id] = WarmHandoff(
            e.handoff_id, e.from_user_id, e.to_user_id, e.occurred_at
        )

    @applies(WarmHandoffAccepted)
    def _warm_handoff_accepted(self, e: WarmHandoffAccepted) -> None:
        found = self.integrated_care.handoffs[e.handoff_id]
        found.status = WarmHandoffStatus.ACCEPTED
        found.closed_at = e.occurred_at

    @applies(WarmHandoffMissed)
    def _warm_handoff_missed(self, e: WarmHandoffMissed) -> None:
        found = self.integrated_care.handoffs[e.handoff_id]
        found.status = WarmHandoffStatus.MISSED
        found.closed_at = e.occurred_at

    @applies(BriefVisitRecorded)
    def _brief_visit_recorded(self, e: BriefVisitRecorded) -> None:
        self.integrated_care.brief_visits.append(
            BriefVisit(
                e.visit_id, e.bhc_id, e.minutes, e.occurred_at, self.episode_number, e.handoff_id
            )
        )

    # === end of the wider team and PCBH ==================================================

    # --- minors: consent given by a guardian (issue #19; docs/minors.md) ---------------
    # One block: the event, the command and its apply. The consent itself is the usual
    # ConsentGranted; ConsentGiverRecorded says who gave it and, for a guardian, their
    # relationship and name (encrypted with the patient's key).

    class ConsentGiverRecorded(Aggregate.Event):
        """Who gave a consent: the patient, or a guardian (with relationship and name)."""

        EVENT_NAME: ClassVar[str] = "patient.consent_giver_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"giver_name"})
        consent_id: UUID
        given_by: str
        relationship: str | None
        giver_name: str | None
        guardian_consent_under: int
        occurred_at: datetime

    def grant_consent_given_by(
        self,
        *,
        given_by: ConsentGiver | str,
        kind: ConsentKind | str,
        occurred_at: datetime,
        now: datetime,
        relationship: GuardianRelationship | str | None = None,
        giver_name: str | None = None,
        guardian_consent_under: int = DEFAULT_GUARDIAN_CONSENT_UNDER,
        **consent: Any,
    ) -> UUID:
        """Record a consent and who gave it; returns the consent's id.

        For a patient younger than ``guardian_consent_under`` (the organisation's rule)
        on the day it is given, treatment and data-sharing consent must come from a
        guardian; a guardian's consent names the guardian and their relationship.
        """
        self._check_time(occurred_at, now)
        age_rule = check_age_rule(guardian_consent_under)
        who = require_enum(ConsentGiver, given_by, "given_by")
        what = require_enum(ConsentKind, kind, "kind")
        age = self.age_on(occurred_at.date()) if self.birth_date is not None else None
        if who is ConsentGiver.PATIENT and needs_guardian(what, age, age_rule):
            raise GuardianConsentRequiredError(
                f"{what.value} consent for a patient under {age_rule} must be given by a guardian",
                aggregate_id=self.id,
                field="given_by",
            )
        related: GuardianRelationship | None = None
        name: str | None = None
        if who is ConsentGiver.GUARDIAN:
            if relationship is None:
                raise GuardianDetailsRequiredError(
                    "a guardian's consent needs their relationship", field="relationship"
                )
            if giver_name is None:
                raise GuardianDetailsRequiredError(
                    "a guardian's consent needs their name", field="giver_name"
                )
            related = require_enum(GuardianRelationship, relationship, "relationship")
            name = require_text(giver_name, "giver_name", max_length=MAX_GIVER_NAME_LENGTH)
        consent_id = self._record_consent(kind=what, occurred_at=occurred_at, now=now, **consent)
        self._consent_giver_recorded(
            consent_id=consent_id,
            given_by=who.value,
            relationship=related.value if related is not None else None,
            giver_name=name,
            guardian_consent_under=age_rule,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return consent_id

    @applies(ConsentGiverRecorded)
    def _consent_giver_recorded(self, e: ConsentGiverRecorded) -> None:
        return None

    # --- patient channel: measurement reminders (issue #19; docs/patient-channel.md) ----

    class MeasurementReminderDue(Aggregate.Event):
        """A measure is due: a messaging partner may remind the patient (careteam sends
        no message itself). Public to partners as ``patient.measurement_reminder_due``."""

        EVENT_NAME: ClassVar[str] = "patient.measurement_reminder_due"
        TOPIC: ClassVar[str] = EVENT_NAME
        reminder_id: UUID
        instrument: str
        due_on: date
        occurred_at: datetime

    def remind_measurement(
        self,
        *,
        instrument: Instrument | str,
        due_after_days: int,
        occurred_at: datetime,
        now: datetime,
    ) -> UUID:
        """Emit a reminder that ``instrument`` is due; returns the reminder's id.

        Due when the enrolled patient has no complete screening of the instrument (for
        PHQ-9, a PHQ-A counts too) within ``due_after_days`` before ``occurred_at``
        (the registry's measurement interval); otherwise ``MeasurementNotDueError``.
        """
        self._check_time(occurred_at, now)
        self._require_enrolled(occurred_at)
        spec = spec_for(instrument)
        counts = {spec.instrument}
        if spec.instrument is Instrument.PHQ9:
            counts.add(Instrument.PHQ_A)
        last = max(
            (
                s.occurred_at
                for s in self.screenings
                if s.instrument in counts and s.complete and s.occurred_at <= occurred_at
            ),
            default=None,
        )
        if last is not None and (occurred_at.date() - last.date()).days <= due_after_days:
            raise MeasurementNotDueError(
                f"{spec.title} is not due: measured within {due_after_days} days",
                aggregate_id=self.id,
                field="instrument",
            )
        reminder_id = uuid4()
        self._measurement_reminder_due(
            reminder_id=reminder_id,
            instrument=spec.instrument.value,
            due_on=occurred_at.date(),
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return reminder_id

    @applies(MeasurementReminderDue)
    def _measurement_reminder_due(self, e: MeasurementReminderDue) -> None:
        return None

    # --- children and adolescents: the SDQ (issue #19; docs/minors.md) ----------------

    class SdqRecorded(Aggregate.Event):
        """An SDQ form with every answer and its scores (subscales, total difficulties,
        impact) and bands, per the official key (domain/instruments.py)."""

        EVENT_NAME: ClassVar[str] = "patient.sdq_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        sdq_id: UUID
        informant: str
        items: list[int | None]
        impact: dict[str, int]
        scores: dict[str, int | None]
        bands: dict[str, str | None]
        rules_version: str
        occurred_at: datetime

    def record_sdq(
        self,
        *,
        informant: SdqInformant | str,
        items: Sequence[int | None],
        occurred_at: datetime,
        now: datetime,
        impact: Mapping[str, int | None] | None = None,
    ) -> SdqScore:
        """Record and score one SDQ form; the child's age on the day must fit the form
        (parent and teacher 4-17, self-report 11-17)."""
        self._check_time(occurred_at, now)
        result = score_sdq(informant, items, impact)
        low, high = SDQ_AGES[result.informant]
        if self.birth_date is not None and not low <= self.age_on(occurred_at.date()) <= high:
            raise InstrumentNotForAgeError(
                f"the SDQ {result.informant.value} form is for ages {low}-{high}",
                aggregate_id=self.id,
                field="occurredAt",
            )
        self._sdq_recorded(
            sdq_id=uuid4(),
            informant=result.informant.value,
            items=list(result.items),
            impact=dict(result.impact_answers),
            scores={k.value: v for k, v in result.scores.items()},
            bands={k.value: (b.value if b is not None else None) for k, b in result.bands.items()},
            rules_version=RULES_VERSION,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return result

    @applies(SdqRecorded)
    def _sdq_recorded(self, e: SdqRecorded) -> None:
        return None

    # --- system-level utilisation (issue #19 item 3; docs/outcomes.md) ---------------
    # An emergency department visit, a hospitalisation or a specialty mental-health
    # referral the patient had, with the day it took place and where careteam learned of
    # it. Recorded for any registered patient, before or after enrollment (the "before"
    # window is the point: domain/rules/outcomes.py, cohort_utilisation). A day in the
    # future (after today anywhere on Earth: UTC+14) or before the patient's birth is a
    # ValidationError on ``effectiveOn``.

    class UtilisationRecorded(Aggregate.Event):
        """A use of the wider health system (kind, effective day, source)."""

        EVENT_NAME: ClassVar[str] = "patient.utilisation_recorded"
        TOPIC: ClassVar[str] = EVENT_NAME
        utilisation_id: UUID
        kind: str
        source: str
        effective_on: date
        occurred_at: datetime

    def _check_effective_on(self, effective_on: date, now: datetime) -> None:
        """A date, not in the future and not before the patient's birth."""
        if isinstance(effective_on, datetime) or not isinstance(effective_on, date):
            raise InvalidPayloadValueError("effectiveOn must be a date", field="effectiveOn")
        if effective_on > (now + LATEST_UTC_OFFSET).date():
            raise OccurredInFutureError(
                "effectiveOn lies in the future", aggregate_id=self.id, field="effectiveOn"
            )
        if self.birth_date is not None and effective_on < self.birth_date:
            raise OccurredBeforeBirthError(
                "effectiveOn lies before the patient's birth date",
                aggregate_id=self.id,
                field="effectiveOn",
            )

    def record_utilisation(
        self,
        *,
        kind: UtilisationKind | str,
        source: UtilisationSource | str,
        effective_on: date,
        occurred_at: datetime,
        now: datetime,
    ) -> UUID:
        """Record one utilisation event; returns its id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_time, occurred_at, now)
        problems.check(_utilisation_member, UtilisationKind, kind, "kind")
        problems.check(_utilisation_member, UtilisationSource, source, "source")
        problems.check(self._check_effective_on, effective_on, now)
        problems.raise_any()
        kind = UtilisationKind(kind)
        source = UtilisationSource(source)
        utilisation_id = uuid4()
        self._utilisation_recorded(
            utilisation_id=utilisation_id,
            kind=kind.value,
            source=source.value,
            effective_on=effective_on,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return utilisation_id

    @applies(UtilisationRecorded)
    def _utilisation_recorded(self, e: UtilisationRecorded) -> None:
        return None

    # --- end of the utilisation block -----------------------------------------------

    # --- end of the issue #19 blocks (minors, patient channel) -----------------------

    # --- helpers ----------------------------------------------------------------------

    def _check_time(self, occurred_at: datetime, now: datetime) -> None:
        """Aware, not in the future, and not before the patient's birth: nothing in a
        person's record happens before they were born (a mistyped year, most often)."""
        check_occurred_at(occurred_at, now)
        born = self.birth_date
        if born is not None and occurred_at.date() < born:
            raise OccurredBeforeBirthError(
                "occurredAt lies before the patient's birth date",
                aggregate_id=self.id,
                field="occurredAt",
            )

    def _status_name(self) -> str:
        status = self.status
        return status.value if status is not None else "no episode"

    def _check_transition(self, target: EpisodeStatus, occurred_at: datetime) -> None:
        """Raise unless the episode may move to ``target`` at ``occurred_at``."""
        current = self.status
        allowed = _TRANSITIONS.get(current, frozenset())
        if target not in allowed:
            raise InvalidEpisodeTransitionError(
                f"cannot move from {self._status_name()} to {target.value}",
                aggregate_id=self.id,
            )
        episode = self.current_episode
        if episode is not None:
            last = episode.ended_at or episode.last_change_at
            if occurred_at < last:
                raise OutOfOrderError(
                    f"{target.value} precedes the previous step of episode {episode.number}",
                    aggregate_id=self.id,
                )
        elif occurred_at < self.registered_at:
            raise OutOfOrderError("the episode precedes the registration", aggregate_id=self.id)

    def _require_enrolled(self, occurred_at: datetime) -> Episode:
        episode = self.current_episode
        if episode is None or episode.status not in _ENROLLED_STATUSES:
            raise PatientNotEnrolledError(
                f"the patient's episode is {self._status_name()}", aggregate_id=self.id
            )
        if episode.enrolled_at is not None and occurred_at < episode.enrolled_at:
            raise OutOfOrderError(
                f"the step precedes the enrollment of episode {episode.number}",
                aggregate_id=self.id,
            )
        return episode

    def _new_id(self, given: UUID | None, existing: Any, field_name: str) -> UUID:
        """The given id (checked unique) or a fresh one."""
        if given is None:
            return uuid4()
        require_uuid(given, field_name)
        if given in existing:
            raise DuplicateIdError(f"{field_name} {given} exists already", aggregate_id=self.id)
        return given

    def _add_task(
        self,
        kind: TaskKind,
        due_on: date,
        source_id: UUID,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        self._task_created(
            task_id=uuid4(),
            kind=kind.value,
            due_on=due_on,
            source_id=source_id,
            assignee_id=self.care_team.care_manager_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- apply (state changes only: these run again on replay) ------------------------

    @applies(Referred)
    def _referred(self, e: Referred) -> None:
        self.episodes.append(
            Episode(
                number=e.episode_number,
                status=EpisodeStatus.REFERRED,
                started_at=e.occurred_at,
                last_change_at=e.occurred_at,
                referred_at=e.occurred_at,
            )
        )

    @applies(Enrolled)
    def _enrolled(self, e: Enrolled) -> None:
        if e.new_episode:
            self.episodes.append(
                Episode(
                    number=e.episode_number,
                    status=EpisodeStatus.ENROLLED,
                    started_at=e.occurred_at,
                    last_change_at=e.occurred_at,
                )
            )
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.ENROLLED
        episode.enrolled_at = e.occurred_at
        episode.last_change_at = e.occurred_at

    @applies(TreatmentStarted)
    def _treatment_started(self, e: TreatmentStarted) -> None:
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.ACTIVE_TREATMENT
        episode.treatment_started_at = e.occurred_at
        episode.last_change_at = e.occurred_at

    @applies(RelapsePreventionStarted)
    def _relapse_prevention_started(self, e: RelapsePreventionStarted) -> None:
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.RELAPSE_PREVENTION
        episode.relapse_prevention_at = e.occurred_at
        episode.last_change_at = e.occurred_at

    @applies(TreatmentResumed)
    def _treatment_resumed(self, e: TreatmentResumed) -> None:
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.ACTIVE_TREATMENT
        episode.last_change_at = e.occurred_at

    @applies(Discharged)
    def _discharged(self, e: Discharged) -> None:
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.DISCHARGED
        episode.discharge_reason = DischargeReason(e.reason)
        episode.ended_at = e.occurred_at
        episode.last_change_at = e.occurred_at

    @applies(Deactivated)
    def _deactivated(self, e: Deactivated) -> None:
        episode = self.episodes[-1]
        episode.status = EpisodeStatus.DEACTIVATED
        episode.deactivation_reason = DeactivationReason(e.reason)
        episode.ended_at = e.occurred_at
        episode.last_change_at = e.occurred_at

    @applies(CareTeamAssigned)
    def _care_team_assigned(self, e: CareTeamAssigned) -> None:
        self.care_team = CareTeam(
            care_manager_id=e.care_manager_id,
            pcp_id=e.pcp_id,
            psychiatric_consultant_id=e.psychiatric_consultant_id,
        )

    @applies(CareTeamMemberUnassigned)
    def _care_team_member_unassigned(self, e: CareTeamMemberUnassigned) -> None:
        which = CareTeamRole(e.role)
        if which is CareTeamRole.CARE_MANAGER:
            self.care_team.care_manager_id = None
        elif which is CareTeamRole.PCP:
            self.care_team.pcp_id = None
        else:
            self.care_team.psychiatric_consultant_id = None

    @applies(ConsentGranted)
    def _consent_granted(self, e: ConsentGranted) -> None:
        self.consents[e.consent_id] = Consent(
            consent_id=e.consent_id,
            kind=ConsentKind(e.kind),
            method=ConsentMethod(e.method) if e.method is not None else None,
            cost_sharing_explained=e.cost_sharing_explained,
            partner_organisation_id=e.partner_organisation_id,
            granted_at=e.occurred_at,
            expires_on=e.expires_on,
        )

    @applies(ConsentRevoked)
    def _consent_revoked(self, e: ConsentRevoked) -> None:
        self.consents[e.consent_id].revoked_at = e.occurred_at

    @applies(ScreeningRecorded)
    def _screening_recorded(self, e: ScreeningRecorded) -> None:
        self.screenings.append(
            Screening(
                screening_id=e.screening_id,
                instrument=Instrument(e.instrument),
                occurred_at=e.occurred_at,
                episode_number=e.episode_number,
                answers=list(e.answers),
                complete=e.complete,
                total=e.total,
                severity=Severity(e.severity) if e.severity is not None else None,
                positive=e.positive,
                safety_alert=e.safety_alert,
                needs_follow_up=e.needs_follow_up,
                rules_version=e.rules_version,
                loinc_panel=e.loinc_panel,
                loinc_total=e.loinc_total,
                safety_items=list(e.safety_items),
            )
        )

    @applies(ContactLogged)
    def _contact_logged(self, e: ContactLogged) -> None:
        self.contacts.append(
            Contact(
                contact_id=e.contact_id,
                activity=ActivityType(e.activity),
                modality=Modality(e.modality) if e.modality is not None else None,
                minutes=e.minutes,
                occurred_at=e.occurred_at,
                episode_number=e.episode_number,
                performed_by=e.performed_by,
            )
        )

    @applies(FlagRaised)
    def _flag_raised(self, e: FlagRaised) -> None:
        self.flags[e.flag_id] = Flag(
            flag_id=e.flag_id,
            kind=FlagKind(e.kind),
            rule_id=e.rule_id,
            rule_version=e.rule_version,
            # None on replay once the patient is forgotten (the inputs hold free text).
            inputs=dict(e.inputs or {}),
            raised_at=e.occurred_at,
        )

    @applies(FlagCleared)
    def _flag_cleared(self, e: FlagCleared) -> None:
        flag = self.flags[e.flag_id]
        flag.cleared_at = e.occurred_at
        flag.clear_reason = e.reason

    @applies(TaskCreated)
    def _task_created(self, e: TaskCreated) -> None:
        self.tasks[e.task_id] = Task(
            task_id=e.task_id,
            kind=TaskKind(e.kind),
            due_on=e.due_on,
            created_at=e.occurred_at,
            source_id=e.source_id,
            assignee_id=e.assignee_id,
        )

    @applies(TaskCompleted)
    def _task_completed(self, e: TaskCompleted) -> None:
        self.tasks[e.task_id].completed_at = e.occurred_at

    @applies(InitiatingVisitRecorded)
    def _initiating_visit_recorded(self, e: InitiatingVisitRecorded) -> None:
        """No state: billing reads the visit from the log (projections/billing.py)."""

    @applies(PsychiatricCaseReviewRecorded)
    def _case_review_recorded(self, e: PsychiatricCaseReviewRecorded) -> None:
        self.case_reviews.append(
            CaseReview(
                review_id=e.review_id,
                consultant_id=e.consultant_id,
                occurred_at=e.occurred_at,
                episode_number=e.episode_number,
                decision=TreatmentDecision(e.decision) if e.decision is not None else None,
                consultation_note_id=e.consultation_note_id,
            )
        )

    @applies(RelapsePreventionPlanWritten)
    def _relapse_prevention_plan_written(self, e: RelapsePreventionPlanWritten) -> None:
        self.relapse_prevention_plans.append(
            RelapsePreventionPlan(
                plan_id=e.plan_id,
                written_at=e.occurred_at,
                episode_number=e.episode_number,
                # None on replay once the patient is forgotten (free text).
                warning_signs=list(e.warning_signs or []),
                strategies=list(e.strategies or []),
            )
        )

    @applies(PsychotherapyNoteRecorded)
    def _psychotherapy_note_recorded(self, e: PsychotherapyNoteRecorded) -> None:
        return None

    @applies(InpatientAdmitted)
    def _inpatient_admitted(self, e: InpatientAdmitted) -> None:
        self.inpatient_stays.append(InpatientStay(admitted_at=e.occurred_at))

    @applies(InpatientDischarged)
    def _inpatient_discharged(self, e: InpatientDischarged) -> None:
        self.inpatient_stays[-1].discharged_at = e.occurred_at


_TRANSITIONS: Final[Mapping[EpisodeStatus | None, frozenset[EpisodeStatus]]] = {
    None: frozenset({EpisodeStatus.REFERRED, EpisodeStatus.ENROLLED}),
    EpisodeStatus.REFERRED: frozenset({EpisodeStatus.ENROLLED, EpisodeStatus.DEACTIVATED}),
    EpisodeStatus.ENROLLED: frozenset(
        {EpisodeStatus.ACTIVE_TREATMENT, EpisodeStatus.DISCHARGED, EpisodeStatus.DEACTIVATED}
    ),
    EpisodeStatus.ACTIVE_TREATMENT: frozenset(
        {EpisodeStatus.RELAPSE_PREVENTION, EpisodeStatus.DISCHARGED, EpisodeStatus.DEACTIVATED}
    ),
    EpisodeStatus.RELAPSE_PREVENTION: frozenset(
        {EpisodeStatus.ACTIVE_TREATMENT, EpisodeStatus.DISCHARGED, EpisodeStatus.DEACTIVATED}
    ),
    EpisodeStatus.DISCHARGED: frozenset({EpisodeStatus.REFERRED, EpisodeStatus.ENROLLED}),
    EpisodeStatus.DEACTIVATED: frozenset({EpisodeStatus.REFERRED, EpisodeStatus.ENROLLED}),
}
"""Legal episode moves: current status (None before any episode) -> allowed next ones."""


def counts_for_episode(taken_at: datetime, episode_started_at: datetime) -> bool:
    """Whether a score taken at ``taken_at`` belongs to an episode that began at
    ``episode_started_at``: taken at or after the start less the intake look-back (30
    days, the boundary included). Pure, shared with the read models."""
    return taken_at >= episode_started_at - INTAKE_LOOKBACK


def _team_ids(team: CareTeam) -> set[UUID]:  # pcbh block
    return {u for u in (team.care_manager_id, team.pcp_id, team.psychiatric_consultant_id) if u}


def _member(team: CareTeam, role: CareTeamRole) -> UUID | None:
    if role is CareTeamRole.CARE_MANAGER:
        return team.care_manager_id
    if role is CareTeamRole.PCP:
        return team.pcp_id
    return team.psychiatric_consultant_id


def _required_texts(values: Sequence[str], field: str) -> list[str]:
    """At least one text, each not blank: every bad item at once (``field[i]``)."""
    problems = Problems()
    items = _text_list(values)
    checked = [problems.check(require_text, v, f"{field}[{i}]") for i, v in enumerate(items)]
    if not items:
        problems.add(
            InvalidPayloadValueError(
                "a relapse prevention plan needs warning signs and strategies", field=field
            )
        )
    problems.raise_any()
    return [c for c in checked if c is not None]


M = TypeVar("M", UtilisationKind, UtilisationSource)


def _utilisation_member(enum_cls: type[M], value: M | str, field: str) -> M:
    """``value`` as a member of ``enum_cls`` (a utilisation kind or source)."""
    try:
        return enum_cls(value)
    except ValueError:
        raise InvalidEnumValueError(f"{field} is not a utilisation {field}", field=field) from None


def _check_birth_date(birth_date: date, occurred_at: datetime) -> None:
    """A date, not after the registration, and no age over the plausible maximum."""
    if isinstance(birth_date, datetime) or not isinstance(birth_date, date):
        raise InvalidBirthDateError("birth_date must be a date", field="birth_date")
    if birth_date > occurred_at.date():
        raise InvalidBirthDateError("birth_date lies after the registration", field="birth_date")
    if _age_on(birth_date, occurred_at.date()) > MAX_AGE_YEARS:
        raise InvalidBirthDateError(
            f"birth_date implies an age over {MAX_AGE_YEARS}", field="birth_date"
        )


def _age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def _text_list(values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidPayloadValueError("expected a list of texts")
    return list(values)
