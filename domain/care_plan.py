"""The CarePlan aggregate: goals, targets, interventions, reviews and revisions of one
patient's treatment in one episode.

Treat-to-target (docs/clinical-rules.md): at each review the team decides, per the GermanIMPACT
algorithm (Trials 2014, 15:351), to change treatment (under 50% improvement), keep it
(50% or more) or move to relapse prevention (PHQ-9 below 5);
:func:`suggest_decision` computes that suggestion. A closed plan accepts no changes.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Final, Self
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.codec import Snapshotting
from domain.common import (
    CarePlanStatus,
    GoalStatus,
    InterventionKind,
    InterventionStatus,
    Problems,
    PsychotherapyModality,
    TargetKind,
    TreatmentDecision,
    applies,
    check_occurred_at,
    optional_text,
    require_aware,
    require_enum,
    require_text,
    require_uuid,
)
from domain.errors import (
    BlankValueError,
    CarePlanClosedError,
    DuplicateIdError,
    GoalAlreadyClosedError,
    GoalNotFoundError,
    InterventionDetailsError,
    InterventionNotFoundError,
    InterventionStoppedError,
    InvalidPayloadValueError,
    InvalidTargetError,
    OutOfOrderError,
    ReasonRequiredError,
    TargetNotFoundError,
    ValidationError,
)
from domain.instruments import Instrument, InstrumentSpec, spec_for

RULES_VERSION: Final = "germanimpact-2014"
# GermanIMPACT thresholds: remission below 5; response at 50% improvement.
REMISSION_BELOW: Final = 5
RESPONSE_IMPROVEMENT_PERCENT: Final = 50


def suggest_decision(baseline_total: int, latest_total: int) -> TreatmentDecision:
    """GermanIMPACT review decision from the baseline and latest PHQ-9 totals.

    Source: GermanIMPACT treatment algorithm (Trials 2014, 15:351), rules version
    ``RULES_VERSION``: PHQ-9 below 5 -> relapse prevention; improvement of 50% or more
    -> keep; otherwise -> change. From a baseline of 0 a latest total of 5 or more is
    a worsening: change.
    """
    if latest_total < REMISSION_BELOW:
        return TreatmentDecision.RELAPSE_PREVENTION
    if baseline_total <= 0:
        return TreatmentDecision.CHANGE
    # Integer arithmetic: 100 * drop >= 50 * baseline, no float rounding at the edge.
    drop = baseline_total - latest_total
    if 100 * drop >= RESPONSE_IMPROVEMENT_PERCENT * baseline_total:
        return TreatmentDecision.KEEP
    return TreatmentDecision.CHANGE


@dataclass
class Goal:
    """A goal of the plan, in the patient's words where possible."""

    goal_id: UUID
    description: str
    added_at: datetime
    status: GoalStatus = GoalStatus.OPEN
    closed_at: datetime | None = None
    close_reason: str | None = None


@dataclass
class Target:
    """A measurable treatment target (e.g. PHQ-9 below 5)."""

    target_id: UUID
    instrument: Instrument
    kind: TargetKind
    value: int
    due_on: date | None
    set_at: datetime
    removed_at: datetime | None = None


@dataclass
class Intervention:
    """A treatment: medication (name and dose), psychotherapy (modality) or other."""

    intervention_id: UUID
    kind: InterventionKind
    name: str
    dose: str | None
    modality: PsychotherapyModality | None
    started_at: datetime
    status: InterventionStatus = InterventionStatus.ACTIVE
    changed_at: datetime | None = None
    change_count: int = 0
    stopped_at: datetime | None = None
    stop_reason: str | None = None


@dataclass
class Review:
    """A treat-to-target review of the plan and its decision."""

    review_id: UUID
    decision: TreatmentDecision
    reviewed_at: datetime
    reviewer_id: UUID | None
    baseline_total: int | None
    latest_total: int | None
    suggested_decision: TreatmentDecision | None


@dataclass
class Revision:
    """A revision of the plan with its reason."""

    revision_number: int
    reason: str
    revised_at: datetime


def _ts(now: datetime) -> datetime:
    require_aware(now, "now")
    return now


class CarePlan(Snapshotting, Aggregate):
    """The treatment plan of one patient for one episode."""

    STREAM_TYPE: ClassVar[str] = "care_plan"
    TOPIC: ClassVar[str] = STREAM_TYPE

    # --- state: declared once; snapshots and their codec derive from it (domain.codec) --

    patient_id: UUID
    episode_number: int
    author_id: UUID | None
    created_at: datetime
    status: CarePlanStatus
    closed_at: datetime | None
    close_reason: str | None
    goals: dict[UUID, Goal]
    targets: dict[UUID, Target]
    interventions: dict[UUID, Intervention]
    reviews: list[Review]
    revisions: list[Revision]

    class Event(Aggregate.Event):
        """Base of the care plan's events."""

    class Created(Aggregate.Created):
        """A care plan was created for a patient's episode."""

        EVENT_NAME: ClassVar[str] = "care_plan.created"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        episode_number: int
        author_id: UUID | None
        occurred_at: datetime

    class GoalAdded(Aggregate.Event):
        """A goal was added."""

        EVENT_NAME: ClassVar[str] = "care_plan.goal_added"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"description"})
        patient_id: UUID
        goal_id: UUID
        description: str
        occurred_at: datetime

    class GoalClosed(Aggregate.Event):
        """A goal was achieved or dropped."""

        EVENT_NAME: ClassVar[str] = "care_plan.goal_closed"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        goal_id: UUID
        status: str
        reason: str | None
        occurred_at: datetime

    class TargetSet(Aggregate.Event):
        """A measurable target was set."""

        EVENT_NAME: ClassVar[str] = "care_plan.target_set"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        target_id: UUID
        instrument: str
        kind: str
        value: int
        due_on: date | None
        occurred_at: datetime

    class TargetRemoved(Aggregate.Event):
        """A target was removed."""

        EVENT_NAME: ClassVar[str] = "care_plan.target_removed"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        target_id: UUID
        occurred_at: datetime

    class InterventionStarted(Aggregate.Event):
        """An intervention started."""

        EVENT_NAME: ClassVar[str] = "care_plan.intervention_started"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"name", "dose"})
        patient_id: UUID
        intervention_id: UUID
        kind: str
        name: str
        dose: str | None
        modality: str | None
        occurred_at: datetime

    class InterventionChanged(Aggregate.Event):
        """An intervention changed (e.g. a new dose); the event holds the new details."""

        EVENT_NAME: ClassVar[str] = "care_plan.intervention_changed"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"name", "dose", "reason"})
        patient_id: UUID
        intervention_id: UUID
        name: str
        dose: str | None
        modality: str | None
        reason: str | None
        occurred_at: datetime

    class InterventionStopped(Aggregate.Event):
        """An intervention stopped."""

        EVENT_NAME: ClassVar[str] = "care_plan.intervention_stopped"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        intervention_id: UUID
        reason: str | None
        occurred_at: datetime

    class Reviewed(Aggregate.Event):
        """The plan was reviewed and a treatment decision taken."""

        EVENT_NAME: ClassVar[str] = "care_plan.reviewed"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        review_id: UUID
        decision: str
        reviewer_id: UUID | None
        baseline_total: int | None
        latest_total: int | None
        suggested_decision: str | None
        rules_version: str
        occurred_at: datetime

    class Revised(Aggregate.Event):
        """The plan was revised, with a reason."""

        EVENT_NAME: ClassVar[str] = "care_plan.revised"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        revision_number: int
        reason: str
        occurred_at: datetime

    class Closed(Aggregate.Event):
        """The plan was closed (episode ended or plan replaced)."""

        EVENT_NAME: ClassVar[str] = "care_plan.closed"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        reason: str | None
        occurred_at: datetime

    def __init__(self) -> None:
        """Nothing: the state is set from the creation event by :meth:`_created`."""

    @applies(Created)
    def _created(self, e: Created) -> None:
        """Initial state (runs on replay too: no checks here)."""
        self.patient_id = e.patient_id
        self.episode_number = e.episode_number
        self.author_id = e.author_id
        self.created_at = e.occurred_at
        self.status = CarePlanStatus.ACTIVE
        self.closed_at = None
        self.close_reason = None
        self.goals = {}
        self.targets = {}
        self.interventions = {}
        self.reviews = []
        self.revisions = []

    @classmethod
    def create(
        cls,
        *,
        patient_id: UUID,
        episode_number: int,
        occurred_at: datetime,
        now: datetime,
        author_id: UUID | None = None,
        id: UUID | None = None,  # the library's name for the aggregate id
    ) -> Self:
        """Create the plan for the patient's episode ``episode_number`` (1-based)."""
        check_occurred_at(occurred_at, now)
        require_uuid(patient_id, "patient_id")
        for name, value in (("author_id", author_id), ("id", id)):
            if value is not None:
                require_uuid(value, name)
        if isinstance(episode_number, bool) or not isinstance(episode_number, int):
            raise InvalidPayloadValueError("episode_number must be an integer")
        if episode_number < 1:
            raise InvalidPayloadValueError("episode_number starts at 1")
        return cls._create(
            cls.Created,
            id=id,
            timestamp=_ts(now),
            patient_id=patient_id,
            episode_number=episode_number,
            author_id=author_id,
            occurred_at=occurred_at,
        )

    # --- queries ----------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Closed plans accept no changes."""
        return self.status is CarePlanStatus.CLOSED

    @property
    def active_interventions(self) -> list[Intervention]:
        """Interventions not stopped."""
        return [i for i in self.interventions.values() if i.status is InterventionStatus.ACTIVE]

    @property
    def revision_number(self) -> int:
        """Number of revisions so far."""
        return len(self.revisions)

    # --- goals and targets ------------------------------------------------------------

    def add_goal(
        self, *, description: str, occurred_at: datetime, now: datetime, goal_id: UUID | None = None
    ) -> UUID:
        """Add a goal; returns its id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        text = problems.check(require_text, description, "description")
        problems.raise_any()
        assert text is not None  # checked above
        new_id = _new_id(goal_id, self.goals, "goal_id")
        self._goal_added(
            patient_id=self.patient_id,
            goal_id=new_id,
            description=text,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def close_goal(
        self,
        *,
        goal_id: UUID,
        status: GoalStatus | str,
        occurred_at: datetime,
        now: datetime,
        reason: str | None = None,
    ) -> None:
        """Mark a goal achieved or dropped (a dropped goal needs a reason)."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written;
        # the input is checked whole before the goal is looked up.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        new_status = problems.check(require_enum, GoalStatus, status, "status")
        seen = len(problems.found)
        why = problems.check(optional_text, reason, "reason")
        if new_status is GoalStatus.DROPPED and why is None and len(problems.found) == seen:
            problems.add(
                ReasonRequiredError(
                    "dropping a goal needs a reason", aggregate_id=self.id, field="reason"
                )
            )
        problems.raise_any()
        if new_status is GoalStatus.OPEN:
            raise GoalAlreadyClosedError("a goal can be closed as achieved or dropped only")
        goal = self.goals.get(goal_id)
        if goal is None:
            raise GoalNotFoundError(f"no goal {goal_id}", aggregate_id=self.id)
        if goal.status is not GoalStatus.OPEN:
            raise GoalAlreadyClosedError(f"goal {goal_id} is closed already", aggregate_id=self.id)
        assert new_status is not None  # checked above
        self._goal_closed(
            patient_id=self.patient_id,
            goal_id=goal_id,
            status=new_status.value,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def set_target(
        self,
        *,
        instrument: Instrument | str,
        kind: TargetKind | str,
        value: int,
        occurred_at: datetime,
        now: datetime,
        due_on: date | None = None,
        target_id: UUID | None = None,
    ) -> UUID:
        """Set a target such as PHQ-9 below 5 (``score_below``, 5) or a 50% reduction
        (``reduction_percent``, 50); returns its id.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        checked_spec = problems.check(spec_for, instrument)
        checked_kind = problems.check(require_enum, TargetKind, kind, "kind")
        if checked_spec is not None and checked_kind is not None:
            problems.check(_check_target_value, checked_spec, checked_kind, value, self.id)
        if due_on is not None and (isinstance(due_on, datetime) or not isinstance(due_on, date)):
            problems.add(
                InvalidTargetError("due_on must be a date", aggregate_id=self.id, field="due_on")
            )
        problems.raise_any()
        assert checked_spec is not None and checked_kind is not None  # checked above
        spec, what = checked_spec, checked_kind
        new_id = _new_id(target_id, self.targets, "target_id")
        self._target_set(
            patient_id=self.patient_id,
            target_id=new_id,
            instrument=spec.instrument.value,
            kind=what.value,
            value=value,
            due_on=due_on,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def remove_target(self, *, target_id: UUID, occurred_at: datetime, now: datetime) -> None:
        """Remove a target."""
        self._check_open(occurred_at, now)
        target = self.targets.get(target_id)
        if target is None or target.removed_at is not None:
            raise TargetNotFoundError(f"no target {target_id}", aggregate_id=self.id)
        self._target_removed(
            patient_id=self.patient_id,
            target_id=target_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- interventions ----------------------------------------------------------------

    def start_intervention(
        self,
        *,
        kind: InterventionKind | str,
        name: str,
        occurred_at: datetime,
        now: datetime,
        dose: str | None = None,
        modality: PsychotherapyModality | str | None = None,
        intervention_id: UUID | None = None,
    ) -> UUID:
        """Start an intervention; returns its id.

        A medication needs a name and a dose; a psychotherapy needs a modality (its
        ``name`` describes it, e.g. the provider or programme); other needs a name.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        what = problems.check(require_enum, InterventionKind, kind, "kind")
        details = (
            problems.check(self._intervention_details, what, name, dose, modality)
            if what is not None
            else None
        )
        problems.raise_any()
        assert what is not None and details is not None  # checked above
        label, amount, how = details
        new_id = _new_id(intervention_id, self.interventions, "intervention_id")
        self._intervention_started(
            patient_id=self.patient_id,
            intervention_id=new_id,
            kind=what.value,
            name=label,
            dose=amount,
            modality=how.value if how is not None else None,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def change_intervention(
        self,
        *,
        intervention_id: UUID,
        occurred_at: datetime,
        now: datetime,
        name: str | None = None,
        dose: str | None = None,
        modality: PsychotherapyModality | str | None = None,
        reason: str | None = None,
    ) -> None:
        """Change an active intervention (None keeps a detail as it is)."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written;
        # the details are checked against the intervention when it is there and active.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        why = problems.check(optional_text, reason, "reason")
        found = self.interventions.get(intervention_id)
        details = None
        if found is not None and found.status is InterventionStatus.ACTIVE:
            details = problems.check(
                self._intervention_details,
                found.kind,
                name if name is not None else found.name,
                dose if dose is not None else found.dose,
                modality if modality is not None else found.modality,
            )
        problems.raise_any()
        current = self._active_intervention(intervention_id)
        assert details is not None  # checked above
        label, amount, how = details
        if (label, amount, how) == (current.name, current.dose, current.modality):
            raise InterventionDetailsError("the change changes nothing", aggregate_id=self.id)
        self._intervention_changed(
            patient_id=self.patient_id,
            intervention_id=intervention_id,
            name=label,
            dose=amount,
            modality=how.value if how is not None else None,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def stop_intervention(
        self,
        *,
        intervention_id: UUID,
        occurred_at: datetime,
        now: datetime,
        reason: str | None = None,
    ) -> None:
        """Stop an active intervention."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        why = problems.check(optional_text, reason, "reason")
        problems.raise_any()
        current = self._active_intervention(intervention_id)
        if occurred_at < current.started_at:
            raise OutOfOrderError(
                "the stop precedes the start", aggregate_id=self.id, field="occurred_at"
            )
        self._intervention_stopped(
            patient_id=self.patient_id,
            intervention_id=intervention_id,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- reviews, revisions, closing --------------------------------------------------

    def review(
        self,
        *,
        decision: TreatmentDecision | str,
        occurred_at: datetime,
        now: datetime,
        reviewer_id: UUID | None = None,
        baseline_total: int | None = None,
        latest_total: int | None = None,
        review_id: UUID | None = None,
    ) -> UUID:
        """Record a treat-to-target review and its decision; returns its id.

        When both PHQ-9 totals are given, the GermanIMPACT suggestion is stored beside
        the team's decision, so a report can show where the team chose otherwise.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        checked = problems.check(require_enum, TreatmentDecision, decision, "decision")
        if reviewer_id is not None:
            problems.check(require_uuid, reviewer_id, "reviewer_id")
        phq9_max = spec_for(Instrument.PHQ9).max_total
        for field_name, total in (
            ("baseline_total", baseline_total),
            ("latest_total", latest_total),
        ):
            if total is not None and (
                isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= phq9_max
            ):
                problems.add(
                    InvalidTargetError(
                        f"{field_name} must be a PHQ-9 total 0-{phq9_max}",
                        aggregate_id=self.id,
                        field=field_name,
                    )
                )
        problems.raise_any()
        assert checked is not None  # checked above
        what = checked
        suggestion = (
            suggest_decision(baseline_total, latest_total)
            if baseline_total is not None and latest_total is not None
            else None
        )
        new_id = _new_id(review_id, {r.review_id for r in self.reviews}, "review_id")
        self._reviewed(
            patient_id=self.patient_id,
            review_id=new_id,
            decision=what.value,
            reviewer_id=reviewer_id,
            baseline_total=baseline_total,
            latest_total=latest_total,
            suggested_decision=suggestion.value if suggestion is not None else None,
            rules_version=RULES_VERSION,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def revise(self, *, reason: str, occurred_at: datetime, now: datetime) -> int:
        """Record a revision of the plan with its reason; returns the revision number."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        why = problems.check(_required_reason, reason, "a revision needs a reason", self.id)
        problems.raise_any()
        assert why is not None  # checked above
        number = self.revision_number + 1
        self._revised(
            patient_id=self.patient_id,
            revision_number=number,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return number

    def close(self, *, occurred_at: datetime, now: datetime, reason: str | None = None) -> None:
        """Close the plan; it accepts no further changes."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_open, occurred_at, now)
        why = problems.check(optional_text, reason, "reason")
        problems.raise_any()
        self._closed(
            patient_id=self.patient_id,
            reason=why,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- helpers ----------------------------------------------------------------------

    def _check_open(self, occurred_at: datetime, now: datetime) -> None:
        check_occurred_at(occurred_at, now)
        if self.is_closed:
            raise CarePlanClosedError("the care plan is closed", aggregate_id=self.id)
        if occurred_at < self.created_at:
            raise OutOfOrderError(
                "the change precedes the plan", aggregate_id=self.id, field="occurred_at"
            )

    def _active_intervention(self, intervention_id: UUID) -> Intervention:
        current = self.interventions.get(intervention_id)
        if current is None:
            raise InterventionNotFoundError(
                f"no intervention {intervention_id}", aggregate_id=self.id
            )
        if current.status is InterventionStatus.STOPPED:
            raise InterventionStoppedError(
                f"intervention {intervention_id} was stopped", aggregate_id=self.id
            )
        return current

    def _intervention_details(
        self,
        kind: InterventionKind,
        name: str,
        dose: str | None,
        modality: PsychotherapyModality | str | None,
    ) -> tuple[str, str | None, PsychotherapyModality | None]:
        """The checked name, dose and modality for ``kind``; every problem at once."""
        problems = Problems()
        details = InterventionDetailsError
        try:
            label = require_text(name, "name")
        except BlankValueError:
            problems.add(
                details("an intervention needs a name", aggregate_id=self.id, field="name")
            )
        except ValidationError as exc:
            problems.add(exc)
        dose_problems = len(problems.found)
        amount = problems.check(optional_text, dose, "dose")
        bad_dose = len(problems.found) > dose_problems
        how = (
            problems.check(require_enum, PsychotherapyModality, modality, "modality")
            if modality is not None
            else None
        )
        if kind is InterventionKind.MEDICATION and amount is None and not bad_dose:
            problems.add(details("a medication needs a dose", aggregate_id=self.id, field="dose"))
        if kind is InterventionKind.PSYCHOTHERAPY and how is None and modality is None:
            problems.add(
                details("a psychotherapy needs a modality", aggregate_id=self.id, field="modality")
            )
        if kind is not InterventionKind.PSYCHOTHERAPY and modality is not None:
            problems.add(
                details(
                    "only a psychotherapy has a modality", aggregate_id=self.id, field="modality"
                )
            )
        problems.raise_any()
        return label, amount, how

    # --- apply (state changes only: these run again on replay) ------------------------

    @applies(GoalAdded)
    def _goal_added(self, e: GoalAdded) -> None:
        self.goals[e.goal_id] = Goal(
            goal_id=e.goal_id, description=e.description, added_at=e.occurred_at
        )

    @applies(GoalClosed)
    def _goal_closed(self, e: GoalClosed) -> None:
        goal = self.goals[e.goal_id]
        goal.status = GoalStatus(e.status)
        goal.closed_at = e.occurred_at
        goal.close_reason = e.reason

    @applies(TargetSet)
    def _target_set(self, e: TargetSet) -> None:
        self.targets[e.target_id] = Target(
            target_id=e.target_id,
            instrument=Instrument(e.instrument),
            kind=TargetKind(e.kind),
            value=e.value,
            due_on=e.due_on,
            set_at=e.occurred_at,
        )

    @applies(TargetRemoved)
    def _target_removed(self, e: TargetRemoved) -> None:
        self.targets[e.target_id].removed_at = e.occurred_at

    @applies(InterventionStarted)
    def _intervention_started(self, e: InterventionStarted) -> None:
        self.interventions[e.intervention_id] = Intervention(
            intervention_id=e.intervention_id,
            kind=InterventionKind(e.kind),
            name=e.name,
            dose=e.dose,
            modality=PsychotherapyModality(e.modality) if e.modality is not None else None,
            started_at=e.occurred_at,
        )

    @applies(InterventionChanged)
    def _intervention_changed(self, e: InterventionChanged) -> None:
        item = self.interventions[e.intervention_id]
        item.name = e.name
        item.dose = e.dose
        item.modality = PsychotherapyModality(e.modality) if e.modality is not None else None
        item.changed_at = e.occurred_at
        item.change_count += 1

    @applies(InterventionStopped)
    def _intervention_stopped(self, e: InterventionStopped) -> None:
        item = self.interventions[e.intervention_id]
        item.status = InterventionStatus.STOPPED
        item.stopped_at = e.occurred_at
        item.stop_reason = e.reason

    @applies(Reviewed)
    def _reviewed(self, e: Reviewed) -> None:
        self.reviews.append(
            Review(
                review_id=e.review_id,
                decision=TreatmentDecision(e.decision),
                reviewed_at=e.occurred_at,
                reviewer_id=e.reviewer_id,
                baseline_total=e.baseline_total,
                latest_total=e.latest_total,
                suggested_decision=(
                    TreatmentDecision(e.suggested_decision) if e.suggested_decision else None
                ),
            )
        )

    @applies(Revised)
    def _revised(self, e: Revised) -> None:
        self.revisions.append(
            Revision(revision_number=e.revision_number, reason=e.reason, revised_at=e.occurred_at)
        )

    @applies(Closed)
    def _closed(self, e: Closed) -> None:
        self.status = CarePlanStatus.CLOSED
        self.closed_at = e.occurred_at
        self.close_reason = e.reason


def _check_target_value(
    spec: InstrumentSpec, kind: TargetKind, value: int, plan_id: UUID | None
) -> None:
    """A whole number the instrument's total can be compared with (a threshold in its
    range, or a reduction of 1-100 percent)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTargetError(
            "the target value must be an integer", aggregate_id=plan_id, field="value"
        )
    if spec.scored_items == 0:
        raise InvalidTargetError(
            f"{spec.title} has no total to target", aggregate_id=plan_id, field="instrument"
        )
    if kind is TargetKind.SCORE_BELOW and not 1 <= value <= spec.max_total:
        raise InvalidTargetError(
            f"a {spec.title} threshold must be between 1 and {spec.max_total}",
            aggregate_id=plan_id,
            field="value",
        )
    if kind is TargetKind.REDUCTION_PERCENT and not 1 <= value <= 100:
        raise InvalidTargetError(
            "a reduction must be 1-100 percent", aggregate_id=plan_id, field="value"
        )


def _required_reason(reason: str, message: str, plan_id: UUID | None) -> str:
    """A reason that must be given: blank is ReasonRequiredError naming ``reason``."""
    try:
        return require_text(reason, "reason")
    except BlankValueError:
        raise ReasonRequiredError(message, aggregate_id=plan_id, field="reason") from None


def _new_id(given: UUID | None, existing: Any, field_name: str) -> UUID:
    """The given id (checked unique) or a fresh one."""
    if given is None:
        return uuid4()
    require_uuid(given, field_name)
    if given in existing:
        raise DuplicateIdError(f"{field_name} {given} exists already")
    return given
