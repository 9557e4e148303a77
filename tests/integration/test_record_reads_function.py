"""The read audit's function ``record_reads`` (migration 0086) writes the same access log
rows as the statement it replaced (kept below as the reference): random batches of 1 to
200 records, list rows off and on, the setting's row missing and back."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from services.audit.reads import _INSERT as NEW
from services.audit.reads import ReadRecord, _arguments

OLD = """
INSERT INTO access_log (at, actor_id, role, organisation_id, patient_id, patient_ids,
                        operation, outcome, reason, purpose_of_use, request_id, fields)
SELECT r.at, r.actor_id, r.role, r.organisation_id,
       CASE WHEN s.lists AND r.p_from < r.p_to THEN NULL ELSE ($12::uuid[])[g.i] END,
       CASE WHEN s.lists AND r.p_from < r.p_to THEN ($12::uuid[])[r.p_from:r.p_to] END,
       r.operation, 'allowed', r.reason, r.purpose_of_use, r.request_id,
       ($11::text[])[r.f_from:r.f_to]
FROM unnest($1::timestamptz[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::int[], $10::int[], $13::int[], $14::int[])
     WITH ORDINALITY AS r(at, actor_id, role, organisation_id, operation, reason,
                          purpose_of_use, request_id, f_from, f_to, p_from, p_to, n)
CROSS JOIN (SELECT coalesce((SELECT enabled FROM access_log_list_rows), false) AS lists) s
CROSS JOIN LATERAL generate_series(r.p_from, CASE WHEN s.lists THEN r.p_from ELSE r.p_to END)
     AS g(i)
ORDER BY r.n, g.i
"""
COLS = (
    "at, actor_id, role, organisation_id, patient_id, patient_ids, operation, outcome,"
    " reason, purpose_of_use, request_id, fields"
)


def _records(rng: random.Random, n: int) -> list[ReadRecord]:
    out = []
    for i in range(n):
        out.append(
            ReadRecord(
                at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 99)),
                actor_id=uuid4(),
                role=rng.choice(["CARE_MANAGER", "PCP"]),
                organisation_id=uuid4(),
                patient_ids=tuple(uuid4() for _ in range(rng.choice([1, 1, 2, 3, 5]))),
                operation=rng.choice(["caseload", "patient", "at", "fields", "reason"]),
                purpose_of_use=rng.choice(["TREAT", "ETREAT"]),
                request_id=f"r{i}",
                fields=tuple(f"f{j}" for j in range(rng.choice([0, 0, 1, 3]))),
                reason=rng.choice([None, "", "why"]),
            )
        )
    return out


async def _rows(conn: asyncpg.Connection, sql: str, records: list[ReadRecord]) -> list[Any]:
    tr = conn.transaction()
    await tr.start()
    try:
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM access_log")
        await conn.execute(sql, *_arguments(records))
        return [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT {COLS} FROM access_log WHERE id > $1 ORDER BY id", before
            )
        ]
    finally:
        await tr.rollback()


@pytest.mark.parametrize("lists", [False, True])
async def test_record_reads_writes_the_rows_the_insert_it_replaced_wrote(
    db_dsn: str, lists: bool
) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("UPDATE access_log_list_rows SET enabled = $1", lists)
        rng = random.Random(7)
        for n in itertools.chain([1, 1, 2, 3], range(1, 40, 3), [200]):
            records = _records(rng, n)
            old = await _rows(conn, OLD, records)
            new = await _rows(conn, NEW, records)
            assert new == old
            assert len(old) == sum(
                1 if lists and len(r.patient_ids) > 1 else len(r.patient_ids) for r in records
            )
        # the table empty of its one row (coalesce -> false)
        await conn.execute("DELETE FROM access_log_list_rows")
        records = _records(rng, 10)
        assert await _rows(conn, NEW, records) == await _rows(conn, OLD, records)
        # plan cached per session: enable flip takes effect at next call
        await conn.execute("INSERT INTO access_log_list_rows (enabled) VALUES (true)")
        records = _records(rng, 10)
        assert await _rows(conn, NEW, records) == await _rows(conn, OLD, records)
    finally:
        await conn.close()
