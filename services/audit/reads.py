"""Read auditing with group commit: every read of patient data leaves a durable record
before its response is sent, without a database round trip per read.

Guarantee (decided here): a resolver that returns patient data first awaits
``AuditWriter.record``; that returns only after the batch holding the record has been
committed. So no response is ever given whose read record could still be lost, and a
crash loses only reads whose responses were never sent. Concurrent reads share one
pipelined, atomic ``executemany`` per batch (group commit), so the cost per read falls as
load rises; a read of a list of patients is one record naming them all, which PostgreSQL
expands into the access log's row per patient.
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

# One statement per read record, expanded in PostgreSQL to one access-log row per patient
# (the row per patient is what every reader of the access log queries: compliance's
# trail, FHIR AuditEvent, exports, the audit chain). The patients travel as one uuid[]
# instead of a row of eleven values each, so a list of 150 costs one array to encode.
_INSERT = """
INSERT INTO access_log (at, actor_id, role, organisation_id, patient_id, operation, outcome,
                        reason, purpose_of_use, request_id, fields)
SELECT $1, $2, $3, $4, p.patient_id, $5, 'allowed', $6, $7, $8, $9
FROM unnest($10::uuid[]) AS p(patient_id)
"""


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """These patients' data was returned to one caller, for one operation, with the same
    fields, purpose and reason (a list read is one record naming all its patients)."""

    at: datetime
    actor_id: UUID
    role: str
    organisation_id: UUID
    patient_ids: tuple[UUID, ...]
    operation: str
    purpose_of_use: str
    request_id: str
    fields: tuple[str, ...]
    reason: str | None = None

    def as_args(self) -> tuple[object, ...]:
        return (
            self.at,
            self.actor_id,
            self.role,
            self.organisation_id,
            self.operation,
            self.reason,
            self.purpose_of_use,
            self.request_id,
            list(self.fields),
            list(self.patient_ids),
        )


class AuditWriter:
    """Batches read records; ``record`` returns once its batch is committed."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[list[tuple[object, ...]], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()

    async def record(self, records: Sequence[ReadRecord]) -> None:
        """Returns once every record is committed (one future per call, however many
        patients it names); raises ``AuditUnavailableError`` if they could not be."""
        args = [r.as_args() for r in records if r.patient_ids]
        if not args:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        self._wake.set()
        await future

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                try:
                    async with self._pool.acquire() as conn:
                        # executemany is one pipelined, atomic round trip for the batch.
                        await conn.executemany(_INSERT, [a for args, _ in batch for a in args])
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
