"""The live event feed's first subscribers (services/api/feed.py): two that find the feed
idle at once must not let the second move the feed past events the first already
follows. A store whose ``head`` answers when the test says so orders the race."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from services.api.feed import EventFeed
from services.eventstore import LogPosition, RecordedEvent


def _event(n: int) -> RecordedEvent:
    now = datetime.now(UTC)
    return RecordedEvent(
        position=n,
        tx_id=n,
        event_id=uuid4(),
        stream_id=uuid4(),
        stream_type="patient",
        stream_version=1,
        patient_id=uuid4(),
        event_type="x",
        event_version=1,
        payload={},
        metadata={},
        occurred_at=now,
        recorded_at=now,
    )


class FakeStore:
    def __init__(self) -> None:
        self.log: list[RecordedEvent] = []
        self.head_gates: list[asyncio.Event] = []
        self.read_gate: asyncio.Event | None = None
        self.snapshot_at_call = False

    def on_append(self, listener: Any) -> None:
        pass

    def append(self) -> None:
        self.log.append(_event(len(self.log) + 1))

    async def head(self) -> LogPosition:
        gate = asyncio.Event()
        self.head_gates.append(gate)
        seen = list(self.log) if self.snapshot_at_call else None
        await gate.wait()
        log = seen if seen is not None else self.log
        return log[-1].log_position if log else LogPosition()

    async def read_log(self, after: LogPosition, limit: int) -> list[RecordedEvent]:
        if self.read_gate is not None:
            await self.read_gate.wait()
        return [e for e in self.log if e.log_position > after][:limit]


def _feed(store: FakeStore) -> EventFeed:
    feed = EventFeed(store)  # type: ignore[arg-type]

    async def permit_all(principal: Any, events: list[RecordedEvent], decided: Any) -> Any:
        return events

    feed._permitted = permit_all  # type: ignore[method-assign]
    return feed


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_two_first_subscribers_at_once_miss_nothing_committed_after_they_joined() -> None:
    store = FakeStore()
    store.append()  # event 1, before anyone subscribed
    feed = _feed(store)
    a = feed.subscribe(None, patient_ids=None, event_types=None, after=None)  # type: ignore[arg-type]
    b = feed.subscribe(None, patient_ids=None, event_types=None, after=None)  # type: ignore[arg-type]
    a_next = asyncio.ensure_future(a.__anext__())
    b_next = asyncio.ensure_future(b.__anext__())
    await _settle()
    assert len(store.head_gates) == 1  # B waits for A to join
    store.head_gates[0].set()  # A's head: event 1
    await _settle()
    assert feed.subscriber_count == 2  # A follows from event 1; B joined a busy feed
    store.append()  # event 2, committed after A subscribed
    await _settle()
    await feed._page()  # the feed's next page
    await _settle()
    assert a_next.done(), "A never got event 2, committed after it subscribed"
    assert (await a_next).position == 2
    b_next.cancel()


async def test_with_nobody_subscribed_the_feed_owes_no_page_for_this_processs_appends() -> None:
    """The follower re-reads soon when it owes a page (services/logfollow.py, ``pending``):
    with nobody to give it to, an append in this process owes nothing, so the idle feed
    does not spin; with a subscriber it does."""
    store = FakeStore()
    feed = _feed(store)
    feed._wake.appended = LogPosition(5, 5)
    assert feed._owed() is False
    a = feed.subscribe(None, patient_ids=None, event_types=None, after=None)  # type: ignore[arg-type]
    a_next = asyncio.ensure_future(a.__anext__())
    await _settle()
    store.head_gates[0].set()  # the log is empty: the feed stays at the start
    await _settle()
    assert feed._owed() is True
    a_next.cancel()
