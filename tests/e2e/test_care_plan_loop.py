"""A care plan over HTTP: goals, targets, interventions, treat-to-target review, revision, close."""

from __future__ import annotations

from typing import Any

from tests.e2e.journey import command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

PLAN = """... on CarePlanPayload {
    createdId logPosition
    carePlan {
      id patientId episodeNumber authorId status closeReason version
      goals { id description status closeReason }
      targets { id instrument kind value dueOn removedAt }
      interventions { id kind name dose modality status changeCount stopReason }
      reviews { decision suggestedDecision reviewerId baselineTotal latestTotal }
      revisions { number reason }
    }
}"""


def step(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    return command(server, operation, input, token, PLAN)


def plan_of(result: dict[str, Any]) -> dict[str, Any]:
    assert result["__typename"] == "CarePlanPayload", result
    plan: dict[str, Any] = result["carePlan"]
    return plan


async def test_a_care_plan_is_built_reviewed_revised_and_closed(
    server: ServerProcess, db_dsn: str
) -> None:
    """The PCP and the care manager manage the plan; the consultant cannot; each refusal or
    broken rule is a typed error that writes nothing."""
    team = enrolled_patient(server)
    created = plan_of(step(server, "createCarePlan", {"patientId": team.patient_id}, team.pcp))
    assert (created["episodeNumber"], created["status"]) == (1, "ACTIVE")
    assert created["authorId"] == str(team.pcp_id)
    plan_id = created["id"]
    on_plan = {"carePlanId": plan_id}

    goal_id = step(
        server, "addGoal", {**on_plan, "description": "Back to work."}, team.care_manager
    )["createdId"]
    other_goal_id = step(
        server, "addGoal", {**on_plan, "description": "Walk daily."}, team.care_manager
    )["createdId"]
    target = step(
        server,
        "setTarget",
        {**on_plan, "instrument": "PHQ9", "kind": "SCORE_BELOW", "value": 5, "dueOn": "2999-01-01"},
        team.pcp,
    )
    target_id = target["createdId"]
    assert plan_of(target)["targets"] == [
        {
            "id": target_id,
            "instrument": "PHQ9",
            "kind": "SCORE_BELOW",
            "value": 5,
            "dueOn": "2999-01-01",
            "removedAt": None,
        }
    ]
    written = await event_count(db_dsn, plan_id)

    refusals: list[tuple[str, dict[str, Any], str, str]] = [
        (
            "setTarget",
            {"instrument": "PHQ9", "kind": "SCORE_BELOW", "value": 40},
            "ValidationError",
            "INVALID_TARGET",
        ),
        (
            "startIntervention",
            {"kind": "MEDICATION", "name": "sertraline"},
            "ValidationError",
            "INTERVENTION_DETAILS",
        ),
        (
            "closeGoal",
            {"goalId": goal_id, "outcome": "DROPPED"},
            "ValidationError",
            "REASON_REQUIRED",
        ),
        ("reviseCarePlan", {"reason": "  "}, "ValidationError", "REASON_REQUIRED"),
        (
            "stopIntervention",
            {"interventionId": "00000000-0000-4000-8000-00000000beef"},
            "NotFoundError",
            "INTERVENTION_NOT_FOUND",
        ),
    ]
    for operation, fields, kind, code in refusals:
        result = step(server, operation, {**on_plan, **fields}, team.pcp)
        assert (result["__typename"], result["code"]) == (kind, code), operation
    by_consultant = step(server, "addGoal", {**on_plan, "description": "x"}, team.psychiatrist)
    assert by_consultant == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
    assert await event_count(db_dsn, plan_id) == written

    medication = step(
        server,
        "startIntervention",
        {**on_plan, "kind": "MEDICATION", "name": "sertraline", "dose": "50 mg"},
        team.pcp,
    )["createdId"]
    therapy = step(
        server,
        "startIntervention",
        {
            **on_plan,
            "kind": "PSYCHOTHERAPY",
            "name": "Problem solving, six sessions",
            "modality": "PROBLEM_SOLVING_THERAPY",
        },
        team.care_manager,
    )["createdId"]
    changed = plan_of(
        step(
            server,
            "changeIntervention",
            {**on_plan, "interventionId": medication, "dose": "100 mg", "reason": "Partial."},
            team.pcp,
        )
    )
    by_id = {i["id"]: i for i in changed["interventions"]}
    assert (by_id[medication]["dose"], by_id[medication]["changeCount"]) == ("100 mg", 1)
    assert by_id[therapy]["modality"] == "PROBLEM_SOLVING_THERAPY"

    stopped = plan_of(
        step(
            server,
            "stopIntervention",
            {**on_plan, "interventionId": therapy, "reason": "Completed."},
            team.care_manager,
        )
    )
    assert {i["id"]: i["status"] for i in stopped["interventions"]}[therapy] == "STOPPED"
    after_stop = step(
        server, "changeIntervention", {**on_plan, "interventionId": therapy, "name": "x"}, team.pcp
    )
    assert after_stop == {"__typename": "InvalidTransitionError", "code": "INTERVENTION_STOPPED"}

    reviewed = plan_of(
        step(
            server,
            "reviewCarePlan",
            {**on_plan, "decision": "KEEP", "baselineTotal": 18, "latestTotal": 12},
            team.care_manager,
        )
    )
    assert reviewed["reviews"] == [
        {
            "decision": "KEEP",
            "suggestedDecision": "CHANGE",
            "reviewerId": str(team.care_manager_id),
            "baselineTotal": 18,
            "latestTotal": 12,
        }
    ]
    revised = plan_of(
        step(server, "reviseCarePlan", {**on_plan, "reason": "Dose raised."}, team.pcp)
    )
    assert revised["revisions"] == [{"number": 1, "reason": "Dose raised."}]

    step(server, "closeGoal", {**on_plan, "goalId": goal_id, "outcome": "ACHIEVED"}, team.pcp)
    goals = plan_of(
        step(
            server,
            "closeGoal",
            {**on_plan, "goalId": other_goal_id, "outcome": "DROPPED", "reason": "Knee injury."},
            team.pcp,
        )
    )["goals"]
    assert [(g["status"], g["closeReason"]) for g in goals] == [
        ("ACHIEVED", None),
        ("DROPPED", "Knee injury."),
    ]
    removed = plan_of(step(server, "removeTarget", {**on_plan, "targetId": target_id}, team.pcp))
    assert removed["targets"][0]["removedAt"]

    closed = plan_of(
        step(server, "closeCarePlan", {**on_plan, "reason": "Episode ended."}, team.pcp)
    )
    assert (closed["status"], closed["closeReason"]) == ("CLOSED", "Episode ended.")
    written = await event_count(db_dsn, plan_id)
    assert closed["version"] == written

    late = step(server, "addGoal", {**on_plan, "description": "Too late."}, team.pcp)
    assert late == {"__typename": "InvalidTransitionError", "code": "CARE_PLAN_CLOSED"}
    assert await event_count(db_dsn, plan_id) == written


def test_a_care_plan_needs_a_patient_on_the_caseload(server: ServerProcess) -> None:
    """A registered patient who is not enrolled gets no plan; a made-up plan is not found."""
    cm = server.token("care_manager")
    registered = command(
        server,
        "registerPatient",
        {"givenName": "Test", "familyName": "Person", "birthDate": "1980-05-05", "mrn": "E2E-2"},
        cm,
        "... on PatientPayload { patient { id } }",
    )
    not_enrolled = step(server, "createCarePlan", {"patientId": registered["patient"]["id"]}, cm)
    assert not_enrolled == {"__typename": "InvalidTransitionError", "code": "PATIENT_NOT_ENROLLED"}

    missing = step(
        server,
        "closeCarePlan",
        {"carePlanId": "00000000-0000-4000-8000-00000000dead"},
        cm,
    )
    assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
