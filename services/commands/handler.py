"""``handle(command, actor, now, ...)``: the one route of every command.

1. authorise the actor for the command's operation on its patient (in SQL, through the
   ``AccessPolicy`` the caller passes: services/api/access.py; a refusal is recorded in
   ``access_log`` and answered as a ``Refusal``). For a change to a known patient's
   stream without an idempotency key the check is part of the load's statement
   (``LoadCheck``: nothing is read when it refuses), else a statement of its own. The
   policy may check part of the input in the same statement (``Rejected``: refused,
   not recorded as an access refusal);
2. answer a repeated idempotency key with the first result (nothing written);
3. load the aggregate, apply the command with ``now``, append (retried once on a
   conflict, services/application.py, the check decided again by the second load), or
   create a new stream;
4. wait for the read models to reach the append (read-your-writes, bounded);
5. return ``Written`` or a typed ``Refusal``.

No GraphQL here: the API maps a ``Refusal`` to its typed errors (services/api/commanding.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain import errors as domain_errors
from services import tracing
from services.application import Application
from services.commands.commands import Command, Creation
from services.crypto import PatientForgottenError
from services.eventstore import (
    ConcurrencyConflictError,
    DuplicateCommandError,
    EventMetadata,
    IdempotencyKey,
    LoadCheck,
    LogPosition,
    StreamNotFoundError,
)
from services.mrn_index import DuplicateMrnError

log = logging.getLogger("careteam.commands")


@dataclass(frozen=True)
class Actor:
    """Who runs a command, and why: a verified caller, or a named system actor (``seed``)
    that no token can produce (services/api/authz.py, ``SYSTEM_OPERATIONS``)."""

    user_id: UUID
    role: str
    organisation_id: UUID
    purpose_of_use: str | None = None
    request_id: str | None = None
    channel: str = "graphql"
    principal: Any = None
    system: str | None = None

    def metadata(self, purpose_of_use: str | None = None) -> EventMetadata:
        purpose = purpose_of_use or self.purpose_of_use
        return EventMetadata(
            actor_id=str(self.user_id),
            role=self.role,
            organisation_id=str(self.organisation_id),
            request_id=self.request_id,
            channel=self.channel,
            **({"purpose_of_use": purpose} if purpose else {}),
        )


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
    # The aggregate after the command (None for a replay): answers need no second load.
    aggregate: Any = field(default=None, compare=False, repr=False)
    # False when the read models did not reach the command's position in time (the
    # read-your-writes wait gave up): an answer read from them may not show it yet.
    visible: bool = True

    @property
    def log_position(self) -> str:
        return self.position.encode() if self.position else ""


@dataclass(frozen=True)
class Refusal:
    """Why nothing was written. ``kind``: FORBIDDEN, NOT_FOUND (``patient`` True when the
    patient is hidden), CONFLICT, NOT_ALLOWED, VALIDATION or DOMAIN (``error`` set)."""

    kind: str
    code: str
    message: str
    field: str | None = None
    error: domain_errors.DomainError | None = None
    patient: bool = False


class Rejected(Exception):
    """Raised by an access policy whose statement also checked the command's input (the
    API's team-role check, services/api/access.py ``Rider``), when the caller may run the
    operation but the input is refused: nothing is written, and nothing is recorded in
    ``access_log`` (the refusal is about the input, not about access)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


class Denial(Exception):
    """Raised by an access policy: the actor may not run ``operation``."""

    def __init__(self, operation: str, reason: str, *, not_found: bool = False) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.not_found = not_found


class AccessPolicy(Protocol):
    async def authorise(self, actor: Actor, operation: str, patient_id: UUID | None) -> None:
        """Raises ``Denial`` unless ``actor`` may run ``operation`` (on ``patient_id``)."""

    async def refused(self, actor: Actor, denial: Denial, patient_id: UUID | None) -> None:
        """Records the refusal (``access_log``)."""

    async def patient_of(self, stream_id: UUID) -> UUID | None:
        """The patient a stream belongs to, or None when there is no such stream."""

    def in_load(self, actor: Actor, operation: str, patient_id: UUID) -> LoadCheck | None:
        """The check ``authorise`` makes, as a ``LoadCheck`` the load decides in its own
        statement (its refusal raises ``Denial``), or None when no SQL is needed (a system
        actor). Raises ``Denial`` at once when the role alone refuses."""


# The first result of a repeated idempotency key: a replayed Written, a Refusal (the key
# was used for another input), or None (a new key).
FirstResult = Callable[[IdempotencyKey], Awaitable[Written | Refusal | None]]
# Waits until the read models hold a position (in the partition of the patient, if known).
ReadModels = Callable[[LogPosition, UUID | None], Awaitable[None]]

CONFLICT = Refusal("CONFLICT", "CONFLICT", "changed by another writer; retry")


async def handle(
    command: Command,
    actor: Actor,
    now: datetime,
    *,
    app: Application,
    access: AccessPolicy,
    read_models: ReadModels | None = None,
    idempotency: IdempotencyKey | Refusal | None = None,
    first_result: FirstResult | None = None,
) -> Written | Refusal:
    """Runs ``command`` for ``actor`` at ``now``; see the module docstring. A span of its
    own when traces are exported: the operation and the outcome code, nothing else."""
    name = command.operation
    with tracing.span(f"command {name}", **{"careteam.command": name}) as set_attribute:
        result = await _handle(
            command,
            actor,
            now,
            app=app,
            access=access,
            read_models=read_models,
            idempotency=idempotency,
            first_result=first_result,
        )
        set_attribute("careteam.outcome", result.code if isinstance(result, Refusal) else "WRITTEN")
        return result


async def _handle(
    command: Command,
    actor: Actor,
    now: datetime,
    *,
    app: Application,
    access: AccessPolicy,
    read_models: ReadModels | None,
    idempotency: IdempotencyKey | Refusal | None,
    first_result: FirstResult | None,
) -> Written | Refusal:
    operation = command.operation
    stream_id = command.stream_id
    patient_id = command.patient_id
    not_found = Refusal("NOT_FOUND", "NOT_FOUND", f"no record {stream_id}")
    if stream_id is not None and patient_id is None and command.patient_scoped:
        patient_id = await access.patient_of(stream_id)
        if patient_id is None:
            try:
                await access.authorise(actor, operation, None)
            except Denial as denial:
                return await _refuse(access, actor, denial, None)
            return not_found
    # A change to a known patient's stream with no idempotency key is authorised in the
    # load's own statement (one round trip); otherwise first, as its own statement (a
    # repeated key is answered only to a caller authorised now).
    check: LoadCheck | None = None
    try:
        if idempotency is None and stream_id is not None and patient_id is not None:
            check = access.in_load(actor, operation, patient_id)
        else:
            await access.authorise(actor, operation, patient_id)
    except Denial as denial:
        return await _refuse(access, actor, denial, patient_id)
    except Rejected as rejected:
        return rejected.refusal
    if isinstance(idempotency, Refusal):
        return idempotency
    if idempotency is not None and first_result is not None:
        first = await first_result(idempotency)
        if first is not None:
            return await _waited(first, read_models)
    metadata = actor.metadata(command.purpose_of_use)
    made: dict[str, Any] = {}

    def run(aggregate: Any) -> None:
        created = command.apply(aggregate, now)
        made["aggregate"] = aggregate
        made["id"] = created if isinstance(created, UUID) else None
        if isinstance(idempotency, IdempotencyKey):
            idempotency.created_id = made["id"]

    key = idempotency if isinstance(idempotency, IdempotencyKey) else None
    try:
        if isinstance(command, Creation):
            aggregate = command.create(now)
            made["aggregate"] = aggregate
            result = await app.create(aggregate, metadata=metadata, now=now, idempotency=key)
        else:
            assert stream_id is not None
            result = await app.execute(
                command.aggregate,
                stream_id,
                run,
                metadata=metadata,
                now=now,
                idempotency=key,
                check=check,
            )
    except Denial as denial:  # refused by the check in the load's statement
        return await _refuse(access, actor, denial, patient_id)
    except Rejected as rejected:  # the input, refused by the check in the load's statement
        return rejected.refusal
    except DuplicateCommandError:
        # Another request with the same key was written between our look-up and append.
        assert key is not None and first_result is not None
        first = await first_result(key)
        if first is None:
            return CONFLICT
        return await _waited(first, read_models)
    except domain_errors.DomainError as exc:
        return Refusal("DOMAIN", "DOMAIN", str(exc), error=exc)
    except StreamNotFoundError:
        return not_found
    except ConcurrencyConflictError:
        return CONFLICT
    except DuplicateMrnError as exc:
        return Refusal("CONFLICT", exc.code, str(exc), field=exc.field)
    except PatientForgottenError:
        # The patient's key is destroyed: no new identifying data or free text is stored.
        return Refusal(
            "NOT_ALLOWED",
            PatientForgottenError.code,
            "the patient was forgotten: no new text can be recorded for them",
        )
    position = result.position
    last = result.events[-1] if result.events else None
    if position is not None and read_models is not None:
        await read_models(position, last.patient_id if last else patient_id)
    return Written(
        stream_id=result.stream_id,
        patient_id=last.patient_id if last else (patient_id or result.stream_id),
        version=last.stream_version if last else 0,
        position=position,
        created_id=made.get("id"),
        aggregate=made.get("aggregate"),
    )


async def _refuse(
    access: AccessPolicy, actor: Actor, denial: Denial, patient_id: UUID | None
) -> Refusal:
    await access.refused(actor, denial, patient_id)
    if denial.not_found:
        return Refusal("NOT_FOUND", "PATIENT_NOT_FOUND", f"no patient {patient_id}", patient=True)
    return Refusal("FORBIDDEN", denial.reason, f"{denial.operation} is not permitted")


async def _waited(first: Written | Refusal, read_models: ReadModels | None) -> Written | Refusal:
    """The first command's result, once its events are in the read models (the repeat
    reads them like the first answer did)."""
    if isinstance(first, Written) and first.position is not None and read_models is not None:
        await read_models(first.position, first.patient_id)
    return first
