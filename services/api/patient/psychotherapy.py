"""Psychotherapy notes: a segment of their own, read by their author only.

HIPAA sets psychotherapy notes (a mental health professional's notes of a counselling
session, kept apart from the rest of the record) apart from every other use: even other
treating clinicians need the patient's specific authorisation (45 CFR 164.508(a)(2)); the
originator may use them for treatment. careteam therefore records them as patient events
(``patient.psychotherapy_note_recorded``, the text encrypted with the patient's key and
erased with it), derives no view from them, and lets ``psychotherapyNotes`` return only
the caller's own notes. A team member who asks gets their own notes and the access log
says how many of the others' were withheld (``PSYCHOTHERAPY_NOTES_WITHHELD``). The care
event subscription never carries a note's text, the partner feeds never carry the event,
and the audit trail shows that a note was written, not what it says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.patient import Patient as PatientAggregate
from services.api.authz import Denied, check_patient_operation
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.errors import ForbiddenError, NotFoundError, result_union
from services.api.patient_types import PatientResult
from services.api.record_commands import INPUT, answer_patient, occurred_at_field
from services.api.segments import record_decisions
from services.commands.commands import RecordPsychotherapyNote
from services.eventstore import row_to_event

EVENT_TYPE = PatientAggregate.PsychotherapyNoteRecorded.EVENT_NAME
WITHHELD = "PSYCHOTHERAPY_NOTES_WITHHELD"


@strawberry.input(description="A psychotherapy note of a session, by its author.")
class RecordPsychotherapyNoteInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    text: str = strawberry.field(description="The note, at most 20,000 characters.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.type(description="One of your psychotherapy notes.")
class PsychotherapyNote:
    id: UUID = strawberry.field(description="Note id.")
    patient_id: UUID = strawberry.field(description="The patient.")
    author_id: UUID = strawberry.field(description="You: only a note's author reads it.")
    text: str | None = strawberry.field(description="The note; null once the patient is forgotten.")
    occurred_at: datetime = strawberry.field(description="The session's time.")
    recorded_at: datetime = strawberry.field(description="When careteam recorded it.")


@strawberry.type(description="Your psychotherapy notes of one patient, oldest first.")
class PsychotherapyNotes:
    notes: list[PsychotherapyNote] = strawberry.field(description="Your notes.")
    withheld: int = strawberry.field(
        description="Notes of this patient by other clinicians, which only they may read."
    )


PsychotherapyNotesResult = Annotated[
    PsychotherapyNotes | NotFoundError | ForbiddenError,
    result_union("PsychotherapyNotesResult", "Your psychotherapy notes, or why not."),
]


@strawberry.type(description="Psychotherapy notes (kept apart from the record).")
class PsychotherapyNoteMutation:
    @strawberry.mutation(
        description="Record your psychotherapy note of a session with the patient. It is kept "
        "apart: it changes no view, and only you read it back (psychotherapyNotes); "
        "createdId is the note's id."
    )
    async def record_psychotherapy_note(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RecordPsychotherapyNoteInput, INPUT],
    ) -> PatientResult:
        author = info.context.require_principal().user_id
        command = RecordPsychotherapyNote(
            patient=input.patient_id,
            author_id=author,
            text=input.text,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)


@strawberry.type(description="Read your psychotherapy notes.")
class PsychotherapyNoteQuery:
    @strawberry.field(
        description="Your own psychotherapy notes of a patient whose care team you are on; "
        "other clinicians' notes are never shown (only counted), as HIPAA requires."
    )
    async def psychotherapy_notes(
        self, info: Info[CareteamContext, None], patient_id: UUID
    ) -> PsychotherapyNotesResult:
        ctx = info.context
        principal = ctx.require_principal()
        operation = "psychotherapyNotes"
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await check_patient_operation(conn, principal, operation, patient_id)
                rows = await conn.fetch(
                    """SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
                              stream_type, stream_version, patient_id, event_type,
                              event_version, payload, metadata, occurred_at, recorded_at
                       FROM events WHERE stream_id = $1 AND event_type = $2
                       ORDER BY stream_version""",
                    patient_id,
                    EVENT_TYPE,
                )
                records = await ctx.runtime.store.decrypt([row_to_event(r) for r in rows], conn)
        except Denied as denied:
            return await deny(ctx, denied, patient_id)
        mine = [r for r in records if r.payload.get("author_id") == str(principal.user_id)]
        withheld = len(records) - len(mine)
        if mine:
            await record_reads(ctx, operation, [patient_id], selected_fields(info))
        if withheld:
            await record_decisions(
                ctx, operation, patient_id, [(WITHHELD, (f"withheld:{withheld}",), None)]
            )
        return PsychotherapyNotes(notes=[_note(r) for r in mine], withheld=withheld)


def _note(record: Any) -> PsychotherapyNote:
    data = record.payload
    return PsychotherapyNote(
        id=UUID(data["note_id"]),
        patient_id=record.patient_id,
        author_id=UUID(data["author_id"]),
        text=data.get("text"),
        occurred_at=record.occurred_at,
        recorded_at=record.recorded_at,
    )
