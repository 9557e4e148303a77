"""Running a command from a resolver and answering with the record it changed.

Both helpers go through ``commanding.run`` (the command handler: authorisation in SQL,
typed errors, audited denials, read-your-writes) and then load what the caller gets back:
the patient's view for patient commands, the aggregate's own state for care plans, referrals and
consultation notes (mapped to a GraphQL shape, never returned as a domain object).
Returning patient data is a read, so it is audited like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from services.api.access import Rider
from services.api.commanding import (
    Written,
    not_yet_visible,
    record_reads,
    run,
    selected_fields,
)
from services.api.context import CareteamContext
from services.api.errors import NotFoundError
from services.api.patient_types import PatientPayload, load_patient_view
from services.api.segments import enforce_payload
from services.api.types import Patient
from services.audit.reads import ReadRecord
from services.commands.commands import Command

# The audit reason of a read that returns the result of the caller's own command.
OWN_COMMAND_RESULT = "OWN_COMMAND_RESULT"

P = TypeVar("P")


async def answer_patient(
    info: Info[CareteamContext, None], command: Command, *, rider: Rider | None = None
) -> Any:
    """Runs a patient command (or a registration) and answers with the patient's view,
    which already reflects it. ``rider``: a check of the input decided in the policy's
    statement (services/api/access.py)."""
    ctx = info.context
    operation = command.operation
    written = await run(ctx, command, info, rider=rider)
    if not isinstance(written, Written):
        return written
    patient_id = written.patient_id
    fields = selected_fields(info)
    view, on_team = await load_patient_view(ctx, patient_id)
    if view is not None:
        team = {patient_id} if on_team else set()
        await record_reads(ctx, operation, [patient_id], fields, on_team=team)
    elif command.stream_id is not None:
        view = await _own_result_view(ctx, operation, patient_id, fields)
    if view is None and not written.visible:
        raise not_yet_visible(written)
    if view is None:
        return NotFoundError(code="PATIENT_NOT_FOUND", message=f"no patient {patient_id}")
    created_id = written.created_id if command.stream_id is not None else None
    return PatientPayload(patient=view, log_position=written.log_position, created_id=created_id)


async def _own_result_view(
    ctx: CareteamContext, operation: str, patient_id: UUID, fields: tuple[str, ...]
) -> Patient | None:
    """The view of a patient the caller was just authorised to change but can no longer
    read, because the change took them off the care team. The command was written, so it
    answers with its result rather than an error that would claim nothing was; the read is
    audited as the result of the caller's own command (not as break-the-glass)."""
    async with ctx.runtime.pool.acquire() as conn:
        doc = await conn.fetchval("SELECT doc FROM rm_patient_view WHERE key = $1", patient_id)
    if doc is None:
        return None
    principal = ctx.require_principal()
    await ctx.runtime.audit.record(
        [
            ReadRecord(
                at=ctx.runtime.clock(),
                actor_id=principal.user_id,
                role=principal.role.value,
                organisation_id=principal.organisation_id,
                patient_ids=(patient_id,),
                operation=operation,
                purpose_of_use=ctx.purpose_of_use,
                request_id=ctx.request_id,
                fields=fields,
                reason=OWN_COMMAND_RESULT,
            )
        ]
    )
    return Patient.from_doc(doc)


async def answer_record(
    info: Info[CareteamContext, None],
    command: Command,
    payload: Callable[[Any, Written, UUID | None], P],
) -> P | Any:
    """Runs ``command`` on a care plan, referral or note (or creates one) and answers with
    ``payload`` built from the record's state after the command."""
    ctx = info.context
    written = await run(ctx, command, info)
    if not isinstance(written, Written):
        return written
    record = written.aggregate
    if record is None:  # a replay: the record as it stands now
        record = await ctx.runtime.app.load(command.aggregate, written.stream_id)
    await record_reads(ctx, command.operation, [written.patient_id], selected_fields(info))
    made = payload(record, written, written.created_id)
    return await enforce_payload(ctx, command.operation, made)


OCCURRED_AT_DESCRIPTION = "When it happened (default now; never in the future)."


def occurred_at_field() -> Any:
    """The optional clinical effective time every command input has."""
    return strawberry.field(default=None, description=OCCURRED_AT_DESCRIPTION)


INPUT = strawberry.argument(description="The command's input.")


def actor(info: Info[CareteamContext, None]) -> UUID:
    """The caller's user id, from the verified token (never from the input)."""
    return info.context.require_principal().user_id
