"""The relay: follows the event log from its checkpoint and publishes every event to Kafka.

Delivery is at least once and never skips an event:

- The relay reads the log a page at a time (``EventStore.read_log_rows``: ``read_log``'s
  gap-safe order, payload and metadata left as stored JSON text, identifying fields as
  ciphertext) and hands each page to one idempotent producer (``acks=all``) in log order.
  Pages are pipelined: up to ``pages_in_flight`` (default 2) pages may be sent and not
  yet acknowledged, and the next page is read while the current one is encoded and sent
  and while acknowledgements are awaited. The checkpoint moves, by a conditional UPDATE
  in PostgreSQL, only to the end of the longest run of leading pages whose every record
  the broker acknowledged: a later page acknowledged before an earlier one does not move
  it, so it never passes an unacknowledged event. A crash at any instant re-sends at most
  the pages in flight (``pages_in_flight`` x ``page_size`` events); consumers drop
  duplicates by ``ce_id``.
- A page that is not acknowledged within ``publish_timeout_seconds`` of being handed to
  the producer, or any Kafka error, ends the whole pipeline: the checkpoint moves over
  the pages before the failed one that were acknowledged in full, every page in flight
  is dropped, the producer is discarded and a new one sends again from the checkpoint,
  after a capped, jittered backoff. An idempotent aiokafka producer retries a batch
  forever (it never expires one) and can stay stuck on ``OutOfOrderSequenceNumber``
  after a broker blip until it is recreated (aiokafka issue 1017), so replacing it is the
  one recovery path for every producer failure. A database error with pages in flight
  also discards the producer before the relay reconnects and reads from the checkpoint.
- Per-patient order: records are keyed by patient id, so one patient's events share a
  partition. aiokafka sends one request per partition at a time, so a producer appends
  the pages it was handed in log order; a replacement re-sends from the checkpoint, which
  is at or before anything the old one appended, so the first copy of each event is still
  in log order.

One relay per checkpoint name is active: it holds a PostgreSQL session advisory lock
(the lease) on the connection it reads and checkpoints with (one query at a time: a read
ahead and a checkpoint UPDATE take turns), so a second relay process waits as a standby,
and a killed relay's lease ends with its connection. Every successful checkpoint UPDATE
on that connection proves the lease is still held.

The relay is decoupled from writes: commands append to PostgreSQL and return; the relay
catches up whenever the broker is reachable. Appends in this process wake it at once
(``EventStore.on_append``); appends elsewhere are found by a short poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from services import locks
from services.database import Conn
from services.eventstore import START, EventStore, LogPosition
from services.logfollow import (
    DATABASE_ERRORS,
    Backoff,
    StaleCheckpointError,
    Wake,
    advance_checkpoint,
    read_checkpoint,
    release_lease,
    sleep,
    take_lease,
)
from services.relay.messages import messages_from_rows
from services.settings import Settings, SettingsError

log = logging.getLogger("careteam.relay")

DEFAULT_NAME = "relay:internal"
# First key of the two-key advisory lock that is a relay's lease; the second key is
# hashtext(checkpoint name) (services/locks.py).
LEASE_LOCK_NAMESPACE = locks.RELAY_LEASE

# What a broken connection to PostgreSQL raises; the relay reconnects after a pause.
_DATABASE_ERRORS = DATABASE_ERRORS
# What a failed page raises; the relay replaces the producer and sends the page again.
_PUBLISH_ERRORS: tuple[type[BaseException], ...] = (KafkaError, TimeoutError, OSError)


# What ends the pages in flight (and their producer) before the relay reconnects.
_RESTART_ERRORS: tuple[type[BaseException], ...] = (*_DATABASE_ERRORS, StaleCheckpointError)


@dataclass(frozen=True)
class RelayOptions:
    """Tuning of one relay; the defaults suit one machine."""

    # 1,000 rather than 500: half the log reads and checkpoint UPDATEs per event on the
    # lease connection (row 5 measured it faster); a crash re-sends up to
    # pages_in_flight x page_size events.
    page_size: int = 1000
    # Pages handed to the producer whose acknowledgements are still awaited (at least 1).
    pages_in_flight: int = 2
    poll_seconds: float = 0.2
    # A page not acknowledged in this time counts as a failure: the producer is replaced.
    publish_timeout_seconds: float = 30.0
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 10.0
    lease_poll_seconds: float = 1.0
    close_timeout_seconds: float = 10.0
    # Producer settings. Idempotence and acks=all are not options: they are the point.
    request_timeout_ms: int = 10_000
    max_batch_size: int = 256 * 1024
    linger_ms: int = 0

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.pages_in_flight < 1:
            raise ValueError("pages_in_flight must be at least 1")
        if self.backoff_initial_seconds <= 0 or self.backoff_max_seconds <= 0:
            raise ValueError("backoff times must be positive")


@dataclass(frozen=True)
class RelayLag:
    """How far the relay is behind the log."""

    name: str
    checkpoint: LogPosition
    head: LogPosition
    events_behind: int

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint.encode(),
            "head": self.head.encode(),
            "events_behind": self.events_behind,
        }


@dataclass
class RelayStatus:
    """Counters of one relay in this process (for health checks and logs)."""

    position: LogPosition = START
    leader: bool = False
    published_events: int = 0
    producer_starts: int = 0
    failures: int = 0
    last_error: str | None = None
    last_published_at: float | None = None  # time.monotonic()


async def relay_lag(pool: asyncpg.Pool, name: str = DEFAULT_NAME) -> RelayLag:
    """The checkpoint, the head of the log and how many events lie between them."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT tx_id::text::bigint AS tx_id, position FROM checkpoints WHERE name = $1",
            name,
        )
        checkpoint = START if row is None else LogPosition(row["tx_id"], row["position"])
        behind = await conn.fetchval(
            "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)",
            str(checkpoint.tx_id),
            checkpoint.position,
        )
        head = await conn.fetchrow(
            """SELECT tx_id::text::bigint AS tx_id, position FROM events
               ORDER BY events.tx_id DESC, events.position DESC LIMIT 1"""
        )
    return RelayLag(
        name=name,
        checkpoint=checkpoint,
        head=START if head is None else LogPosition(head["tx_id"], head["position"]),
        events_behind=int(behind),
    )


ProducerFactory = Callable[[], Any]


class Relay:
    """Publishes the log to one Kafka topic, from one checkpoint, at least once."""

    def __init__(
        self,
        store: EventStore,
        *,
        bootstrap_servers: str,
        topic: str,
        name: str = DEFAULT_NAME,
        options: RelayOptions | None = None,
        producer_factory: ProducerFactory | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._bootstrap = bootstrap_servers
        # TLS and SASL (services/kafka.py client_options), beside the bootstrap servers.
        self._client_options = {
            k: v for k, v in (client_options or {}).items() if k != "bootstrap_servers"
        }
        self._topic = topic
        self._name = name
        self._options = options or RelayOptions()
        self._factory = producer_factory or self._new_producer
        self._producer: Any = None
        self._page_in_flight = False
        self._wake = Wake(store)
        self._backoff = Backoff(
            self._options.backoff_initial_seconds, self._options.backoff_max_seconds
        )
        self.status = RelayStatus()

    @classmethod
    def from_settings(
        cls, settings: Settings, store: EventStore, *, options: RelayOptions | None = None
    ) -> Relay:
        """The internal relay for ``settings``; fails when Kafka is not configured."""
        if settings.kafka_bootstrap_servers is None:
            raise SettingsError("CARETEAM_KAFKA_BOOTSTRAP_SERVERS is required to run the relay")
        from services.kafka import client_options

        return cls(
            store,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.kafka_topic,
            options=options,
            client_options=client_options(settings),
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def topic(self) -> str:
        return self._topic

    async def lag(self) -> RelayLag:
        return await relay_lag(self._store.pool, self._name)

    def _new_producer(self) -> Any:
        o = self._options
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            **self._client_options,
            client_id=f"careteam-{self._name.replace(':', '-')}",
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=o.request_timeout_ms,
            max_batch_size=o.max_batch_size,
            linger_ms=o.linger_ms,
        )

    # --- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follows the log until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    async with self._store.pool.acquire() as conn:
                        if not await self._take_lease(conn, stop):
                            return
                        try:
                            await self._follow(conn, stop)
                        finally:
                            self.status.leader = False
                            await release_lease(conn, LEASE_LOCK_NAMESPACE, self._name)
                except StaleCheckpointError:
                    log.warning("relay checkpoint moved; re-reading name=%s", self._name)
                except _DATABASE_ERRORS as exc:
                    self._record_failure(exc)
                    log.warning(
                        "relay lost the database; retrying name=%s error=%s",
                        self._name,
                        type(exc).__name__,
                    )
                    await self._sleep(self._backoff.next_delay(), stop)
        finally:
            # Cancelled mid-page: nothing it holds needs delivering (the checkpoint did not
            # move), so do not wait for it.
            await self._close_producer(abandon=self._page_in_flight)

    async def _take_lease(self, conn: Conn, stop: asyncio.Event) -> bool:
        if not await take_lease(
            conn,
            LEASE_LOCK_NAMESPACE,
            self._name,
            poll_seconds=self._options.lease_poll_seconds,
            stop=stop,
            on_standby=lambda: log.info(
                "relay standing by; another relay holds the lease name=%s", self._name
            ),
        ):
            return False
        self.status.leader = True
        log.info("relay lease taken name=%s topic=%s", self._name, self._topic)
        return True

    async def _follow(self, conn: Conn, stop: asyncio.Event) -> None:
        pipe = _Pipeline(await read_checkpoint(conn, self._name))
        self.status.position = pipe.checkpoint
        log.info("relay following the log name=%s from=%s", self._name, pipe.checkpoint.encode())
        try:
            while not stop.is_set():
                try:
                    await self._stream(conn, pipe, stop)
                except _PUBLISH_ERRORS as exc:
                    await self._recover(pipe, exc, stop)
            if pipe.pages:
                # Stopping: what is in flight is still delivered and checkpointed, within
                # each page's publish timeout (run() abandons the producer otherwise).
                with contextlib.suppress(*_PUBLISH_ERRORS):
                    await self._checkpoint(conn, pipe, wait_for=len(pipe.pages))
        except _RESTART_ERRORS:
            if pipe.pages:
                # Pages in flight are never kept across a restart from the checkpoint: the
                # producer that holds them goes with them.
                pipe.discard()
                self._page_in_flight = False
                await self._close_producer(abandon=True)
            raise
        finally:
            pipe.discard()  # only settles futures if something is still in flight

    async def _stream(self, conn: Conn, pipe: _Pipeline, stop: asyncio.Event) -> None:
        """Reads, sends and checkpoints pages, up to ``pages_in_flight`` at once, until
        stopped; raises what a failed page raised (after checkpointing the pages before it).

        The next page is read while the current one is encoded and sent, and while the
        pipeline waits for acknowledgements."""
        depth = self._options.pages_in_flight
        ahead: asyncio.Task[list[Any]] | None = None  # the read of the page after read_to
        try:
            while not stop.is_set():
                if ahead is None:
                    ahead = self._read_ahead(conn, pipe)
                if len(pipe.pages) >= depth:
                    # Full: wait for the oldest page's acknowledgements (the read goes on).
                    await self._checkpoint(conn, pipe, wait_for=1)
                    continue
                rows = await ahead
                ahead = None
                if rows:
                    last = rows[-1]
                    pipe.read_to = LogPosition(last["tx_id"], last["position"])
                    ahead = self._read_ahead(conn, pipe)
                    await self._send(pipe, rows)
                    await self._checkpoint(conn, pipe, wait_for=0)
                elif pipe.pages:
                    # The log has nothing more yet: finish what is in flight.
                    await self._checkpoint(conn, pipe, wait_for=1)
                else:
                    await self._sleep(self._options.poll_seconds, stop, wake=True)
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    def _read_ahead(self, conn: Conn, pipe: _Pipeline) -> asyncio.Task[list[Any]]:
        """Starts reading the page after ``pipe.read_to``."""
        # Cleared before the read: an append it cannot see yet wakes an idle relay.
        self._wake.clear()
        return asyncio.create_task(self._read(conn, pipe, pipe.read_to))

    async def _read(self, conn: Conn, pipe: _Pipeline, after: LogPosition) -> list[Any]:
        # Identifying fields leave careteam only as ciphertext (crypto-shredding): the rows
        # are read as stored, never decrypted.
        async with pipe.conn_lock:
            return await self._store.read_log_rows(after, limit=self._options.page_size, conn=conn)

    # --- publishing ---------------------------------------------------------------------

    async def _send(self, pipe: _Pipeline, rows: Sequence[Any]) -> None:
        """Hands one page to the producer (in log order) without waiting for its acks."""
        messages = messages_from_rows(rows)
        last = rows[-1]
        loop = asyncio.get_running_loop()
        page = _Page(
            last=LogPosition(last["tx_id"], last["position"]),
            count=len(rows),
            deadline=loop.time() + self._options.publish_timeout_seconds,
        )
        # In the pipeline before the first send, so that a failure settles its futures.
        pipe.pages.append(page)
        self._page_in_flight = True
        futures = page.futures
        async with asyncio.timeout_at(page.deadline):
            producer = await self._ensure_producer()
            send, topic = producer.send, self._topic
            for m in messages:
                futures.append(await send(topic, value=m.value, key=m.key, headers=m.headers))

    async def _checkpoint(self, conn: Conn, pipe: _Pipeline, *, wait_for: int) -> None:
        """Moves the checkpoint to the end of the longest run of leading pages that the
        broker acknowledged in full, waiting for at least ``wait_for`` of them.

        A page counts only when every one of its records is acknowledged and every page
        before it counted too, so the checkpoint never passes an unacknowledged event,
        whatever order the acknowledgements arrive in. A failed (or timed-out) page is
        raised after the pages before it were checkpointed."""
        acked = 0
        failure: BaseException | None = None
        try:
            for page in pipe.pages:
                if acked >= wait_for and not page.finished():
                    break
                await page.acknowledged()
                acked += 1
        except _PUBLISH_ERRORS as exc:
            failure = exc
        if acked:
            done = [pipe.pages.popleft() for _ in range(acked)]
            last = done[-1].last
            async with pipe.conn_lock:
                await advance_checkpoint(conn, self._name, pipe.checkpoint, last)
            pipe.checkpoint = last
            self.status.position = last
            self.status.published_events += sum(p.count for p in done)
            self.status.last_published_at = time.monotonic()
            self._backoff.reset()
            self._page_in_flight = bool(pipe.pages)
        if failure is not None:
            raise failure

    async def _recover(self, pipe: _Pipeline, exc: BaseException, stop: asyncio.Event) -> None:
        """After a failed page: drop every page in flight and the producer, back off, and
        read again from the checkpoint."""
        self._record_failure(exc)
        delay = self._backoff.next_delay()
        log.warning(
            "relay page not acknowledged; replacing the producer "
            "name=%s from=%s pages=%s events=%s error=%s retry_in=%.2f",
            self._name,
            pipe.checkpoint.encode(),
            len(pipe.pages),
            sum(p.count for p in pipe.pages),
            type(exc).__name__,
            delay,
        )
        pipe.discard()
        await self._close_producer(abandon=True)
        self._page_in_flight = False
        await self._sleep(delay, stop)

    async def _ensure_producer(self) -> Any:
        if self._producer is None:
            # Kept before start() so that a failed or cancelled start is still closed.
            self._producer = self._factory()
            await self._producer.start()
            self.status.producer_starts += 1
            log.info("relay producer started name=%s", self._name)
        return self._producer

    async def _close_producer(self, *, abandon: bool = False) -> None:
        """Closes the producer; with ``abandon``, drops whatever it has not delivered yet.

        Abandoning is safe: the checkpoint has not moved past those events, so the next
        producer sends them again.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if not abandon:
            try:
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await producer.stop()
                return
            except Exception as exc:  # a failed close must not stop the relay
                log.warning(
                    "relay producer did not stop cleanly name=%s error=%s",
                    self._name,
                    type(exc).__name__,
                )
        await self._abandon(producer)

    async def _abandon(self, producer: Any) -> None:
        """Stops a producer without delivering what it holds.

        ``stop()`` cannot do this: it waits until every queued batch is delivered, and an
        idempotent producer retries a batch forever. So the sender task is cancelled and
        the client closed directly; the undelivered batches are left unresolved. (Failing
        them instead trips aiokafka's own bookkeeping: a re-enqueued batch raises KeyError
        when it fails.) This uses aiokafka 0.14 internals; pyproject.toml pins it below
        0.15. Runs to the end even when the relay is being cancelled.
        """
        producer._closed = True  # what stop() marks first; silences its __del__ warning
        try:
            sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
            if sender_task is not None and not sender_task.done():
                sender_task.cancel()
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await asyncio.gather(sender_task, return_exceptions=True)
        except TimeoutError:
            log.warning("relay producer sender did not stop in time name=%s", self._name)
        finally:
            try:
                async with asyncio.timeout(self._options.close_timeout_seconds):
                    await producer.client.close()
            except Exception as exc:  # a discarded producer's cleanup must not stop the relay
                log.warning(
                    "relay producer did not close cleanly name=%s error=%s",
                    self._name,
                    type(exc).__name__,
                )

    def _record_failure(self, exc: BaseException) -> None:
        self.status.failures += 1
        self.status.last_error = type(exc).__name__

    # --- waiting ------------------------------------------------------------------------

    async def _sleep(self, seconds: float, stop: asyncio.Event, *, wake: bool = False) -> None:
        """Waits ``seconds``, or less if stopped (or, with ``wake``, if an append arrives)."""
        await sleep(seconds, stop, self._wake if wake else None)


def _settle(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Marks the send futures of a dropped page as handled, so none logs an unseen error."""
    for future in futures:
        if future.done():
            if not future.cancelled():
                future.exception()
        else:
            future.cancel()


@dataclass
class _Page:
    """One page handed to the producer: its records' futures, in log order."""

    last: LogPosition
    count: int
    deadline: float  # loop time by which every record must be acknowledged
    futures: list[asyncio.Future[Any]] = field(default_factory=list)

    def finished(self) -> bool:
        """Every record acknowledged or failed (nothing left to wait for)."""
        return all(f.done() for f in self.futures)

    async def acknowledged(self) -> None:
        """Waits until every record is acknowledged; raises the first failure, or
        TimeoutError at the deadline."""
        if not self.finished():
            async with asyncio.timeout_at(self.deadline):
                await asyncio.gather(*self.futures, return_exceptions=True)
        for future in self.futures:
            if future.cancelled():
                raise KafkaError("send cancelled")
            exc = future.exception()
            if exc is not None:
                raise exc


@dataclass
class _Pipeline:
    """The relay's position: the checkpoint, the pages in flight after it (oldest first,
    contiguous) and where the next read starts (the end of the newest page)."""

    checkpoint: LogPosition
    pages: deque[_Page] = field(default_factory=deque)
    read_to: LogPosition = START
    # One query at a time on the relay's connection: a read ahead and a checkpoint update.
    conn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.read_to = self.checkpoint

    def discard(self) -> None:
        """Forgets every page in flight; the next read starts at the checkpoint again."""
        for page in self.pages:
            _settle(page.futures)
        self.pages.clear()
        self.read_to = self.checkpoint


async def run_relay(
    settings: Settings,
    store: EventStore,
    *,
    stop: asyncio.Event | None = None,
    options: RelayOptions | None = None,
) -> None:
    """Runs the internal relay for ``settings`` until ``stop`` is set or it is cancelled."""
    await Relay.from_settings(settings, store, options=options).run(stop)
