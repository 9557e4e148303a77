"""Live care events for GraphQL subscriptions: one log follower, many subscribers.

One task per process follows the log (woken by appends in this process, or a short poll)
and hands each batch to every subscriber's bounded queue. A subscriber sees only the
events of patients the caller may read; that is decided in SQL per batch, for the
patients it has not decided yet, and re-decided when a care team changes, when emergency
access is granted or reviewed, and at the latest DECISION_SECONDS after it was made (so a
break-the-glass grant that expires stops the events within that time). A subscriber
that falls too far behind is disconnected rather than allowed to grow without bound.

With nobody subscribed the feed reads nothing (a process serving commands would otherwise
read and decrypt every page it appends, for no one: bench row 4); the first subscriber
moves it to the head of the log first, read as every page is, so it sees what is
committed after it joined, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from services.api.authz import patient_scope_sql
from services.auth import Principal
from services.eventstore import EventStore, LogPosition, RecordedEvent
from services.logfollow import Backoff, Wake, follow

log = logging.getLogger("careteam.feed")

QUEUE_LIMIT = 1_000
_TEAM_EVENTS = frozenset(
    {
        "patient.registered",
        "patient.care_team_assigned",
        "patient.care_team_member_unassigned",
        "patient.emergency_access_granted",
        "patient.emergency_access_reviewed",
    }
)
# How long an allow/deny decision for one patient holds before it is made again.
DECISION_SECONDS = 30.0


class SubscriberTooSlowError(Exception):
    """The subscriber's queue overflowed; it must resubscribe from its last position."""


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[list[RecordedEvent] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
    overflowed: bool = False
    shared: bool = False  # a fan-out group's one execution (services/api/fanout.py)


class EventFeed:
    """Follows the log from the head at start and fans batches out to subscribers."""

    def __init__(
        self,
        store: EventStore,
        *,
        poll_seconds: float = 0.1,
        access_ready: Callable[[LogPosition], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._access_ready = access_ready
        self._poll = poll_seconds
        self._subscribers: set[_Subscriber] = set()
        # Held by a first subscriber from finding the feed idle to joining it, so that a
        # second one cannot move the feed past events the first already follows.
        self._joining = asyncio.Lock()
        self._wake = Wake(store)
        self.position = LogPosition()

    @property
    def subscriber_count(self) -> int:
        """Subscriptions following the log: one per fan-out group, one per subscription
        running on its own."""
        return len(self._subscribers)

    @property
    def shared_count(self) -> int:
        """Of those, the fan-out groups' executions."""
        return sum(1 for s in self._subscribers if s.shared)

    async def run(self) -> None:
        """Follows the log from its head (services/logfollow.py's loop); the checkpoint is
        in memory: the feed is live only, a subscriber resumes with ``after``."""
        self.position = await self._store.head()

        def on_error(exc: BaseException) -> None:
            log.exception("event feed read failed; retrying", exc_info=exc)

        await follow(
            self._page,
            wake=self._wake,
            poll_seconds=self._poll,
            backoff=Backoff(1.0, 1.0, jitter=False),
            on_error=on_error,
            pending=self._owed,
        )

    def _owed(self) -> bool:
        """An event appended in this process that the feed has not read yet (and someone
        to give it to)."""
        appended = self._wake.appended
        return bool(self._subscribers) and appended is not None and appended > self.position

    async def _page(self) -> int:
        """Fans the next page of the log out to every subscriber; returns its length."""
        if not self._subscribers:
            return 0  # nobody to give it to: ``subscribe`` moves to the head first
        batch = await self._store.read_log(self.position, limit=500)
        if not batch:
            return 0
        self.position = max(self.position, batch[-1].log_position)
        if self._access_ready is not None:
            # Decide access only once the access model has seen this batch, so a
            # just-assigned team member is not refused their patient's events.
            try:
                await self._access_ready(self.position)
            except TimeoutError:
                log.warning("access model lagging; delivering on current state")
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(batch)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(None)
        return len(batch)

    async def subscribe(
        self,
        principal: Principal,
        *,
        patient_ids: set[UUID] | None,
        event_types: set[str] | None,
        after: LogPosition | None,
        shared: bool = False,
    ) -> AsyncIterator[RecordedEvent]:
        """Yields permitted events in log order: replayed from ``after`` (if given), then live.
        ``shared``: for a fan-out group (counted apart in ``shared_count``)."""
        sub = _Subscriber(shared=shared)
        async with self._joining:
            if not self._subscribers:
                # The feed read nothing while nobody was subscribed: from the head, as at
                # start (never back: a page being read meanwhile may have moved it on).
                head = await self._store.head()
                self.position = max(self.position, head)
            self._subscribers.add(sub)
        decided: dict[UUID, tuple[bool, float]] = {}
        try:
            last = after
            if after is not None:
                while True:
                    replay = await self._store.read_log(last or after, limit=500)
                    if not replay:
                        break
                    for event in await self._permitted(principal, replay, decided):
                        if _wanted(event, patient_ids, event_types):
                            yield event
                    last = replay[-1].log_position
            while True:
                batch = await sub.queue.get()
                if batch is None:
                    raise SubscriberTooSlowError
                if last is not None:
                    batch = [e for e in batch if e.log_position > last]
                wanted = [e for e in batch if _wanted(e, patient_ids, event_types)]
                for event in await self._permitted(principal, wanted, decided):
                    yield event
                if batch:
                    last = batch[-1].log_position
        finally:
            self._subscribers.discard(sub)

    async def _permitted(
        self,
        principal: Principal,
        events: list[RecordedEvent],
        decided: dict[UUID, tuple[bool, float]],
    ) -> list[RecordedEvent]:
        permitted: list[RecordedEvent] = []
        now = time.monotonic()
        for patient in [p for p, (_, at) in decided.items() if now - at > DECISION_SECONDS]:
            del decided[patient]
        for event in events:
            if event.patient_id not in decided:
                await self._decide(principal, {e.patient_id for e in events}, decided)
            if decided.get(event.patient_id, (False, 0.0))[0]:
                permitted.append(event)
            if event.event_type in _TEAM_EVENTS:
                decided.pop(event.patient_id, None)  # the team changed: decide again
        return permitted

    async def _decide(
        self, principal: Principal, ids: set[UUID], decided: dict[UUID, tuple[bool, float]]
    ) -> None:
        todo = [i for i in ids if i not in decided]
        predicate, params = patient_scope_sql("patient", principal, "p.id", 2)
        async with self._store.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT p.id FROM unnest($1::uuid[]) AS p(id) WHERE {predicate}", todo, *params
            )
        allowed = {r["id"] for r in rows}
        now = time.monotonic()
        for i in todo:
            decided[i] = (i in allowed, now)


def _wanted(event: RecordedEvent, patient_ids: set[UUID] | None, types: set[str] | None) -> bool:
    if patient_ids is not None and event.patient_id not in patient_ids:
        return False
    return types is None or event.event_type in types
