"""Row 2: rebuilding every read model from the log, against COPY of as many rows.

The log holds N events from real Patient journeys (registrations, enrollments, care
teams, contacts, screenings; about one screening in six raises a safety flag and
tasks), appended one journey per command. Each run empties every read model and the
checkpoints, then times ``ProjectionRunner.catch_up()`` with every registered projection
(``projections.registry.all_projections()``): read the log page by page, evolve, write
the rows and the checkpoint in one transaction per page, as the projector does.

Baseline: ``copy_records_to_table`` of N rows into a table shaped like the first
read model's table (same columns and indexes), the rows being that model's documents
as the rebuild produced them, each under a fresh key: the fastest way PostgreSQL takes
N read-model rows from Python. The documents are serialised before the clock starts.
One rebuild before the first run warms the cache and produces those documents; it is
not counted.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg

from bench import profiling, stats
from bench.base import RowContext, RowSpec, always, usage_series
from bench.environment import Monitor, Usage, describe_cores
from bench.results import Check, Comparison, RowResult, Series, Target
from bench.workload import META, STREAM_TYPE, make_streams
from projections.base import Projection
from projections.registry import all_projections
from services.database import Conn, create_pool
from services.eventstore import EventStore
from services.projector.runner import ProjectionRunner
from services.settings import Settings

TARGET = Target("at least 35% of COPY", ">=", 0.35)
ZERO = Target("zero", "<=", 0.0)
COPY_TABLE = "bench_copy_target"
LOAD_WRITERS = 4


async def load_log(store: EventStore, total_events: int, *, seed: int = 2) -> int:
    """Appends ``total_events`` events, one journey per append; returns the stream count."""
    streams = make_streams(total_events, seed=seed, single_event=False)
    now = datetime.now(UTC)
    queue = list(reversed(streams))

    async def writer() -> None:
        while queue:
            stream = queue.pop()
            events = [e for c in stream for e in c.events]
            await store.append(
                stream_type=STREAM_TYPE,
                stream_id=stream[0].stream_id,
                patient_id=stream[0].patient_id,
                expected_version=0,
                events=events,
                metadata=META,
                now=now,
            )

    await asyncio.gather(*(writer() for _ in range(LOAD_WRITERS)))
    return len(streams)


def table_of(projection: Projection) -> str | None:
    table = getattr(projection, "table", None)
    return table if isinstance(table, str) else None


async def reset(conn: Conn, projections: Sequence[Projection]) -> None:
    for p in projections:
        await p.reset(conn)
    # Every partition's checkpoint (``<name>@<partition>``) of these read models.
    await conn.execute(
        "DELETE FROM checkpoints WHERE split_part(name, '@', 1) = ANY($1::text[])",
        [p.name for p in projections],
    )


async def rebuild_once(
    store: EventStore, projections: Sequence[Projection], server_pid: int | None
) -> tuple[int, float, Usage]:
    """Empties the read models, then replays the whole log into them; (events, s, usage)."""
    async with store.pool.acquire() as conn:
        await reset(conn, projections)
    runner = ProjectionRunner(store, projections)
    with Monitor(server_pid) as monitor:
        start = time.perf_counter()
        moved = await runner.catch_up()
        elapsed = time.perf_counter() - start
    return moved, elapsed, monitor.usage  # catch_up counts events read from the log


async def copy_once(
    dsn: str, records: list[tuple[Any, ...]], server_pid: int | None
) -> tuple[int, float, Usage]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {COPY_TABLE}")
        with Monitor(server_pid) as monitor:
            start = time.perf_counter()
            await conn.copy_records_to_table(
                COPY_TABLE, records=records, columns=["key", "organisation_id", "doc"]
            )
            elapsed = time.perf_counter() - start
    finally:
        await conn.close()
    return len(records), elapsed, monitor.usage


async def measure(ctx: RowContext) -> RowResult:
    opts = ctx.options
    result = RowResult(number=2, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    projections = all_projections()
    first_table = next((t for p in projections if (t := table_of(p)) is not None), None)
    if first_table is None:
        result.status = "skipped"
        result.reason = "no read model with a table to COPY into"
        return result
    n = opts.events
    ours_runs: list[tuple[int, float, Usage]] = []
    copy_runs: list[tuple[int, float, Usage]] = []
    async with ctx.databases.fresh() as dsn:
        pool = await create_pool(dsn, Settings(db_pool_min=2, db_pool_max=LOAD_WRITERS + 1))
        try:
            store = EventStore(pool, snapshot_every=0)
            patients = await load_log(store, n)
            ctx.log(f"row 2 loaded {n:,} events for {patients:,} patients")
            warm = await rebuild_once(store, projections, ctx.server.postmaster_pid)
            ctx.log(f"row 2 warm-up rebuild {warm[0] / warm[1]:,.0f} events/s (not counted)")
            async with pool.acquire() as conn:
                docs = await conn.fetch(
                    f"SELECT organisation_id, doc::text AS doc FROM {first_table}"
                )
                await conn.execute(f"CREATE TABLE {COPY_TABLE} (LIKE {first_table} INCLUDING ALL)")
                stored = await _sizes(conn, [first_table], ["events", "streams"])
            records = [
                (uuid4(), docs[i % len(docs)]["organisation_id"], docs[i % len(docs)]["doc"])
                for i in range(n)
            ]
            missing = patients - len(docs)
            for run in range(opts.runs):
                order = ["careteam", "copy"] if run % 2 == 0 else ["copy", "careteam"]
                for system in order:
                    if system == "careteam":
                        sample = await rebuild_once(store, projections, ctx.server.postmaster_pid)
                        ours_runs.append(sample)
                    else:
                        sample = await copy_once(dsn, records, ctx.server.postmaster_pid)
                        copy_runs.append(sample)
                    ctx.log(
                        f"row 2 run {run + 1}/{opts.runs} {system:<8} "
                        f"{stats.throughput(sample[0], sample[1]):>9,.0f} events/s"
                    )
            if opts.profile:
                # One more rebuild, not counted: py-spy shares the bench process's core.
                with profiling.sampled_into(
                    result.profiles,
                    os.getpid(),
                    ctx.profile_path(2, "rebuild"),
                    "the bench process rebuilding every read model (an extra run, not counted)",
                ):
                    await rebuild_once(store, projections, ctx.server.postmaster_pid)
        finally:
            await pool.close()
    ours = result.add(
        Series(
            key="rebuild",
            label=f"careteam rebuild of {len(projections)} read model(s) "
            f"({', '.join(p.name for p in projections)})",
            unit="events/s",
            runs=[stats.throughput(e, s) for e, s, _ in ours_runs],
        )
    )
    copy = result.add(
        Series(
            key="copy",
            label=f"asyncpg copy_records_to_table into a copy of {first_table}",
            unit="rows/s",
            runs=[stats.throughput(e, s) for e, s, _ in copy_runs],
            baseline=True,
        )
    )
    result.comparisons.append(Comparison.of("rebuild / COPY of as many rows", ours, copy, TARGET))
    result.checks.append(
        Check(
            label="patients missing from the rebuilt read model",
            value=float(missing),
            unit="patients",
            target=ZERO,
            detail=f"{patients:,} patients, {len(docs):,} documents",
        )
    )
    result.series.extend(
        usage_series("rebuild", "careteam rebuild", [u for *_, u in ours_runs], baseline=False)
    )
    result.series.extend(usage_series("copy", "COPY", [u for *_, u in copy_runs], baseline=True))
    for name, size in stored.items():
        result.add(
            Series(
                key=f"bytes_{name}",
                label=f"{name} incl. indexes, per event in the log",
                unit="bytes/event",
                runs=[size / n],
                kind="storage",
                higher_is_better=False,
            )
        )
    result.placement = {
        "bench process (projection runner, COPY client)": describe_cores(ctx.cores.loadgen),
        "PostgreSQL server": ctx.server.describe(),
    }
    return result


async def _sizes(conn: Conn, read_models: list[str], log_tables: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    log_total = 0
    for t in log_tables:
        log_total += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
    out["log (events + streams)"] = float(log_total)
    for t in read_models:
        out[f"read model {t}"] = float(
            await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
        )
    return out


LIMITS = """The Python evolve step of seven projections (copying and changing each document per
event), then decoding events and writing documents back; see the profile."""


SPEC = RowSpec(
    number=2,
    slug="rebuild",
    title="Projection rebuild into every read model vs COPY",
    available=always,
    run=measure,
)
