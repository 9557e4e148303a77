"""The psychiatric consultation loop over HTTP: each step by its role, illegal steps refused."""

from __future__ import annotations

from typing import Any

from tests.e2e.journey import CareTeam, command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

NOTE = """... on ConsultationNotePayload {
    createdId logPosition
    consultationNote {
      id patientId status requestedBy consultantId question content draftNumber authorId
      signedBy signedAt acknowledgedBy withdrawReason version
      recommendations { id text response responseText respondedBy implementedAt }
      addenda { authorId text }
    }
}"""


def step(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    return command(server, operation, input, token, NOTE)


def note_of(result: dict[str, Any]) -> dict[str, Any]:
    assert result["__typename"] == "ConsultationNotePayload", result
    note: dict[str, Any] = result["consultationNote"]
    return note


def signed_note(server: ServerProcess, team: CareTeam, recommendations: list[str]) -> Any:
    """A consultation asked by the care manager, drafted and signed by the consultant."""
    asked = step(
        server,
        "requestConsultation",
        {"patientId": team.patient_id, "question": "Is a dose change indicated?"},
        team.care_manager,
    )
    note_id = note_of(asked)["id"]
    step(
        server,
        "draftConsultationNote",
        {"consultationNoteId": note_id, "content": "Partial response at week 10."},
        team.psychiatrist,
    )
    ids = [
        step(
            server,
            "addRecommendation",
            {"consultationNoteId": note_id, "text": text},
            team.psychiatrist,
        )["createdId"]
        for text in recommendations
    ]
    note_of(
        step(server, "signConsultationNote", {"consultationNoteId": note_id}, team.psychiatrist)
    )
    return note_id, ids


def test_a_consultation_runs_from_question_to_implemented_recommendations(
    server: ServerProcess,
) -> None:
    """Care manager asks, consultant drafts and signs, PCP acknowledges, answers, implements."""
    team = enrolled_patient(server)
    asked = note_of(
        step(
            server,
            "requestConsultation",
            {"patientId": team.patient_id, "question": "Is a dose change indicated?"},
            team.care_manager,
        )
    )
    assert asked["status"] == "REQUESTED"
    assert asked["requestedBy"] == str(team.care_manager_id)
    assert asked["patientId"] == team.patient_id
    note_id = asked["id"]

    drafted = note_of(
        step(
            server,
            "draftConsultationNote",
            {"consultationNoteId": note_id, "content": "Partial response at week 10."},
            team.psychiatrist,
        )
    )
    assert (drafted["status"], drafted["draftNumber"]) == ("DRAFTED", 1)
    assert drafted["authorId"] == str(team.psychiatrist_id)

    added = [
        step(
            server,
            "addRecommendation",
            {"consultationNoteId": note_id, "text": text},
            team.psychiatrist,
        )
        for text in ("Increase the dose.", "Add behavioural activation.", "Check sleep.", "Drop.")
    ]
    accept_id, modify_id, decline_id, drop_id = [a["createdId"] for a in added]
    removed = note_of(
        step(
            server,
            "removeRecommendation",
            {"consultationNoteId": note_id, "recommendationId": drop_id},
            team.psychiatrist,
        )
    )
    assert [r["id"] for r in removed["recommendations"]] == [accept_id, modify_id, decline_id]

    signed = note_of(
        step(server, "signConsultationNote", {"consultationNoteId": note_id}, team.psychiatrist)
    )
    assert signed["status"] == "SIGNED"
    assert signed["signedBy"] == str(team.psychiatrist_id)

    addendum = note_of(
        step(
            server,
            "addAddendum",
            {"consultationNoteId": note_id, "text": "Week 11 score arrived since."},
            team.psychiatrist,
        )
    )
    assert addendum["addenda"] == [
        {"authorId": str(team.psychiatrist_id), "text": "Week 11 score arrived since."}
    ]

    acknowledged = note_of(
        step(server, "acknowledgeConsultationNote", {"consultationNoteId": note_id}, team.pcp)
    )
    assert acknowledged["status"] == "ACKNOWLEDGED"
    assert acknowledged["acknowledgedBy"] == str(team.pcp_id)

    answers = [
        (accept_id, "ACCEPTED", None),
        (modify_id, "MODIFIED", "Start behavioural activation next month."),
        (decline_id, "DECLINED", "Sleep was assessed last week."),
    ]
    for rec_id, response, text in answers:
        answered = step(
            server,
            "respondToRecommendation",
            {
                "consultationNoteId": note_id,
                "recommendationId": rec_id,
                "response": response,
                "text": text,
            },
            team.pcp,
        )
        assert answered["__typename"] == "ConsultationNotePayload", answered

    step(
        server,
        "implementRecommendation",
        {"consultationNoteId": note_id, "recommendationId": accept_id},
        team.pcp,
    )
    done = note_of(
        step(
            server,
            "implementRecommendation",
            {"consultationNoteId": note_id, "recommendationId": modify_id},
            team.care_manager,
        )
    )
    by_id = {r["id"]: r for r in done["recommendations"]}
    assert [by_id[i]["response"] for i in (accept_id, modify_id, decline_id)] == [
        "ACCEPTED",
        "MODIFIED",
        "DECLINED",
    ]
    assert by_id[modify_id]["responseText"] == "Start behavioural activation next month."
    assert by_id[decline_id]["responseText"] == "Sleep was assessed last week."
    assert {by_id[i]["respondedBy"] for i in (accept_id, modify_id, decline_id)} == {
        str(team.pcp_id)
    }
    assert by_id[accept_id]["implementedAt"] and by_id[modify_id]["implementedAt"]
    assert by_id[decline_id]["implementedAt"] is None

    declined_one = step(
        server,
        "implementRecommendation",
        {"consultationNoteId": note_id, "recommendationId": decline_id},
        team.pcp,
    )
    assert declined_one == {
        "__typename": "InvalidTransitionError",
        "code": "RECOMMENDATION_NOT_ACCEPTED",
    }


async def test_a_signed_note_is_immutable_and_every_refused_step_writes_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    """Signing twice, redrafting, adding or removing recommendations after signing, answering
    before acknowledging and declining without a reason are typed errors with no event."""
    team = enrolled_patient(server)
    note_id, (rec_id,) = signed_note(server, team, ["Increase the dose."])
    written = await event_count(db_dsn, note_id)

    refused = [
        ("signConsultationNote", {}, team.psychiatrist, "NOTE_ALREADY_SIGNED"),
        (
            "draftConsultationNote",
            {"content": "Rewritten."},
            team.psychiatrist,
            "NOTE_ALREADY_SIGNED",
        ),
        ("addRecommendation", {"text": "One more."}, team.psychiatrist, "NOTE_ALREADY_SIGNED"),
        (
            "removeRecommendation",
            {"recommendationId": rec_id},
            team.psychiatrist,
            "NOTE_ALREADY_SIGNED",
        ),
        (
            "respondToRecommendation",
            {"recommendationId": rec_id, "response": "ACCEPTED"},
            team.pcp,
            "NOTE_NOT_ACKNOWLEDGED",
        ),
    ]
    for operation, fields, token, code in refused:
        result = step(server, operation, {"consultationNoteId": note_id, **fields}, token)
        assert result == {"__typename": "InvalidTransitionError", "code": code}, operation

    note_of(step(server, "acknowledgeConsultationNote", {"consultationNoteId": note_id}, team.pcp))
    written += 1
    twice = step(server, "acknowledgeConsultationNote", {"consultationNoteId": note_id}, team.pcp)
    assert twice == {"__typename": "InvalidTransitionError", "code": "NOTE_ALREADY_ACKNOWLEDGED"}

    for text in (None, "   "):
        no_reason = step(
            server,
            "respondToRecommendation",
            {
                "consultationNoteId": note_id,
                "recommendationId": rec_id,
                "response": "DECLINED",
                "text": text,
            },
            team.pcp,
        )
        assert no_reason == {
            "__typename": "ValidationError",
            "code": "REASON_REQUIRED",
            "field": "text",
        }

    not_yet = step(
        server,
        "implementRecommendation",
        {"consultationNoteId": note_id, "recommendationId": rec_id},
        team.pcp,
    )
    assert not_yet == {
        "__typename": "InvalidTransitionError",
        "code": "RECOMMENDATION_NOT_ACCEPTED",
    }

    by_consultant = step(
        server,
        "respondToRecommendation",
        {"consultationNoteId": note_id, "recommendationId": rec_id, "response": "ACCEPTED"},
        team.psychiatrist,
    )
    assert by_consultant == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}

    assert await event_count(db_dsn, note_id) == written


async def test_a_withdrawn_request_takes_no_draft_and_unknown_notes_are_not_found(
    server: ServerProcess, db_dsn: str
) -> None:
    """Withdrawing needs a reason; a withdrawn note is final; a made-up id is not found."""
    team = enrolled_patient(server)
    asked = note_of(
        step(
            server,
            "requestConsultation",
            {"patientId": team.patient_id, "question": "Second opinion on the diagnosis?"},
            team.care_manager,
        )
    )
    note_id = asked["id"]

    blank = step(
        server,
        "withdrawConsultation",
        {"consultationNoteId": note_id, "reason": " "},
        team.care_manager,
    )
    assert blank == {"__typename": "ValidationError", "code": "REASON_REQUIRED", "field": "reason"}
    unsigned = step(
        server, "signConsultationNote", {"consultationNoteId": note_id}, team.psychiatrist
    )
    assert unsigned == {"__typename": "InvalidTransitionError", "code": "NOTE_NOT_DRAFTED"}
    assert await event_count(db_dsn, note_id) == 1

    withdrawn = note_of(
        step(
            server,
            "withdrawConsultation",
            {"consultationNoteId": note_id, "reason": "Answered at the team meeting."},
            team.care_manager,
        )
    )
    assert withdrawn["status"] == "WITHDRAWN"
    assert withdrawn["withdrawReason"] == "Answered at the team meeting."

    late = step(
        server,
        "draftConsultationNote",
        {"consultationNoteId": note_id, "content": "Too late."},
        team.psychiatrist,
    )
    assert late == {"__typename": "InvalidTransitionError", "code": "NOTE_WITHDRAWN"}
    assert await event_count(db_dsn, note_id) == 2

    missing = step(
        server,
        "draftConsultationNote",
        {"consultationNoteId": "00000000-0000-4000-8000-00000000dead", "content": "x"},
        team.psychiatrist,
    )
    assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
