"""The wider team's worklist over HTTP (issue 18): a behavioral health consultant sees
the warm handoffs offered to them until they accept (or miss) them, and each wider-team
member the tasks assigned to them, on the patients whose team they are on only."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from tests.e2e.server import ServerProcess
from tests.e2e.test_pcbh import CREATED, list_staff, run, with_bhc

WORKLIST = """{ worklist { __typename
    ... on WorklistConnection { asOf totalCount
      edges { node { kind urgency patientId dueOn overdue taskId recordId assigneeId } } }
    ... on ForbiddenError { code }
} }"""


def worklist(server: ServerProcess, token: str) -> dict[str, Any]:
    body = server.graphql(WORKLIST, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["worklist"]
    return result


def items(server: ServerProcess, token: str) -> list[dict[str, Any]]:
    page = worklist(server, token)
    assert page["__typename"] == "WorklistConnection", page
    assert page["totalCount"] == len(page["edges"])
    return [e["node"] for e in page["edges"]]


def test_a_bhc_sees_open_handoffs_and_their_tasks_and_a_social_worker_their_tasks(
    server: ServerProcess,
) -> None:
    team, bhc, bhc_token = with_bhc(server)
    empty = worklist(server, bhc_token)
    assert empty["edges"] == []
    today = empty["asOf"]  # the clinic day the server counts in

    handoff = run(
        server,
        "offerWarmHandoff",
        {"patientId": team.patient_id, "toUserId": str(bhc)},
        team.pcp,
        CREATED,
    )["createdId"]
    task = run(
        server,
        "createTask",
        {"patientId": team.patient_id, "kind": "OTHER", "dueOn": today, "assigneeId": str(bhc)},
        team.care_manager,
        CREATED,
    )["createdId"]
    shown = items(server, bhc_token)
    assert [(i["kind"], i["urgency"], i["recordId"], i["taskId"]) for i in shown] == [
        ("HANDOFF_AWAITING", 0, handoff, None),
        ("TASK", 5, None, task),
    ]
    assert {(i["patientId"], i["dueOn"], i["overdue"]) for i in shown} == {
        (team.patient_id, today, False)
    }

    # Accepted: the handoff leaves the worklist; the task stays.
    accepted = run(
        server, "acceptWarmHandoff", {"patientId": team.patient_id, "handoffId": handoff}, bhc_token
    )
    assert accepted["__typename"] == "PatientPayload", accepted
    assert [i["kind"] for i in items(server, bhc_token)] == ["TASK"]

    # A social worker on the team sees the tasks assigned to them, and no handoffs.
    social_worker = uuid4()
    list_staff(server, social_worker, "SOCIAL_WORKER")
    added = run(
        server,
        "addWiderTeamMember",
        {"patientId": team.patient_id, "userId": str(social_worker), "role": "SOCIAL_WORKER"},
        team.care_manager,
    )
    assert added["__typename"] == "PatientPayload", added
    sw_token = server.token("social_worker", user=social_worker)
    assert items(server, sw_token) == []
    sw_task = run(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OTHER",
            "dueOn": "2020-01-01",
            "assigneeId": str(social_worker),
        },
        team.care_manager,
        CREATED,
    )["createdId"]
    (only,) = items(server, sw_token)
    assert (only["kind"], only["taskId"], only["overdue"], only["urgency"]) == (
        "TASK",
        sw_task,
        True,
        1,
    )

    # Someone not on the patient's team sees nothing of it, even with a task assigned.
    outsider = uuid4()
    list_staff(server, outsider, "BEHAVIORAL_HEALTH_CONSULTANT")
    run(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OTHER",
            "dueOn": today,
            "assigneeId": str(outsider),
        },
        team.care_manager,
        CREATED,
    )
    assert items(server, server.token("behavioral_health_consultant", user=outsider)) == []


def test_roles_without_a_worklist_are_refused(server: ServerProcess) -> None:
    for role in ("caregiver", "compliance", "admin"):
        refused = worklist(server, server.token(role))
        assert refused == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
