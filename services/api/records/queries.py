"""Reading back what was written: care plans, referrals and consultation notes by id, and
every one of them for a patient.

A record is read by the same people as the patient it belongs to (the ``patient`` row of
the policy: the care team, compliance and admins of the organisation, break-the-glass),
decided in SQL like every other read; a refusal is audited and typed, a record of another
organisation is "not found". Every record returned is recorded as a read of its patient,
under the query's own operation name; what the caller may not read of it (Part 2 text
without consent, clinical text for non-clinicians) is null, and recorded as withheld
(``services/api/segments.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.referral import Referral
from services.api.authz import Denied, check_patient_operation, check_role
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.errors import ForbiddenError, NotFoundError, result_union
from services.api.record_types import CarePlanView, ConsultationNoteView, ReferralView
from services.api.segments import enforce

# Whoever may read the patient may read the patient's records.
READ_AS = "patient"

A = TypeVar("A")
V = TypeVar("V")

CarePlanLookup = Annotated[
    CarePlanView | NotFoundError | ForbiddenError,
    result_union("CarePlanLookup", "A care plan, or why it cannot be shown."),
]
ReferralLookup = Annotated[
    ReferralView | NotFoundError | ForbiddenError,
    result_union("ReferralLookup", "A referral, or why it cannot be shown."),
]
ConsultationNoteLookup = Annotated[
    ConsultationNoteView | NotFoundError | ForbiddenError,
    result_union("ConsultationNoteLookup", "A consultation note, or why it cannot be shown."),
]


@strawberry.type(description="Every care plan, referral and consultation note of one patient.")
class PatientRecords:
    patient_id: UUID = strawberry.field(description="The patient.")
    care_plans: list[CarePlanView] = strawberry.field(description="Care plans, oldest first.")
    referrals: list[ReferralView] = strawberry.field(description="Referrals, oldest first.")
    consultation_notes: list[ConsultationNoteView] = strawberry.field(
        description="Consultation notes, oldest first."
    )


PatientRecordsLookup = Annotated[
    PatientRecords | NotFoundError | ForbiddenError,
    result_union("PatientRecordsLookup", "A patient's records, or why they cannot be shown."),
]


async def _authorise(ctx: CareteamContext, operation: str, patient_id: UUID) -> Any | None:
    """None when the caller may read the patient; else the typed (and audited) refusal."""
    try:
        async with ctx.runtime.pool.acquire() as conn:
            await check_patient_operation(conn, ctx.require_principal(), READ_AS, patient_id)
    except Denied as denied:
        return await deny(
            ctx, Denied(operation, denied.reason, not_found=denied.not_found), patient_id
        )
    return None


async def _read_one(
    info: Info[CareteamContext, None],
    operation: str,
    cls: type[A],
    record_id: UUID,
    view: Callable[[A], V],
) -> V | Any:
    ctx = info.context
    stream_type: str = cls.STREAM_TYPE  # type: ignore[attr-defined]
    async with ctx.runtime.pool.acquire() as conn:
        patient_id: UUID | None = await conn.fetchval(
            "SELECT patient_id FROM streams WHERE stream_id = $1 AND stream_type = $2",
            record_id,
            stream_type,
        )
    not_found = NotFoundError(code="NOT_FOUND", message=f"no {operation} {record_id}")
    if patient_id is None:
        try:
            check_role(ctx.require_principal(), READ_AS)
        except Denied as denied:
            return await deny(ctx, Denied(operation, denied.reason), None)
        return not_found
    refused = await _authorise(ctx, operation, patient_id)
    if refused is not None:
        return not_found if isinstance(refused, NotFoundError) else refused
    record = await ctx.runtime.app.load(cls, record_id)
    await record_reads(ctx, operation, [patient_id], selected_fields(info))
    return await enforce(ctx, operation, view(record))


@strawberry.type(description="Read back care plans, referrals and consultation notes.")
class RecordQuery:
    @strawberry.field(
        description="One care plan with its goals, targets, interventions, reviews and revisions."
    )
    async def care_plan(self, info: Info[CareteamContext, None], id: UUID) -> CarePlanLookup:
        return await _read_one(info, "carePlan", CarePlan, id, CarePlanView.from_aggregate)

    @strawberry.field(description="One referral, with its report back once the loop closed.")
    async def referral(self, info: Info[CareteamContext, None], id: UUID) -> ReferralLookup:
        return await _read_one(info, "referral", Referral, id, ReferralView.from_aggregate)

    @strawberry.field(
        description="One consultation note: the question, the note's text, its addenda and "
        "each recommendation with the PCP's response and its text."
    )
    async def consultation_note(
        self, info: Info[CareteamContext, None], id: UUID
    ) -> ConsultationNoteLookup:
        return await _read_one(
            info, "consultationNote", ConsultationNote, id, ConsultationNoteView.from_aggregate
        )

    @strawberry.field(
        description="Every care plan, referral and consultation note of a patient, oldest "
        "first (the records as they stand now)."
    )
    async def patient_records(
        self, info: Info[CareteamContext, None], patient_id: UUID
    ) -> PatientRecordsLookup:
        ctx = info.context
        operation = "patientRecords"
        refused = await _authorise(ctx, operation, patient_id)
        if refused is not None:
            return refused
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT s.stream_id, s.stream_type FROM streams s
                   WHERE s.patient_id = $1 AND s.stream_type = ANY($2::text[])
                   ORDER BY (SELECT min(e.position) FROM events e
                             WHERE e.stream_id = s.stream_id)""",
                patient_id,
                [CarePlan.STREAM_TYPE, Referral.STREAM_TYPE, ConsultationNote.STREAM_TYPE],
            )
        app = ctx.runtime.app
        plans, referrals, notes = [], [], []
        for row in rows:
            if row["stream_type"] == CarePlan.STREAM_TYPE:
                plans.append(CarePlanView.from_aggregate(await app.load(CarePlan, row[0])))
            elif row["stream_type"] == Referral.STREAM_TYPE:
                referrals.append(ReferralView.from_aggregate(await app.load(Referral, row[0])))
            else:
                note = await app.load(ConsultationNote, row[0])
                notes.append(ConsultationNoteView.from_aggregate(note))
        await record_reads(ctx, operation, [patient_id], selected_fields(info))
        return PatientRecords(
            patient_id=patient_id,
            care_plans=[await enforce(ctx, operation, p) for p in plans],
            referrals=[await enforce(ctx, operation, r) for r in referrals],
            consultation_notes=[await enforce(ctx, operation, n) for n in notes],
        )
