"""``forgetPatient``: erase a patient's identity and free text by destroying their data key
(admin)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain import errors as domain_errors
from services.api.authz import Denied, check_patient_operation
from services.api.commanding import deny
from services.api.context import CareteamContext
from services.api.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    from_domain_error,
    result_union,
)
from services.erasure import forget_patient
from services.eventstore import ConcurrencyConflictError, StreamNotFoundError
from services.projector.runner import ProjectionLagTimeoutError


@strawberry.type(
    description="The patient's identifying data and free text can no longer be read by anyone."
)
class ForgetPatientPayload:
    patient_id: UUID = strawberry.field(description="The forgotten patient.")
    log_position: str = strawberry.field(description="Log position of the erasure event.")


ForgetPatientResult = Annotated[
    ForgetPatientPayload | ValidationError | NotFoundError | ConflictError | ForbiddenError,
    result_union("ForgetPatientResult", "The erasure, or why not."),
]


def _arg(description: str) -> Any:
    return strawberry.argument(description=description)


@strawberry.type(description="Erasure commands.")
class ErasureMutation:
    @strawberry.mutation(
        description="Forget a patient (admin): their data key is destroyed, so names, birth "
        "date, MRN and every free text (notes, questions, reasons, report backs, plan text) "
        "read as null everywhere while the clinical log still replays; read models drop "
        "their copies. The reason is kept, encrypted with a key that is not destroyed: name "
        "the request, not the patient. Irreversible."
    )
    async def forget_patient(
        self,
        info: Info[CareteamContext, None],
        patient_id: Annotated[UUID, _arg("The patient.")],
        reason: Annotated[str, _arg("Why (e.g. the request reference).")],
    ) -> ForgetPatientResult:
        ctx = info.context
        runtime = ctx.runtime
        try:
            async with runtime.pool.acquire() as conn:
                await check_patient_operation(
                    conn, ctx.require_principal(), "forgetPatient", patient_id
                )
        except Denied as denied:
            return await deny(ctx, denied, patient_id)
        now = runtime.clock()
        try:
            recorded = await forget_patient(
                runtime.store, patient_id, reason=reason, metadata=ctx.metadata(), now=now
            )
        except domain_errors.DomainError as exc:
            return from_domain_error(exc)  # type: ignore[return-value]
        except StreamNotFoundError:
            return NotFoundError(code="PATIENT_NOT_FOUND", message=f"no patient {patient_id}")
        except ConcurrencyConflictError:
            return ConflictError(code="CONFLICT", message="changed by another writer; retry")
        position = recorded[-1].log_position
        try:
            await runtime.projector.wait_for(
                position, runtime.settings.read_your_writes_timeout_seconds, patient_id
            )
        except ProjectionLagTimeoutError:
            pass
        return ForgetPatientPayload(patient_id=patient_id, log_position=position.encode())
