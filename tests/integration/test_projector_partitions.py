"""The projector's partitions on the real PostgreSQL: the partition of a patient is the
same in SQL and in Python, workers split the partitions and take a leaving worker's,
the count is fixed in the database, the previous release's checkpoints are split,
read-your-writes waits for the patient's partition only, and a runner's remembered
checkpoints never let it apply a page twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from projections.base import Batched
from projections.registry import all_projections, projection_tables
from services.application import Application
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import START, EventStore, LogPosition, RecordedEvent
from services.projector import partitions as parts
from services.projector.rebuild import rebuild
from services.projector.runner import (
    ProjectionLagTimeoutError,
    ProjectionRunner,
    StaleCheckpointError,
)
from services.seed import DemoTeam, seed_caseload
from services.settings import Settings
from tests.integration.test_rebuild import _dump

TEAM = DemoTeam(
    organisation_id=UUID("00000000-0000-4000-8000-000000000001"),
    care_manager_id=UUID("00000000-0000-4000-8000-0000000000c1"),
    pcp_id=UUID("00000000-0000-4000-8000-0000000000b1"),
    psychiatric_consultant_id=UUID("00000000-0000-4000-8000-0000000000a1"),
)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=8))
    try:
        yield EventStore(pool, keyring=KeyRing(os.urandom(32)))
    finally:
        await pool.close()


async def test_the_partition_of_a_patient_is_the_same_in_sql_and_python(
    store: EventStore,
) -> None:
    ids = [uuid4() for _ in range(300)] + [UUID(int=0), UUID(int=2**128 - 1)]
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT id, {parts.partition_sql('id', '$2')} AS p FROM unnest($1::uuid[]) AS id",
            ids,
            7,
        )
    assert {r["id"]: r["p"] for r in rows} == {i: parts.partition_of(i, 7) for i in ids}
    assert {parts.partition_of(i, 7) for i in ids} == set(range(7))


async def _until(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_workers_split_the_partitions_and_take_a_leaving_workers_share(
    store: EventStore,
) -> None:
    """Two workers own disjoint halves; a third joins and gets a share; when two leave,
    the one left owns everything; read models then equal a rebuild from the log."""
    await seed_caseload(Application(store), TEAM, patients=12, now=datetime.now(UTC))

    def worker() -> ProjectionRunner:
        return ProjectionRunner(store, all_projections(), partitions=8, lease_seconds=0.1)

    workers = [worker(), worker()]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(w.run(s)) for w, s in zip(workers, stops, strict=True)]
    try:
        await _until(lambda: all(len(w.owned) == 4 for w in workers))
        assert workers[0].owned.isdisjoint(workers[1].owned)

        third, third_stop = worker(), asyncio.Event()
        workers.append(third)
        stops.append(third_stop)
        tasks.append(asyncio.create_task(third.run(third_stop)))
        await _until(lambda: sorted(len(w.owned) for w in workers) == [2, 3, 3])
        owned = [w.owned for w in workers]
        assert frozenset().union(*owned) == frozenset(range(8))

        stops[0].set()
        stops[2].set()
        await asyncio.gather(tasks[0], tasks[2])
        await _until(lambda: workers[1].owned == frozenset(range(8)))
        other = DemoTeam(
            organisation_id=uuid4(),
            care_manager_id=TEAM.care_manager_id,
            pcp_id=TEAM.pcp_id,
            psychiatric_consultant_id=TEAM.psychiatric_consultant_id,
        )
        await seed_caseload(Application(store), other, patients=4, now=datetime.now(UTC))
        head = await store.head()
        await _until(lambda: all(workers[1].position(p.name) >= head for p in all_projections()))
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
    async with store.pool.acquire() as conn:
        live = await _dump(conn)
    await rebuild(store, all_projections(), projection_tables())
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == live


async def test_the_count_is_fixed_and_the_previous_checkpoints_are_split(
    store: EventStore,
) -> None:
    """The first start splits each read model's single checkpoint into one per partition
    at its position and retires it; another count is refused, naming the setting."""
    await seed_caseload(Application(store), TEAM, patients=2, now=datetime.now(UTC))
    head = await store.head()
    async with store.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO checkpoints (name, tx_id, position)
               VALUES ('registry', $1::text::xid8, $2)""",
            str(head.tx_id),
            head.position,
        )
    runner = ProjectionRunner(store, all_projections(), partitions=4)
    await runner.prepare()
    async with store.pool.acquire() as conn:
        rows = {
            r["name"]: LogPosition(r["tx_id"], r["position"])
            for r in await conn.fetch(
                """SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints
                   WHERE name LIKE 'registry%'"""
            )
        }
    assert rows == {"registry": parts.RETIRED, **{f"registry@{p}": head for p in range(4)}}
    with pytest.raises(parts.PartitionCountError, match="CARETEAM_PROJECTOR_PARTITIONS"):
        await ProjectionRunner(store, all_projections(), partitions=5).prepare()
    # The registry starts where it was; the read models without a checkpoint start over.
    await runner.catch_up()
    assert runner.position("registry") == head
    assert all(runner.position(p.name) == head for p in all_projections())


async def test_read_your_writes_waits_for_the_patients_partition_only(
    store: EventStore,
) -> None:
    """A worker owning only the patient's partition is enough for the patient's command;
    a wait for every partition times out while the others have no worker."""
    made = await seed_caseload(Application(store), TEAM, patients=1, now=datetime.now(UTC))
    patient = made[0]
    head = await store.head()
    reader = ProjectionRunner(store, all_projections(), partitions=4)
    following = asyncio.create_task(reader.follow())
    try:
        async with store.pool.acquire() as conn:
            await ProjectionRunner(store, all_projections(), partitions=4).step(
                conn, {parts.partition_of(patient, 4)}
            )
        await reader.wait_for(head, 10.0, patient)
        with pytest.raises(ProjectionLagTimeoutError):
            await reader.wait_for(head, 0.5)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


class _Recording:
    """A projection that writes nothing and records what the runner hands it."""

    def __init__(self, name: str, calls: list[tuple[str, str, list[int]]]) -> None:
        self.name = name
        self.calls = calls

    async def lock_first(self, conn: object, events: list[RecordedEvent]) -> None:
        self.calls.append((self.name, "lock_first", [e.position for e in events]))

    async def apply(self, conn: object, events: list[RecordedEvent]) -> None:
        self.calls.append((self.name, "apply", [e.position for e in events]))

    async def reset(self, conn: object) -> None:
        return None


async def test_a_page_of_several_groups_is_locked_as_a_whole_before_any_is_applied(
    store: EventStore,
) -> None:
    """Read models at different checkpoints are read as separate groups in one
    transaction; a projection that locks first (the registry's zone change) is handed
    every event of the page, once, before the first group is applied."""
    await seed_caseload(Application(store), TEAM, patients=2, now=datetime.now(UTC))
    events = await store.read_log(START, limit=10_000)
    assert len(events) < 500, "one page (the runner's default page size)"
    calls: list[tuple[str, str, list[int]]] = []
    runner = ProjectionRunner(
        store, [_Recording("behind", calls), _Recording("ahead", calls)], partitions=1
    )
    await runner.prepare()
    ahead = events[len(events) // 2].log_position
    async with store.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO checkpoints (name, tx_id, position)
               VALUES ('ahead@0', $1::text::xid8, $2)
               ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id,
                                                position = EXCLUDED.position""",
            str(ahead.tx_id),
            ahead.position,
        )
    await runner.catch_up()
    everything = [e.position for e in events]
    later = everything[len(events) // 2 + 1 :]
    assert calls == [
        ("behind", "lock_first", everything),
        ("ahead", "lock_first", everything),
        ("behind", "apply", everything),
        ("ahead", "apply", later),
    ]


async def test_a_runner_whose_checkpoints_another_moved_applies_nothing_twice(
    store: EventStore,
) -> None:
    """A worker's page starts from the checkpoints its last page left instead of reading
    them; when another runner moved them meanwhile, that page is refused whole (nothing
    of it kept) and the page after reads them afresh: the read models equal a rebuild.
    A step that does not remember reads them, so it sees a reset at once."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    first = ProjectionRunner(store, all_projections(), partitions=4, page_size=5)
    async with store.pool.acquire() as conn:
        assert await first.step(conn, remembered=True) == 5
    other = ProjectionRunner(store, all_projections(), partitions=4, page_size=7)
    async with store.pool.acquire() as conn:
        assert await other.step(conn) == 7
        before = await _dump(conn)
        with pytest.raises(StaleCheckpointError):
            await first.step(conn, remembered=True)
        assert await _dump(conn) == before
        while await first.step(conn, remembered=True):
            pass
    head = await store.head()
    assert all(first.position(p.name) == head for p in all_projections())
    async with store.pool.acquire() as conn:
        live = await _dump(conn)
    await rebuild(store, all_projections(), projection_tables())
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == live
        # A reset (every checkpoint deleted) is seen by a step that reads them.
        for projection in all_projections():
            await projection.reset(conn)
        await conn.execute("DELETE FROM checkpoints")
    await first.catch_up()
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == live


async def _partitions_of_next_page(
    store: EventStore, runner: ProjectionRunner, conn: Any, size: int
) -> set[int]:
    """The partitions with events in ``runner``'s next page (its checkpoints at one place)."""
    start = runner.position(all_projections()[0].name)
    events, _, _ = await store.read_log_of(start, None, limit=size, conn=conn)
    return {runner.partition_of(e.patient_id) for e in events}


async def _table(conn: Any) -> dict[str, LogPosition]:
    rows = await conn.fetch("SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints")
    return {r["name"]: LogPosition(r["tx_id"], r["position"]) for r in rows}


async def test_a_page_is_refused_whole_when_another_runner_moved_one_of_its_partitions(
    store: EventStore,
) -> None:
    """Every other checkpoint is where the page started: another runner having moved one
    partition the page has events for still makes it a stale page, refused whole."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    first = ProjectionRunner(store, all_projections(), partitions=4, page_size=5)
    other = ProjectionRunner(store, all_projections(), partitions=4, page_size=7)
    async with store.pool.acquire() as conn:
        assert await first.step(conn, remembered=True) == 5
        k = min(await _partitions_of_next_page(store, first, conn, 5))
        assert await other.step(conn, partitions={k}) > 0
        before = await conn.fetch("SELECT name, tx_id, position FROM checkpoints ORDER BY name")
        with pytest.raises(StaleCheckpointError):
            await first.step(conn, remembered=True)
        after = await conn.fetch("SELECT name, tx_id, position FROM checkpoints ORDER BY name")
        assert after == before


async def test_a_workers_page_writes_the_checkpoints_of_its_partitions_with_events_only(
    store: EventStore,
) -> None:
    """A worker's page moves in the table the checkpoints of the partitions it had events
    for; the others stay behind (this process's waiters see them moved) until a poll has
    passed, then go with a page or at the end of the log. A runner starting from the
    table as left applies nothing twice: the read models equal a rebuild."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    names = [p.name for p in all_projections()]
    lazy = ProjectionRunner(store, all_projections(), partitions=4, page_size=5, poll_seconds=3600)
    async with store.pool.acquire() as conn:
        assert await lazy.step(conn, remembered=True) == 5  # the first page writes them all
        first_stop = lazy.position(names[0])
        assert set((await _table(conn)).values()) == {first_stop}
        with_events = await _partitions_of_next_page(store, lazy, conn, 5)
        without = set(range(4)) - with_events
        assert without, "three patients cannot fill four partitions"
        assert await lazy.step(conn, remembered=True) == 5
        second_stop = lazy.position(names[0])
        table = await _table(conn)
        for name in names:
            for k in range(4):
                assert lazy.position(name, k) == second_stop
                expected = second_stop if k in with_events else first_stop
                assert table[parts.checkpoint_name(name, k)] == expected, (name, k)
        # A worker reads the table at the end of the log (other workers' progress): its own
        # partitions stay where its pages left them, and its next page is still remembered.
        await lazy._refresh(conn)
        assert all(lazy.position(name, k) == second_stop for name in names for k in range(4))
        assert lazy._mine is not None
        # Another runner starts from the table as left, and finishes the log.
        fresh = ProjectionRunner(store, all_projections(), partitions=4, page_size=7)
        await fresh.catch_up()
        live = await _dump(conn)
    await rebuild(store, all_projections(), projection_tables())
    async with store.pool.acquire() as conn:
        assert await _dump(conn) == live


async def test_checkpoints_left_behind_are_written_at_the_end_of_the_log_after_a_poll(
    store: EventStore,
) -> None:
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    runner = ProjectionRunner(store, all_projections(), partitions=4, page_size=5, poll_seconds=2.0)
    async with store.pool.acquire() as conn:
        assert await runner.step(conn, remembered=True) == 5
        while await runner.step(conn, remembered=True):
            pass
        head = await store.head()
        table = await _table(conn)
        behind = {name for name, at in table.items() if at != head}
        assert behind, "the pages after the first left some partitions' rows behind"
        assert await runner.step(conn, remembered=True) == 0  # within the poll: left
        assert await _table(conn) == table
        await asyncio.sleep(2.05)
        assert await runner.step(conn, remembered=True) == 0
        assert set((await _table(conn)).values()) == {head}


async def test_a_page_without_batched_read_models_is_refused_whole_when_moved_meanwhile(
    store: EventStore,
) -> None:
    """The same for a runner of read models that are not batched: its checkpoints move in
    a statement of their own, which must also find every one where the page started."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    unbatched = [p for p in all_projections() if not isinstance(p, Batched)]
    assert unbatched
    first = ProjectionRunner(store, unbatched, partitions=4, page_size=5)
    other = ProjectionRunner(store, unbatched, partitions=4, page_size=7)
    async with store.pool.acquire() as conn:
        assert await first.step(conn, remembered=True) == 5
        assert await other.step(conn) == 7
        before = await conn.fetch("SELECT name, tx_id, position FROM checkpoints ORDER BY name")
        with pytest.raises(StaleCheckpointError):
            await first.step(conn, remembered=True)
        after = await conn.fetch("SELECT name, tx_id, position FROM checkpoints ORDER BY name")
        assert after == before
        while await first.step(conn, remembered=True):
            pass
    head = await store.head()
    assert all(first.position(p.name) == head for p in unbatched)


async def test_a_workers_session_setting_does_not_outlive_its_connections_lease(
    store: EventStore,
) -> None:
    """A worker plans its pages' statements generically (a setting of its session); the
    connection goes back to the pool with the server's default again."""
    await seed_caseload(Application(store), TEAM, patients=2, now=datetime.now(UTC))
    sent: list[str] = []

    class Observed(ProjectionRunner):
        async def _work(self, conn: Any, stop: asyncio.Event) -> None:
            def logger(record: Any) -> None:
                sent.append(record.query)

            conn.add_query_logger(logger)
            try:
                await super()._work(conn, stop)
            finally:
                conn.remove_query_logger(logger)

    runner = Observed(store, all_projections(), partitions=4)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await _until(lambda: runner.slot is not None and runner.owned == frozenset(range(4)))
    head = await store.head()
    await _until(lambda: all(runner.position(p.name) == head for p in all_projections()))
    stop.set()
    await asyncio.wait_for(task, 30)
    assert sent[0] == "SET plan_cache_mode = force_generic_plan"
    conns = [await store.pool.acquire() for _ in range(store.pool.get_max_size())]
    try:
        modes = {await c.fetchval("SHOW plan_cache_mode") for c in conns}
    finally:
        for c in conns:
            await store.pool.release(c)
    assert modes == {"auto"}


async def test_read_your_writes_waiters_are_released_in_order_of_their_positions(
    store: EventStore,
) -> None:
    """Waiters for many positions and partitions: each returns once its position is
    applied in its partition (not before), and one that timed out does not hold back
    the others."""
    made = await seed_caseload(Application(store), TEAM, patients=4, now=datetime.now(UTC))
    runner = ProjectionRunner(store, all_projections(), partitions=4, page_size=3)
    log = await store.read_log(limit=10_000)
    returned: list[tuple[LogPosition, UUID | None]] = []

    async def wait(position: LogPosition, patient: UUID | None) -> None:
        await runner.wait_for(position, 30.0, patient)
        returned.append((position, patient))

    waits = [(e.log_position, e.patient_id) for e in log[::2]] + [(log[-1].log_position, None)]
    with pytest.raises(ProjectionLagTimeoutError):
        await runner.wait_for(log[0].log_position, 0.01, made[0])
    tasks = [asyncio.create_task(wait(p, patient)) for p, patient in waits]
    await asyncio.sleep(0.05)
    assert returned == []
    while await runner.step():
        await asyncio.sleep(0)  # let the released waiters run
        for position, patient in returned:
            partition = None if patient is None else runner.partition_of(patient)
            assert all(runner.position(p.name, partition) >= position for p in all_projections())
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert sorted(returned, key=str) == sorted(waits, key=str)


class _CountingReadModel:
    """Counts, in a table of its own (so a refused page's counts roll back with it), how
    often each event is applied."""

    name = "test_counting"

    async def apply(self, conn: Any, events: list[RecordedEvent]) -> None:
        await conn.execute(
            """INSERT INTO test_applied (position, n) SELECT unnest($1::bigint[]), 1
               ON CONFLICT (position) DO UPDATE SET n = test_applied.n + 1""",
            [e.position for e in events],
        )

    async def reset(self, conn: Any) -> None:
        return None


async def _equals_rebuild(store: EventStore, conn: Any) -> None:
    live = await _dump(conn)
    await rebuild(store, all_projections(), projection_tables())
    rebuilt = await _dump(conn)
    assert sorted(t for t in live if live[t] != rebuilt[t]) == []


async def test_a_step_of_the_same_runner_during_a_workers_page_read_applies_nothing_twice(
    store: EventStore,
) -> None:
    """``careteam backfill-clinic-zones`` runs ``catch_up`` on the runner whose worker is
    running. A step of it that applies the page the worker is reading (forced here by
    wrapping the read) must make the worker's page stale, not let it apply it again."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    runner = ProjectionRunner(
        store, all_projections(), partitions=4, page_size=20, poll_seconds=3600
    )
    async with store.pool.acquire() as conn:
        assert await runner.step(conn, remembered=True) == 20
        original = runner._read_page
        fired = False

        async def interleaved(c: Any, start: LogPosition, wanted: frozenset[int]) -> Any:
            nonlocal fired
            page = await original(c, start, wanted)
            if not fired:
                fired = True
                await runner.step()  # the tool's step, on its own connection
            return page

        runner._read_page = interleaved  # type: ignore[method-assign]
        with pytest.raises(StaleCheckpointError):
            await runner.step(conn, remembered=True)
        runner._read_page = original  # type: ignore[method-assign]
        await runner.catch_up()
        await _equals_rebuild(store, conn)


async def test_a_step_of_the_same_runner_after_a_workers_end_of_log_read_applies_nothing_twice(
    store: EventStore,
) -> None:
    """The worker reads the end of the log; new events are committed and the same
    runner's ``catch_up`` applies them before the worker goes on: the worker's next page
    must not apply them again."""
    await seed_caseload(Application(store), TEAM, patients=2, now=datetime.now(UTC))
    async with store.pool.acquire() as conn:
        await conn.execute("CREATE TABLE test_applied (position bigint PRIMARY KEY, n int)")
    runner = ProjectionRunner(
        store,
        [*all_projections(), _CountingReadModel()],  # type: ignore[list-item]
        partitions=4,
        page_size=500,
        poll_seconds=3600,
    )
    async with store.pool.acquire() as conn:
        while await runner.step(conn, remembered=True):
            pass
        original = runner._read_page
        fired = False

        async def interleaved(c: Any, start: LogPosition, wanted: frozenset[int]) -> Any:
            nonlocal fired
            page = await original(c, start, wanted)
            if not fired:
                fired = True
                other = DemoTeam(
                    organisation_id=uuid4(),
                    care_manager_id=TEAM.care_manager_id,
                    pcp_id=TEAM.pcp_id,
                    psychiatric_consultant_id=TEAM.psychiatric_consultant_id,
                )
                await seed_caseload(Application(store), other, patients=2, now=datetime.now(UTC))
                await runner.catch_up()
            return page

        runner._read_page = interleaved  # type: ignore[method-assign]
        assert await runner.step(conn, remembered=True) == 0  # the end of the log, as read
        runner._read_page = original  # type: ignore[method-assign]
        with contextlib.suppress(StaleCheckpointError):
            while await runner.step(conn, remembered=True):
                pass
        await runner.catch_up()
        twice = await conn.fetch("SELECT position FROM test_applied WHERE n > 1")
        assert twice == []
        await _equals_rebuild(store, conn)


async def test_a_workers_own_positions_do_not_go_back_when_another_moved_one_of_its_rows(
    store: EventStore,
) -> None:
    """Another runner moved one of the worker's rows: the worker's reading of the table
    forgets what it remembered, but its partitions whose rows nobody else moved stay
    where its pages left them (the table is behind there), so a wait on every partition
    that returned still returns."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    name = all_projections()[0].name
    worker = ProjectionRunner(
        store, all_projections(), partitions=4, page_size=5, poll_seconds=3600
    )
    async with store.pool.acquire() as conn:
        await worker.step(conn, remembered=True)
        k = min(await _partitions_of_next_page(store, worker, conn, 5))
        await worker.step(conn, remembered=True)
        reached = worker.position(name)
        await worker.wait_for(reached, 0.01)
        other = ProjectionRunner(store, all_projections(), partitions=4, page_size=3)
        assert await other.step(conn, partitions={k}) > 0
        await worker._refresh(conn)
        assert worker._mine is None
        assert worker.position(name) >= reached
        await worker.wait_for(reached, 0.2)  # every partition, as the event feed waits


async def test_a_stopped_worker_leaves_the_table_where_its_pages_got_to(
    store: EventStore,
) -> None:
    """A worker stopped right after its pages (a deploy): a process following the table
    (an API-only ``serve``) waiting on every partition (the event feed's access check)
    for what the worker applied does not wait for another worker."""
    names = [p.name for p in all_projections()]
    worker = ProjectionRunner(
        store, all_projections(), partitions=4, page_size=5, poll_seconds=3600, lease_seconds=3600
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    # The head a reader sees now; a transaction open meanwhile (the worker's own page) can
    # hide the last events from it, so the worker may go a little further.
    head = await store.head()
    await _until(lambda: all(worker.position(n) >= head for n in names))
    async with store.pool.acquire() as conn:
        table = await _table(conn)
    assert len(set(table.values())) > 1, "the pages left some rows behind"
    stop.set()
    await asyncio.wait_for(task, 30)
    reached = {worker.position(n, k) for n in names for k in range(4)}
    assert len(reached) == 1 and min(reached) >= head
    async with store.pool.acquire() as conn:
        assert set((await _table(conn)).values()) == reached
    reader = ProjectionRunner(store, all_projections(), partitions=4)
    following = asyncio.create_task(reader.follow())
    try:
        await reader.wait_for(min(reached), 5.0)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


async def test_a_page_without_events_of_a_partition_another_moved_commits_and_is_found_later(
    store: EventStore,
) -> None:
    """Another runner moved a partition the worker's next page has no events for: that
    page applies nothing there, so it commits and leaves that partition's rows to the
    other runner; the worker's later write of them (here: before a rebalance) finds them
    moved, forgets what it remembered, and the pages after it apply nothing twice."""
    await seed_caseload(Application(store), TEAM, patients=3, now=datetime.now(UTC))
    async with store.pool.acquire() as conn:
        await conn.execute("CREATE TABLE test_applied (position bigint PRIMARY KEY, n int)")
    worker = ProjectionRunner(
        store,
        [*all_projections(), _CountingReadModel()],  # type: ignore[list-item]
        partitions=4,
        page_size=5,
        poll_seconds=3600,
    )
    async with store.pool.acquire() as conn:
        assert await worker.step(conn, remembered=True) == 5
        k = min(set(range(4)) - await _partitions_of_next_page(store, worker, conn, 5))
        other = ProjectionRunner(
            store,
            [*all_projections(), _CountingReadModel()],  # type: ignore[list-item]
            partitions=4,
            page_size=7,
        )
        assert await other.step(conn, partitions={k}) == 7
        moved = {n: at for n, at in (await _table(conn)).items() if n.endswith(f"@{k}")}
        assert await worker.step(conn, remembered=True) == 5  # committed
        assert {n: at for n, at in (await _table(conn)).items() if n in moved} == moved
        with pytest.raises(StaleCheckpointError):
            await worker.write_behind(conn)
        assert worker._mine is None
        while await worker.step(conn, remembered=True):
            pass
        await other.catch_up()
        assert await conn.fetch("SELECT position FROM test_applied WHERE n > 1") == []
        await _equals_rebuild(store, conn)
