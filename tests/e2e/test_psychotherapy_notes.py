"""Psychotherapy notes over HTTP: kept apart, encrypted, and read by their author only."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.e2e.journey import command, enrolled_patient
from tests.e2e.server import ServerProcess

NOTES = """query($id: UUID!) { psychotherapyNotes(patientId: $id) { __typename
  ... on PsychotherapyNotes { withheld notes { id authorId text } }
  ... on ForbiddenError { code } ... on NotFoundError { code } } }"""


def record(server: ServerProcess, patient_id: str, text: str, token: str) -> Any:
    return command(
        server,
        "recordPsychotherapyNote",
        {"patientId": patient_id, "text": text},
        token,
        "... on PatientPayload { createdId patient { id } }",
    )


def notes(server: ServerProcess, patient_id: str, token: str) -> Any:
    body = server.graphql(NOTES, {"id": patient_id}, token=token)
    assert "errors" not in body, body
    return body["data"]["psychotherapyNotes"]


async def test_each_clinician_reads_only_their_own_psychotherapy_notes(
    server: ServerProcess, db_dsn: str
) -> None:
    """The care manager and the consultant each read their own; the PCP none; compliance is
    refused; the text is ciphertext in the log; the withheld notes are in the access log."""
    team = enrolled_patient(server)
    cm_text = "Session 3: discussed grief; behavioural activation homework."
    psy_text = "Explored ambivalence about medication."
    cm_note = record(server, team.patient_id, cm_text, team.care_manager)["createdId"]
    psy_note = record(server, team.patient_id, psy_text, team.psychiatrist)["createdId"]

    assert notes(server, team.patient_id, team.care_manager) == {
        "__typename": "PsychotherapyNotes",
        "withheld": 1,
        "notes": [{"id": cm_note, "authorId": str(team.care_manager_id), "text": cm_text}],
    }
    mine = notes(server, team.patient_id, team.psychiatrist)
    assert [(n["id"], n["text"]) for n in mine["notes"]] == [(psy_note, psy_text)]
    assert notes(server, team.patient_id, team.pcp) == {
        "__typename": "PsychotherapyNotes",
        "withheld": 2,
        "notes": [],
    }
    assert notes(server, team.patient_id, server.token("compliance"))["__typename"] == (
        "ForbiddenError"
    )
    assert notes(server, team.patient_id, server.token("care_manager"))["code"] == (
        "NOT_ON_CARE_TEAM"
    )
    # A PCP writes no psychotherapy notes here (the policy's choice).
    refused = record(server, team.patient_id, "x", team.pcp)
    assert refused["__typename"] == "ForbiddenError"

    conn = await asyncpg.connect(db_dsn)
    try:
        stored = await conn.fetch(
            "SELECT payload::text AS p FROM events WHERE event_type = "
            "'patient.psychotherapy_note_recorded'"
        )
        withheld = await conn.fetchval(
            "SELECT count(*) FROM access_log WHERE reason = 'PSYCHOTHERAPY_NOTES_WITHHELD'"
        )
    finally:
        await conn.close()
    assert len(stored) == 2
    assert all(cm_text not in r["p"] and psy_text not in r["p"] for r in stored)
    assert withheld == 3


def test_a_blank_or_future_note_is_refused_and_names_the_field(server: ServerProcess) -> None:
    """Typed errors for bad input; nothing is recorded."""
    team = enrolled_patient(server)
    blank = record(server, team.patient_id, "   ", team.care_manager)
    assert blank["__typename"] == "ValidationError" and blank["field"] == "text"
    future = command(
        server,
        "recordPsychotherapyNote",
        {"patientId": team.patient_id, "text": "later", "occurredAt": "2999-01-01T00:00:00Z"},
        team.care_manager,
        "... on PatientPayload { createdId }",
    )
    assert future["__typename"] == "ValidationError"
    assert notes(server, team.patient_id, team.care_manager)["notes"] == []
