"""Runs projections: catch up from each checkpoint in pages, then follow the log live,
with the log split by patient into partitions that workers share.

Each read model has one checkpoint per partition (services/projector/partitions.py).
A page of the log is applied to the partitions a worker owns, for every projection, in
one transaction that also moves those partitions' checkpoints (conditionally on their
previous positions), so every event takes effect exactly once even if the process dies
at any instant, and two workers cannot both apply a page (the second one rolls back).
A worker remembers the checkpoints its last page left instead of reading them again
(that conditional update proves them current; a failed page forgets them, and so does a
difference seen when it reads them at the end of the log, at least once per poll), and
at the end of the log it opens no transaction.

``run`` takes a worker slot and partition leases on its own connection and applies only
the partitions it owns; ownership moves between pages when a worker dies or joins.
``catch_up`` (tools and tests) applies every partition without leases: the conditional
checkpoint updates keep it exact next to a running worker.

The loop, wake-ups (an append in this process at once, other processes by the poll
CARETEAM_PROJECTOR_POLL_SECONDS; no NOTIFY) and retries are services/logfollow.py's.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import time
from collections.abc import Collection, Sequence
from typing import cast
from uuid import UUID

import asyncpg

from projections.base import (
    Batched,
    BatchedMostly,
    LocksFirst,
    Projection,
    Statement,
    apply_batched_together,
    execute_together,
)
from services.database import Conn, holds_session_state
from services.erasure_cleanup import holds_erasure, vacuum_after_erasure
from services.eventstore import START, EventStore, LogPosition, RecordedEvent
from services.logfollow import DATABASE_ERRORS, Backoff, Wake, follow, sleep
from services.projector import partitions as parts

log = logging.getLogger("careteam.projector")


class ProjectionLagTimeoutError(TimeoutError):
    """A read model did not reach a position in time (read-your-writes gave up waiting)."""

    code = "PROJECTION_TIMEOUT"


def _retry_every_second() -> Backoff:
    """The projector's pause after a failed step: one second, every time."""
    return Backoff(1.0, 1.0, jitter=False)


class StaleCheckpointError(RuntimeError):
    """Another runner moved this projection's checkpoint first."""


class ProjectionRunner:
    """Keeps a set of projections current; lets callers wait until a position is applied."""

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 500,
        poll_seconds: float = 0.1,
        partitions: int = parts.DEFAULT_PARTITIONS,
        lease_seconds: float = 1.0,
    ) -> None:
        parts.check_count(partitions)
        self._store = store
        self._projections = list(projections)
        self._page_size = page_size
        self._poll = poll_seconds
        self._count = partitions
        self._lease_seconds = lease_seconds
        self._wake = Wake(store)
        self._positions: dict[str, LogPosition] = {}
        # What every read model has applied, per partition (the lowest of its checkpoints
        # there), kept as checkpoints move: waiters compare with it on every page.
        self._reached_in: dict[int, LogPosition] = {}
        self._partition_of: dict[str, int] = {
            parts.checkpoint_name(p.name, k): k
            for p in self._projections
            for k in range(partitions)
        }
        # Per read model: whether it is Batched, and whether only some pages (its own
        # ``batches`` says which; the others through its ``apply``). Decided once: a
        # protocol check costs microseconds, and a page would make ten of them.
        self._batched = [isinstance(p, Batched) for p in self._projections]
        self._mostly = [isinstance(p, BatchedMostly) for p in self._projections]
        self._locks_first = [p for p in self._projections if isinstance(p, LocksFirst)]
        # Each read model's checkpoint name in each partition: [projection index][k].
        self._name_of: list[list[str]] = [
            [parts.checkpoint_name(p.name, k) for k in range(partitions)] for p in self._projections
        ]
        self._names_in: dict[int, list[str]] = {
            k: [parts.checkpoint_name(p.name, k) for p in self._projections]
            for k in range(partitions)
        }
        # Read-your-writes waiters, per partition (None: every partition), by position:
        # a moved checkpoint resolves the reached ones without waking the others.
        self._waiters: dict[int | None, list[tuple[LogPosition, int, asyncio.Future[None]]]] = {}
        self._waiter_ids = itertools.count()
        self._ensured = False
        self._prepared = False
        # A page applied a patient.forgotten event and the VACUUM after it is still due.
        self._erasure_pending = False
        # The checkpoints of the partitions the last page was applied to, as that page
        # left them (None: read them from the table). The conditional update of the next
        # page proves them still current; any failure forgets them.
        self._mine: dict[str, LogPosition] | None = None
        self._mine_of: frozenset[int] = frozenset()
        # Where the checkpoints table has ``_mine``'s rows, as this runner last wrote or
        # read them. A worker's page moves the rows of the partitions it had events for;
        # the others' rows are written at most once per poll (``_step``), so the table is
        # at most about a poll behind ``_mine`` for partitions without events.
        self._stored: dict[str, LogPosition] = {}
        self._flushed = 0.0  # when the table last held every row of ``_mine``
        # What ``run`` owns now (empty while standing by or between leases).
        self.owned: frozenset[int] = frozenset()
        self.slot: int | None = None
        # Whether ``run`` (a worker) runs in this process.
        self.working = False

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections)

    @property
    def partitions(self) -> int:
        return self._count

    def partition_of(self, patient_id: UUID) -> int:
        return parts.partition_of(patient_id, self._count)

    def position(self, name: str, partition: int | None = None) -> LogPosition:
        """A read model's checkpoint in ``partition``, or its lowest over all of them."""
        if partition is not None:
            return self._positions.get(parts.checkpoint_name(name, partition), START)
        return min(
            self._positions.get(parts.checkpoint_name(name, p), START) for p in range(self._count)
        )

    def _batches(self, index: int, events: Sequence[RecordedEvent]) -> bool:
        """Whether read model ``index`` takes ``events`` batched with the others."""
        if self._mostly[index]:
            return cast(BatchedMostly, self._projections[index]).batches(events)
        return self._batched[index]

    def _names(self, partitions: Collection[int] | None = None) -> list[str]:
        chosen = range(self._count) if partitions is None else sorted(partitions)
        return [names[k] for names in self._name_of for k in chosen]

    async def prepare(self) -> None:
        """Fixes or checks the partition count (``PartitionCountError`` on a mismatch)."""
        if self._prepared:
            return
        async with self._store.pool.acquire() as conn:
            await parts.prepare(conn, self._count, [p.name for p in self._projections])
        self._prepared = True

    async def _ensure_checkpoints(self, conn: Conn) -> None:
        if self._ensured:
            return
        if not self._prepared:  # on this connection: a second one could wait on the pool
            await parts.prepare(conn, self._count, [p.name for p in self._projections])
            self._prepared = True
        await conn.execute(
            """INSERT INTO checkpoints (name) SELECT unnest($1::text[])
               ON CONFLICT (name) DO NOTHING""",
            self._names(),
        )
        self._ensured = True

    async def step(
        self,
        conn: Conn | None = None,
        partitions: Collection[int] | None = None,
        *,
        remembered: bool = False,
    ) -> int:
        """Applies at most one page of the log to ``partitions`` (default all) of every
        projection, in one transaction that also moves their checkpoints; returns how
        many events of the log it read (0 at the end of the log).

        Checkpoints at the same position (all of them, normally) share one read of the
        log, one decode and one commit. Every checkpoint of a group moves to the page's
        last event, whether or not its partition had events in the page, so idle
        partitions keep up and the next read starts where this one ended (in a worker's
        remembered pages, those without events move in the table later: ``_stored``).

        ``remembered`` (the worker's own pages): start from the checkpoints this
        runner's last page left for the same partitions instead of reading them; the
        conditional update proves them, and the worker reads them again at the end of
        the log at least once per poll. Otherwise (tools, tests) they are read, so a
        reset or a move by another runner is seen at once."""
        if conn is None:
            async with self._store.pool.acquire() as own:
                return await self._step(own, partitions, remembered)
        return await self._step(conn, partitions, remembered)

    async def _step(
        self, conn: Conn, partitions: Collection[int] | None, remembered: bool = False
    ) -> int:
        if not self._projections:
            return 0
        chosen = frozenset(range(self._count) if partitions is None else partitions)
        read = 0
        full_page = False
        moved: list[tuple[str, LogPosition, LogPosition]] = []
        await self._ensure_checkpoints(conn)
        known = self._mine if remembered and self._mine_of == chosen else None
        # Captured with ``known``: another step of this runner (a tool's catch_up next to
        # run) may replace ``_stored`` during the awaits below.
        table_of_known = self._stored
        self._mine = None  # until this page commits
        lazy = False
        read_first: dict[LogPosition, tuple[list[RecordedEvent], LogPosition | None, int]] = {}
        if known is not None and len(starts := set(known.values())) == 1:
            # Every checkpoint at one place (the usual case): read the page before the
            # transaction, and open none at the end of the log. The events are committed
            # and never change; the conditional update below still decides the page.
            (start,) = starts
            read_first[start] = await self._read_page(conn, start, chosen)
            if read_first[start][1] is None:
                stored_now = await self._write_behind(conn, known, table_of_known)
                self._mine, self._stored, self._mine_of = known, stored_now, chosen
                await self._vacuum_if_erased(conn)
                await self._publish(dict(known))
                return 0
            lazy = True
        # Without ``lazy`` every checkpoint of the page moves in the table; with it (a
        # worker's page from where its last one left every checkpoint) only those of the
        # partitions the page had events for, and the others once a poll has passed since
        # the table last held them all. A row left behind only ever skips positions of the
        # log that hold no event of its partition, so a runner starting from it re-reads
        # them and applies nothing twice; waiters in this process see ``_mine``, waiters
        # in others (which read the table) may wait a few polls longer for the partitions
        # without events (docs/architecture.md, "written behind").
        table = table_of_known if lazy else None
        written_all = not lazy or time.monotonic() - self._flushed >= self._poll
        async with conn.transaction():
            if known is not None:
                # As the previous page left them: if another runner moved one since, the
                # conditional update below fails and the next page reads them afresh.
                current = dict(known)
            else:
                current = await self._read_checkpoints(conn, chosen)
            # start -> projection -> partitions at that start
            groups: dict[LogPosition, dict[int, set[int]]] = {}
            for index, names in enumerate(self._name_of):
                for k in chosen:
                    start = current[names[k]]
                    groups.setdefault(start, {}).setdefault(index, set()).add(k)
            # Every group's events are read before any is applied, so a projection that
            # needs a strong lock for part of the page takes it first (LocksFirst).
            pages: list[tuple[LogPosition, dict[int, set[int]], list[RecordedEvent], LogPosition]]
            pages = []
            for start in sorted(groups):
                group = groups[start]
                wanted = frozenset().union(*group.values())
                page = read_first.pop(start, None)
                if page is None or wanted != chosen:
                    page = await self._read_page(conn, start, wanted)
                events, last, scanned = page
                if last is None:
                    continue
                read += scanned
                full_page = full_page or scanned >= self._page_size
                if holds_erasure(e.event_type for e in events):
                    self._erasure_pending = True
                pages.append((start, group, events, last))
            whole = sorted(
                {e.position: e for _, _, events, _ in pages for e in events}.values(),
                key=lambda e: e.log_position,
            )
            for locker in self._locks_first if whole else ():
                await locker.lock_first(conn, whole)
            # Every checkpoint of a group moves to its page's last event, conditionally:
            # in the last group's batched write statement (or on its own), counted.
            touched = (
                None
                if written_all
                else {parts.partition_of(e.patient_id, self._count) for e in whole}
            )
            applied: list[tuple[str, LogPosition]] = []
            for start, group, _, last in pages:
                for index, ks in group.items():
                    names = self._name_of[index]
                    for k in ks:
                        applied.append((names[k], last))
                        if touched is None or k in touched:
                            at = start if table is None else table[names[k]]
                            moved.append((names[k], at, last))
            move = _move_checkpoints(moved) if moved else None
            for n, (_, group, events, _) in enumerate(pages):
                # Batched read models (projections/base.py) read their rows in one
                # statement and write in one more, after the others are applied.
                batched: list[tuple[Batched, list[RecordedEvent]]] = []
                owned: dict[frozenset[int], list[RecordedEvent]] = {}
                for index, ks in group.items():
                    projection = self._projections[index]
                    key = frozenset(ks)
                    if key not in owned:
                        owned[key] = _of(events, ks, self._count)
                    own = owned[key]
                    if own and self._batches(index, own):
                        batched.append((cast(Batched, projection), own))
                    elif own:
                        await projection.apply(conn, own)
                if batched:
                    counted = move if n == len(pages) - 1 else None
                    found = await apply_batched_together(conn, batched, counted=counted)
                    if counted is not None:
                        _check_moved(found, moved)
                        move = None
            if move is not None:
                _check_moved(await execute_together(conn, [], counted=move), moved)
        stored = dict(current) if table is None else dict(table)
        for name, _, after in moved:
            stored[name] = after
        for name, after in applied:
            current[name] = after
        mine = self._names(chosen)
        self._mine = {name: current[name] for name in mine}
        self._stored = {name: stored[name] for name in mine}
        if written_all:
            self._flushed = time.monotonic()
        self._mine_of = chosen
        if not full_page:
            await self._vacuum_if_erased(conn)
        await self._publish(current)
        return read

    async def _write_behind(
        self, conn: Conn, known: dict[str, LogPosition], stored: dict[str, LogPosition]
    ) -> dict[str, LogPosition]:
        """At the end of the log: the rows a worker's pages left behind (``_step``) are
        written, once a poll has passed since the table last held them all."""
        behind = [(name, stored[name], at) for name, at in known.items() if stored[name] != at]
        if not behind:
            self._flushed = time.monotonic()
            return stored
        if time.monotonic() - self._flushed < self._poll:
            return stored
        await self._write_moves(conn, behind)
        self._flushed = time.monotonic()
        return {**stored, **{name: at for name, _, at in behind}}

    async def write_behind(self, conn: Conn | None = None) -> None:
        """Writes now the checkpoints a worker's pages left behind (``_step``): before its
        partitions are rebalanced and when it stops, so that another process waiting on
        the table does not wait for the next owner's first page."""
        known, table = self._mine, self._stored
        if known is None:
            return
        behind = [(name, table[name], at) for name, at in known.items() if table[name] != at]
        if not behind:
            return
        try:
            if conn is None:
                async with self._store.pool.acquire() as own:
                    await self._write_moves(own, behind)
            else:
                await self._write_moves(conn, behind)
        except StaleCheckpointError:
            if self._mine is known:
                self._mine = None  # moved by someone else: the next page reads the table
            raise
        if self._mine is known:  # else another step of this runner went on meanwhile
            self._stored = {**table, **{name: at for name, _, at in behind}}
            self._flushed = time.monotonic()

    async def _write_moves(
        self, conn: Conn, moves: list[tuple[str, LogPosition, LogPosition]]
    ) -> None:
        async with conn.transaction():
            _check_moved(await execute_together(conn, [], counted=_move_checkpoints(moves)), moves)

    async def _vacuum_if_erased(self, conn: Conn) -> None:
        """At the end of the log after a page that applied a ``patient.forgotten``: the
        rewritten rows' old versions still hold the forgotten patient's plaintext, so
        VACUUM them after the commit, before waiters are woken. Once per catch-up, not
        once per page of a replay."""
        if not self._erasure_pending:
            return
        self._erasure_pending = False
        try:
            await vacuum_after_erasure(conn)
        except (OSError, asyncpg.PostgresError):  # autovacuum gets there later
            log.exception("VACUUM after an erasure failed")

    async def _read_page(
        self, conn: Conn, start: LogPosition, wanted: frozenset[int]
    ) -> tuple[list[RecordedEvent], LogPosition | None, int]:
        """The next page after ``start`` for the partitions ``wanted`` (``read_log_of``)."""
        return await self._store.read_log_of(
            start,
            None if len(wanted) == self._count else functools.partial(_holds, wanted, self._count),
            limit=self._page_size,
            conn=conn,
        )

    async def _read_checkpoints(self, conn: Conn, chosen: frozenset[int]) -> dict[str, LogPosition]:
        """Every read model's checkpoints as stored; those of ``chosen`` deleted meanwhile
        (a reset) are made again at the start of the log."""
        rows = await conn.fetch(
            """SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints
               WHERE name = ANY($1::text[])""",
            self._names(),
        )
        current = {r["name"]: LogPosition(r["tx_id"], r["position"]) for r in rows}
        missing = [name for name in self._names(chosen) if name not in current]
        if missing:  # such a checkpoint starts over
            await conn.execute(
                """INSERT INTO checkpoints (name) SELECT unnest($1::text[])
                   ON CONFLICT (name) DO NOTHING""",
                missing,
            )
            current.update(dict.fromkeys(missing, START))
        return current

    async def _publish(self, current: dict[str, LogPosition]) -> None:
        """Takes the checkpoints just read or moved; wakes the waiters they satisfy."""
        positions = self._positions
        moved = {
            self._partition_of.get(name)
            for name, position in current.items()
            if positions.get(name) != position
        }
        if not moved:
            return
        positions.update(current)
        for k in moved:
            if k is not None:
                self._reached_in[k] = min(positions.get(n, START) for n in self._names_in[k])
        # Also when another worker moved them: waiters must see it.
        self._resolve_waiters()

    def _reached(self, partition: int | None) -> LogPosition:
        """The position every read model has applied in ``partition`` (every partition
        for None)."""
        if not self._projections:
            return START
        if partition is not None:
            return self._reached_in.get(partition, START)
        return min(self._reached_in.get(k, START) for k in range(self._count))

    def _resolve_waiters(self) -> None:
        for partition, waiting in list(self._waiters.items()):
            reached = self._reached(partition)
            while waiting and waiting[0][0] <= reached:
                _, _, done = heapq.heappop(waiting)
                if not done.done():  # else it gave up (timed out) meanwhile
                    done.set_result(None)
            if not waiting:
                del self._waiters[partition]

    async def catch_up(self) -> int:
        """Steps every partition until every projection has read everything there is;
        returns how many events were read."""
        total = 0
        while True:
            moved = await self.step()
            total += moved
            if moved == 0:
                return total

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Works as one of the projector's workers until cancelled (or ``stop``): takes a
        worker slot and the partitions it should own, on one connection held for the
        purpose, and applies pages to them; a lost connection drops every lease, and the
        worker joins again after a second."""
        stop = stop or asyncio.Event()
        await self.prepare()
        self.working = True
        while not stop.is_set():
            try:
                async with self._store.pool.acquire() as conn:
                    await self._work(conn, stop)
            except asyncio.CancelledError:
                raise
            except (
                StaleCheckpointError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as exc:
                log.warning(
                    "projector worker lost its connection or a page; rejoining error=%s",
                    type(exc).__name__,
                )
                await sleep(1.0, stop)
            finally:
                if self.owned:
                    log.info("projector partitions released count=%s", len(self.owned))
                self.owned = frozenset()
                self.slot = None

    async def _work(self, conn: Conn, stop: asyncio.Event) -> None:
        # The page's statements (the log read, the batched read and write) are planned
        # once per connection: with the default plan choice PostgreSQL planned the
        # batched read of ten read models anew on every page (about 0.2 ms each; bench
        # row 4, docs/performance.md). Every one of them finds rows by key or position,
        # which a generic plan does as well. A session setting: the connection is marked
        # for the pool's full reset (RESET ALL) when it goes back.
        holds_session_state(conn)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        slot = await parts.join(conn)
        while slot is None:  # every slot is taken: stand by
            await sleep(self._lease_seconds, stop)
            if stop.is_set():
                return
            slot = await parts.join(conn)
        self.slot = slot
        log.info("projector worker joined slot=%s", slot)
        balanced = 0.0
        refreshed = 0.0

        async def page() -> int:
            nonlocal balanced
            now = time.monotonic()
            if now - balanced >= self._lease_seconds:
                await self.write_behind(conn)  # before letting go of any partition
                owned = await parts.rebalance(conn, self._count, slot, set(self.owned))
                if owned != self.owned:
                    log.info(
                        "projector partitions now owned slot=%s partitions=%s",
                        slot,
                        ",".join(str(k) for k in sorted(owned)) or "-",
                    )
                self.owned = frozenset(owned)
                balanced = now
            if not self.owned:
                await self._refresh(conn)
                return 0
            read = await self._step(conn, self.owned, remembered=True)
            if read == 0 and time.monotonic() - refreshed >= self._poll:
                # Other workers' progress, for waiters on their partitions: at the end of
                # the log, at most once per poll (under load the log ends after most pages).
                await refresh()
            return read

        async def refresh() -> None:
            nonlocal refreshed
            await self._refresh(conn)
            refreshed = time.monotonic()

        def moved_under_us(_exc: BaseException) -> float:
            log.warning("checkpoint moved by another runner; re-reading")
            return self._poll

        # A checkpoint moved by another runner (a tool's catch-up, a rebuild) is re-read
        # at the next page; anything else (a lost connection) ends this worker's leases.
        await follow(
            page,
            wake=self._wake,
            poll_seconds=min(self._poll, self._lease_seconds),
            backoff=_retry_every_second(),
            stop=stop,
            errors=(StaleCheckpointError,),
            on_error=moved_under_us,
            # A read-your-writes waiter (a command's answer, the event feed) on a partition
            # this worker owns is owed a page: read again soon when the log hid it
            # (services/logfollow.py).
            pending=self._owed,
        )
        await self.write_behind(conn)  # stopped: leave the table where the pages got to

    def _owed(self) -> bool:
        """A read-your-writes waiter on a partition this worker applies (None: all)."""
        return any(p is None or p in self.owned for p in self._waiters)

    async def _refresh(self, conn: Conn) -> None:
        rows = await conn.fetch(
            """SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints
               WHERE name = ANY($1::text[])""",
            self._names(),
        )
        stored = {r["name"]: LogPosition(r["tx_id"], r["position"]) for r in rows}
        mine, table = self._mine, self._stored
        if mine is None:
            await self._publish(stored)
            return
        changed = {name for name, at in table.items() if stored.get(name) != at}
        if changed:
            self._mine = None  # moved or reset by someone else: read them at the next page
        # The table may be behind this runner's own pages (``_step``): where nobody else
        # moved a row, the position is where those pages left it, not the row's.
        await self._publish(
            {**stored, **{name: at for name, at in mine.items() if name not in changed}}
        )

    async def follow(self) -> None:
        """Instead of ``run`` in a process that serves the API while another process
        projects (``serve --components api``): reads the checkpoints the other process
        moves, so that read-your-writes waits and ``position`` see them. Writes nothing."""
        await self.prepare()

        async def read_checkpoints() -> int:
            async with self._store.pool.acquire() as conn:
                await self._refresh(conn)
            return 0  # nothing read from the log: wait for a wake or the poll

        def on_error(_exc: BaseException) -> None:
            log.warning("reading checkpoints failed; retrying")

        await follow(
            read_checkpoints,
            wake=self._wake,
            poll_seconds=self._poll,
            backoff=_retry_every_second(),
            errors=DATABASE_ERRORS,
            on_error=on_error,
        )

    async def wait_for(
        self,
        position: LogPosition,
        timeout: float,  # noqa: ASYNC109
        patient_id: UUID | None = None,
    ) -> None:
        """Returns once every projection has applied ``position`` in the partition of
        ``patient_id`` (every partition without one): read-your-writes."""
        self._wake.set()
        partition = None if patient_id is None else self.partition_of(patient_id)
        if not self._projections or self._reached(partition) >= position:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._waiters.setdefault(partition, []), (position, next(self._waiter_ids), done)
        )
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise ProjectionLagTimeoutError(position.encode()) from None

    async def lag_by_partition(self) -> dict[str, dict[int, tuple[int, LogPosition]]]:
        """Per projection and partition: how many of the partition's events in the log
        it has not applied yet, and its checkpoint (one statement)."""
        names = self._names()
        async with self._store.pool.acquire() as conn:
            # A checkpoint not made yet is at the start of the log.
            rows = await conn.fetch(
                f"""SELECT n.name, coalesce(c.tx_id, '0'::xid8)::text::bigint AS tx_id,
                           coalesce(c.position, 0) AS position,
                           (SELECT count(*) FROM events e
                            WHERE (e.tx_id, e.position)
                                  > (coalesce(c.tx_id, '0'::xid8), coalesce(c.position, 0))
                              AND {parts.partition_sql("e.patient_id", "$2")}
                                  = split_part(n.name, '@', 2)::integer) AS behind
                    FROM unnest($1::text[]) AS n(name) LEFT JOIN checkpoints c USING (name)""",
                names,
                self._count,
            )
        result: dict[str, dict[int, tuple[int, LogPosition]]] = {
            p.name: {} for p in self._projections
        }
        for r in rows:
            name, _, k = r["name"].rpartition("@")
            result[name][int(k)] = (int(r["behind"]), LogPosition(r["tx_id"], r["position"]))
        return result

    async def lag(self) -> dict[str, dict[str, int]]:
        """Per projection: how many events in the log it has not applied yet (over every
        partition) and its lowest checkpoint position."""
        return summarise_lag(await self.lag_by_partition())


def summarise_lag(
    by_partition: dict[str, dict[int, tuple[int, LogPosition]]],
) -> dict[str, dict[str, int]]:
    """``lag_by_partition`` per projection: events behind summed over the partitions,
    and the lowest checkpoint position."""
    result: dict[str, dict[str, int]] = {}
    for name, partitions in by_partition.items():
        positions = [pos.position for _, pos in partitions.values()]
        result[name] = {
            "events_behind": sum(behind for behind, _ in partitions.values()),
            "position": min(positions) if positions else 0,
        }
    return result


def _of(
    events: Sequence[RecordedEvent], partitions: Collection[int], count: int
) -> list[RecordedEvent]:
    return [e for e in events if parts.partition_of(e.patient_id, count) in partitions]


def _holds(partitions: frozenset[int], count: int, patient_id: UUID) -> bool:
    return parts.partition_of(patient_id, count) in partitions


def _move_checkpoints(moved: Sequence[tuple[str, LogPosition, LogPosition]]) -> Statement:
    """The conditional move of checkpoints ``(name, from, to)``: a row moves only from
    where the page started, so one moved meanwhile by another runner is not counted.

    When every one moves from one place to one place (a page of one group: the usual
    case), the positions are single parameters and only the names an array: a page of
    ten read models in 16 partitions then sends 160 names instead of 800 array elements
    (about 0.2 ms less of the projector's CPU and 0.15 ms of PostgreSQL's a page)."""
    (before, after), *others = {(b, a) for _, b, a in moved}
    if not others:
        return Statement(
            lambda f: (
                f"""UPDATE checkpoints SET tx_id = ${f + 1}::text::xid8,
                      position = ${f + 2}, updated_at = now()
               WHERE name = ANY(${f}::text[]) AND tx_id = ${f + 3}::text::xid8
                 AND position = ${f + 4}"""
            ),
            [
                [name for name, _, _ in moved],
                str(after.tx_id),
                after.position,
                str(before.tx_id),
                before.position,
            ],
        )
    return Statement(
        lambda f: (
            f"""UPDATE checkpoints c SET tx_id = m.new_tx::text::xid8,
                  position = m.new_position, updated_at = now()
           FROM unnest(${f}::text[], ${f + 1}::text[], ${f + 2}::bigint[], ${f + 3}::text[],
                       ${f + 4}::bigint[])
                AS m(name, new_tx, new_position, old_tx, old_position)
           WHERE c.name = m.name AND c.tx_id = m.old_tx::text::xid8
             AND c.position = m.old_position"""
        ),
        [
            [name for name, _, _ in moved],
            [str(after.tx_id) for _, _, after in moved],
            [after.position for _, _, after in moved],
            [str(before.tx_id) for _, before, _ in moved],
            [before.position for _, before, _ in moved],
        ],
    )


def _check_moved(found: int | None, moved: Sequence[tuple[str, LogPosition, LogPosition]]) -> None:
    """Raises when a checkpoint was not where the page started (the page rolls back)."""
    if found != len(moved):
        raise StaleCheckpointError(",".join(sorted({name for name, _, _ in moved})))
