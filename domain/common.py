"""Shared enumerations and value checks of the domain (the JSON codec is domain.codec).

Enumerations are ``StrEnum`` so their values are the stable strings stored in events;
events carry the plain string and apply code converts back with ``Kind(value)``,
because a replayed event may hold a plain ``str``.

Time: commands never read a clock. Each takes ``occurred_at`` (the clinical
effective time) and ``now`` (the caller's current time), both timezone-aware;
:func:`check_occurred_at` enforces that.
"""

import enum
import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.errors import (
    BlankValueError,
    ControlCharacterError,
    DatetimeOutOfRangeError,
    InvalidEnumValueError,
    InvalidPayloadValueError,
    NaiveDatetimeError,
    OccurredInFutureError,
    ValidationError,
    ValueTooLongError,
)

# --- enumerations -----------------------------------------------------------------


class EpisodeStatus(enum.StrEnum):
    """Where a patient's current collaborative care episode stands (AIMS CMTS statuses)."""

    REFERRED = "referred"
    ENROLLED = "enrolled"
    ACTIVE_TREATMENT = "active_treatment"
    RELAPSE_PREVENTION = "relapse_prevention"
    DISCHARGED = "discharged"
    DEACTIVATED = "deactivated"


class DischargeReason(enum.StrEnum):
    """Why an episode ended (docs/clinical-rules.md: goals met, specialty care, no services)."""

    COMPLETED = "completed"
    REFERRED_TO_SPECIALTY = "referred_to_specialty"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"


class DeactivationReason(enum.StrEnum):
    """Why a patient left the program without a clinical discharge."""

    ENTERED_IN_ERROR = "entered_in_error"
    DECLINED = "declined"
    INELIGIBLE = "ineligible"
    MOVED_AWAY = "moved_away"
    DECEASED = "deceased"
    OTHER = "other"


class Sex(enum.StrEnum):
    """Administrative sex as recorded at registration (optional)."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class CareTeamRole(enum.StrEnum):
    """The three CoCM roles attached to a patient."""

    CARE_MANAGER = "care_manager"
    PCP = "pcp"
    PSYCHIATRIC_CONSULTANT = "psychiatric_consultant"


# --- the wider team (issue 18, items 3-5; owner: pcbh) -------------------------------
# Primary Care Behavioral Health: Reiter, Dobmeyer & Hunter 2018, "The Primary Care
# Behavioral Health (PCBH) Model: An Overview and Operational Definition", J Clin Psychol
# Med Settings 25(2):109-126. docs/team-roles.md and docs/pcbh.md.


class WiderTeamRole(enum.StrEnum):
    """Staff roles that can be on a care team beside the three CoCM roles."""

    BEHAVIORAL_HEALTH_CONSULTANT = "behavioral_health_consultant"
    SOCIAL_WORKER = "social_worker"
    THERAPIST = "therapist"
    PEER_SPECIALIST = "peer_specialist"
    COMMUNITY_HEALTH_WORKER = "community_health_worker"


class CaregiverRelationship(enum.StrEnum):
    """How a participant who is not staff relates to the patient."""

    PARENT = "parent"
    GUARDIAN = "guardian"
    OTHER_CAREGIVER = "other_caregiver"


class CaregiverScope(enum.StrEnum):
    """What a caregiver may be allowed to see, one grant per scope (default: nothing)."""

    # Who is on the care team (names of staff roles and user ids).
    CARE_TEAM = "care_team"
    # When the patient's brief visits and warm handoffs took place (no content).
    VISITS = "visits"


class WarmHandoffStatus(enum.StrEnum):
    """A warm handoff from the PCP to the BHC during the visit."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    MISSED = "missed"


# --- end of the wider-team block -------------------------------------------------------


class ConsentKind(enum.StrEnum):
    """What a consent covers."""

    # Consent to collaborative care, which is also the billing consent (cost sharing).
    COCM_TREATMENT = "cocm_treatment"
    # Sharing care events with one partner organisation.
    DATA_SHARING = "data_sharing"
    # 42 CFR Part 2 disclosure of substance use disorder records.
    PART2 = "part2"


class ConsentMethod(enum.StrEnum):
    """How a consent was obtained."""

    VERBAL = "verbal"
    WRITTEN = "written"


class ActivityType(enum.StrEnum):
    """Care manager activities whose minutes count for CoCM billing."""

    CONTACT = "contact"
    OUTREACH = "outreach"
    REGISTRY_REVIEW = "registry_review"
    CASE_REVIEW = "case_review"
    COORDINATION = "coordination"


class Modality(enum.StrEnum):
    """How a contact took place."""

    IN_PERSON = "in_person"
    PHONE = "phone"
    VIDEO = "video"
    MESSAGE = "message"


class FlagKind(enum.StrEnum):
    """Registry flags (docs/clinical-rules.md, 'Treat-to-target and the registry flags')."""

    SAFETY_RISK = "safety_risk"
    NOT_IMPROVING = "not_improving"
    OVERDUE_CONTACT = "overdue_contact"
    NEEDS_PSYCHIATRIC_REVIEW = "needs_psychiatric_review"
    MEASUREMENT_DUE = "measurement_due"
    TEAM_MEMBER = "team_member"


class TaskKind(enum.StrEnum):
    """Work items for the care team."""

    SUICIDE_RISK_ASSESSMENT = "suicide_risk_assessment"
    SEVERE_SCORE_FOLLOW_UP = "severe_score_follow_up"
    POSITIVE_SCREEN_FOLLOW_UP = "positive_screen_follow_up"
    MEASUREMENT = "measurement"
    OUTREACH = "outreach"
    OTHER = "other"


class InitiatingVisitKind(enum.StrEnum):
    """The billing practitioner's visit that initiates CoCM or general BHI (CMS booklet
    "Behavioral Health Integration Services", MLN909432; CY2017 PFS final rule,
    CMS-1654-F): a comprehensive evaluation and management visit, an annual wellness
    visit or an initial preventive physical examination."""

    EVALUATION_AND_MANAGEMENT = "evaluation_and_management"
    ANNUAL_WELLNESS_VISIT = "annual_wellness_visit"
    INITIAL_PREVENTIVE_PHYSICAL_EXAM = "initial_preventive_physical_exam"


class TreatmentDecision(enum.StrEnum):
    """Decision at a review (GermanIMPACT algorithm, Trials 2014, 15:351)."""

    # Under 50% improvement: change treatment.
    CHANGE = "change"
    # 50% or more improvement: keep treatment.
    KEEP = "keep"
    # PHQ-9 below 5: write a relapse prevention plan and reduce contacts.
    RELAPSE_PREVENTION = "relapse_prevention"


class GoalStatus(enum.StrEnum):
    """State of one care plan goal."""

    OPEN = "open"
    ACHIEVED = "achieved"
    DROPPED = "dropped"


class InterventionKind(enum.StrEnum):
    """Kinds of care plan intervention."""

    MEDICATION = "medication"
    PSYCHOTHERAPY = "psychotherapy"
    OTHER = "other"


class InterventionStatus(enum.StrEnum):
    """Life cycle of one intervention."""

    ACTIVE = "active"
    STOPPED = "stopped"


class PsychotherapyModality(enum.StrEnum):
    """Brief psychotherapies used in collaborative care (IMPACT offered PST)."""

    PROBLEM_SOLVING_THERAPY = "problem_solving_therapy"
    BEHAVIORAL_ACTIVATION = "behavioral_activation"
    COGNITIVE_BEHAVIORAL_THERAPY = "cognitive_behavioral_therapy"
    INTERPERSONAL_THERAPY = "interpersonal_therapy"
    MOTIVATIONAL_INTERVIEWING = "motivational_interviewing"
    OTHER = "other"


class TargetKind(enum.StrEnum):
    """How a treatment target is measured."""

    # The instrument total is below the threshold (e.g. PHQ-9 < 5, remission).
    SCORE_BELOW = "score_below"
    # The total fell by at least this percentage from baseline (e.g. 50, response).
    REDUCTION_PERCENT = "reduction_percent"


class CarePlanStatus(enum.StrEnum):
    """Life cycle of a care plan."""

    ACTIVE = "active"
    CLOSED = "closed"


class ReferralService(enum.StrEnum):
    """Outside services a patient can be referred to (docs/clinical-rules.md, 'Referrals')."""

    SPECIALTY_PSYCHIATRY = "specialty_psychiatry"
    PSYCHOTHERAPY = "psychotherapy"
    SUBSTANCE_USE_TREATMENT = "substance_use_treatment"
    COMMUNITY_SERVICES = "community_services"
    OTHER = "other"
    # Community services (issue 18, item 5; owner: pcbh): social needs met outside the
    # clinic, with the same closed loop (docs/pcbh.md, 'Community services').
    HOUSING_SUPPORT = "housing_support"
    FOOD_ASSISTANCE = "food_assistance"
    TRANSPORTATION = "transportation"
    BENEFITS_ASSISTANCE = "benefits_assistance"
    PEER_SUPPORT = "peer_support"
    LEGAL_AID = "legal_aid"


COMMUNITY_SERVICES: Final = frozenset(
    {
        ReferralService.COMMUNITY_SERVICES,
        ReferralService.HOUSING_SUPPORT,
        ReferralService.FOOD_ASSISTANCE,
        ReferralService.TRANSPORTATION,
        ReferralService.BENEFITS_ASSISTANCE,
        ReferralService.PEER_SUPPORT,
        ReferralService.LEGAL_AID,
    }
)
"""Referral services that are community services (the tracker groups them)."""


class ReferralStatus(enum.StrEnum):
    """The closed loop of a referral."""

    REQUESTED = "requested"
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class NoteStatus(enum.StrEnum):
    """Life cycle of a consultation note."""

    REQUESTED = "requested"
    DRAFTED = "drafted"
    SIGNED = "signed"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"


class RecommendationResponse(enum.StrEnum):
    """The PCP's answer to one recommendation."""

    ACCEPTED = "accepted"
    MODIFIED = "modified"
    DECLINED = "declined"


# --- checks ---------------------------------------------------------------------------

E = TypeVar("E", bound=enum.Enum)

MAX_TEXT_LENGTH = 10_000
MAX_SHORT_TEXT_LENGTH = 200


# Policy choice: care documented in careteam happens between these instants (UTC). Outside
# them a value is a typo, and near the ends of the calendar (year 1 or 9999 with an
# offset) it cannot even be converted to UTC or stored.
EARLIEST_INSTANT: Final = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_INSTANT: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _require_timezone(value: datetime, field: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{field} must be a timezone-aware datetime", field=field)


def require_aware(value: datetime, field: str) -> None:
    """Reject a naive datetime (no timezone): its instant would be a guess; and one outside
    the years careteam accepts."""
    _require_timezone(value, field)
    try:
        in_range = EARLIEST_INSTANT <= value.astimezone(UTC) < LATEST_INSTANT
    except OverflowError:
        in_range = False
    if not in_range:
        raise DatetimeOutOfRangeError(f"{field} must lie in the years 1900 to 2199", field=field)


# C0 control characters other than tab, line feed and carriage return: PostgreSQL's jsonb
# cannot hold NUL, and none of them belongs in clinical text.
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


def _check_characters(value: str, field: str) -> None:
    if not _CONTROL.isdisjoint(value):
        raise ControlCharacterError(f"{field} holds a control character", field=field)


def check_occurred_at(occurred_at: datetime, now: datetime) -> None:
    """Both times aware, and the effective time not after the current time."""
    _require_timezone(occurred_at, "occurred_at")
    _require_timezone(now, "now")
    try:
        future = occurred_at > now
    except OverflowError:  # an offset pushes the instant beyond the calendar
        future = False
    if future:
        raise OccurredInFutureError("occurred_at lies in the future", field="occurred_at")
    require_aware(occurred_at, "occurred_at")
    require_aware(now, "now")


def require_text(value: str, field: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    """A required text value, stripped; never echoes the value in the error."""
    if not isinstance(value, str) or not value.strip():
        raise BlankValueError(f"{field} must not be blank", field=field)
    stripped = value.strip()
    _check_characters(stripped, field)
    if len(stripped) > max_length:
        raise ValueTooLongError(f"{field} is longer than {max_length} characters", field=field)
    return stripped


def optional_text(
    value: str | None, field: str, *, max_length: int = MAX_TEXT_LENGTH
) -> str | None:
    """An optional text value: None or blank become None, otherwise as :func:`require_text`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return require_text(value, field, max_length=max_length)


def require_enum(enum_cls: type[E], value: E | str, field: str) -> E:
    """Coerce a member or its string value into ``enum_cls``."""
    try:
        return enum_cls(value)
    except ValueError:
        raise InvalidEnumValueError(
            f"{field} must be one of {', '.join(str(m.value) for m in enum_cls)}", field=field
        ) from None


def require_uuid(value: UUID, field: str) -> UUID:
    """Reject anything but a UUID (a str id would store differently on replay)."""
    if not isinstance(value, UUID):
        raise InvalidPayloadValueError(f"{field} must be a UUID", field=field)
    return value


def check_payload_mapping(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A JSON-native copy of a free-form mapping (such as a flag's rule inputs).

    Free-form values have no type hint to decode them by on replay, so they are stored
    in their JSON form right away: UUIDs, dates and aware datetimes become ISO / str
    values, enums their value. Allowed otherwise: str, int, float, bool, None, and
    lists or str-keyed dicts of those. Anything else is refused.
    """

    def check(value: Any, path: str) -> Any:
        if isinstance(value, enum.Enum):
            return check(value.value, path)
        if isinstance(value, datetime):
            require_aware(value, path)
            return value.isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, str):
            _check_characters(value, path)
            return value
        if value is None or isinstance(value, int | float | bool):
            return value
        if isinstance(value, list | tuple):
            return [check(v, f"{path}[]") for v in value]
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise InvalidPayloadValueError(f"{path} keys must be strings")
                out[k] = check(v, f"{path}.{k}")
            return out
        raise InvalidPayloadValueError(f"{path} holds a {type(value).__name__}, not storable")

    if not isinstance(values, Mapping):
        raise InvalidPayloadValueError(f"{field} must be a mapping")
    checked: dict[str, Any] = check(values, field)
    return checked


# --- every field problem at once (issue 13) ------------------------------------------


R = TypeVar("R")


class Problems:
    """Collects the validation problems of a command's input so all are reported at once.

    Each field is checked with :meth:`check` (any ``require_*`` helper or other check that
    raises a :class:`~domain.errors.ValidationError`); a failing check is recorded and
    returns None instead of raising. :meth:`raise_any` then raises the first problem,
    carrying every problem found in its ``problems`` (in the order checked), before
    anything is written. Only validation problems are collected: a state or process rule
    (invalid transition, not found, not allowed) still stops at once, and so does a
    check made after :meth:`raise_any`.

    Usage::

        problems = Problems()
        given = problems.check(require_text, given_name, "given_name")
        mrn = problems.check(require_text, mrn, "mrn")
        problems.raise_any()
    """

    def __init__(self) -> None:
        self.found: list[ValidationError] = []

    def check(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R | None:
        """``fn(*args, **kwargs)``, or None after recording its validation problem."""
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            self.add(exc)
            return None

    def add(self, exc: ValidationError) -> None:
        """Records a problem (and any it carries already)."""
        listed = exc.problems or (exc,)
        self.found.extend(p for p in listed if isinstance(p, ValidationError))

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_any(self) -> None:
        """Raises the first problem with all of them in ``problems``; None when there are none."""
        if not self.found:
            return
        first = self.found[0]
        first.problems = tuple(self.found)
        raise first


# --- applying events ----------------------------------------------------------------

Ev = TypeVar("Ev")


class Trigger:
    """What :func:`applies` leaves on the aggregate class: ``self._x(**fields)`` triggers
    the event (the library builds it, applies it and keeps it pending). Unknown or missing
    fields fail as the event class's own constructor fails (TypeError)."""

    def __init__(self, event_cls: type[Any]) -> None:
        self._name = event_cls.__name__
        self._creates = issubclass(event_cls, CanInitAggregate)

    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Callable[..., None]:
        if instance is None:
            raise AttributeError("an event is triggered on an aggregate, not its class")
        if self._creates:
            raise AttributeError("a creation event is triggered by the aggregate's class method")
        # The library redefines each event class on its aggregate; trigger that one.
        trigger: Callable[..., None] = functools.partial(
            instance.trigger_event, getattr(type(instance), self._name)
        )
        return trigger


def applies(event_cls: type[Ev]) -> Callable[[Callable[[Any, Ev], None]], Trigger]:
    """Declares how an event changes its aggregate, once, with the event as the argument.

    The event class stays the one declaration of the event's fields: the decorated
    function reads them from the event (``e.occurred_at``) instead of repeating them as
    parameters. It runs when the event is triggered and again on every replay, so it only
    changes state. Usage, inside the aggregate class::

        @applies(Referred)
        def _referred(self, e: Referred) -> None:
            self.episodes.append(...)

    A creation event (the aggregate's first) is applied the same way, after the library
    has called the aggregate's ``__init__``, which is then empty.
    """

    def decorate(apply_to: Callable[[Any, Ev], None]) -> Trigger:
        def apply(event: Ev, aggregate: Any) -> None:
            apply_to(aggregate, event)

        # The library calls an event's ``apply(aggregate)`` from ``mutate``.
        event_cls.apply = apply  # type: ignore[attr-defined]
        return Trigger(event_cls)

    return decorate
