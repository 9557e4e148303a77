"""A patient's episode over HTTP beyond the first path: relapse, consent, flags, tasks,
case review, hospital stays, the care team and the end of an episode."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.e2e.journey import CareTeam, command, enrolled_patient, event_count
from tests.e2e.server import DEFAULT_ORG, ServerProcess

PATIENT = """... on PatientPayload {
    createdId logPosition
    patient {
      status episodeNumber version
      careTeam { careManagerId pcpId psychiatricConsultantId }
      flags { id kind ruleId inputs }
      openTasks { id kind dueOn }
    }
}"""


def step(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    return command(server, operation, input, token, PATIENT)


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["__typename"] == "PatientPayload", result
    return result


def status_after(server: ServerProcess, operation: str, team: CareTeam, **fields: Any) -> str:
    result = ok(step(server, operation, {"patientId": team.patient_id, **fields}, team.pcp))
    status: str = result["patient"]["status"]
    return status


async def test_an_episode_moves_through_relapse_prevention_and_ends_then_a_new_one_starts(
    server: ServerProcess, db_dsn: str
) -> None:
    """Treatment, relapse prevention plan, relapse, discharge, a new referral, deactivation;
    illegal moves are typed errors that write nothing."""
    team = enrolled_patient(server)
    pid = {"patientId": team.patient_id}
    assert status_after(server, "startTreatment", team) == "active_treatment"

    empty = step(
        server,
        "writeRelapsePreventionPlan",
        {**pid, "warningSigns": [], "strategies": ["Call the care manager."]},
        team.care_manager,
    )
    assert (empty["__typename"], empty["code"]) == ("ValidationError", "INVALID_PAYLOAD_VALUE")
    plan = ok(
        step(
            server,
            "writeRelapsePreventionPlan",
            {**pid, "warningSigns": ["Poor sleep."], "strategies": ["Call the care manager."]},
            team.care_manager,
        )
    )
    assert plan["createdId"]
    assert plan["patient"]["status"] == "relapse_prevention"

    assert status_after(server, "resumeTreatment", team) == "active_treatment"
    written = await event_count(db_dsn, team.patient_id)
    for operation in ("resumeTreatment", "referPatient", "enrollPatient"):
        result = step(server, operation, pid, team.pcp)
        assert result == {
            "__typename": "InvalidTransitionError",
            "code": "INVALID_EPISODE_TRANSITION",
        }, operation
    assert await event_count(db_dsn, team.patient_id) == written

    assert status_after(server, "dischargePatient", team, reason="COMPLETED") == "discharged"
    again = step(server, "deactivatePatient", {**pid, "reason": "DECLINED"}, team.pcp)
    assert again == {"__typename": "InvalidTransitionError", "code": "INVALID_EPISODE_TRANSITION"}

    referred = ok(step(server, "referPatient", pid, team.pcp))["patient"]
    assert (referred["status"], referred["episodeNumber"]) == ("referred", 2)
    admin = server.token("admin", org=DEFAULT_ORG)
    deactivated = ok(step(server, "deactivatePatient", {**pid, "reason": "MOVED_AWAY"}, admin))
    assert deactivated["patient"]["status"] == "deactivated"


async def test_consent_flags_tasks_reviews_and_hospital_stays_follow_their_rules(
    server: ServerProcess, db_dsn: str
) -> None:
    """Each record is created once and closed once; a second close, a missing method or a
    wrong role is a typed error that writes nothing."""
    team = enrolled_patient(server)
    pid = {"patientId": team.patient_id}
    before = await event_count(db_dsn, team.patient_id)

    no_method = step(server, "grantConsent", {**pid, "kind": "COCM_TREATMENT"}, team.care_manager)
    assert (no_method["__typename"], no_method["code"]) == (
        "ValidationError",
        "CONSENT_METHOD_REQUIRED",
    )
    consent_id = ok(
        step(
            server,
            "grantConsent",
            {**pid, "kind": "COCM_TREATMENT", "method": "WRITTEN", "costSharingExplained": True},
            team.care_manager,
        )
    )["createdId"]
    ok(step(server, "revokeConsent", {**pid, "consentId": consent_id}, team.care_manager))
    revoked = step(server, "revokeConsent", {**pid, "consentId": consent_id}, team.care_manager)
    assert revoked == {"__typename": "InvalidTransitionError", "code": "CONSENT_ALREADY_REVOKED"}

    raised = ok(
        step(
            server,
            "raiseFlag",
            {**pid, "kind": "NEEDS_PSYCHIATRIC_REVIEW", "note": "Side effects reported."},
            team.pcp,
        )
    )
    flag_id = raised["createdId"]
    assert raised["patient"]["flags"] == [
        {
            "id": flag_id,
            "kind": "needs_psychiatric_review",
            "ruleId": "team_member.manual",
            "inputs": {"raised_by": str(team.pcp_id), "note": "Side effects reported."},
        }
    ]
    twice = step(server, "raiseFlag", {**pid, "kind": "NEEDS_PSYCHIATRIC_REVIEW"}, team.pcp)
    assert twice == {"__typename": "InvalidTransitionError", "code": "FLAG_ALREADY_RAISED"}
    cleared = ok(
        step(
            server,
            "clearFlag",
            {**pid, "flagId": flag_id, "reason": "Reviewed."},
            team.psychiatrist,
        )
    )
    assert cleared["patient"]["flags"] == []
    again = step(server, "clearFlag", {**pid, "flagId": flag_id}, team.psychiatrist)
    assert again == {"__typename": "InvalidTransitionError", "code": "FLAG_ALREADY_CLEARED"}

    task = ok(
        step(
            server,
            "createTask",
            {**pid, "kind": "OUTREACH", "dueOn": "2999-01-01"},
            team.care_manager,
        )
    )
    task_id = task["createdId"]
    assert {"id": task_id, "kind": "outreach", "dueOn": "2999-01-01"} in task["patient"][
        "openTasks"
    ]
    done = ok(step(server, "completeTask", {**pid, "taskId": task_id}, team.care_manager))
    assert task_id not in [t["id"] for t in done["patient"]["openTasks"]]
    done_twice = step(server, "completeTask", {**pid, "taskId": task_id}, team.care_manager)
    assert done_twice == {"__typename": "InvalidTransitionError", "code": "TASK_ALREADY_COMPLETED"}

    review = ok(step(server, "recordCaseReview", {**pid, "decision": "CHANGE"}, team.psychiatrist))
    assert review["createdId"]
    by_care_manager = step(server, "recordCaseReview", pid, team.care_manager)
    assert by_care_manager == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}

    ok(step(server, "admitInpatient", pid, team.care_manager))
    admitted_twice = step(server, "admitInpatient", pid, team.care_manager)
    assert admitted_twice == {"__typename": "InvalidTransitionError", "code": "ALREADY_INPATIENT"}
    ok(step(server, "dischargeInpatient", pid, team.care_manager))
    not_in = step(server, "dischargeInpatient", pid, team.care_manager)
    assert not_in == {"__typename": "InvalidTransitionError", "code": "NOT_INPATIENT"}

    # grant, revoke, raise, clear, create, complete, review, admit, discharge: one event each.
    assert await event_count(db_dsn, team.patient_id) == before + 9


async def test_the_care_team_loses_a_member_and_a_care_manager_leaving_still_sees_the_result(
    server: ServerProcess, db_dsn: str
) -> None:
    """An admin empties the consultant's seat; a care manager who takes themselves off the
    team gets the change they made rather than an error (a read audited as the result of
    their own command, not as break-the-glass), and cannot read the patient after."""
    team = enrolled_patient(server)
    pid = {"patientId": team.patient_id}
    admin = server.token("admin")
    emptied = ok(
        step(server, "unassignCareTeamMember", {**pid, "role": "PSYCHIATRIC_CONSULTANT"}, admin)
    )
    assert emptied["patient"]["careTeam"] == {
        "careManagerId": str(team.care_manager_id),
        "pcpId": str(team.pcp_id),
        "psychiatricConsultantId": None,
    }
    empty = step(server, "unassignCareTeamMember", {**pid, "role": "PSYCHIATRIC_CONSULTANT"}, admin)
    assert empty == {
        "__typename": "InvalidTransitionError",
        "code": "CARE_TEAM_MEMBER_NOT_ASSIGNED",
    }

    left = ok(
        step(server, "unassignCareTeamMember", {**pid, "role": "CARE_MANAGER"}, team.care_manager)
    )
    assert left["patient"]["careTeam"]["careManagerId"] is None
    read = server.graphql(
        "query($id: UUID!) { patient(id: $id) { __typename } }",
        {"id": team.patient_id},
        token=team.care_manager,
    )
    assert read["data"]["patient"]["__typename"] == "ForbiddenError"

    conn = await asyncpg.connect(db_dsn)
    try:
        audited = await conn.fetch(
            "SELECT purpose_of_use, reason FROM access_log WHERE actor_id = $1 "
            "AND operation = 'unassignCareTeamMember' AND outcome = 'allowed'",
            team.care_manager_id,
        )
    finally:
        await conn.close()
    assert [(r["purpose_of_use"], r["reason"]) for r in audited] == [
        ("TREAT", "OWN_COMMAND_RESULT")
    ]
