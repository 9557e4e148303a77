"""Statements of a projector page, counted with asyncpg's query logger and pinned as an
upper bound (docs/architecture.md, 'Round trips per command'): the batched read models
(projections/base.py ``Batched``: the patient access, the patient view, the registry
on a page without a zone change, billing, outcomes, PCBH, care-team months, the
trackers) read their rows in one statement and write in one more, whatever their
number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest

from projections.base import Batched
from projections.registry import all_projections
from tests.integration.readmodels_support import NOW, Clinic, day, open_clinic

# The checkpoints read (a tool's page), the log read, BEGIN, the batched read models
# (read, the registry's zones with it; then write with the checkpoints' conditional
# move in the same statement) and COMMIT.
MAX_PAGE_OF_ONE_ASSIGNMENT = 6


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


async def test_a_page_of_one_assignment_takes_a_bounded_number_of_statements(
    clinic: Clinic,
) -> None:
    assert sum(isinstance(p, Batched) for p in all_projections()) >= 8
    patient_id = await clinic.patient()
    await clinic.catch_up()
    await clinic.on_patient(
        patient_id,
        lambda p: p.assign_care_team(care_manager_id=uuid4(), occurred_at=day(3), now=NOW),
    )
    statements: list[str] = []

    def logger(record: Any) -> None:
        statements.append(" ".join(record.query.split()))

    async with clinic.runtime.pool.acquire() as conn:
        conn.add_query_logger(logger)
        read = await clinic.runtime.projector.step(conn)
        conn.remove_query_logger(logger)
    assert read == 1
    print("\n".join(f"{len(s)} {s[:90]}" for s in statements))
    assert len(statements) <= MAX_PAGE_OF_ONE_ASSIGNMENT
    # One read and one write for every batched read model the event concerns.
    assert sum(s.startswith("SELECT 0 AS part") for s in statements) == 1
    writes = [s for s in statements if s.startswith("WITH w0 AS")]
    assert len(writes) == 1 and "counted AS (UPDATE checkpoints" in writes[0]
    assert not any(s.startswith("UPDATE checkpoints") for s in statements)
    assert not any(s.startswith("SELECT key, doc FROM rm_patient_view") for s in statements)
    assert not any(s.startswith("SELECT * FROM rm_patient_access") for s in statements)
    # The registry's zones, rows and writes ride in those two statements.
    assert not any("rm_registry" in s for s in statements if s not in writes and "part" not in s)
    assert "FOR SHARE" in next(s for s in statements if s.startswith("SELECT 0 AS part"))
