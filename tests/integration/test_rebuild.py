"""`careteam rebuild`: read models rebuilt from the log are identical to the live ones."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from projections.registry import all_projections, projection_tables
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import START, EventStore
from services.projector.rebuild import UnknownProjectionError, rebuild
from services.projector.runner import ProjectionRunner
from services.seed import DemoTeam, seed_caseload
from services.settings import Settings
from tests.integration.readmodels_support import open_clinic
from tests.integration.test_readmodels_caseload import contacted

TEAM = DemoTeam(
    organisation_id=UUID("00000000-0000-4000-8000-000000000001"),
    care_manager_id=UUID("00000000-0000-4000-8000-0000000000c1"),
    pcp_id=UUID("00000000-0000-4000-8000-0000000000b1"),
    psychiatric_consultant_id=UUID("00000000-0000-4000-8000-0000000000a1"),
)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=6))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def _dump(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every read-model table's rows as text, in a stable order."""
    out = {}
    for tables in projection_tables().values():
        for table in tables:
            rows = await conn.fetch(f"SELECT t::text AS row FROM {table} t ORDER BY 1")
            out[table] = [r["row"] for r in rows]
    return out


async def test_a_rebuild_of_every_read_model_is_identical_to_the_live_tables(
    store: EventStore,
) -> None:
    """Seed a caseload, project it live, rebuild everything: every row is the same."""
    await seed_caseload(Application(store), TEAM, patients=15, now=datetime.now(UTC))
    runner = ProjectionRunner(store, all_projections())
    await runner.catch_up()
    async with store.pool.acquire() as conn:
        live = await _dump(conn)
        head = await conn.fetchval("SELECT max(position) FROM events")
    assert sum(map(len, live.values())) > 15

    seen: list[tuple[int, int]] = []
    position = await rebuild(
        store,
        all_projections(),
        projection_tables(),
        page_size=97,
        progress=lambda done, total: seen.append((done, total)),
    )
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == live
        checkpoints = await conn.fetch(
            "SELECT position FROM checkpoints WHERE split_part(name, '@', 1) = ANY($1)",
            list(projection_tables()),
        )
        leftovers = await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'careteam_rebuild_%'"
        )
    assert position.position == head
    assert {r["position"] for r in checkpoints} == {head}
    assert seen[-1][0] == seen[-1][1] and len(seen) > 1
    assert leftovers == 0
    assert await runner.catch_up() == 0, "the live runner continues from the new checkpoint"


async def test_one_read_model_can_be_rebuilt_alone_and_unknown_names_are_refused(
    store: EventStore,
) -> None:
    """Rebuilding the registry leaves the other tables untouched."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    await ProjectionRunner(store, all_projections()).catch_up()
    async with store.pool.acquire() as conn:
        before = await _dump(conn)
        await conn.execute("DELETE FROM rm_registry")  # damage one read model
    registry = [p for p in all_projections() if "rm_registry" in projection_tables()[p.name]]
    await rebuild(store, registry, projection_tables())
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == before
    with pytest.raises(UnknownProjectionError):
        await rebuild(store, registry, {})


async def test_a_projection_replaying_from_the_start_does_not_hold_the_others_back(
    db_dsn: str,
) -> None:
    """One read model reset to the start of the log catches up a page at a time while
    every other read model applies a new event in the same step."""
    async with open_clinic(db_dsn) as clinic:
        patient = await clinic.patient()
        await clinic.on_patient(patient, contacted(1))
        await clinic.catch_up()
        store = clinic.runtime.store
        projections = all_projections()
        registry = next(p for p in projections if p.name == "registry")
        async with clinic.runtime.pool.acquire() as conn:
            await registry.reset(conn)
            await conn.execute("DELETE FROM checkpoints WHERE name LIKE 'registry@%'")
        await clinic.on_patient(patient, contacted(2))
        head = (await store.read_log(START, limit=1_000))[-1].log_position

        runner = ProjectionRunner(store, projections, page_size=1)
        await runner.step()

        others = [p.name for p in projections if p.name != "registry"]
        assert all(runner.position(name) == head for name in others)
        assert START < runner.position("registry") < head
        await runner.catch_up()
        assert runner.position("registry") == head
