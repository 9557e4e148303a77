"""GraphQL enumerations for command inputs and record views.

Each mirrors a domain enumeration value for value (tests/unit/api/test_api_enums.py
checks that), so resolvers pass ``member.value`` to the domain, which accepts the
stored strings. They are separate classes because GraphQL types are API shapes, never
the domain's own objects.
"""

from __future__ import annotations

import enum

import strawberry


@strawberry.enum(description="Why a collaborative care episode ended with a discharge.")
class DischargeReason(enum.Enum):
    COMPLETED = "completed"
    REFERRED_TO_SPECIALTY = "referred_to_specialty"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"


@strawberry.enum(description="Why a patient left the program without a clinical discharge.")
class DeactivationReason(enum.Enum):
    ENTERED_IN_ERROR = "entered_in_error"
    DECLINED = "declined"
    INELIGIBLE = "ineligible"
    MOVED_AWAY = "moved_away"
    DECEASED = "deceased"
    OTHER = "other"


@strawberry.enum(description="The three collaborative care roles on a patient's care team.")
class CareTeamRole(enum.Enum):
    CARE_MANAGER = "care_manager"
    PCP = "pcp"
    PSYCHIATRIC_CONSULTANT = "psychiatric_consultant"


@strawberry.enum(description="What a consent covers.")
class ConsentKind(enum.Enum):
    COCM_TREATMENT = "cocm_treatment"
    DATA_SHARING = "data_sharing"
    PART2 = "part2"


@strawberry.enum(description="How a consent was obtained.")
class ConsentMethod(enum.Enum):
    VERBAL = "verbal"
    WRITTEN = "written"


@strawberry.enum(description="Kinds of registry flag.")
class FlagKind(enum.Enum):
    SAFETY_RISK = "safety_risk"
    NOT_IMPROVING = "not_improving"
    OVERDUE_CONTACT = "overdue_contact"
    NEEDS_PSYCHIATRIC_REVIEW = "needs_psychiatric_review"
    MEASUREMENT_DUE = "measurement_due"
    TEAM_MEMBER = "team_member"


@strawberry.enum(description="Kinds of care team task.")
class TaskKind(enum.Enum):
    SUICIDE_RISK_ASSESSMENT = "suicide_risk_assessment"
    SEVERE_SCORE_FOLLOW_UP = "severe_score_follow_up"
    POSITIVE_SCREEN_FOLLOW_UP = "positive_screen_follow_up"
    MEASUREMENT = "measurement"
    OUTREACH = "outreach"
    OTHER = "other"


@strawberry.enum(
    description="Treat-to-target decision at a review (GermanIMPACT): change treatment, keep "
    "it, or move to relapse prevention."
)
class TreatmentDecision(enum.Enum):
    CHANGE = "change"
    KEEP = "keep"
    RELAPSE_PREVENTION = "relapse_prevention"


@strawberry.enum(description="Where a care plan stands.")
class CarePlanStatus(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"


@strawberry.enum(description="Where one care plan goal stands.")
class GoalStatus(enum.Enum):
    OPEN = "open"
    ACHIEVED = "achieved"
    DROPPED = "dropped"


@strawberry.enum(description="How a goal is closed: achieved, or dropped (with a reason).")
class GoalOutcome(enum.Enum):
    ACHIEVED = "achieved"
    DROPPED = "dropped"


@strawberry.enum(description="Instruments with a total score that a target can name.")
class TargetInstrument(enum.Enum):
    PHQ9 = "phq9"
    PHQ_A = "phq_a"
    PHQ2 = "phq2"
    GAD7 = "gad7"


@strawberry.enum(
    description="How a target is measured: the total below a threshold, or a percentage "
    "reduction from baseline."
)
class TargetKind(enum.Enum):
    SCORE_BELOW = "score_below"
    REDUCTION_PERCENT = "reduction_percent"


@strawberry.enum(description="Kinds of care plan intervention.")
class InterventionKind(enum.Enum):
    MEDICATION = "medication"
    PSYCHOTHERAPY = "psychotherapy"
    OTHER = "other"


@strawberry.enum(description="Whether an intervention is still in effect.")
class InterventionStatus(enum.Enum):
    ACTIVE = "active"
    STOPPED = "stopped"


@strawberry.enum(description="Brief psychotherapies used in collaborative care.")
class PsychotherapyModality(enum.Enum):
    PROBLEM_SOLVING_THERAPY = "problem_solving_therapy"
    BEHAVIORAL_ACTIVATION = "behavioral_activation"
    COGNITIVE_BEHAVIORAL_THERAPY = "cognitive_behavioral_therapy"
    INTERPERSONAL_THERAPY = "interpersonal_therapy"
    MOTIVATIONAL_INTERVIEWING = "motivational_interviewing"
    OTHER = "other"


@strawberry.enum(description="Outside services a patient can be referred to.")
class ReferralService(enum.Enum):
    SPECIALTY_PSYCHIATRY = "specialty_psychiatry"
    PSYCHOTHERAPY = "psychotherapy"
    SUBSTANCE_USE_TREATMENT = "substance_use_treatment"
    COMMUNITY_SERVICES = "community_services"
    OTHER = "other"


@strawberry.enum(
    description="Where a referral stands in its closed loop; completed, declined and "
    "cancelled are final."
)
class ReferralStatus(enum.Enum):
    REQUESTED = "requested"
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@strawberry.enum(description="Where a consultation note stands in the consultation loop.")
class ConsultationNoteStatus(enum.Enum):
    REQUESTED = "requested"
    DRAFTED = "drafted"
    SIGNED = "signed"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"


@strawberry.enum(description="The PCP's answer to one recommendation.")
class RecommendationResponse(enum.Enum):
    ACCEPTED = "accepted"
    MODIFIED = "modified"
    DECLINED = "declined"
