"""From a resolver to the command handler and back: the request's actor, its idempotency
key and read-your-writes wait go in (``run``), a refusal comes out as a typed GraphQL
error; and the read audit (``record_reads``) every answer with patient data passes.

``Written`` is re-exported for the modules that answer from it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from graphql import GraphQLError

from services.api.access import PolicyAccess, Rider
from services.api.authz import Denied, record_access
from services.api.context import CareteamContext
from services.api.errors import (
    ConflictError,
    ForbiddenError,
    NotAllowedError,
    NotFoundError,
    ValidationError,
    from_domain_error,
)
from services.api.idempotency import first_result, requested_key
from services.api.purpose import PurposeOfUse
from services.audit.reads import ReadRecord
from services.auth import Principal
from services.commands.commands import Command
from services.commands.handler import Actor, Refusal, Written, handle

__all__ = ["Written", "actor_of", "deny", "graphql_error", "record_reads", "run", "selected_fields"]
from services.eventstore import IdempotencyKey, LogPosition
from services.projector.runner import ProjectionLagTimeoutError

log = logging.getLogger("careteam.api")


async def deny(ctx: CareteamContext, denied: Denied, patient_id: UUID | None) -> Any:
    """Records a denial for audit and returns the typed error the caller sees."""
    async with ctx.runtime.pool.acquire() as conn:
        await record_access(
            conn,
            principal=ctx.principal,
            operation=denied.operation,
            patient_id=patient_id,
            outcome="denied",
            reason=denied.reason,
            purpose_of_use=ctx.purpose_of_use,
            request_id=ctx.request_id,
        )
    if denied.not_found:
        return NotFoundError(code="PATIENT_NOT_FOUND", message=f"no patient {patient_id}")
    return ForbiddenError(code=denied.reason, message=f"{denied.operation} is not permitted")


def actor_of(ctx: CareteamContext) -> Actor:
    """The verified caller of this request, as the command handler's actor."""
    principal = ctx.require_principal()
    return Actor(
        user_id=principal.user_id,
        role=principal.role.value,
        organisation_id=principal.organisation_id,
        purpose_of_use=ctx.purpose_of_use,
        request_id=ctx.request_id,
        # The request's channel (graphql, fhir, patient_reported...), as its context says.
        channel=ctx.metadata().channel,
        principal=principal,
    )


async def run(
    ctx: CareteamContext, command: Command, info: Any = None, *, rider: Rider | None = None
) -> Written | Any:
    """Runs ``command`` through ``handle`` for this request's caller; returns ``Written``
    or the typed GraphQL error of its refusal (nothing written). ``info`` (the resolver's)
    enables the ``Idempotency-Key`` header: a repeat returns the first result as
    ``Written(replayed=True)`` and writes nothing. ``rider``: a check of the input
    decided in the policy's own statement (services/api/access.py)."""
    runtime = ctx.runtime
    key = requested_key(ctx, info) if info is not None else None

    async def first(key: IdempotencyKey) -> Written | Refusal | None:
        found = await first_result(ctx, key)
        if found is None:
            return None
        if isinstance(found, ConflictError):
            return Refusal("CONFLICT", found.code, found.message)
        return Written(
            stream_id=found.stream_id,
            patient_id=found.patient_id,
            version=found.version,
            position=found.position,
            replayed=True,
            created_id=found.created_id,
        )

    behind = False

    async def read_models(position: LogPosition, patient_id: UUID | None) -> None:
        nonlocal behind
        try:
            await runtime.projector.wait_for(
                position, runtime.settings.read_your_writes_timeout_seconds, patient_id
            )
        except ProjectionLagTimeoutError:
            behind = True
            log.warning("read-your-writes wait timed out position=%s", position.encode())

    outcome = await handle(
        command,
        actor_of(ctx),
        runtime.clock(),
        app=runtime.app,
        access=PolicyAccess(runtime.pool, rider),
        read_models=read_models,
        idempotency=Refusal("VALIDATION", key.code, key.message, key.field)
        if isinstance(key, ValidationError)
        else key,
        first_result=first,
    )
    if isinstance(outcome, Refusal):
        return graphql_error(outcome)
    if behind and isinstance(outcome, Written):
        return dataclasses.replace(outcome, visible=False)
    return outcome


def not_yet_visible(written: Written) -> GraphQLError:
    """The answer to a command that was recorded but whose result the read models do not
    show yet (the read-your-writes wait timed out, e.g. while the projector restarts):
    a typed, retryable error that says it was written, never a "not found" that would
    claim otherwise. Repeating it with the same Idempotency-Key answers the first result."""
    return GraphQLError(
        "The command was recorded, but its result is not readable yet. Read it again "
        "shortly, or repeat the request with the same Idempotency-Key.",
        extensions={
            "code": "RESULT_NOT_YET_VISIBLE",
            "retryable": True,
            "written": True,
            "logPosition": written.log_position,
        },
    )


def graphql_error(refusal: Refusal) -> Any:
    """The typed GraphQL error of a refusal."""
    if refusal.error is not None:
        return from_domain_error(refusal.error)
    if refusal.kind == "FORBIDDEN":
        return ForbiddenError(code=refusal.code, message=refusal.message)
    if refusal.kind == "NOT_FOUND":
        return NotFoundError(code=refusal.code, message=refusal.message)
    if refusal.kind == "VALIDATION":
        return ValidationError(code=refusal.code, message=refusal.message, field=refusal.field)
    if refusal.kind == "NOT_ALLOWED":
        return NotAllowedError(code=refusal.code, message=refusal.message)
    return ConflictError(code=refusal.code, message=refusal.message, field=refusal.field)


def selected_fields(info: Any) -> tuple[str, ...]:
    """The top-level fields the caller asked for under the current field (for the audit)."""
    names: list[str] = []
    for field in info.selected_fields:
        for selection in getattr(field, "selections", []):
            if hasattr(selection, "name"):
                names.append(selection.name)
            for inner in getattr(selection, "selections", []) or []:
                if hasattr(inner, "name") and not hasattr(selection, "name"):
                    names.append(inner.name)
    return tuple(dict.fromkeys(names))


async def record_reads(
    ctx: CareteamContext,
    operation: str,
    patient_ids: list[UUID],
    fields: tuple[str, ...],
    *,
    on_team: set[UUID] | None = None,
) -> None:
    """Durably records that these patients' data is about to be returned (see audit/reads).
    ``on_team``: those of them whose CoCM care team the caller is on, when the caller's
    read already knows (else it is looked up here)."""
    await record_shared_reads([ctx], operation, patient_ids, fields, on_team=on_team)


async def record_shared_reads(
    readers: Sequence[CareteamContext],
    operation: str,
    patient_ids: list[UUID],
    fields: tuple[str, ...],
    *,
    on_team: set[UUID] | None = None,
) -> None:
    """``record_reads`` for several callers about to be given the same data (subscribers
    sharing one execution: services/api/fanout.py): each caller's own record (their id,
    role, purpose, request), all in one ``AuditWriter.record`` call. ``on_team`` may only
    be given for a single reader."""
    if not readers:
        return
    if on_team is not None and len(readers) != 1:
        raise ValueError("on_team is one caller's")
    at = readers[0].runtime.clock()
    emergency_of: dict[UUID, set[UUID]] = {}
    records: list[ReadRecord] = []
    for ctx in readers:
        principal = ctx.require_principal()
        emergency = emergency_of.get(principal.user_id)
        if emergency is None:
            emergency = await _emergency_reads(ctx, principal, patient_ids, on_team)
            emergency_of[principal.user_id] = emergency
        if emergency:
            on = [p for p in patient_ids if p not in emergency]
            off = [p for p in patient_ids if p in emergency]
        else:  # the common case: nobody read off the team
            on, off = patient_ids, []
        for patients, purpose, reason in (
            (on, ctx.purpose_of_use, None),
            (off, PurposeOfUse.ETREAT.value, "BREAK_THE_GLASS"),
        ):
            if not patients:
                continue  # a record naming nobody is not written (AuditWriter.record)
            records.append(
                ReadRecord(
                    at=at,
                    actor_id=principal.user_id,
                    role=principal.role.value,
                    organisation_id=principal.organisation_id,
                    patient_ids=tuple(patients),
                    operation=operation,
                    purpose_of_use=purpose,
                    request_id=ctx.request_id,
                    fields=fields,
                    reason=reason,
                )
            )
    await readers[0].runtime.audit.record(records)


async def _emergency_reads(
    ctx: CareteamContext,
    principal: Principal,
    patient_ids: list[UUID],
    on_team: set[UUID] | None,
) -> set[UUID]:
    """Those of ``patient_ids`` a clinician reads off their care team: only under
    break-the-glass, so tagged for compliance's review."""
    if not principal.is_clinician or not patient_ids:
        return set()
    if on_team is None:
        async with ctx.runtime.pool.acquire() as conn:
            on_team = {
                r["patient_id"]
                for r in await conn.fetch(
                    """SELECT patient_id FROM rm_patient_access
                       WHERE patient_id = ANY($1::uuid[])
                         AND $2 IN (care_manager_id, pcp_id, psychiatric_consultant_id)""",
                    patient_ids,
                    principal.user_id,
                )
            }
    return set(patient_ids) - on_team
