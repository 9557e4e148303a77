"""Read auditing with group commit: every read of patient data leaves a durable record
before its response is sent, without a database round trip per read.

Guarantee (decided here): a resolver that returns patient data first awaits
``AuditWriter.record``; that returns only after the batch holding the record has been
committed. So no response is ever given whose read record could still be lost, and a
crash loses only reads whose responses were never sent. Concurrent reads share one
``COPY`` per batch (group commit), so the cost per read falls as load rises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

log = logging.getLogger("careteam.audit")

_COLUMNS = [
    "at",
    "actor_id",
    "role",
    "organisation_id",
    "patient_id",
    "operation",
    "outcome",
    "reason",
    "purpose_of_use",
    "request_id",
    "fields",
]


@dataclass(frozen=True)
class ReadRecord:
    """One patient's data was returned to one caller."""

    at: datetime
    actor_id: UUID
    role: str
    organisation_id: UUID
    patient_id: UUID
    operation: str
    purpose_of_use: str
    request_id: str
    fields: tuple[str, ...]
    reason: str | None = None

    def as_row(self) -> tuple[object, ...]:
        return (
            self.at,
            self.actor_id,
            self.role,
            self.organisation_id,
            self.patient_id,
            self.operation,
            "allowed",
            self.reason,
            self.purpose_of_use,
            self.request_id,
            list(self.fields),
        )


class AuditWriter:
    """Batches read records; ``record`` returns once its batch is committed."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 2_000) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()

    async def record(self, records: Sequence[ReadRecord]) -> None:
        if not records:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for r in records:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.append((r.as_row(), future))
            futures.append(future)
        self._wake.set()
        await asyncio.gather(*futures)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                try:
                    async with self._pool.acquire() as conn:
                        await conn.copy_records_to_table(
                            "access_log", records=[row for row, _ in batch], columns=_COLUMNS
                        )
                except Exception as exc:
                    log.exception("read audit batch failed; the reads are refused")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(AuditUnavailableError(str(type(exc).__name__)))
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        """Fails whatever is still pending (the process is stopping)."""
        for _, future in self._pending:
            if not future.done():
                future.set_exception(AuditUnavailableError("shutting down"))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._wake.set()


class AuditUnavailableError(RuntimeError):
    """The read could not be recorded, so its data is not returned."""
