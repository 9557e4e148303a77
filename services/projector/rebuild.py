"""Rebuilds read models from the whole log into new tables, then swaps them in.

The new tables live in a scratch schema while they are filled (the projections' SQL
uses unqualified table names, so ``search_path`` points their writes there); the old
tables keep serving reads until the swap. The swap locks the old tables, applies the
last events that arrived meanwhile, replaces the tables and moves the checkpoints (every
partition's, services/projector/partitions.py), all in one transaction, so readers see
either the old tables or the complete new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from uuid import uuid4

from projections.base import Projection
from services.eventstore import START, EventStore, LogPosition
from services.projector import partitions

log = logging.getLogger("careteam.rebuild")

Progress = Callable[[int, int], None]


class UnknownProjectionError(LookupError):
    """No projection has that name."""


async def rebuild(
    store: EventStore,
    projections: Sequence[Projection],
    tables_of: dict[str, tuple[str, ...]],
    *,
    page_size: int = 2_000,
    progress: Progress | None = None,
) -> LogPosition:
    """Rebuilds ``projections`` (in order) and swaps their tables in; returns the position."""
    names = [p.name for p in projections]
    for name in names:
        if name not in tables_of:
            raise UnknownProjectionError(name)
    tables = [t for name in names for t in tables_of[name]]
    scratch = f"careteam_rebuild_{uuid4().hex[:12]}"
    async with store.pool.acquire() as conn:
        count = await partitions.stored_count(conn)
        if count is None:  # no projector has run yet: fix the default count now
            count = partitions.DEFAULT_PARTITIONS
            await partitions.prepare(conn, count, names)
        # Every partition's checkpoint of each rebuilt read model moves to the position.
        checkpoints = partitions.checkpoint_names(names, count)
        total = int(await conn.fetchval("SELECT count(*) FROM events"))
        await conn.execute(f"CREATE SCHEMA {scratch}")
        try:
            for table in tables:
                await conn.execute(
                    f"CREATE TABLE {scratch}.{table} (LIKE public.{table} INCLUDING ALL)"
                )
            position, done = START, 0

            async def apply_page() -> int:
                nonlocal position, done
                await conn.execute(f"SET LOCAL search_path = {scratch}, public")
                events = await store.read_log(position, limit=page_size, conn=conn)
                for projection in projections:
                    await projection.apply(conn, events)
                if events:
                    position = events[-1].log_position
                    done += len(events)
                    if progress is not None:
                        progress(min(done, total), max(total, done))
                return len(events)

            while True:
                async with conn.transaction():
                    if await apply_page() == 0:
                        break
            async with conn.transaction():
                # Old tables first (waits for a live projector's open batch), then the
                # checkpoints; the same order as the live runner, so no deadlock.
                for table in tables:
                    await conn.execute(f"LOCK TABLE public.{table} IN ACCESS EXCLUSIVE MODE")
                await conn.execute(
                    "SELECT 1 FROM checkpoints WHERE name = ANY($1::text[]) FOR UPDATE",
                    checkpoints,
                )
                while await apply_page():
                    pass
                for table in tables:
                    await conn.execute(f"DROP TABLE public.{table}")
                    await conn.execute(f"ALTER TABLE {scratch}.{table} SET SCHEMA public")
                await conn.execute(
                    """INSERT INTO checkpoints (name, tx_id, position)
                       SELECT unnest($1::text[]), $2::text::xid8, $3
                       ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id,
                         position = EXCLUDED.position, updated_at = now()""",
                    checkpoints,
                    str(position.tx_id),
                    position.position,
                )
        finally:
            await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
    log.info("rebuilt projections=%s events=%s", ",".join(names), done)
    return position
