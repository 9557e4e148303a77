"""GraphQL enumerations for command inputs and record views.

Every closed set the domain defines is served under its own domain enumeration: the
GraphQL type is registered on the domain's class here, so there is no second list of
values to keep in step, and resolvers hand members straight to the domain. Two
enumerations are the API's own, the subsets a command accepts (``GoalOutcome``,
``TargetInstrument``); tests/unit/api/test_api_enums.py checks them against the domain.
"""

from __future__ import annotations

import enum
from typing import TypeVar

import strawberry

from domain.common import (
    ActivityType,
    CarePlanStatus,
    CareTeamRole,
    ConsentKind,
    ConsentMethod,
    DeactivationReason,
    DischargeReason,
    EpisodeStatus,
    FlagKind,
    GoalStatus,
    InitiatingVisitKind,
    InterventionKind,
    InterventionStatus,
    Modality,
    NoteStatus,
    PsychotherapyModality,
    RecommendationResponse,
    ReferralService,
    ReferralStatus,
    Sex,
    TargetKind,
    TaskKind,
    TreatmentDecision,
)
from domain.rules.billing import RequiredElement
from domain.rules.flags import ReviewReason

strawberry.enum(
    EpisodeStatus,
    description="Where a patient's current collaborative care episode stands (AIMS CMTS statuses).",
)
strawberry.enum(
    DischargeReason, description="Why a collaborative care episode ended with a discharge."
)
strawberry.enum(
    DeactivationReason, description="Why a patient left the program without a clinical discharge."
)
strawberry.enum(
    CareTeamRole, description="The three collaborative care roles on a patient's care team."
)
strawberry.enum(ConsentKind, description="What a consent covers.")
strawberry.enum(
    ActivityType, description="Care manager activities whose minutes count for CoCM billing."
)
strawberry.enum(Modality, description="How a contact took place.")
strawberry.enum(Sex, description="Administrative sex as recorded at registration.")
strawberry.enum(ConsentMethod, description="How a consent was obtained.")
strawberry.enum(FlagKind, description="Kinds of registry flag.")
strawberry.enum(TaskKind, description="Kinds of care team task.")
strawberry.enum(
    InitiatingVisitKind,
    description="The billing practitioner's visit that initiates CoCM or general BHI (an "
    "evaluation and management visit, annual wellness visit or initial preventive physical "
    "examination).",
)
strawberry.enum(
    TreatmentDecision,
    description="Treat-to-target decision at a review (GermanIMPACT): change treatment, keep "
    "it, or move to relapse prevention.",
)
strawberry.enum(CarePlanStatus, description="Where a care plan stands.")
strawberry.enum(GoalStatus, description="Where one care plan goal stands.")
strawberry.enum(
    TargetKind,
    description="How a target is measured: the total below a threshold, or a percentage "
    "reduction from baseline.",
)
strawberry.enum(InterventionKind, description="Kinds of care plan intervention.")
strawberry.enum(InterventionStatus, description="Whether an intervention is still in effect.")
strawberry.enum(
    PsychotherapyModality, description="Brief psychotherapies used in collaborative care."
)
strawberry.enum(ReferralService, description="Outside services a patient can be referred to.")
strawberry.enum(
    ReferralStatus,
    description="Where a referral stands in its closed loop; completed, declined and "
    "cancelled are final.",
)
strawberry.enum(
    NoteStatus,
    name="ConsultationNoteStatus",
    description="Where a consultation note stands in the consultation loop.",
)
strawberry.enum(RecommendationResponse, description="The PCP's answer to one recommendation.")
strawberry.enum(
    ReviewReason, description="Why a patient needs the psychiatric consultant's review."
)
strawberry.enum(
    RequiredElement,
    description="Documentation a billed month needs (listed when missing, never silently fatal).",
)

# The GraphQL name of the domain's note status.
ConsultationNoteStatus = NoteStatus


@strawberry.enum(description="Validated questionnaires careteam scores.")
class InstrumentCode(enum.Enum):
    PHQ9 = "phq9"
    PHQ_A = "phq_a"
    PHQ2 = "phq2"
    GAD7 = "gad7"
    ASQ = "asq"


M = TypeVar("M", bound=enum.Enum)


@strawberry.enum(description="Whose SDQ form: parent (or caregiver), teacher, or self-report.")
class SdqForm(enum.Enum):
    PARENT = "parent"
    TEACHER = "teacher"
    SELF = "self"


@strawberry.enum(
    description="An SDQ score's band in the official four-band scheme (prosocial runs "
    "downward: slightly lowered, low, very low)."
)
class SdqBandKind(enum.Enum):
    CLOSE_TO_AVERAGE = "close_to_average"
    SLIGHTLY_RAISED = "slightly_raised"
    HIGH = "high"
    VERY_HIGH = "very_high"
    SLIGHTLY_LOWERED = "slightly_lowered"
    LOW = "low"
    VERY_LOW = "very_low"


@strawberry.enum(description="An SDQ score's band in the original three-band scheme.")
class SdqCategoryKind(enum.Enum):
    NORMAL = "normal"
    BORDERLINE = "borderline"
    ABNORMAL = "abnormal"


def member(enum_cls: type[M], value: str | None) -> M | None:
    """A read model's stored lower-case value as its enum member (None stays None): the
    enum field served beside a deprecated String one."""
    return None if value is None else enum_cls(value)


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


__all__ = [
    "ActivityType",
    "CarePlanStatus",
    "CareTeamRole",
    "ConsentKind",
    "ConsentMethod",
    "ConsultationNoteStatus",
    "DeactivationReason",
    "DischargeReason",
    "EpisodeStatus",
    "FlagKind",
    "GoalOutcome",
    "GoalStatus",
    "InitiatingVisitKind",
    "InstrumentCode",
    "InterventionKind",
    "InterventionStatus",
    "Modality",
    "NoteStatus",
    "PsychotherapyModality",
    "RecommendationResponse",
    "ReferralService",
    "ReferralStatus",
    "RequiredElement",
    "ReviewReason",
    "SdqBandKind",
    "SdqCategoryKind",
    "SdqForm",
    "Sex",
    "TargetInstrument",
    "TargetKind",
    "TaskKind",
    "TreatmentDecision",
    "member",
]
