"""The global log is gap-safe: a reader following it never skips an event that commits late."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from services.database import create_pool
from services.eventstore import START, EventMetadata, EventStore, LogPosition, RecordedEvent
from services.settings import Settings
from tests.factories import new_patient

META = EventMetadata(actor_id="test-writer", role="care_manager", organisation_id="org-1")


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_dsn, Settings(db_pool_min=2, db_pool_max=24))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


async def _append_new_patient(
    store: EventStore, conn: asyncpg.Connection | None = None
) -> list[RecordedEvent]:
    patient = new_patient()
    return await store.append(
        stream_type="patient",
        stream_id=patient.id,
        patient_id=patient.id,
        expected_version=0,
        events=patient.collect_events(),
        metadata=META,
        now=datetime.now(UTC),
        conn=conn,
    )


async def test_a_plain_position_reader_would_skip_a_late_commit_but_the_log_reader_does_not(
    store: EventStore,
) -> None:
    """Position 1 commits after position 2: reading by position alone skips it; read_log waits."""
    pool = store.pool
    async with pool.acquire() as slow, pool.acquire() as naive:
        tx = slow.transaction()
        await tx.start()
        late = await _append_new_patient(store, conn=slow)
        early = await _append_new_patient(store)
        assert late[0].position < early[0].position

        naive_seen = await naive.fetch("SELECT position FROM events WHERE position > 0 ORDER BY 1")
        naive_checkpoint = naive_seen[-1]["position"]
        gap_safe = await store.read_log(START)
        assert gap_safe == [], "the log must hold back rows behind an open writer"

        await tx.commit()
        naive_after = await naive.fetch(
            "SELECT position FROM events WHERE position > $1 ORDER BY 1", naive_checkpoint
        )
        assert naive_after == [], "the naive reader has skipped the late commit for good"

        seen = await store.read_log(START)
        assert {e.event_id for e in seen} == {late[0].event_id, early[0].event_id}


async def test_sixteen_concurrent_writers_and_a_tailing_reader_see_every_event_once_in_commit_order(
    store: EventStore,
) -> None:
    """Writers that hold their transactions open for random times never make the reader skip."""
    writers, per_writer = 16, 25
    clock = 0
    started: dict[UUID, int] = {}
    committed: dict[UUID, int] = {}
    done = asyncio.Event()

    async def writer(seed: int) -> None:
        nonlocal clock
        rnd = random.Random(seed)
        for _ in range(per_writer):
            async with store.pool.acquire() as conn:
                clock += 1
                start_tick = clock
                async with conn.transaction():
                    recorded = await _append_new_patient(store, conn=conn)
                    await asyncio.sleep(rnd.random() * 0.01)
                clock += 1
                for r in recorded:
                    started[r.event_id] = start_tick
                    committed[r.event_id] = clock

    order: list[RecordedEvent] = []

    async def reader() -> None:
        position = START
        while True:
            batch = await store.read_log(position, limit=37)
            if batch:
                order.extend(batch)
                position = batch[-1].log_position
            elif done.is_set():
                final = await store.read_log(position, limit=100_000)
                order.extend(final)
                if not final:
                    return
            else:
                await asyncio.sleep(0.002)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(writers)))
    done.set()
    await reading

    ids = [e.event_id for e in order]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert set(ids) == set(committed), "an event was skipped"
    positions = [e.log_position for e in order]
    assert positions == sorted(positions), "the log went backwards"
    index = {e.event_id: i for i, e in enumerate(order)}
    # Commit order: an event committed before another event's transaction began precedes it.
    by_commit = sorted(committed, key=committed.__getitem__)
    for a in by_commit[::7]:
        for b in started:
            if committed[a] < started[b]:
                assert index[a] < index[b]


async def test_appending_at_a_stale_version_is_a_conflict_and_writes_nothing(
    store: EventStore,
) -> None:
    """Two writers at the same expected version: the second gets a typed conflict."""
    from services.eventstore import ConcurrencyConflictError

    first = await _append_new_patient(store)
    stream_id = first[0].stream_id
    with pytest.raises(ConcurrencyConflictError):
        await store.append(
            stream_type="patient",
            stream_id=stream_id,
            patient_id=stream_id,
            expected_version=0,
            events=new_patient(id=stream_id).collect_events(),
            metadata=META,
            now=datetime.now(UTC),
        )
    assert len(await store.read_stream(stream_id)) == len(first)
    assert await store.head() == first[-1].log_position


def test_log_positions_order_by_transaction_then_position() -> None:
    """LogPosition compares transaction id first, then position, and round-trips as text."""
    assert LogPosition(1, 9) < LogPosition(2, 1)
    assert LogPosition(2, 1) < LogPosition(2, 2)
    assert LogPosition.decode(LogPosition(5, 7).encode()) == LogPosition(5, 7)


async def test_log_rows_are_the_log_with_payload_and_metadata_as_stored_json_text(
    store: EventStore,
) -> None:
    """read_log_rows pages through the same events as read_log(decrypt=False), in order."""
    import json

    from services.relay.messages import messages_from_rows, to_kafka_message

    for _ in range(5):
        await _append_new_patient(store)
    events: list[RecordedEvent] = []
    rows: list[asyncpg.Record] = []
    position = START
    while page := await store.read_log(position, limit=3, decrypt=False):
        events += page
        position = page[-1].log_position
    position = START
    while row_page := await store.read_log_rows(position, limit=3):
        assert len(row_page) <= 3
        rows += row_page
        position = LogPosition(row_page[-1]["tx_id"], row_page[-1]["position"])

    assert len(events) == 5
    assert [LogPosition(r["tx_id"], r["position"]) for r in rows] == [
        e.log_position for e in events
    ]
    for row, event in zip(rows, events, strict=True):
        assert isinstance(row["payload"], str) and isinstance(row["metadata"], str)
        assert json.loads(row["payload"]) == event.payload
        assert json.loads(row["metadata"]) == event.metadata
        assert (row["event_id"], row["patient_id"], row["recorded_at"]) == (
            event.event_id,
            event.patient_id,
            event.recorded_at,
        )
    # What the relay sends from the rows is what the decoded events give, byte for byte.
    assert messages_from_rows(rows) == [to_kafka_message(e) for e in events]


async def test_a_partitions_reader_holds_back_behind_an_open_writer_like_the_log_reader(
    store: EventStore,
) -> None:
    """``read_log_of`` (a projector partition's reads) sees nothing past an open writer,
    then the late event and the early one in log order, each patient kept or not."""
    pool = store.pool
    async with pool.acquire() as slow, pool.acquire() as reader:
        tx = slow.transaction()
        await tx.start()
        late = await _append_new_patient(store, conn=slow)
        early = await _append_new_patient(store)
        assert await store.read_log_of(START, lambda _p: True, conn=reader) == ([], None, 0)
        await tx.commit()
        kept = {late[0].patient_id}
        events, last, scanned = await store.read_log_of(START, lambda p: p in kept, conn=reader)
        everything = await store.read_log(START)
    assert scanned == len(everything) and last == everything[-1].log_position
    assert [e.event_id for e in events] == [e.event_id for e in late]
    assert [e.log_position for e in everything] == sorted(e.log_position for e in late + early)
