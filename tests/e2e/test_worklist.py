"""Worklists over HTTP: each role's work for today across its patients, most urgent first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.journey import command, enrolled_patient
from tests.e2e.server import ServerProcess
from tests.e2e.test_consultation_loop import signed_note, step

WORKLIST = """query($first: Int!, $after: String) { worklist(first: $first, after: $after) {
  __typename
  ... on WorklistConnection {
    totalCount asOf pageInfo { hasNextPage endCursor }
    edges { node { kind urgency patientId dueOn overdue taskId taskKind assigneeId
                   recordId recommendationId } }
  }
  ... on ValidationError { code field }
  ... on ForbiddenError { code }
} }"""

TASK = "... on PatientPayload { createdId }"


def worklist(server: ServerProcess, token: str, first: int = 50, after: str | None = None) -> Any:
    body = server.graphql(WORKLIST, {"first": first, "after": after}, token=token)
    assert "errors" not in body, body
    return body["data"]["worklist"]


def kinds(page: Any) -> list[tuple[str, bool]]:
    return [(e["node"]["kind"], e["node"]["overdue"]) for e in page["edges"]]


def test_a_care_managers_worklist_shows_an_overdue_task_before_a_due_measurement(
    server: ServerProcess,
) -> None:
    """An overdue task and a patient without a PHQ-9 in 30 days, in urgency order, paged."""
    team = enrolled_patient(server)
    today = datetime.now(UTC).date()
    overdue = command(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OUTREACH",
            "dueOn": (today - timedelta(days=2)).isoformat(),
        },
        team.care_manager,
        TASK,
    )["createdId"]
    later = command(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OTHER",
            "dueOn": (today + timedelta(days=5)).isoformat(),
            "assigneeId": str(team.care_manager_id),
        },
        team.care_manager,
        TASK,
    )["createdId"]
    # A task for somebody else is not on this care manager's list.
    command(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OTHER",
            "dueOn": today.isoformat(),
            "assigneeId": str(team.pcp_id),
        },
        team.care_manager,
        TASK,
    )

    page = worklist(server, team.care_manager)
    assert page["__typename"] == "WorklistConnection", page
    assert kinds(page) == [("TASK", True), ("MEASUREMENT_DUE", False), ("TASK", False)]
    first, measurement, last = (e["node"] for e in page["edges"])
    assert (first["taskId"], first["taskKind"], first["dueOn"]) == (
        overdue,
        "outreach",
        (today - timedelta(days=2)).isoformat(),
    )
    assert measurement["patientId"] == team.patient_id
    assert (last["taskId"], last["assigneeId"]) == (later, str(team.care_manager_id))
    assert [e["node"]["urgency"] for e in page["edges"]] == sorted(
        e["node"]["urgency"] for e in page["edges"]
    )

    one = worklist(server, team.care_manager, first=1)
    assert one["totalCount"] == 3 and one["pageInfo"]["hasNextPage"]
    rest = worklist(server, team.care_manager, first=5, after=one["pageInfo"]["endCursor"])
    assert kinds(rest) == [("MEASUREMENT_DUE", False), ("TASK", False)]

    assert worklist(server, server.token("care_manager"))["totalCount"] == 0
    assert worklist(server, server.token("compliance")) == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }
    assert worklist(server, team.care_manager, first=0)["field"] == "first"
    assert worklist(server, team.care_manager, after="x")["field"] == "after"


def test_the_pcp_sees_recommendations_awaiting_and_the_psychiatrist_open_requests(
    server: ServerProcess,
) -> None:
    """Each recommendation of a signed note waits on the PCP; a new request on the consultant."""
    team = enrolled_patient(server)
    note_id, recommendation_ids = signed_note(server, team, ["Increase the dose.", "Check sleep."])
    pcp = worklist(server, team.pcp)
    awaiting = [e["node"] for e in pcp["edges"] if e["node"]["kind"] == "RECOMMENDATION_AWAITING"]
    assert {n["recommendationId"] for n in awaiting} == set(recommendation_ids)
    assert {n["recordId"] for n in awaiting} == {note_id}

    step(
        server,
        "requestConsultation",
        {"patientId": team.patient_id, "question": "Second opinion on sleep?"},
        team.care_manager,
    )
    psychiatrist = worklist(server, team.psychiatrist)
    assert "CONSULTATION_REQUESTED" in [e["node"]["kind"] for e in psychiatrist["edges"]]
    assert "RECOMMENDATION_AWAITING" not in [e["node"]["kind"] for e in psychiatrist["edges"]]


PUT_STAFF = """mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) { __typename } }"""

NAMES = """{ worklist { ... on WorklistConnection {
  edges { node { kind taskId assigneeId assigneeName } } } } }"""


def test_a_worklist_task_shows_its_assignees_display_name(server: ServerProcess) -> None:
    """The assignee's name comes from the staff directory, like careManagerName on the
    caseload; a team task (no assignee) reads null."""
    team = enrolled_patient(server)
    admin = server.token("admin")
    put = server.graphql(
        PUT_STAFF,
        {
            "i": {
                "userId": str(team.care_manager_id),
                "displayName": "Ben Okafor",
                "roles": ["CARE_MANAGER"],
            }
        },
        token=admin,
    )
    assert put["data"]["putStaffMember"]["__typename"] == "StaffMember", put
    today = datetime.now(UTC).date().isoformat()
    mine = command(
        server,
        "createTask",
        {
            "patientId": team.patient_id,
            "kind": "OTHER",
            "dueOn": today,
            "assigneeId": str(team.care_manager_id),
        },
        team.care_manager,
        TASK,
    )["createdId"]
    everyone = command(
        server,
        "createTask",
        {"patientId": team.patient_id, "kind": "OUTREACH", "dueOn": today},
        team.care_manager,
        TASK,
    )["createdId"]
    body = server.graphql(NAMES, token=team.care_manager)
    assert "errors" not in body, body
    tasks = {
        e["node"]["taskId"]: (e["node"]["assigneeId"], e["node"]["assigneeName"])
        for e in body["data"]["worklist"]["edges"]
        if e["node"]["kind"] == "TASK"
    }
    assert tasks == {
        mine: (str(team.care_manager_id), "Ben Okafor"),
        everyone: (None, None),
    }
