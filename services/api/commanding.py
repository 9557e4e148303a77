"""Running a command from a resolver: authorise, execute, map errors, wait for read models.

Every mutation goes through ``run_command`` so that authorisation (in SQL), the typed
errors, the audit of denials and read-your-writes behave the same for every aggregate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import errors as domain_errors
from services.api.authz import Denied, check_patient_operation, check_role, record_access
from services.api.context import CareteamContext
from services.api.errors import (
    ConflictError,
    ForbiddenError,
    NotAllowedError,
    NotFoundError,
    ValidationError,
    from_domain_error,
)
from services.api.idempotency import Recorded, first_result, requested_key
from services.api.purpose import PurposeOfUse
from services.audit.reads import ReadRecord
from services.crypto import PatientForgottenError
from services.eventstore import (
    ConcurrencyConflictError,
    DuplicateCommandError,
    LogPosition,
    StreamNotFoundError,
)
from services.mrn_index import DuplicateMrnError
from services.projector.runner import ProjectionLagTimeoutError

log = logging.getLogger("careteam.api")


@dataclass(frozen=True)
class Written:
    """What a successful command wrote."""

    stream_id: UUID
    patient_id: UUID
    version: int
    position: LogPosition | None
    # A repeat of an earlier command with the same idempotency key: nothing was written
    # now, and ``created_id`` is what the first command created.
    replayed: bool = False
    created_id: UUID | None = None

    @property
    def log_position(self) -> str:
        return self.position.encode() if self.position else ""


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


async def patient_of_stream(ctx: CareteamContext, stream_id: UUID) -> UUID | None:
    async with ctx.runtime.pool.acquire() as conn:
        found: UUID | None = await conn.fetchval(
            "SELECT patient_id FROM streams WHERE stream_id = $1", stream_id
        )
    return found


async def run_command(
    ctx: CareteamContext,
    operation: str,
    *,
    aggregate_cls: type[Any],
    command: Callable[[datetime], Any],
    stream_id: UUID | None = None,
    patient_id: UUID | None = None,
    info: Any = None,
    purpose_of_use: str | None = None,
) -> Written | Any:
    """Runs one command and returns Written, or a typed error (nothing written).

    - ``stream_id`` None: ``command(now)`` returns a new aggregate (a creation); it belongs
      to ``patient_id`` (authorised on that patient), or to nobody yet (a registration).
    - ``stream_id`` given: ``command(now)`` returns a function applied to the loaded
      aggregate; the patient is looked up from the stream.
    - ``info`` (the resolver's) enables the ``Idempotency-Key`` header: a repeat returns
      the first result as ``Written(replayed=True)`` and writes nothing.
    - ``purpose_of_use`` overrides the request's purpose for the events written (ETREAT
      for a break-the-glass grant).
    """
    runtime = ctx.runtime
    principal = ctx.require_principal()
    not_found = NotFoundError(code="NOT_FOUND", message=f"no record {stream_id}")
    if stream_id is not None and patient_id is None:
        patient_id = await patient_of_stream(ctx, stream_id)
        if patient_id is None:
            try:
                check_role(principal, operation)
            except Denied as denied:
                return await deny(ctx, denied, None)
            return not_found
    try:
        if patient_id is None:
            check_role(principal, operation)
        else:
            async with runtime.pool.acquire() as conn:
                await check_patient_operation(conn, principal, operation, patient_id)
    except Denied as denied:
        return await deny(ctx, denied, patient_id)
    idempotency = requested_key(ctx, info) if info is not None else None
    if isinstance(idempotency, ValidationError):
        return idempotency
    if idempotency is not None:
        first = await first_result(ctx, idempotency)
        if first is not None:
            return await _replayed(ctx, first)
    now = runtime.clock()
    metadata = ctx.metadata(purpose_of_use=purpose_of_use)

    def run(aggregate: Any) -> None:
        made = command(now)(aggregate)
        if idempotency is not None:
            idempotency.created_id = made if isinstance(made, UUID) else None

    try:
        if stream_id is None:
            aggregate = command(now)
            result = await runtime.app.create(
                aggregate, metadata=metadata, now=now, idempotency=idempotency
            )
        else:
            result = await runtime.app.execute(
                aggregate_cls,
                stream_id,
                run,
                metadata=metadata,
                now=now,
                idempotency=idempotency,
            )
    except DuplicateCommandError:
        # Another request with the same key was written between our look-up and append.
        assert idempotency is not None
        first = await first_result(ctx, idempotency)
        if first is None:
            return ConflictError(code="CONFLICT", message="changed by another writer; retry")
        return await _replayed(ctx, first)
    except domain_errors.DomainError as exc:
        return from_domain_error(exc)
    except StreamNotFoundError:
        return not_found
    except ConcurrencyConflictError:
        return ConflictError(code="CONFLICT", message="changed by another writer; retry")
    except DuplicateMrnError as exc:
        return ConflictError(code=exc.code, message=str(exc), field=exc.field)
    except PatientForgottenError:
        # The patient's key is destroyed: no new identifying data or free text is stored.
        return NotAllowedError(
            code=PatientForgottenError.code,
            message="the patient was forgotten: no new text can be recorded for them",
        )
    position = result.position
    if position is not None:
        try:
            await runtime.projector.wait_for(
                position, runtime.settings.read_your_writes_timeout_seconds
            )
        except ProjectionLagTimeoutError:
            log.warning("read-your-writes wait timed out position=%s", position.encode())
    last = result.events[-1] if result.events else None
    return Written(
        stream_id=result.stream_id,
        patient_id=last.patient_id if last else (patient_id or result.stream_id),
        version=last.stream_version if last else 0,
        position=position,
    )


async def _replayed(ctx: CareteamContext, first: Recorded | ConflictError) -> Any:
    """The first command's result, once its events are in the read models (the repeat
    reads them like the first answer did)."""
    if isinstance(first, ConflictError):
        return first
    try:
        await ctx.runtime.projector.wait_for(
            first.position, ctx.runtime.settings.read_your_writes_timeout_seconds
        )
    except ProjectionLagTimeoutError:
        log.warning("read-your-writes wait timed out position=%s", first.position.encode())
    return Written(
        stream_id=first.stream_id,
        patient_id=first.patient_id,
        version=first.version,
        position=first.position,
        replayed=True,
        created_id=first.created_id,
    )


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
    ctx: CareteamContext, operation: str, patient_ids: list[UUID], fields: tuple[str, ...]
) -> None:
    """Durably records that these patients' data is about to be returned (see audit/reads)."""
    principal = ctx.require_principal()
    at = ctx.runtime.clock()
    emergency: set[UUID] = set()
    if principal.is_clinician and patient_ids:
        # A clinician reading a patient whose care team they are not on can only be doing so
        # under break-the-glass: tag those reads for compliance's review.
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
        emergency = set(patient_ids) - on_team
    purpose = ctx.purpose_of_use
    await ctx.runtime.audit.record(
        [
            ReadRecord(
                at=at,
                actor_id=principal.user_id,
                role=principal.role.value,
                organisation_id=principal.organisation_id,
                patient_id=pid,
                operation=operation,
                purpose_of_use=PurposeOfUse.ETREAT.value if pid in emergency else purpose,
                request_id=ctx.request_id,
                fields=fields,
                reason="BREAK_THE_GLASS" if pid in emergency else None,
            )
            for pid in patient_ids
        ]
    )
