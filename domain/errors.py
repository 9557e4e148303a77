"""Typed domain errors: one class per broken rule, grouped by category.

The API maps the four category classes to GraphQL error types:

- :class:`ValidationError`: a value is malformed or out of range;
- :class:`InvalidTransitionError`: the aggregate's state does not allow the change;
- :class:`NotFoundError`: a referenced child record (task, flag, recommendation, ...)
  does not exist on the aggregate;
- :class:`NotAllowedError`: the change is well formed and legal in principle but a
  rule of the process forbids it here (for example the wrong instrument for the age).

Every error carries a stable machine ``code``. Messages name ids, field names, enum
values and limits only, never patient data (no names, birth dates, answers or free
text), because they travel to logs and to clients.
"""

from typing import ClassVar
from uuid import UUID


class DomainError(Exception):
    """Base class of every rule the domain enforces."""

    code: ClassVar[str] = "DOMAIN_ERROR"
    category: ClassVar[str] = "domain"

    def __init__(
        self, message: str, *, aggregate_id: UUID | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # The aggregate the command addressed, when known (an id, never patient data).
        self.aggregate_id = aggregate_id
        # The input field at fault, when one is (the API returns it to the client).
        self.field = field
        # Every problem of the input when several were found at once (this error first);
        # empty when this error is the only one (see domain.common.Problems).
        self.problems: tuple[DomainError, ...] = ()

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- categories -------------------------------------------------------------------


class ValidationError(DomainError):
    """A value given to a command is malformed or outside its allowed range."""

    code = "VALIDATION_ERROR"
    category = "validation"


class InvalidTransitionError(DomainError):
    """The aggregate's current state does not allow this change."""

    code = "INVALID_TRANSITION"
    category = "invalid_transition"


class NotFoundError(DomainError):
    """A child record named by the command does not exist on the aggregate."""

    code = "NOT_FOUND"
    category = "not_found"


class NotAllowedError(DomainError):
    """A process rule forbids an otherwise well-formed change."""

    code = "NOT_ALLOWED"
    category = "not_allowed"


# --- time ---------------------------------------------------------------------------


class NaiveDatetimeError(ValidationError):
    """A datetime without a timezone was given (its instant is ambiguous)."""

    code = "NAIVE_DATETIME"


class DatetimeOutOfRangeError(ValidationError):
    """A date-time outside the years careteam accepts (1900 to 2199, in UTC)."""

    code = "DATETIME_OUT_OF_RANGE"


class ControlCharacterError(ValidationError):
    """Text holds a control character (such as NUL) that no record may store."""

    code = "CONTROL_CHARACTER"


class OccurredInFutureError(ValidationError):
    """The clinical effective time lies after the current time."""

    code = "OCCURRED_IN_FUTURE"


class OccurredBeforeBirthError(ValidationError):
    """The clinical effective time lies before the patient's birth date (a mistyped year)."""

    code = "OCCURRED_BEFORE_BIRTH"


class OutOfOrderError(ValidationError):
    """The effective time precedes a step it must follow (e.g. enrolled before referred)."""

    code = "OUT_OF_ORDER"


# --- generic values -------------------------------------------------------------------


class BlankValueError(ValidationError):
    """A required text value is empty or only whitespace."""

    code = "BLANK_VALUE"


class ValueTooLongError(ValidationError):
    """A text value exceeds its maximum length."""

    code = "VALUE_TOO_LONG"


class InvalidEnumValueError(ValidationError):
    """A value is not a member of the expected enumeration."""

    code = "INVALID_ENUM_VALUE"


class InvalidPayloadValueError(ValidationError):
    """A free-form mapping holds a value that cannot be stored in an event."""

    code = "INVALID_PAYLOAD_VALUE"


# --- instruments ----------------------------------------------------------------------


class UnknownInstrumentError(ValidationError):
    """The instrument code is not one the rules know."""

    code = "UNKNOWN_INSTRUMENT"


class WrongAnswerCountError(ValidationError):
    """The number of answers differs from the instrument's number of items."""

    code = "WRONG_ANSWER_COUNT"


class AnswerNotIntegerError(ValidationError):
    """An answer is neither an integer nor missing (None)."""

    code = "ANSWER_NOT_INTEGER"


class AnswerOutOfRangeError(ValidationError):
    """An answer lies outside its item's allowed range."""

    code = "ANSWER_OUT_OF_RANGE"


class TotalOutOfRangeError(ValidationError):
    """A total given without its answers lies outside the instrument's range (or is not
    an integer)."""

    code = "TOTAL_OUT_OF_RANGE"


class InstrumentWithoutTotalError(ValidationError):
    """A total was given for an instrument that has none (the ASQ)."""

    code = "INSTRUMENT_WITHOUT_TOTAL"


class InstrumentNotForAgeError(NotAllowedError):
    """The instrument is not validated for the patient's age on the day it was taken."""

    code = "INSTRUMENT_NOT_FOR_AGE"


class NoRulesInEffectError(ValidationError):
    """No version of a rule set was in effect on the requested date."""

    code = "NO_RULES_IN_EFFECT"


# --- patient --------------------------------------------------------------------------


class InvalidBirthDateError(ValidationError):
    """The birth date lies in the future or implausibly far in the past."""

    code = "INVALID_BIRTH_DATE"


class InvalidEpisodeTransitionError(InvalidTransitionError):
    """The enrollment episode cannot move from its current status to the requested one."""

    code = "INVALID_EPISODE_TRANSITION"


class PatientNotEnrolledError(InvalidTransitionError):
    """The command needs an open episode with the patient enrolled or in treatment."""

    code = "PATIENT_NOT_ENROLLED"


class ContactBeforeEnrollmentError(InvalidTransitionError):
    """A contact was logged for a time before the current episode's enrollment."""

    code = "CONTACT_BEFORE_ENROLLMENT"


class ContactAfterDischargeError(InvalidTransitionError):
    """A contact was logged while the patient's episode is discharged or deactivated."""

    code = "CONTACT_AFTER_DISCHARGE"


class InvalidMinutesError(ValidationError):
    """Minutes are not a whole number between 1 and the per-entry maximum."""

    code = "INVALID_MINUTES"


class ModalityRequiredError(ValidationError):
    """A direct contact or outreach needs a modality (in person, phone, ...)."""

    code = "MODALITY_REQUIRED"


class EmptyCareTeamChangeError(ValidationError):
    """A care team assignment named no member to change."""

    code = "EMPTY_CARE_TEAM_CHANGE"


class CareTeamMemberNotAssignedError(InvalidTransitionError):
    """The care team role to unassign has no member."""

    code = "CARE_TEAM_MEMBER_NOT_ASSIGNED"


class PartnerOrganisationRequiredError(ValidationError):
    """Data-sharing consent must name the partner organisation it covers."""

    code = "PARTNER_ORGANISATION_REQUIRED"


class ConsentMethodRequiredError(ValidationError):
    """Consent to collaborative care must say whether it was verbal or written."""

    code = "CONSENT_METHOD_REQUIRED"


class ConsentNotFoundError(NotFoundError):
    """No consent with this id was granted for the patient."""

    code = "CONSENT_NOT_FOUND"


class ConsentAlreadyRevokedError(InvalidTransitionError):
    """The consent was revoked already."""

    code = "CONSENT_ALREADY_REVOKED"


class DuplicateIdError(ValidationError):
    """A child record with this id exists already on the aggregate."""

    code = "DUPLICATE_ID"


class FlagNotFoundError(NotFoundError):
    """No flag with this id was raised for the patient."""

    code = "FLAG_NOT_FOUND"


class FlagAlreadyRaisedError(InvalidTransitionError):
    """A flag of this kind is raised already and not yet cleared."""

    code = "FLAG_ALREADY_RAISED"


class FlagAlreadyClearedError(InvalidTransitionError):
    """The flag was cleared already."""

    code = "FLAG_ALREADY_CLEARED"


class TaskNotFoundError(NotFoundError):
    """No task with this id exists for the patient."""

    code = "TASK_NOT_FOUND"


class InvalidEmergencyWindowError(ValidationError):
    """Break-the-glass access must last between 1 minute and the policy maximum."""

    code = "INVALID_EMERGENCY_WINDOW"


class AlreadyOnCareTeamError(NotAllowedError):
    """Break-the-glass by a member of the patient's care team: they have access already."""

    code = "ALREADY_ON_CARE_TEAM"


class EmergencyGrantNotFoundError(NotFoundError):
    """No emergency access grant with this id exists for the patient."""

    code = "EMERGENCY_GRANT_NOT_FOUND"


class EmergencyGrantAlreadyReviewedError(InvalidTransitionError):
    """The emergency access grant was reviewed already."""

    code = "EMERGENCY_GRANT_ALREADY_REVIEWED"


class TaskAlreadyCompletedError(InvalidTransitionError):
    """The task was completed already."""

    code = "TASK_ALREADY_COMPLETED"


class AlreadyInpatientError(InvalidTransitionError):
    """An inpatient admission was recorded while an earlier one is still open."""

    code = "ALREADY_INPATIENT"


class NotInpatientError(InvalidTransitionError):
    """An inpatient discharge was recorded without an open admission."""

    code = "NOT_INPATIENT"


# --- care plan ------------------------------------------------------------------------


class CarePlanClosedError(InvalidTransitionError):
    """The care plan is closed; it accepts no further changes."""

    code = "CARE_PLAN_CLOSED"


class GoalNotFoundError(NotFoundError):
    """No goal with this id exists on the care plan."""

    code = "GOAL_NOT_FOUND"


class GoalAlreadyClosedError(InvalidTransitionError):
    """The goal was achieved or dropped already."""

    code = "GOAL_ALREADY_CLOSED"


class TargetNotFoundError(NotFoundError):
    """No target with this id exists on the care plan."""

    code = "TARGET_NOT_FOUND"


class InvalidTargetError(ValidationError):
    """The target's threshold is outside the instrument's total range."""

    code = "INVALID_TARGET"


class InterventionNotFoundError(NotFoundError):
    """No intervention with this id exists on the care plan."""

    code = "INTERVENTION_NOT_FOUND"


class InterventionStoppedError(InvalidTransitionError):
    """The intervention was stopped already; start a new one instead."""

    code = "INTERVENTION_STOPPED"


class InterventionDetailsError(ValidationError):
    """The intervention lacks the details its kind requires (dose, modality, ...)."""

    code = "INTERVENTION_DETAILS"


# --- referral -------------------------------------------------------------------------


class InvalidReferralTransitionError(InvalidTransitionError):
    """The referral cannot move from its current status to the requested one."""

    code = "INVALID_REFERRAL_TRANSITION"


class ReportBackRequiredError(ValidationError):
    """A referral is completed only with the receiving service's report back."""

    code = "REPORT_BACK_REQUIRED"


class ReasonRequiredError(ValidationError):
    """The change needs a reason (cancelling, declining, revising, ...)."""

    code = "REASON_REQUIRED"


class CompletedBeforeAppointmentError(ValidationError):
    """A referral's completion is dated before its appointment: the service cannot have
    been delivered yet."""

    code = "COMPLETED_BEFORE_APPOINTMENT"


class InvalidExpectedByError(ValidationError):
    """The expected-by date lies before the day the referral was requested."""

    code = "INVALID_EXPECTED_BY"


# --- consultation note ----------------------------------------------------------------


class NoteAlreadySignedError(InvalidTransitionError):
    """A signed consultation note is immutable; corrections are addenda."""

    code = "NOTE_ALREADY_SIGNED"


class NoteNotSignedError(InvalidTransitionError):
    """The step needs a signed note (addenda, acknowledgement, responses)."""

    code = "NOTE_NOT_SIGNED"


class NoteNotDraftedError(InvalidTransitionError):
    """The note has no draft yet, so it cannot be signed or given recommendations."""

    code = "NOTE_NOT_DRAFTED"


class NoteNotAcknowledgedError(InvalidTransitionError):
    """The PCP must acknowledge the note before responding to its recommendations."""

    code = "NOTE_NOT_ACKNOWLEDGED"


class NoteAlreadyAcknowledgedError(InvalidTransitionError):
    """The PCP acknowledged the note already."""

    code = "NOTE_ALREADY_ACKNOWLEDGED"


class NoteWithdrawnError(InvalidTransitionError):
    """The consultation request was withdrawn; the note accepts no changes."""

    code = "NOTE_WITHDRAWN"


class RecommendationNotFoundError(NotFoundError):
    """No recommendation with this id exists on the note."""

    code = "RECOMMENDATION_NOT_FOUND"


class RecommendationAlreadyAnsweredError(InvalidTransitionError):
    """The PCP answered this recommendation already."""

    code = "RECOMMENDATION_ALREADY_ANSWERED"


class RecommendationNotAcceptedError(InvalidTransitionError):
    """Only an accepted or modified recommendation can be implemented."""

    code = "RECOMMENDATION_NOT_ACCEPTED"


class RecommendationAlreadyImplementedError(InvalidTransitionError):
    """The recommendation was implemented already."""

    code = "RECOMMENDATION_ALREADY_IMPLEMENTED"


# --- the wider team and PCBH (issue 18; owner: pcbh) --------------------------------


class StaffRoleNotHeldError(NotAllowedError):
    """The staff member does not hold the team role they were given (directory)."""

    code = "NOT_IN_ROLE"


class CaregiverNotStaffError(ValidationError):
    """A caregiver (parent, guardian, other) was given a staff role, or the reverse."""

    code = "CAREGIVER_NOT_STAFF"


class NotABehavioralHealthConsultantError(NotAllowedError):
    """A warm handoff went to someone who is not a BHC on the patient's team."""

    code = "NOT_A_BHC"


class NotTheHandoffsConsultantError(NotAllowedError):
    """A warm handoff was accepted by someone other than the BHC it was offered to."""

    code = "NOT_THE_HANDOFFS_BHC"


class BriefVisitDurationError(ValidationError):
    """A brief visit's minutes lie outside the PCBH bounds (15-30)."""

    code = "BRIEF_VISIT_DURATION"


class WarmHandoffNotFoundError(NotFoundError):
    """No warm handoff with this id on the patient."""

    code = "WARM_HANDOFF_NOT_FOUND"


class WarmHandoffClosedError(InvalidTransitionError):
    """The warm handoff was already accepted or marked missed."""

    code = "WARM_HANDOFF_CLOSED"


class CaregiverNotFoundError(NotFoundError):
    """No caregiver with this id on the patient."""

    code = "CAREGIVER_NOT_FOUND"
