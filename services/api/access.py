"""The access policy the command handler (services/commands/handler.py) authorises with:
the policy table of services/api/authz.py, decided in SQL against ``rm_patient_access``
for a caller; by ``SYSTEM_OPERATIONS`` for a system actor (the seed), which no token
can produce. ``in_load`` gives the same check as a ``LoadCheck`` for the handler to
decide in the load's own statement. Refusals are rows in ``access_log``.

A ``Rider`` checks part of a command's input in the policy's own statement, once the
policy allows the caller (the team-role check of ``assignCareTeam``, one statement
instead of two): its refusal is ``Rejected`` (typed, not an access refusal), and a caller
the policy refuses learns nothing from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from services.commands.handler import Actor, Denial, Refusal, Rejected
from services.eventstore import LoadCheck

# How the policy's statement tells a rider's refusal from its own reasons.
_RIDER = "rider:"


@dataclass(frozen=True)
class Rider:
    """A check of the command's input decided in the policy's statement.

    ``sql(first)`` gives a scalar subquery of one text value (NULL: the input passes,
    else what is wrong) and its parameters, numbered from ``$first``; it is evaluated
    only when the policy allows the caller. ``refusal(value)`` is the answer to that
    value (nothing is written)."""

    sql: Callable[[int], tuple[str, list[object]]]
    refusal: Callable[[str], Refusal]


def _with_rider(
    check: tuple[str, list[object]], rider: Rider, first: int
) -> tuple[str, list[object]]:
    """The policy's one-row ``refused`` SELECT (its parameters numbered up to before
    ``first``) with the rider's value, prefixed, where the policy allows."""
    sql, params = check
    ridden, more = rider.sql(first)
    return (
        f"""SELECT CASE WHEN g.refused IS NOT NULL THEN g.refused
                        ELSE '{_RIDER}' || ({ridden}) END AS refused
            FROM ({sql}) AS g""",
        [*params, *more],
    )


class PolicyAccess:
    def __init__(self, pool: asyncpg.Pool, rider: Rider | None = None) -> None:
        self.pool = pool
        self.rider = rider

    def _refusal(self, operation: str, reason: str) -> Exception:
        if self.rider is not None and reason.startswith(_RIDER):
            return Rejected(self.rider.refusal(reason.removeprefix(_RIDER)))
        return Denial(operation, reason, not_found=reason == NOT_IN_ORGANISATION)

    async def authorise(self, actor: Actor, operation: str, patient_id: UUID | None) -> None:
        if actor.system is not None:
            if operation not in SYSTEM_OPERATIONS.get(actor.system, frozenset()):
                raise Denial(operation, "ROLE_NOT_PERMITTED")
            return
        try:
            if patient_id is None:
                check_role(actor.principal, operation)
            elif self.rider is None:
                async with self.pool.acquire() as conn:
                    await check_patient_operation(conn, actor.principal, operation, patient_id)
            else:
                check_role(actor.principal, operation)
                # $1 is the patient, the policy's parameters follow, then the rider's.
                policy = patient_operation_sql(actor.principal, operation, 1)
                sql, params = _with_rider(policy, self.rider, 2 + len(policy[1]))
                async with self.pool.acquire() as conn:
                    refused: str | None = await conn.fetchval(sql, patient_id, *params)
                if refused is not None:
                    raise self._refusal(operation, refused)
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

        rider = self.rider

        def guard(first: int) -> tuple[str, list[object]]:
            # Numbered again from where the load's own parameters end.
            numbered, again = patient_operation_sql(actor.principal, operation, first)
            if rider is not None:  # its parameters after the policy's
                numbered, again = _with_rider((numbered, again), rider, first + 1 + len(again))
            return numbered, [patient_id, *again]

        return LoadCheck(sql=guard, refuse=lambda reason: self._refusal(operation, reason))

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
