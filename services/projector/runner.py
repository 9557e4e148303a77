"""Runs projections: catch up from each checkpoint in pages, then follow the log live.

Each batch's read-model rows and the projection's checkpoint are written in one
transaction, so every event takes effect exactly once even if the process dies at any
instant. The checkpoint update is conditional on the previous position, so two runners
of the same projection cannot both apply a batch (the second one rolls back).

Wake-ups: appends made in this process wake the runner at once (EventStore.on_append);
appends from other processes are found by a short poll (CARETEAM_PROJECTOR_POLL_SECONDS).
We chose not to NOTIFY from writers: a NOTIFY in a writing transaction takes a global
lock at commit and serialises every writer (dependency-notes.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import asyncpg

from projections.base import Projection
from services.database import Conn
from services.eventstore import START, EventStore, LogPosition

log = logging.getLogger("careteam.projector")


class ProjectionLagTimeoutError(TimeoutError):
    """A read model did not reach a position in time (read-your-writes gave up waiting)."""

    code = "PROJECTION_TIMEOUT"


async def read_checkpoint(conn: Conn, name: str) -> LogPosition:
    await conn.execute(
        "INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )
    row = await conn.fetchrow(
        "SELECT tx_id::text::bigint AS tx_id, position FROM checkpoints WHERE name = $1", name
    )
    assert row is not None
    return LogPosition(row["tx_id"], row["position"])


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
    ) -> None:
        self._store = store
        self._projections = list(projections)
        self._page_size = page_size
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._positions: dict[str, LogPosition] = {}
        self._progress = asyncio.Condition()
        self._last_applied_at: dict[str, float] = {}
        store.on_append(self._on_append)

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections)

    def _on_append(self, _position: LogPosition) -> None:
        self._wake.set()

    def position(self, name: str) -> LogPosition:
        return self._positions.get(name, START)

    async def step(self, projection: Projection) -> int:
        """Applies at most one page of events to one projection; returns how many."""
        pool = self._store.pool
        async with pool.acquire() as conn:
            async with conn.transaction():
                current = await read_checkpoint(conn, projection.name)
                events = await self._store.read_log(current, limit=self._page_size, conn=conn)
                if events:
                    await projection.apply(conn, events)
                    last = events[-1].log_position
                    status = await conn.execute(
                        """UPDATE checkpoints SET tx_id = $2::text::xid8, position = $3,
                                  updated_at = now()
                           WHERE name = $1 AND tx_id = $4::text::xid8 AND position = $5""",
                        projection.name,
                        str(last.tx_id),
                        last.position,
                        str(current.tx_id),
                        current.position,
                    )
                    if status != "UPDATE 1":
                        raise StaleCheckpointError(projection.name)
                    current = last
        self._positions[projection.name] = current
        if events:
            self._last_applied_at[projection.name] = time.monotonic()
            async with self._progress:
                self._progress.notify_all()
        return len(events)

    async def catch_up(self) -> int:
        """Runs every projection until none has anything left to read."""
        total = 0
        while True:
            moved = 0
            for projection in self._projections:
                moved += await self.step(projection)
            total += moved
            if moved == 0:
                return total

    async def run(self) -> None:
        """Follows the log until cancelled."""
        while True:
            self._wake.clear()
            try:
                moved = await self.catch_up()
            except StaleCheckpointError:
                log.warning("checkpoint moved by another runner; re-reading")
                continue
            except (OSError, asyncpg.PostgresError):
                log.exception("projector step failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if moved == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)

    async def wait_for(self, position: LogPosition, timeout: float) -> None:  # noqa: ASYNC109
        """Returns once every projection has applied ``position`` (read-your-writes)."""
        self._wake.set()

        def reached() -> bool:
            return all(self.position(p.name) >= position for p in self._projections)

        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(reached), timeout)
            except TimeoutError:
                raise ProjectionLagTimeoutError(position.encode()) from None

    async def lag(self) -> dict[str, dict[str, int]]:
        """Per projection: how many events in the log it has not applied yet."""
        result: dict[str, dict[str, int]] = {}
        async with self._store.pool.acquire() as conn:
            for projection in self._projections:
                cp = await read_checkpoint(conn, projection.name)
                behind = await conn.fetchval(
                    """SELECT count(*) FROM events
                       WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)""",
                    str(cp.tx_id),
                    cp.position,
                )
                result[projection.name] = {"events_behind": int(behind), "position": cp.position}
        return result
