"""Runs projections: catch up from each checkpoint in pages, then follow the log live.

Each page of the log is applied to every projection in one transaction that also moves
their checkpoints, so every event takes effect exactly once even if the process dies at
any instant. The checkpoint updates are conditional on the previous positions, so two
runners cannot both apply a page (the second one rolls back).

The loop, wake-ups (an append in this process at once, other processes by the poll
CARETEAM_PROJECTOR_POLL_SECONDS; no NOTIFY) and retries are services/logfollow.py's;
the runner supplies ``step``, one page for every projection. It keeps one checkpoint per
projection rather than the follower's one, and takes no lease: its conditional
checkpoint updates already let only one runner apply a page (docs/log-followers.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg

from projections.base import Projection
from services.database import Conn
from services.erasure_cleanup import holds_erasure, vacuum_after_erasure
from services.eventstore import START, EventStore, LogPosition
from services.logfollow import Backoff, Wake, follow, read_checkpoint

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
    ) -> None:
        self._store = store
        self._projections = list(projections)
        self._page_size = page_size
        self._poll = poll_seconds
        self._wake = Wake(store)
        self._positions: dict[str, LogPosition] = {}
        self._progress = asyncio.Condition()
        self._last_applied_at: dict[str, float] = {}
        self._ensured = False
        # A page applied a patient.forgotten event and the VACUUM after it is still due.
        self._erasure_pending = False

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections)

    def position(self, name: str) -> LogPosition:
        return self._positions.get(name, START)

    async def _ensure_checkpoints(self, conn: Conn) -> None:
        if self._ensured:
            return
        await conn.execute(
            """INSERT INTO checkpoints (name) SELECT unnest($1::text[])
               ON CONFLICT (name) DO NOTHING""",
            [p.name for p in self._projections],
        )
        self._ensured = True

    async def step(self) -> int:
        """Applies at most one page of the log to every projection, in one transaction
        that also moves every checkpoint that moved; returns how many events it read.

        Projections at the same checkpoint (all of them, normally) share one log read,
        one decode and one commit, instead of one of each per projection. Projections at
        different checkpoints (one just added, or reset) each get a page from their own
        checkpoint in the same transaction, so one catching up from the start of the log
        never holds the others back; they meet at the end of the log."""
        if not self._projections:
            return 0
        names = [p.name for p in self._projections]
        read = 0
        full_page = False
        moved: list[tuple[str, LogPosition, LogPosition]] = []
        async with self._store.pool.acquire() as conn:
            await self._ensure_checkpoints(conn)
            async with conn.transaction():
                rows = await conn.fetch(
                    """SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints
                       WHERE name = ANY($1::text[])""",
                    names,
                )
                current = {r["name"]: LogPosition(r["tx_id"], r["position"]) for r in rows}
                missing = [name for name in names if name not in current]
                if missing:  # deleted meanwhile (a reset): such a projection starts over
                    await conn.execute(
                        """INSERT INTO checkpoints (name) SELECT unnest($1::text[])
                           ON CONFLICT (name) DO NOTHING""",
                        missing,
                    )
                    current.update(dict.fromkeys(missing, START))
                groups: dict[LogPosition, list[Projection]] = {}
                for projection in self._projections:
                    groups.setdefault(current[projection.name], []).append(projection)
                for start in sorted(groups):
                    events = await self._store.read_log(start, limit=self._page_size, conn=conn)
                    read += len(events)
                    if not events:
                        continue
                    last = events[-1].log_position
                    full_page = full_page or len(events) >= self._page_size
                    if holds_erasure(e.event_type for e in events):
                        self._erasure_pending = True
                    for projection in groups[start]:
                        await projection.apply(conn, events)
                        moved.append((projection.name, start, last))
                if moved:
                    status = await conn.execute(
                        """UPDATE checkpoints c SET tx_id = m.new_tx::text::xid8,
                                  position = m.new_position, updated_at = now()
                           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                                       $5::bigint[])
                                AS m(name, new_tx, new_position, old_tx, old_position)
                           WHERE c.name = m.name AND c.tx_id = m.old_tx::text::xid8
                             AND c.position = m.old_position""",
                        [name for name, _, _ in moved],
                        [str(after.tx_id) for _, _, after in moved],
                        [after.position for _, _, after in moved],
                        [str(before.tx_id) for _, before, _ in moved],
                        [before.position for _, before, _ in moved],
                    )
                    if status != f"UPDATE {len(moved)}":
                        raise StaleCheckpointError(",".join(name for name, _, _ in moved))
                    for name, _, after in moved:
                        current[name] = after
            if self._erasure_pending and not full_page:
                # The rewritten rows' old versions still hold the forgotten patient's
                # plaintext: VACUUM them after the commit, before waiters are woken. Once
                # per catch-up (at the end of the log), not once per page of a replay.
                self._erasure_pending = False
                try:
                    await vacuum_after_erasure(conn)
                except (OSError, asyncpg.PostgresError):  # autovacuum gets there later
                    log.exception("VACUUM after an erasure failed")
        changed = any(self._positions.get(name) != position for name, position in current.items())
        self._positions.update(current)
        now = time.monotonic()
        for name, _, _ in moved:
            self._last_applied_at[name] = now
        if changed:  # also when another runner moved them: waiters must see it
            async with self._progress:
                self._progress.notify_all()
        return read

    async def catch_up(self) -> int:
        """Steps until every projection has read everything there is; returns how many
        events were read."""
        total = 0
        while True:
            moved = await self.step()
            total += moved
            if moved == 0:
                return total

    async def run(self) -> None:
        """Follows the log until cancelled (services/logfollow.py's loop, one page a step)."""

        def on_error(exc: BaseException) -> float | None:
            if isinstance(exc, StaleCheckpointError):
                log.warning("checkpoint moved by another runner; re-reading")
                return self._poll  # let the other runner's page commit
            log.exception("projector step failed; retrying", exc_info=exc)
            return None

        await follow(
            self.step,
            wake=self._wake,
            poll_seconds=self._poll,
            backoff=_retry_every_second(),
            errors=(StaleCheckpointError, OSError, asyncpg.PostgresError),
            on_error=on_error,
        )

    async def follow(self) -> None:
        """Instead of ``run`` in a process that serves the API while another process
        projects (``serve --components api``): reads the checkpoints the other process
        moves, so that read-your-writes waits and ``position`` see them. Writes nothing."""
        names = [p.name for p in self._projections]

        async def read_checkpoints() -> int:
            async with self._store.pool.acquire() as conn:
                rows = await conn.fetch(
                    """SELECT name, tx_id::text::bigint AS tx_id, position FROM checkpoints
                       WHERE name = ANY($1::text[])""",
                    names,
                )
            current = {r["name"]: LogPosition(r["tx_id"], r["position"]) for r in rows}
            if any(self._positions.get(name) != pos for name, pos in current.items()):
                self._positions.update(current)
                async with self._progress:
                    self._progress.notify_all()
            return 0  # nothing read from the log: wait for a wake or the poll

        def on_error(_exc: BaseException) -> None:
            log.warning("reading checkpoints failed; retrying")

        await follow(
            read_checkpoints,
            wake=self._wake,
            poll_seconds=self._poll,
            backoff=_retry_every_second(),
            errors=(OSError, asyncpg.PostgresError, asyncpg.InterfaceError),
            on_error=on_error,
        )

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
