"""The CarePlan aggregate: goals, targets, interventions, reviews, revisions, closing."""

import json
from uuid import uuid4

import pytest

from domain.care_plan import CarePlan, suggest_decision
from domain.common import GoalStatus, InterventionStatus, TreatmentDecision
from domain.errors import (
    CarePlanClosedError,
    GoalAlreadyClosedError,
    GoalNotFoundError,
    InterventionDetailsError,
    InterventionNotFoundError,
    InterventionStoppedError,
    InvalidEnumValueError,
    InvalidPayloadValueError,
    InvalidTargetError,
    OutOfOrderError,
    ReasonRequiredError,
    TargetNotFoundError,
    UnknownInstrumentError,
)
from tests.unit.domain.domain_support import NOW, PCP, T0, assert_replays, day, names

PATIENT = uuid4()


def new_plan() -> CarePlan:
    """A care plan for episode 1."""
    return CarePlan.create(patient_id=PATIENT, episode_number=1, occurred_at=T0, now=NOW)


def test_creating_a_plan_ties_it_to_patient_and_episode() -> None:
    """care_plan.created records the patient and the episode."""
    chosen = uuid4()
    plan = CarePlan.create(
        id=chosen, patient_id=PATIENT, episode_number=2, author_id=PCP, occurred_at=T0, now=NOW
    )
    assert (plan.id, plan.patient_id, plan.episode_number) == (chosen, PATIENT, 2)
    assert names(plan.collect_events()) == ["care_plan.created"]


@pytest.mark.parametrize("episode", [0, -1])
def test_episode_number_starts_at_one(episode: int) -> None:
    """Episodes are numbered from 1."""
    with pytest.raises(InvalidPayloadValueError):
        CarePlan.create(patient_id=PATIENT, episode_number=episode, occurred_at=T0, now=NOW)


def test_goal_is_added_and_achieved() -> None:
    """A goal closes as achieved once."""
    plan = new_plan()
    goal_id = plan.add_goal(description="Back to work", occurred_at=day(1), now=NOW)
    plan.close_goal(goal_id=goal_id, status="achieved", occurred_at=day(30), now=NOW)
    assert plan.goals[goal_id].status is GoalStatus.ACHIEVED
    with pytest.raises(GoalAlreadyClosedError):
        plan.close_goal(goal_id=goal_id, status="dropped", reason="x", occurred_at=day(31), now=NOW)


def test_dropping_a_goal_needs_a_reason() -> None:
    """A dropped goal says why."""
    plan = new_plan()
    goal_id = plan.add_goal(description="Run 5 km", occurred_at=day(1), now=NOW)
    with pytest.raises(ReasonRequiredError):
        plan.close_goal(goal_id=goal_id, status="dropped", occurred_at=day(2), now=NOW)


def test_closing_an_unknown_goal_raises_not_found() -> None:
    """Only the plan's goals can be closed."""
    with pytest.raises(GoalNotFoundError):
        new_plan().close_goal(goal_id=uuid4(), status="achieved", occurred_at=day(1), now=NOW)


def test_remission_target_phq9_below_5_is_set() -> None:
    """PHQ-9 < 5 is a score_below target of 5."""
    plan = new_plan()
    target_id = plan.set_target(
        instrument="phq9", kind="score_below", value=5, occurred_at=day(1), now=NOW
    )
    assert plan.targets[target_id].value == 5
    plan.remove_target(target_id=target_id, occurred_at=day(2), now=NOW)
    with pytest.raises(TargetNotFoundError):
        plan.remove_target(target_id=target_id, occurred_at=day(3), now=NOW)


@pytest.mark.parametrize(
    ("instrument", "kind", "value"),
    [
        ("phq9", "score_below", 0),
        ("phq9", "score_below", 28),
        ("gad7", "score_below", 22),
        ("phq9", "reduction_percent", 0),
        ("phq9", "reduction_percent", 101),
        ("asq", "score_below", 1),
    ],
)
def test_target_outside_the_instrument_range_is_rejected(
    instrument: str, kind: str, value: int
) -> None:
    """Thresholds lie within the instrument's total; reductions within 1-100%."""
    with pytest.raises(InvalidTargetError):
        new_plan().set_target(
            instrument=instrument, kind=kind, value=value, occurred_at=day(1), now=NOW
        )


def test_target_for_an_unknown_instrument_is_rejected() -> None:
    """Targets name a known instrument."""
    with pytest.raises(UnknownInstrumentError):
        new_plan().set_target(
            instrument="beck", kind="score_below", value=5, occurred_at=day(1), now=NOW
        )


def test_medication_is_started_changed_and_stopped() -> None:
    """A medication keeps its name and dose through changes until stopped."""
    plan = new_plan()
    med = plan.start_intervention(
        kind="medication", name="sertraline", dose="50 mg daily", occurred_at=day(1), now=NOW
    )
    plan.change_intervention(
        intervention_id=med, dose="100 mg daily", reason="no response", occurred_at=day(70), now=NOW
    )
    assert plan.interventions[med].dose == "100 mg daily"
    assert plan.interventions[med].change_count == 1
    plan.stop_intervention(intervention_id=med, occurred_at=day(200), now=NOW)
    assert plan.interventions[med].status is InterventionStatus.STOPPED
    assert plan.active_interventions == []
    with pytest.raises(InterventionStoppedError):
        plan.change_intervention(intervention_id=med, dose="150 mg", occurred_at=day(201), now=NOW)


@pytest.mark.parametrize(
    ("kind", "name", "dose", "modality"),
    [
        ("medication", "sertraline", None, None),
        ("psychotherapy", "weekly sessions", None, None),
        ("medication", "sertraline", "50 mg", "problem_solving_therapy"),
        ("other", " ", None, None),
    ],
)
def test_intervention_needs_the_details_of_its_kind(
    kind: str, name: str, dose: str | None, modality: str | None
) -> None:
    """Medication needs a dose, psychotherapy a modality, every kind a name."""
    with pytest.raises(InterventionDetailsError):
        new_plan().start_intervention(
            kind=kind, name=name, dose=dose, modality=modality, occurred_at=day(1), now=NOW
        )


def test_psychotherapy_with_modality_is_started() -> None:
    """Psychotherapy records its modality."""
    plan = new_plan()
    pst = plan.start_intervention(
        kind="psychotherapy",
        name="6 sessions with care manager",
        modality="problem_solving_therapy",
        occurred_at=day(1),
        now=NOW,
    )
    assert plan.interventions[pst].modality is not None


def test_change_that_changes_nothing_is_rejected() -> None:
    """A change must change a detail."""
    plan = new_plan()
    med = plan.start_intervention(
        kind="medication", name="sertraline", dose="50 mg", occurred_at=day(1), now=NOW
    )
    with pytest.raises(InterventionDetailsError):
        plan.change_intervention(intervention_id=med, dose="50 mg", occurred_at=day(2), now=NOW)


def test_unknown_intervention_raises_not_found() -> None:
    """Only the plan's interventions can be changed."""
    with pytest.raises(InterventionNotFoundError):
        new_plan().stop_intervention(intervention_id=uuid4(), occurred_at=day(1), now=NOW)


@pytest.mark.parametrize(
    ("baseline", "latest", "decision"),
    [
        (20, 4, TreatmentDecision.RELAPSE_PREVENTION),
        (20, 5, TreatmentDecision.KEEP),
        (20, 10, TreatmentDecision.KEEP),
        (20, 11, TreatmentDecision.CHANGE),
        (15, 7, TreatmentDecision.KEEP),
        (15, 8, TreatmentDecision.CHANGE),
        (0, 6, TreatmentDecision.CHANGE),
        (3, 2, TreatmentDecision.RELAPSE_PREVENTION),
    ],
)
def test_germanimpact_suggestion_at_the_50_percent_and_below_5_edges(
    baseline: int, latest: int, decision: TreatmentDecision
) -> None:
    """Below 5: relapse prevention; 50% or more better: keep; otherwise: change."""
    assert suggest_decision(baseline, latest) is decision


def test_review_stores_decision_and_suggestion() -> None:
    """The team's decision is stored beside the algorithm's suggestion."""
    plan = new_plan()
    plan.review(decision="keep", baseline_total=18, latest_total=12, occurred_at=day(70), now=NOW)
    review = plan.reviews[0]
    assert review.decision is TreatmentDecision.KEEP
    assert review.suggested_decision is TreatmentDecision.CHANGE


@pytest.mark.parametrize("total", [-1, 28])
def test_review_rejects_totals_outside_phq9_range(total: int) -> None:
    """Review totals are PHQ-9 totals 0-27."""
    with pytest.raises(InvalidTargetError):
        new_plan().review(decision="keep", latest_total=total, occurred_at=day(1), now=NOW)


def test_review_rejects_an_unknown_decision() -> None:
    """Decisions are change, keep or relapse_prevention."""
    with pytest.raises(InvalidEnumValueError):
        new_plan().review(decision="wait", occurred_at=day(1), now=NOW)


def test_revision_needs_a_reason_and_counts_up() -> None:
    """Revisions are numbered and explained."""
    plan = new_plan()
    assert plan.revise(reason="Switch to PST", occurred_at=day(1), now=NOW) == 1
    assert plan.revise(reason="Add medication", occurred_at=day(2), now=NOW) == 2
    with pytest.raises(ReasonRequiredError):
        plan.revise(reason="", occurred_at=day(3), now=NOW)


def test_closed_plan_accepts_no_changes() -> None:
    """After closing every command raises CARE_PLAN_CLOSED."""
    plan = new_plan()
    plan.close(reason="episode ended", occurred_at=day(100), now=NOW)
    with pytest.raises(CarePlanClosedError):
        plan.add_goal(description="x", occurred_at=day(101), now=NOW)
    with pytest.raises(CarePlanClosedError):
        plan.close(occurred_at=day(101), now=NOW)


def test_change_before_the_plan_was_created_is_rejected() -> None:
    """Plan entries follow its creation."""
    with pytest.raises(OutOfOrderError):
        new_plan().add_goal(description="x", occurred_at=day(-1), now=NOW)


def test_care_plan_replays_and_snapshots_after_a_long_history() -> None:
    """Replay and snapshot round trips rebuild an equal plan."""
    plan = new_plan()
    goal = plan.add_goal(description="Sleep better", occurred_at=day(1), now=NOW)
    plan.add_goal(description="See friends", occurred_at=day(1), now=NOW)
    plan.set_target(
        instrument="phq9",
        kind="score_below",
        value=5,
        due_on=day(180).date(),
        occurred_at=day(1),
        now=NOW,
    )
    plan.set_target(
        instrument="gad7", kind="reduction_percent", value=50, occurred_at=day(1), now=NOW
    )
    med = plan.start_intervention(
        kind="medication", name="sertraline", dose="50 mg", occurred_at=day(1), now=NOW
    )
    plan.start_intervention(
        kind="psychotherapy",
        name="PST",
        modality="problem_solving_therapy",
        occurred_at=day(1),
        now=NOW,
    )
    plan.start_intervention(kind="other", name="exercise group", occurred_at=day(1), now=NOW)
    plan.review(decision="change", baseline_total=18, latest_total=16, occurred_at=day(70), now=NOW)
    plan.change_intervention(intervention_id=med, dose="100 mg", occurred_at=day(70), now=NOW)
    plan.revise(reason="Dose increase", occurred_at=day(70), now=NOW)
    plan.close_goal(goal_id=goal, status="achieved", occurred_at=day(120), now=NOW)
    plan.review(decision="relapse_prevention", occurred_at=day(150), now=NOW)
    plan.stop_intervention(intervention_id=med, reason="remission", occurred_at=day(300), now=NOW)
    plan.close(occurred_at=day(301), now=NOW)
    assert_replays(plan, plan.collect_events())
    state = json.loads(json.dumps(plan.snapshot_state()))
    assert CarePlan.from_snapshot_state(state) == plan
