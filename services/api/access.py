"""The access policy the command handler (services/commands/handler.py) authorises with:
the policy table of services/api/authz.py, decided in SQL against ``rm_patient_access``
for a caller; by ``SYSTEM_OPERATIONS`` for a system actor (the seed), which no token
can produce. ``in_load`` gives the same check as a ``LoadCheck`` for the handler to
decide in the load's own statement. Refusals are rows in ``access_log``."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from services.api.authz import (
    NOT_IN_ORGANISATION,
    SYSTEM_OPERATIONS,
    Denied,
    check_patient_operation,
    check_role,
    patient_operation_sql,
    record_access,
)
from services.commands.handler import Actor, Denial
from services.eventstore import LoadCheck


class PolicyAccess:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def authorise(self, actor: Actor, operation: str, patient_id: UUID | None) -> None:
        if actor.system is not None:
            if operation not in SYSTEM_OPERATIONS.get(actor.system, frozenset()):
                raise Denial(operation, "ROLE_NOT_PERMITTED")
            return
        try:
            if patient_id is None:
                check_role(actor.principal, operation)
            else:
                async with self.pool.acquire() as conn:
                    await check_patient_operation(conn, actor.principal, operation, patient_id)
        except Denied as denied:
            raise Denial(denied.operation, denied.reason, not_found=denied.not_found) from None

    def in_load(self, actor: Actor, operation: str, patient_id: UUID) -> LoadCheck | None:
        if actor.system is not None:
            if operation not in SYSTEM_OPERATIONS.get(actor.system, frozenset()):
                raise Denial(operation, "ROLE_NOT_PERMITTED")
            return None
        try:
            check_role(actor.principal, operation)
        except Denied as denied:
            raise Denial(denied.operation, denied.reason) from None

        def guard(first: int) -> tuple[str, list[object]]:
            # Numbered again from where the load's own parameters end.
            numbered, again = patient_operation_sql(actor.principal, operation, first)
            return numbered, [patient_id, *again]

        def refuse(reason: str) -> Denial:
            return Denial(operation, reason, not_found=reason == NOT_IN_ORGANISATION)

        return LoadCheck(sql=guard, refuse=refuse)

    async def refused(self, actor: Actor, denial: Denial, patient_id: UUID | None) -> None:
        async with self.pool.acquire() as conn:
            await record_access(
                conn,
                principal=actor.principal,
                operation=denial.operation,
                patient_id=patient_id,
                outcome="denied",
                reason=denial.reason,
                purpose_of_use=actor.purpose_of_use,
                request_id=actor.request_id,
            )

    async def patient_of(self, stream_id: UUID) -> UUID | None:
        async with self.pool.acquire() as conn:
            found: UUID | None = await conn.fetchval(
                "SELECT patient_id FROM streams WHERE stream_id = $1", stream_id
            )
        return found
