"""Read auditing with group commit: every read of patient data leaves a durable record
before its response is sent, without a database round trip per read.

Guarantee (decided here): a resolver that returns patient data first awaits
``AuditWriter.record``; that returns only after the batch holding the record has been
committed. So no response is ever given whose read record could still be lost, and a
crash loses only reads whose responses were never sent. Concurrent reads share one
statement per batch (group commit), so the cost per read falls as
load rises; a read of a list of patients is one record naming them all, written as one
access log row (its ``patient_ids``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

log = logging.getLogger("careteam.audit")

# One statement per batch: the batch's records as arrays of their values, their patients
# and their field paths as one array each, sliced per record, given to ``record_reads``
# (migration 0086, a function so that its insert is planned once per session). Each record
# is one access log row: a read of one patient names it in `patient_id` (as every row did
# before migration 0084); a read of several names them all in `patient_ids`, so a list of
# 150 patients is one row to write, index and seal into the audit chain, not 150. Readers
# by patient go through the `access_log_entries` view (one entry per patient).
# Until list rows are enabled (`access_log_list_rows`, off on a database that had reads
# before migration 0084, so a previous release still running in a rolling deploy never
# meets a row it cannot read or seal), a read of several patients is a row per patient as
# before; the function decides, so enabling takes effect at the next batch.
_INSERT = """SELECT record_reads($1::timestamptz[], $2::uuid[], $3::text[], $4::uuid[],
    $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::int[], $11::text[],
    $12::uuid[], $13::int[], $14::int[])"""


def _arguments(records: Sequence[ReadRecord]) -> list[list[Any]]:
    """The statement's fourteen arguments for ``records``, in its parameters' order."""
    per_record: list[list[Any]] = [[] for _ in range(10)]
    fields: list[str] = []
    patients: list[UUID] = []
    spans: tuple[list[int], list[int]] = ([], [])
    for r in records:
        first = len(fields) + 1
        fields.extend(r.fields)
        values = (r.at, r.actor_id, r.role, r.organisation_id, r.operation, r.reason)
        for column, value in zip(
            per_record,
            (*values, r.purpose_of_use, r.request_id, first, len(fields)),
            strict=True,
        ):
            column.append(value)
        spans[0].append(len(patients) + 1)
        patients.extend(r.patient_ids)
        spans[1].append(len(patients))
    return [*per_record, fields, patients, *spans]


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


class AuditWriter:
    """Batches read records; ``record`` returns once its batch is committed."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 500) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[Sequence[ReadRecord], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()

    async def record(self, records: Sequence[ReadRecord]) -> None:
        """Returns once every record is committed (one future per call, however many
        patients it names); raises ``AuditUnavailableError`` if they could not be."""
        records = [r for r in records if r.patient_ids]
        if not records:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((records, future))
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
                    arguments = _arguments([r for records, _ in batch for r in records])
                    async with self._pool.acquire() as conn:
                        await conn.execute(_INSERT, *arguments)
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
