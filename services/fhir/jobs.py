"""FHIR jobs in PostgreSQL: onboarding imports and Bulk Data exports outlive their process.

A job is a row of ``fhir_jobs`` (whose it is, its status, progress and request details),
with its report lines (``fhir_import_entries``) or its NDJSON lines
(``fhir_export_lines``). The process running a job beats ``heartbeat_at`` every
``HEARTBEAT_SECONDS``; a job still ``running`` whose beat is older than ``STALE_SECONDS``
was interrupted (its process died or was killed): its status answers so, and what it
wrote stays. Any process of the deployment answers a status URL or serves a file, so a
restart or another replica changes nothing for the client.

Export lines are encrypted with their patient's data key (the crypto-shredding of
services/crypto.py): a patient whose key is gone (forgotten) before the export is left
out of it; forgetting a patient afterwards deletes their lines (services/erasure.py, in
the erasure's transaction), and a line whose key is gone is never served nor counted,
even one a build wrote after the erasure.

Finished jobs are deleted ``RETENTION_HOURS`` after they finished, and a caller keeps at
most ``MAX_JOBS_PER_OWNER`` jobs of each kind (the oldest finished go first); both are
applied whenever a job starts, and an expired job is not found meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson

from services.crypto import KeyRing, decrypt_fields, encrypt_fields

log = logging.getLogger("careteam.fhir.jobs")

HEARTBEAT_SECONDS: Final = 2.0
STALE_SECONDS: Final = 20
RETENTION_HOURS: Final = 24
MAX_JOBS_PER_OWNER: Final = 16
# The name of the encrypted field of an export line (part of its AEAD data).
LINE_FIELD: Final = "line"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str  # running, complete, failed, interrupted
    detail: dict[str, Any]
    total: int
    done: int


@dataclass(frozen=True)
class ExportLine:
    """One exported resource of one patient, before it is sealed."""

    resource_type: str
    patient_id: UUID
    body: bytes


async def create(
    pool: asyncpg.Pool,
    *,
    job_id: str,
    kind: str,
    owner: tuple[UUID, UUID],
    detail: dict[str, Any],
    total: int = 0,
) -> None:
    """A new running job; expired jobs and a caller's surplus are deleted first."""
    user_id, organisation_id = owner
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM fhir_jobs WHERE finished_at < now() - make_interval(hours => $1)",
            RETENTION_HOURS,
        )
        await conn.execute(
            """DELETE FROM fhir_jobs WHERE id IN (
                 SELECT id FROM fhir_jobs
                 WHERE owner_id = $1 AND organisation_id = $2 AND kind = $3
                   AND status <> 'running'
                 ORDER BY created_at DESC OFFSET $4)""",
            user_id,
            organisation_id,
            kind,
            MAX_JOBS_PER_OWNER - 1,
        )
        await conn.execute(
            """INSERT INTO fhir_jobs (id, kind, owner_id, organisation_id, status, detail, total)
               VALUES ($1, $2, $3, $4, 'running', $5::jsonb, $6)""",
            job_id,
            kind,
            user_id,
            organisation_id,
            orjson.dumps(detail).decode(),
            total,
        )


async def find(pool: asyncpg.Pool, job_id: str, kind: str, owner: tuple[UUID, UUID]) -> Job | None:
    """The caller's own job (another caller's, or an expired one, is none)."""
    user_id, organisation_id = owner
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT id, kind, detail, total, done,
                      CASE WHEN status = 'running'
                            AND heartbeat_at < now() - make_interval(secs => $5)
                           THEN 'interrupted' ELSE status END AS status
               FROM fhir_jobs
               WHERE id = $1 AND kind = $2 AND owner_id = $3 AND organisation_id = $4
                 AND (finished_at IS NULL
                      OR finished_at > now() - make_interval(hours => $6))""",
            job_id,
            kind,
            user_id,
            organisation_id,
            STALE_SECONDS,
            RETENTION_HOURS,
        )
    if row is None:
        return None
    return Job(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        detail=orjson.loads(row["detail"]),
        total=row["total"],
        done=row["done"],
    )


async def run(pool: asyncpg.Pool, job_id: str, work: Awaitable[None]) -> None:
    """Runs ``work`` with the job's heartbeat, then records how it ended (complete, or
    failed on an unexpected error; a cancelled job's row was deleted by its caller)."""
    beat = asyncio.create_task(_beat(pool, job_id))
    status = "failed"
    try:
        await work
        status = "complete"
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("fhir job failed")
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE fhir_jobs SET status = $2, finished_at = now() WHERE id = $1",
            job_id,
            status,
        )


async def _beat(pool: asyncpg.Pool, job_id: str) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE fhir_jobs SET heartbeat_at = now() WHERE id = $1", job_id
                )
        except (OSError, asyncpg.PostgresError):
            log.warning("fhir job heartbeat failed; retrying")
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def delete(pool: asyncpg.Pool, job_id: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM fhir_jobs WHERE id = $1", job_id)


# --- import reports -------------------------------------------------------------------


async def add_entry(pool: asyncpg.Pool, job_id: str, seq: int, entry: dict[str, Any]) -> None:
    """One report line, and the progress with it (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO fhir_import_entries (job_id, seq, entry) VALUES ($1, $2, $3::jsonb)",
            job_id,
            seq,
            orjson.dumps(entry).decode(),
        )
        await conn.execute(
            "UPDATE fhir_jobs SET done = $2, heartbeat_at = now() WHERE id = $1",
            job_id,
            seq + 1,
        )


async def entries(pool: asyncpg.Pool, job_id: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT entry FROM fhir_import_entries WHERE job_id = $1 ORDER BY seq", job_id
        )
    return [orjson.loads(r["entry"]) for r in rows]


# --- export files ---------------------------------------------------------------------


async def add_lines(
    pool: asyncpg.Pool,
    keyring: KeyRing,
    job_id: str,
    lines: Sequence[ExportLine],
    *,
    first_seq: dict[str, int],
    done: int,
) -> None:
    """Seals and stores a batch of lines (their patients' keys are read in the same
    transaction; a patient without a key, forgotten, is left out) and the progress.
    ``first_seq`` is each type's next line number; it is advanced in place."""
    async with pool.acquire() as conn, conn.transaction():
        keys = await keyring.data_keys(conn, {line.patient_id for line in lines})
        rows = []
        for line in lines:
            key = keys.get(line.patient_id)
            if key is None:
                continue
            payload = encrypt_fields(
                {LINE_FIELD: line.body.decode()}, (LINE_FIELD,), line.patient_id, key
            )
            seq = first_seq.get(line.resource_type, 0)
            first_seq[line.resource_type] = seq + 1
            rows.append(
                (
                    job_id,
                    line.resource_type,
                    seq,
                    line.patient_id,
                    True,
                    orjson.dumps(payload).decode(),
                )
            )
        await conn.executemany(
            """INSERT INTO fhir_export_lines
                 (job_id, resource_type, seq, patient_id, encrypted, line)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
            rows,
        )
        await conn.execute(
            "UPDATE fhir_jobs SET done = $2, heartbeat_at = now() WHERE id = $1", job_id, done
        )


_READABLE: Final = """
    FROM fhir_export_lines l
    LEFT JOIN patient_keys k ON k.patient_id = l.patient_id
    WHERE l.job_id = $1 AND (NOT l.encrypted OR k.wrapped_key IS NOT NULL)"""


async def line_counts(pool: asyncpg.Pool, job_id: str) -> dict[str, int]:
    """Lines per resource type that can still be served (their patient's key exists)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT l.resource_type, count(*) AS n {_READABLE} GROUP BY l.resource_type",
            job_id,
        )
    return {r["resource_type"]: r["n"] for r in rows}


async def export_file(
    pool: asyncpg.Pool, keyring: KeyRing, job_id: str, resource_type: str
) -> tuple[bytes, list[UUID]]:
    """One NDJSON file and the patients in it, in line order; lines whose key is gone
    (a patient forgotten since) are left out."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT l.patient_id, l.encrypted, l.line {_READABLE}
                  AND l.resource_type = $2 ORDER BY l.seq""",
            job_id,
            resource_type,
        )
        keys = await keyring.data_keys(conn, {r["patient_id"] for r in rows if r["encrypted"]})
    out: list[bytes] = []
    patients: list[UUID] = []
    for r in rows:
        patient_id: UUID = r["patient_id"]
        payload = orjson.loads(r["line"])
        if r["encrypted"]:
            key = keys.get(patient_id)
            if key is None:
                continue
            payload = decrypt_fields(payload, patient_id, key)
        out.append(str(payload[LINE_FIELD]).encode())
        if not patients or patients[-1] != patient_id:
            patients.append(patient_id)
    body = b"".join(line + b"\n" for line in out)
    return body, list(dict.fromkeys(patients))
