"""Idempotency keys: a retried command writes once.

A client sends ``Idempotency-Key: <key>`` (the header of the IETF HTTP API draft of that
name) with a mutation. The first request with a key runs the command; the key, a
fingerprint of the mutation's field and arguments, and what was written are recorded in
the same statement that appends the events. A repeat by the same caller with the same key
and the same input writes nothing and answers with the first result (the record as it
stands now, the first command's log position and created id). The same key with a
different input is a ``ConflictError`` (``IDEMPOTENCY_KEY_REUSED``), never a silent replay.

A key applies to a request with one mutation field (more is a ``ValidationError``), and
never over a WebSocket (its upgrade headers would cover every mutation on the connection).

Keys are kept for 24 hours (every look-up also deletes a bounded batch of expired
keys): client libraries retry for seconds to minutes, and a portal that lost its answer
(a laptop asleep, a network change) retries within the working day. That is the window
Stripe and the IETF draft's examples use too; after it a key may be used again. Keys
belong to one caller: another user's identical key is another key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from graphql import value_from_ast_untyped
from starlette.websockets import WebSocket

from services.api.context import CareteamContext
from services.api.errors import ConflictError, ValidationError
from services.eventstore import IdempotencyKey, LogPosition

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
MAX_LENGTH = 255


def fingerprint(info: Any) -> str:
    """What the mutation asked for: its field and its arguments with variables resolved
    (the alias and the selection do not count)."""
    raw = getattr(info, "_raw_info", info)
    node = raw.field_nodes[0]
    arguments = {
        a.name.value: value_from_ast_untyped(a.value, raw.variable_values) for a in node.arguments
    }
    text = json.dumps(
        {"field": node.name.value, "arguments": arguments}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def requested_key(ctx: CareteamContext, info: Any) -> IdempotencyKey | ValidationError | None:
    """The request's idempotency key for this mutation; a typed error when malformed."""
    request = ctx.request
    if isinstance(request, WebSocket):
        # A WebSocket's upgrade headers would apply to every mutation on the connection.
        return None
    headers = getattr(request, "headers", None)
    raw = headers.get(HEADER.lower()) if headers is not None else None
    if raw is None:
        return None
    operation = getattr(getattr(info, "_raw_info", info), "operation", None)
    if operation is not None and len(operation.selection_set.selections) > 1:
        return ValidationError(
            code="IDEMPOTENCY_KEY_ONE_MUTATION",
            message=f"{HEADER} applies to a request with one mutation field; send the others "
            "in their own requests",
            field=HEADER,
        )
    if not (1 <= len(raw) <= MAX_LENGTH) or not all(0x21 <= ord(c) <= 0x7E for c in raw):
        return ValidationError(
            code="IDEMPOTENCY_KEY_INVALID",
            message=f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters",
            field=HEADER,
        )
    return IdempotencyKey(
        actor_id=ctx.require_principal().user_id,
        key=raw,
        fingerprint=fingerprint(info),
        operation=info.field_name if hasattr(info, "field_name") else "",
    )


async def first_result(ctx: CareteamContext, key: IdempotencyKey) -> Any | None:
    """What the first request with this key wrote (``Recorded``), a conflict when the key
    was used for a different input, or None when the key is new (or has expired)."""
    async with ctx.runtime.pool.acquire() as conn:
        # Expired keys go: this caller's, then a bounded batch of anyone's (by age).
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE actor_id = $1 AND key = $2 "
            "AND created_at <= now() - $3::interval",
            key.actor_id,
            key.key,
            RETENTION,
        )
        await conn.execute(
            """DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
                   SELECT ctid FROM idempotency_keys
                   WHERE created_at <= now() - $1::interval
                   ORDER BY created_at LIMIT 100))""",
            RETENTION,
        )
        row = await conn.fetchrow(
            """SELECT k.fingerprint, k.stream_id, k.patient_id, k.created_id,
                      e.stream_version, e.position, e.tx_id::text::bigint AS tx_id
               FROM idempotency_keys k JOIN events e ON e.event_id = k.last_event_id
               WHERE k.actor_id = $1 AND k.key = $2""",
            key.actor_id,
            key.key,
        )
    if row is None:
        return None
    if row["fingerprint"] != key.fingerprint:
        return ConflictError(
            code="IDEMPOTENCY_KEY_REUSED",
            message=f"this {HEADER} was used for a different input; use a new key",
        )
    return Recorded(
        stream_id=row["stream_id"],
        patient_id=row["patient_id"],
        version=row["stream_version"],
        position=LogPosition(row["tx_id"], row["position"]),
        created_id=row["created_id"],
    )


class Recorded:
    """The first result of a repeated command (what ``Written`` is made from)."""

    def __init__(
        self,
        *,
        stream_id: UUID,
        patient_id: UUID,
        version: int,
        position: LogPosition,
        created_id: UUID | None,
    ) -> None:
        self.stream_id = stream_id
        self.patient_id = patient_id
        self.version = version
        self.position = position
        self.created_id = created_id
