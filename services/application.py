"""Application services: load an aggregate, run a command on it, append what it emitted.

Commands run against a fresh load; a concurrent writer's conflict is retried once on a
fresh load (docs/architecture.md), and surfaces as ConcurrencyConflictError if it happens again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from domain.patient import Patient
from services.eventstore import (
    ConcurrencyConflictError,
    EventMetadata,
    EventStore,
    IdempotencyKey,
    LoadCheck,
    LogPosition,
    RecordedEvent,
)
from services.mrn_index import MrnIndex
from services.patient_search import SearchIndex

log = logging.getLogger("careteam.application")

A = TypeVar("A")


@dataclass(frozen=True)
class CommandResult:
    """What a command wrote: its events and the log position of the last one."""

    stream_id: UUID
    events: list[RecordedEvent]

    @property
    def position(self) -> LogPosition | None:
        return self.events[-1].log_position if self.events else None


def patient_id_of(aggregate: Any) -> UUID:
    """Every stream belongs to one patient; a Patient belongs to itself."""
    if getattr(type(aggregate), "STREAM_TYPE", None) == "patient":
        pid: UUID = aggregate.id
        return pid
    pid = aggregate.patient_id
    return pid


class Application:
    """Runs commands against the event store. Stateless beyond its store."""

    def __init__(
        self,
        store: EventStore,
        *,
        mrn_index: MrnIndex | None = None,
        search_index: SearchIndex | None = None,
    ) -> None:
        self.store = store
        # MRNs are unique per organisation wherever identity is encrypted: by default the
        # index key comes from the store's keyring (a store without one, in some tests
        # and tools, keeps no index unless one is given).
        if mrn_index is None and store.keyring is not None:
            mrn_index = MrnIndex(store.keyring.blind_index_key())
        self.mrn_index = mrn_index
        # Names and birth dates are found through keyed digests (services/patient_search.py),
        # kept under the same condition as the MRN index.
        if search_index is None and store.keyring is not None:
            search_index = SearchIndex(store.keyring.blind_index_key())
        self.search_index = search_index

    async def create(
        self,
        aggregate: Any,
        *,
        metadata: EventMetadata,
        now: datetime,
        idempotency: IdempotencyKey | None = None,
    ) -> CommandResult:
        """Appends a newly created aggregate's events (a new stream at version 0).

        A patient's registration also claims its MRN in the blind index, in the same
        transaction: ``DuplicateMrnError`` (nothing written) when the organisation has
        another patient with that MRN. The search digests of its names and birth date are
        written in that transaction too (services/patient_search.py).
        """
        events = aggregate.collect_events()
        append = {
            "stream_type": type(aggregate).STREAM_TYPE,
            "stream_id": aggregate.id,
            "patient_id": patient_id_of(aggregate),
            "expected_version": 0,
            "events": events,
            "metadata": metadata,
            "now": now,
            "idempotency": idempotency,
        }
        registered = next((e for e in events if isinstance(e, Patient.Registered)), None)
        if registered is None or (self.mrn_index is None and self.search_index is None):
            recorded = await self.store.append(**append)
            return CommandResult(aggregate.id, recorded)
        async with self.store.pool.acquire() as conn, conn.transaction():
            if self.mrn_index is not None:
                await self.mrn_index.claim(
                    conn,
                    organisation_id=registered.organisation_id,
                    mrn=registered.mrn,
                    patient_id=aggregate.id,
                )
            if self.search_index is not None:
                await self.search_index.index(
                    conn,
                    organisation_id=registered.organisation_id,
                    patient_id=aggregate.id,
                    given_name=registered.given_name,
                    family_name=registered.family_name,
                    birth_date=registered.birth_date,
                )
            recorded = await self.store.append(**append, conn=conn)
        await self.store.notify_appended(recorded[-1].log_position)
        return CommandResult(aggregate.id, recorded)

    async def load(self, cls: type[A], stream_id: UUID) -> A:
        return await self.store.load(cls, stream_id)

    async def execute(
        self,
        cls: type[A],
        stream_id: UUID,
        command: Callable[[A], object],
        *,
        metadata: EventMetadata,
        now: datetime,
        idempotency: IdempotencyKey | None = None,
        check: LoadCheck | None = None,
    ) -> CommandResult:
        """Loads, runs ``command(aggregate)``, appends; retries once after a conflict.
        ``check`` (the caller's authorisation in SQL) is decided by each load's statement."""
        for attempt in (1, 2):
            aggregate: Any = await self.store.load(cls, stream_id, check=check)
            # Kept for the stream's next command, with this one's events once they are
            # committed (the caller may go on reading ``aggregate``, so it is not kept).
            before = self.store.copy_for_keeping(aggregate)
            command(aggregate)
            events = aggregate.collect_events()
            if not events:
                return CommandResult(stream_id, [])
            try:
                recorded = await self.store.append(
                    stream_type=cls.STREAM_TYPE,  # type: ignore[attr-defined]
                    stream_id=stream_id,
                    patient_id=patient_id_of(aggregate),
                    expected_version=aggregate.version - len(events),
                    events=events,
                    metadata=metadata,
                    now=now,
                    idempotency=idempotency,
                )
            except ConcurrencyConflictError:
                if attempt == 2:
                    raise
                log.info("command conflict, retrying stream_id=%s", stream_id)
                continue
            if before is not None:
                self.store.keep(before, recorded)
            return CommandResult(stream_id, recorded)
        raise AssertionError("unreachable")
