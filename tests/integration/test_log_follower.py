"""The log follower against the real PostgreSQL: killed mid-page it resumes from its
checkpoint with nothing lost and nothing applied twice; two followers with one lease
never work at once and the second takes over; a failing handler backs off and retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from uuid import UUID

import pytest

from services.database import Conn, create_pool
from services.eventstore import EventMetadata, EventStore, RecordedEvent
from services.logfollow import Backoff, LogFollower, read_checkpoint
from services.settings import Settings
from tests.factories import new_patient

META = EventMetadata(actor_id="test-writer", role="care_manager", organisation_id="org-1")
NAME = "test:follower"


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=8))
    try:
        async with pool.acquire() as conn:
            # The handler's effect: one row per event it handled (duplicates would show).
            await conn.execute("CREATE TABLE follower_effects (event_id uuid, worker text)")
        yield EventStore(pool)
    finally:
        await pool.close()


async def _append(store: EventStore, patients: int) -> list[UUID]:
    ids: list[UUID] = []
    for _ in range(patients):
        patient = new_patient()
        recorded = await store.append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0,
            events=patient.collect_events(),
            metadata=META,
            now=datetime.now(UTC),
        )
        ids.extend(e.event_id for e in recorded)
    return ids


def _recording(worker: str) -> Callable[[Conn, Sequence[RecordedEvent]], Awaitable[None]]:
    async def handle(conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await conn.executemany(
            "INSERT INTO follower_effects (event_id, worker) VALUES ($1, $2)",
            [(e.event_id, worker) for e in events],
        )

    return handle


async def _effects(store: EventStore) -> list[UUID]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch("SELECT event_id FROM follower_effects")
    return [r["event_id"] for r in rows]


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(20.0):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def _stop(task: asyncio.Task[None], stop: asyncio.Event | None = None) -> None:
    if stop is not None:
        stop.set()
    else:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10.0)


async def _exactly_once(store: EventStore, expected: list[UUID]) -> None:
    async def all_there() -> bool:
        return len(await _effects(store)) >= len(expected)

    await _until(all_there)
    seen = await _effects(store)
    assert sorted(seen) == sorted(expected), "every event handled exactly once"


async def test_a_follower_cancelled_mid_page_resumes_from_its_checkpoint_exactly_once(
    store: EventStore,
) -> None:
    appended = await _append(store, 12)
    inside = asyncio.Event()
    record = _recording("first")
    pages = 0

    async def stuck_on_the_third_page(conn: Conn, events: Sequence[RecordedEvent]) -> None:
        nonlocal pages
        pages += 1
        await record(conn, events)  # this page's effect is written, not yet committed
        if pages == 3:
            inside.set()
            await asyncio.Event().wait()  # killed here, mid-page

    first = LogFollower(store, NAME, stuck_on_the_third_page, page_size=5, poll_seconds=0.05)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(inside.wait(), timeout=20.0)
    await _stop(task)
    committed = await _effects(store)
    assert len(committed) == 10, "two whole pages committed, the third rolled back"
    async with store.pool.acquire() as conn:
        assert (await read_checkpoint(conn, NAME)).position == first.status.position.position

    second = LogFollower(store, NAME, _recording("second"), page_size=5, poll_seconds=0.05)
    task = asyncio.create_task(second.run())
    try:
        await _exactly_once(store, appended)
        later = await _append(store, 3)  # live again: woken by this process's append
        await _exactly_once(store, appended + later)
    finally:
        await _stop(task)


async def test_a_handler_that_raises_mid_page_leaves_nothing_of_it_and_the_page_is_retried(
    store: EventStore,
) -> None:
    appended = await _append(store, 9)
    record = _recording("one")
    calls = 0
    when: list[float] = []
    loop = asyncio.get_running_loop()

    async def fails_twice_on_the_second_page(conn: Conn, events: Sequence[RecordedEvent]) -> None:
        nonlocal calls
        calls += 1
        when.append(loop.time())
        await record(conn, events)
        if calls in (2, 3):
            raise RuntimeError("handler failed")

    follower = LogFollower(
        store,
        NAME,
        fails_twice_on_the_second_page,
        page_size=4,
        poll_seconds=0.05,
        backoff=Backoff(0.2, 1.0, jitter=False),
    )
    task = asyncio.create_task(follower.run())
    try:
        await _exactly_once(store, appended)
    finally:
        await _stop(task)
    assert follower.status.failures == 2
    assert follower.status.last_error == "RuntimeError"
    # The retries waited the backoff's 0.2 s, then 0.4 s.
    assert when[2] - when[1] >= 0.2
    assert when[3] - when[2] >= 0.4


async def test_two_followers_with_one_lease_never_work_at_once_and_the_second_takes_over(
    store: EventStore,
) -> None:
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first = LogFollower(store, NAME, _recording("first"), page_size=3, poll_seconds=0.05)
    second = LogFollower(
        store,
        NAME,
        _recording("second"),
        page_size=3,
        poll_seconds=0.05,
        lease_poll_seconds=0.1,
    )
    first_task = asyncio.create_task(first.run(first_stop))

    async def first_leads() -> bool:
        return first.status.leader

    await _until(first_leads)
    second_task = asyncio.create_task(second.run(second_stop))
    try:
        before = await _append(store, 7)
        await _exactly_once(store, before)
        assert not second.status.leader
        async with store.pool.acquire() as conn:
            workers = {r["worker"] for r in await conn.fetch("SELECT worker FROM follower_effects")}
        assert workers == {"first"}

        await _stop(first_task, first_stop)

        async def second_leads() -> bool:
            return second.status.leader

        await _until(second_leads)
        after = await _append(store, 5)
        await _exactly_once(store, before + after)
        async with store.pool.acquire() as conn:
            rows = await conn.fetch("SELECT event_id, worker FROM follower_effects")
        by_worker = {r["event_id"]: r["worker"] for r in rows}
        assert {by_worker[e] for e in before} == {"first"}
        assert {by_worker[e] for e in after} == {"second"}
    finally:
        await _stop(second_task, second_stop)
        if not first_task.done():
            await _stop(first_task, first_stop)


async def test_a_killed_followers_lease_ends_with_its_connection(store: EventStore) -> None:
    """Cancelled without a chance to unlock (its connection closed under it): the
    standby takes over and goes on from the checkpoint."""
    appended = await _append(store, 4)
    first = LogFollower(store, NAME, _recording("first"), page_size=2, poll_seconds=0.05)
    first_task = asyncio.create_task(first.run())

    async def first_done() -> bool:
        return len(await _effects(store)) == len(appended)

    await _until(first_done)
    second = LogFollower(
        store, NAME, _recording("second"), page_size=2, poll_seconds=0.05, lease_poll_seconds=0.1
    )
    second_task = asyncio.create_task(second.run())
    try:
        await asyncio.sleep(0.3)
        assert not second.status.leader
        # Kill the leader's backend: its session lock ends with it.
        async with store.pool.acquire() as conn:
            killed = await conn.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_locks
                   WHERE locktype = 'advisory' AND granted AND objsubid = 2"""
            )
        assert killed == 1
        first_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(first_task, timeout=10.0)

        async def second_leads() -> bool:
            return second.status.leader

        await _until(second_leads)
        later = await _append(store, 3)
        await _exactly_once(store, appended + later)
    finally:
        await _stop(second_task)
