"""The live event feed on the real PostgreSQL: with nobody subscribed it reads nothing of
the log (services/api/feed.py), and the first subscriber still gets exactly what is
committed after it joined."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.patient import Patient
from projections.registry import all_projections
from services.api.feed import EventFeed
from services.application import Application
from services.auth import Principal, Role
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore
from services.projector.runner import ProjectionRunner
from services.seed import DemoTeam, seed_caseload
from services.settings import Settings

TEAM = DemoTeam(
    organisation_id=UUID("00000000-0000-4000-8000-000000000001"),
    care_manager_id=UUID("00000000-0000-4000-8000-0000000000c1"),
    pcp_id=UUID("00000000-0000-4000-8000-0000000000b1"),
    psychiatric_consultant_id=UUID("00000000-0000-4000-8000-0000000000a1"),
)
MANAGER = Principal(TEAM.care_manager_id, Role.CARE_MANAGER, TEAM.organisation_id)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=8))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def test_the_feed_reads_nothing_unsubscribed_and_a_subscriber_gets_what_follows(
    store: EventStore,
) -> None:
    runner = ProjectionRunner(store, all_projections(), partitions=4)
    # The feed's own store on the same pool, so that only its reads are counted (it
    # finds the appends by its poll).
    mine = EventStore(store.pool, keyring=store.keyring)
    feed = EventFeed(mine, poll_seconds=0.05)
    reads = 0
    read_log = mine.read_log

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_log(*args, **kwargs)

    mine.read_log = counted  # type: ignore[method-assign]
    following = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(0.1)  # the feed started at the head
        before = await seed_caseload(Application(store), TEAM, patients=2, now=datetime.now(UTC))
        await runner.catch_up()
        await asyncio.sleep(0.3)  # woken by the appends, polled several times
        assert reads == 0
        events = feed.subscribe(MANAGER, patient_ids=None, event_types=None, after=None)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)  # subscribed: the feed moved to the head
        joined = await store.head()
        now = datetime.now(UTC)
        await Application(store).execute(
            Patient,
            before[1],
            lambda p: p.assign_care_team(occurred_at=now, now=now, pcp_id=uuid4()),
            metadata=EventMetadata(
                actor_id=str(TEAM.care_manager_id),
                role="care_manager",
                organisation_id=str(TEAM.organisation_id),
            ),
            now=now,
        )
        await runner.catch_up()
        event = await asyncio.wait_for(first, 10)
        assert event.log_position > joined
        assert (event.patient_id, event.event_type) == (before[1], "patient.care_team_assigned")
        assert reads > 0
        await events.aclose()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
