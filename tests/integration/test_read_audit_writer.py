"""The read audit writer against a real PostgreSQL: records of several patients each,
from concurrent reads sharing one batch, become one access log row per record (a list's
patients in its ``patient_ids``, a single patient in ``patient_id``), each patient
findable as read through ``access_log_entries`` (with their own fields, purpose and
reason), and a batch that cannot be written refuses every read in it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from services.audit.reads import AuditUnavailableError, AuditWriter, ReadRecord
from services.database import create_pool
from services.settings import Settings

AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
ORG = uuid4()


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, Settings())
    try:
        yield pool
    finally:
        await pool.close()


def _read(
    actor: UUID,
    patients: list[UUID],
    fields: tuple[str, ...],
    *,
    purpose: str = "TREAT",
    reason: str | None = None,
) -> ReadRecord:
    return ReadRecord(
        at=AT,
        actor_id=actor,
        role="CARE_MANAGER",
        organisation_id=ORG,
        patient_ids=tuple(patients),
        operation="caseload",
        purpose_of_use=purpose,
        request_id=f"req-{actor}",
        fields=fields,
        reason=reason,
    )


async def test_concurrent_list_reads_become_one_access_row_per_record(
    pool: asyncpg.Pool,
) -> None:
    writer = AuditWriter(pool)
    task = asyncio.create_task(writer.run())
    try:
        first, second = uuid4(), uuid4()
        listed = [uuid4() for _ in range(150)]
        glass = uuid4()
        await asyncio.gather(
            writer.record(
                [
                    _read(first, listed, ("caseload.totalCount", "caseload.edges.node.mrn")),
                    _read(
                        first,
                        [glass],
                        ("caseload.totalCount",),
                        purpose="ETREAT",
                        reason="BREAK_THE_GLASS",
                    ),
                    _read(first, [], ("nothing",)),
                ]
            ),
            writer.record([_read(second, listed[:2], ())]),
        )
        async with pool.acquire() as conn:
            stored = await conn.fetch(
                "SELECT actor_id, patient_id, patient_ids FROM access_log ORDER BY id"
            )
            rows = await conn.fetch(
                """SELECT actor_id, patient_id, purpose_of_use, reason, fields, at, role,
                          organisation_id, operation, outcome, request_id, part
                   FROM access_log_entries ORDER BY id, part"""
            )
            # Each patient is found as read by its own id, list rows through the index.
            for patient in (listed[0], listed[1], listed[-1], glass):
                found = await conn.fetch(
                    """SELECT actor_id FROM access_log_entries
                       WHERE patient_id = $1 AND listed @> ARRAY[$1]::uuid[]""",
                    patient,
                )
                readers = {first, second} if patient in listed[:2] else {first}
                assert sorted(r["actor_id"] for r in found) == sorted(readers)
    finally:
        task.cancel()
    # One row per record: the list, the break-the-glass read, the second caller's list.
    assert [(r["actor_id"], r["patient_id"], r["patient_ids"]) for r in stored] == [
        (first, None, listed),
        (first, glass, None),
        (second, None, listed[:2]),
    ]
    got = {(r["actor_id"], r["patient_id"]): r for r in rows}
    assert len(rows) == len(got) == 150 + 1 + 2
    for patient in listed:
        row = got[(first, patient)]
        assert (row["purpose_of_use"], row["reason"]) == ("TREAT", None)
        assert row["fields"] == ["caseload.totalCount", "caseload.edges.node.mrn"]
    row = got[(first, glass)]
    assert (row["purpose_of_use"], row["reason"], row["fields"], row["part"]) == (
        "ETREAT",
        "BREAK_THE_GLASS",
        ["caseload.totalCount"],
        0,
    )
    for patient in listed[:2]:
        assert got[(second, patient)]["fields"] == []
    assert {
        (r["at"], r["role"], r["organisation_id"], r["operation"], r["outcome"]) for r in rows
    } == {(AT, "CARE_MANAGER", ORG, "caseload", "allowed")}
    assert {r["request_id"] for r in rows} == {f"req-{first}", f"req-{second}"}
    # A list keeps its patients' order, numbered from 1.
    firsts = [r for r in rows if r["actor_id"] == first and r["part"]]
    assert [r["patient_id"] for r in firsts] == listed
    assert [r["part"] for r in firsts] == list(range(1, 151))


async def test_a_batch_that_cannot_be_written_refuses_its_reads(pool: asyncpg.Pool) -> None:
    writer = AuditWriter(pool)
    task = asyncio.create_task(writer.run())
    try:
        bad = ReadRecord(
            at=AT,
            actor_id=uuid4(),
            role="CARE_MANAGER",
            organisation_id=ORG,
            patient_ids=(uuid4(),),
            operation="caseload",
            purpose_of_use="TREAT",
            request_id="x" * 10,
            fields=("a\x00b",),  # PostgreSQL refuses a NUL in text
        )
        with pytest.raises(AuditUnavailableError):
            await writer.record([bad])
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM access_log") == 0
    finally:
        task.cancel()


async def test_until_list_rows_are_enabled_a_list_read_is_a_row_per_patient(
    pool: asyncpg.Pool, db_dsn: str, tmp_path: Path
) -> None:
    """A database that had reads before list rows existed starts with them off (a previous
    release still running in a rolling deploy can neither read nor seal one): a read of
    three patients is three rows, as before; `careteam audit list-rows enable` turns them
    on for the next batch."""
    import os
    import subprocess
    import sys

    async with pool.acquire() as conn:
        await conn.execute("UPDATE access_log_list_rows SET enabled = false")
    writer = AuditWriter(pool)
    task = asyncio.create_task(writer.run())
    try:
        actor, listed = uuid4(), [uuid4() for _ in range(3)]
        await writer.record([_read(actor, listed, ("caseload.totalCount",))])
        env = {**os.environ, "CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "services.cli", "audit", "list-rows"]

        def cli(action: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*command, action], env=env, capture_output=True, text=True)

        status = await asyncio.to_thread(cli, "status")
        assert status.returncode == 0 and "list rows: off" in status.stdout, status
        enabled = await asyncio.to_thread(cli, "enable")
        assert enabled.returncode == 0 and "list rows: on" in enabled.stdout, enabled
        await writer.record([_read(actor, listed, ("caseload.totalCount",))])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT patient_id, patient_ids FROM access_log WHERE actor_id = $1 ORDER BY id",
            actor,
        )
        entries = await conn.fetch(
            "SELECT patient_id FROM access_log_entries WHERE actor_id = $1 ORDER BY id, part",
            actor,
        )
    assert [(r["patient_id"], r["patient_ids"]) for r in rows] == [
        *((p, None) for p in listed),
        (None, listed),
    ]
    assert [e["patient_id"] for e in entries] == listed + listed
