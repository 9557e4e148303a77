"""The log follower: checkpoint, lease, wake and poll, backoff and gap-safe reads, once.

Every reader of the log (docs/log-followers.md) follows it the same way:

- **Reads** are ``EventStore.read_log``: committed events after a position, in
  ``(tx_id, position)`` order, below the snapshot's xmin, so a late commit is never
  skipped (docs/architecture.md, 'Log order by transaction id').
- **Wake and poll**: an append in this process wakes the follower at once
  (``EventStore.on_append``); appends from other processes are found by a short poll.
  No NOTIFY: it would serialise every writer at commit. An append the read cannot see
  yet (held back below the snapshot's xmin by any older transaction still open, e.g.
  another process writing the audit chain) is read again after 2 ms, doubling up to
  10 ms, for up to a second, while the follower says it is still owed one
  (``pending``): otherwise its wake was spent and it would wait the whole poll.
- **Backoff**: a failing page is retried after an exponential, capped, jittered delay
  (``Backoff``); the first page that succeeds resets it.
- **Lease**: a session advisory lock (``services.locks``) on the connection the follower
  reads and checkpoints with, so one follower per name works across all processes and a
  killed follower's lease ends with its connection; the others stand by.
- **Checkpoint**: a row of ``checkpoints``, moved by a conditional UPDATE in the same
  transaction as the handler's work, so a page takes effect exactly once even when the
  follower dies at any instant, and never twice even if two followers raced.

``LogFollower`` is the whole loop for a follower whose work is in PostgreSQL; a follower
supplies only its ``PageHandler`` (what it does with a page), a name, a lock key and a
page size. ``Backoff``, ``Wake``, ``take_lease`` and the checkpoint functions are also
used on their own by the followers whose work leaves PostgreSQL (the relay and the
partner feeds confirm with a broker or a webhook before the checkpoint can move).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services import locks
from services.database import Conn, holds_session_state
from services.eventstore import START, EventStore, LogPosition, RecordedEvent

log = logging.getLogger("careteam.logfollow")

# What a broken connection to PostgreSQL raises; the follower reconnects after a backoff.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class StaleCheckpointError(RuntimeError):
    """The checkpoint moved under the follower (another follower, a reset or a replay)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"checkpoint {name} moved under its follower")
        self.name = name


# --- backoff --------------------------------------------------------------------------


class Backoff:
    """Exponential backoff with a cap; with ``jitter``, each delay is drawn from half to
    all of the current step (so restarted followers do not retry in lockstep)."""

    def __init__(
        self,
        initial: float,
        cap: float,
        *,
        jitter: bool = True,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if initial <= 0 or cap <= 0:
            raise ValueError("backoff times must be positive")
        self._initial = initial
        self._cap = cap
        self._step = initial
        self._jitter = jitter
        self._uniform = uniform

    def next_delay(self) -> float:
        step = self._step
        self._step = min(self._cap, self._step * 2)
        return step * self._uniform(0.5, 1.0) if self._jitter else step

    def reset(self) -> None:
        self._step = self._initial


# --- wake and poll --------------------------------------------------------------------


class Wake:
    """Set by every append this process makes; waited on with the poll as timeout."""

    def __init__(self, store: EventStore | None = None) -> None:
        self._event = asyncio.Event()
        # The last position appended in this process (None: none since start).
        self.appended: LogPosition | None = None
        if store is not None:
            store.on_append(self._on_append)

    def _on_append(self, position: LogPosition) -> None:
        if self.appended is None or position > self.appended:
            self.appended = position
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Call before a read: an append the read cannot see yet wakes the next wait."""
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


async def sleep(
    seconds: float, stop: asyncio.Event | None = None, wake: Wake | None = None
) -> None:
    """Waits ``seconds``, or less when ``stop`` is set or (if given) ``wake`` is."""
    waits: list[Awaitable[object]] = []
    if stop is not None:
        waits.append(stop.wait())
    if wake is not None:
        waits.append(wake.wait())
    if not waits:
        await asyncio.sleep(seconds)
        return
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- lease ----------------------------------------------------------------------------


async def try_lease(conn: Conn, namespace: int, name: str) -> bool:
    """Takes the session advisory lock ``(namespace, hashtext(name))`` if free."""
    holds_session_state(conn)  # a pooled connection must drop the lock when returned
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", namespace, name)
    )


async def release_lease(conn: Conn, namespace: int, name: str) -> None:
    with contextlib.suppress(*DATABASE_ERRORS):
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", namespace, name)


async def take_lease(
    conn: Conn,
    namespace: int,
    name: str,
    *,
    poll_seconds: float,
    stop: asyncio.Event,
    on_standby: Callable[[], None] | None = None,
) -> bool:
    """Waits until the lease is ours (True) or ``stop`` is set (False)."""
    told = False
    while not stop.is_set():
        if await try_lease(conn, namespace, name):
            return True
        if not told and on_standby is not None:
            on_standby()
        told = True
        await sleep(poll_seconds, stop)
    return False


# --- checkpoint -----------------------------------------------------------------------


async def read_checkpoint(conn: Conn, name: str) -> LogPosition:
    """The checkpoint ``name``, created at the start of the log if missing."""
    await conn.execute(
        "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )
    row = await conn.fetchrow(
        "SELECT tx_id::text::bigint AS tx_id, position FROM checkpoints WHERE name = $1", name
    )
    assert row is not None
    return LogPosition(row["tx_id"], row["position"])


async def advance_checkpoint(conn: Conn, name: str, current: LogPosition, new: LogPosition) -> None:
    """Moves the checkpoint from ``current`` to ``new``; raises if it was not at ``current``."""
    status = await conn.execute(
        """UPDATE checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now()
           WHERE name = $1 AND tx_id = $4::text::xid8 AND position = $5""",
        name,
        str(new.tx_id),
        new.position,
        str(current.tx_id),
        current.position,
    )
    if status != "UPDATE 1":
        raise StaleCheckpointError(name)


# --- the loop -------------------------------------------------------------------------

Step = Callable[[], Awaitable[int]]
# Told each failure; returns the delay before the next try, or None for the backoff's.
OnError = Callable[[BaseException], "float | None"]


# The first wait before reading again an append the read could not see yet; it doubles
# up to SETTLE_CAP_SECONDS (never beyond the poll), and once the follower has waited
# SETTLE_LIMIT_SECONDS so in a row it goes back to the poll until a read finds events.
SETTLE_SECONDS = 0.002
SETTLE_CAP_SECONDS = 0.01
SETTLE_LIMIT_SECONDS = 1.0


async def follow(
    step: Step,
    *,
    wake: Wake,
    poll_seconds: float,
    backoff: Backoff,
    stop: asyncio.Event | None = None,
    errors: tuple[type[BaseException], ...] = (Exception,),
    on_error: OnError | None = None,
    pending: Callable[[], bool] | None = None,
) -> None:
    """The loop every follower runs: ``step`` handles the next page and returns how many
    events it read; at the end of the log (0) it waits for an append in this process or
    the poll; a failure in ``errors`` waits (backoff) and steps again. Anything else
    ends the loop, as does ``stop``.

    ``pending`` says the follower is owed an event it has not read (an append in this
    process beyond its position, a read-your-writes waiter): an empty read then waits
    ``SETTLE_SECONDS``, doubling up to ``SETTLE_CAP_SECONDS``, instead of the poll (the
    append is held back by an older open transaction, which usually ends within
    milliseconds); after ``SETTLE_LIMIT_SECONDS`` of that (a long transaction), the poll
    again."""
    settle, settled = SETTLE_SECONDS, 0.0
    while stop is None or not stop.is_set():
        wake.clear()  # before the read: an append it cannot see yet wakes the next wait
        try:
            read = await step()
        except asyncio.CancelledError:
            raise
        except errors as exc:
            delay = on_error(exc) if on_error is not None else None
            await sleep(backoff.next_delay() if delay is None else delay, stop)
            continue
        backoff.reset()
        if read > 0:
            settle, settled = SETTLE_SECONDS, 0.0
        elif (
            pending is not None
            and settle < poll_seconds
            and settled < SETTLE_LIMIT_SECONDS
            and pending()
        ):
            await sleep(settle, stop, wake)
            settled += settle
            settle = min(settle * 2, SETTLE_CAP_SECONDS)
        else:
            await sleep(poll_seconds, stop, wake)


PageHandler = Callable[[Conn, Sequence[RecordedEvent]], Awaitable[None]]


@dataclass
class FollowerStatus:
    """What one follower did in this process (health checks and tests)."""

    position: LogPosition = START
    leader: bool = False
    pages: int = 0
    events: int = 0
    failures: int = 0
    last_error: str | None = None


class LogFollower:
    """Follows the log from the checkpoint ``name`` and hands each page to ``handler``
    inside the transaction that moves the checkpoint past it (exactly once).

    A handler that raises rolls the page back (nothing of it stays, the checkpoint does
    not move); the page is read again after a backoff. Only one follower per ``name``
    works at a time, across processes (lease ``(lock_namespace, hashtext(name))``).
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: PageHandler,
        *,
        lock_namespace: int = locks.FOLLOWER_LEASE,
        page_size: int = 500,
        poll_seconds: float = 0.1,
        lease_poll_seconds: float = 1.0,
        backoff: Backoff | None = None,
        decrypt: bool = True,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._store = store
        self.name = name
        self._handler = handler
        self._namespace = lock_namespace
        self._page_size = page_size
        self._poll = poll_seconds
        self._lease_poll = lease_poll_seconds
        self._backoff = backoff or Backoff(0.2, 10.0)
        self._decrypt = decrypt
        self._wake = Wake(store)
        self.status = FollowerStatus()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follows the log until ``stop`` is set or the task is cancelled."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async with self._store.pool.acquire() as conn:
                    if not await take_lease(
                        conn,
                        self._namespace,
                        self.name,
                        poll_seconds=self._lease_poll,
                        stop=stop,
                        on_standby=lambda: log.info("follower standing by name=%s", self.name),
                    ):
                        return
                    self.status.leader = True
                    log.info("follower lease taken name=%s", self.name)
                    try:
                        await self._follow(conn, stop)
                    finally:
                        self.status.leader = False
                        await release_lease(conn, self._namespace, self.name)
            except StaleCheckpointError:
                log.warning("follower checkpoint moved; re-reading name=%s", self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing page or database: back off, read again
                self._failed(exc)
                await sleep(self._backoff.next_delay(), stop)

    async def _follow(self, conn: Conn, stop: asyncio.Event) -> None:
        self.status.position = await read_checkpoint(conn, self.name)

        async def page() -> int:
            return await self.step(conn)

        # A failure ends this lease's loop (run() backs off and takes the lease again).
        await follow(
            page,
            wake=self._wake,
            poll_seconds=self._poll,
            backoff=self._backoff,
            stop=stop,
            errors=(),
        )

    async def step(self, conn: Conn) -> int:
        """Handles the page after the checkpoint in one transaction that also moves the
        checkpoint past it; returns how many events it handled (0 at the end of the log)."""
        position = self.status.position
        async with conn.transaction():
            events = await self._store.read_log(
                position, limit=self._page_size, conn=conn, decrypt=self._decrypt
            )
            if not events:
                return 0
            await self._handler(conn, events)
            end = events[-1].log_position
            await advance_checkpoint(conn, self.name, position, end)
        self.status.position = end
        self.status.pages += 1
        self.status.events += len(events)
        return len(events)

    def _failed(self, exc: BaseException) -> None:
        self.status.failures += 1
        self.status.last_error = type(exc).__name__
        log.warning(
            "follower page failed; retrying name=%s error=%s", self.name, type(exc).__name__
        )
