"""The one place that wires careteam together: settings in, running parts out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from projections.registry import all_projections
from services.application import Application
from services.audit.reads import AuditWriter
from services.audit.sealer import ChainHealth, ChainSealer
from services.crypto import KeyRing, load_master_key, load_previous_master_keys
from services.database import create_pool, database_dsn, prepare_schema
from services.eventstore import EventStore
from services.partners import PartnerFeeds, PartnerOptions
from services.partners.contract import Publisher
from services.projector.runner import ProjectionRunner
from services.row_memo import RowMemo
from services.settings import Settings

log = logging.getLogger("careteam.bootstrap")

# How long a stopping process lets its projector worker finish its page and write its
# checkpoints before cancelling it.
PROJECTOR_STOP_SECONDS = 5.0

# Caseload pages kept per process (Runtime.caseload_pages).
PAGE_MEMO: Final = 64

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def clock_from(start: datetime | None) -> Clock:
    """The system clock, or (tests only: ``CARETEAM_TEST_CLOCK_START``) a clock that reads
    ``start`` when made and runs on at the system clock's pace."""
    if start is None:
        return system_clock
    began = datetime.now(UTC)

    def shifted() -> datetime:
        return start.astimezone(UTC) + (datetime.now(UTC) - began)

    return shifted


@dataclass
class Runtime:
    """The open resources of one careteam process."""

    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    store: EventStore
    app: Application
    projector: ProjectionRunner
    audit: AuditWriter
    clock: Clock = system_clock
    chain_health: ChainHealth = field(default_factory=ChainHealth)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Caseload rows derived for a day, keyed by their inputs (services.row_memo).
    caseload_rows: RowMemo[Any] = field(default_factory=RowMemo)
    # Caseload pages (the connection object) keyed by the exact rows, cursors and counts
    # they hold, so an unchanged page is the same object and its completed fields are
    # memoised on it (services.api.lean_execution); a few pages per caller at a time.
    caseload_pages: RowMemo[Any] = field(default_factory=lambda: RowMemo(capacity=PAGE_MEMO))


async def _keep_relay_running(settings: Settings, store: EventStore) -> None:
    """The relay inside `careteam serve`: restarted after an unexpected error."""
    from services.relay import run_relay

    while True:
        try:
            await run_relay(settings, store)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay stopped unexpectedly; restarting in 5 s")
            await asyncio.sleep(5.0)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    run_projector: bool = True,
    run_relay: bool = True,
    clock: Clock = system_clock,
    components: frozenset[str] | None = None,
) -> AsyncIterator[Runtime]:
    """Starts (or connects to) PostgreSQL, migrates, opens the pool and the background loops.

    ``components`` (``serve --components``) names the loops to run: ``projector``,
    ``relay`` (with Kafka configured), ``partners``, ``sealer``; ``api`` without
    ``projector`` follows the checkpoints another process moves. Without it,
    ``run_projector`` means projector, sealer and partner feeds, ``run_relay`` the relay."""
    if components is None:
        components = frozenset(
            (["projector", "sealer", "partners"] if run_projector else [])
            + (["relay"] if run_relay else [])
        )
    async with database_dsn(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await prepare_schema(conn, settings)
        finally:
            await conn.close()
        from services.kafka import partner_topic_maker, prepare_kafka

        kafka_options = await prepare_kafka(settings, relay="relay" in components)
        pool = await create_pool(dsn, settings)
        try:
            store = EventStore(
                pool,
                snapshot_every=settings.snapshot_every,
                keyring=await open_keyring(pool, settings),
                kept_aggregates=settings.kept_aggregates,
            )
            runtime = Runtime(
                settings=settings,
                dsn=dsn,
                pool=pool,
                store=store,
                app=Application(store),
                projector=ProjectionRunner(
                    store,
                    all_projections(),
                    poll_seconds=settings.projector_poll_seconds,
                    page_size=settings.projector_page_size,
                    partitions=settings.projector_partitions,
                    lease_seconds=settings.projector_lease_seconds,
                ),
                audit=AuditWriter(pool),
                clock=clock,
            )
            # The partition count fixed in the database must be this process's (a
            # mismatch stops the start, naming CARETEAM_PROJECTOR_PARTITIONS).
            await runtime.projector.prepare()
            runtime.tasks.append(asyncio.create_task(runtime.audit.run()))
            if "relay" in components and settings.kafka_bootstrap_servers:
                runtime.tasks.append(asyncio.create_task(_keep_relay_running(settings, store)))
            projector_stop = asyncio.Event()
            projector_task: asyncio.Task[None] | None = None
            if "projector" in components:
                projector_task = asyncio.create_task(runtime.projector.run(projector_stop))
                runtime.tasks.append(projector_task)
            elif "api" in components:
                runtime.tasks.append(asyncio.create_task(runtime.projector.follow()))
            if "sealer" in components:
                runtime.tasks.append(
                    asyncio.create_task(ChainSealer(pool, settings, runtime.chain_health).run())
                )
            if "partners" in components:
                feeds = PartnerFeeds(
                    runtime.store,
                    runtime.dsn,
                    kafka_bootstrap=settings.kafka_bootstrap_servers,
                    kafka_options=kafka_options,
                    make_topic=(
                        partner_topic_maker(settings, kafka_options)
                        if kafka_options is not None
                        else None
                    ),
                    options=PartnerOptions.from_env(),
                    clock=runtime.clock,
                    publisher=Publisher(settings.public_url),
                )
                runtime.tasks.append(asyncio.create_task(feeds.run(), name="partner-feeds"))
            try:
                yield runtime
            finally:
                await runtime.audit.close()
                if projector_task is not None:
                    # The worker finishes its page and writes the checkpoints its pages
                    # left behind (services/projector/runner.py), then is cancelled.
                    projector_stop.set()
                    await asyncio.wait({projector_task}, timeout=PROJECTOR_STOP_SECONDS)
                for task in runtime.tasks:
                    task.cancel()
                for task in runtime.tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await pool.close()


async def open_keyring(pool: asyncpg.Pool, settings: Settings) -> KeyRing:
    """The key ring from CARETEAM_MASTER_KEY (or the development key in the data folder)
    and CARETEAM_MASTER_KEY_PREVIOUS, with the derived keys stored in the database;
    refuses to start when the stored keys were wrapped by a master key not given."""
    master = settings.master_key.reveal() if settings.master_key else None
    previous = settings.master_key_previous.reveal() if settings.master_key_previous else None
    async with pool.acquire() as conn:
        return await KeyRing.open(
            conn, load_master_key(master, settings.data_dir), load_previous_master_keys(previous)
        )
