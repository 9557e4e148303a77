"""Partner feed workers: one per Kafka or webhook partner, each following the log.

A worker reads the log from its partner's checkpoint (``partner_feeds``) with the
gap-safe ``EventStore.read_log``, selects what the partner may receive (feed.py),
delivers it (delivery.py) and only then moves the checkpoint, in the transaction that
also records the disclosures (or the set-aside messages). A crash at any instant
re-sends at most what was in flight, never loses an event; partners drop duplicates by
CloudEvent id. Kafka pages go whole.

Webhooks keep each patient's order and isolate failures. Each message gets one attempt
as the feed reaches it; if it fails, it is set aside in its patient's queue
(``partner_dead_letters``, status ``retrying``, with its attempt count and the time of
its next attempt), and that patient's later messages for this partner are queued behind
it (``held``) while every other patient's go on. Before reading further, the worker
sends what is due at the head of each queue, one patient after another, each in log
order; a queue empties as its messages are delivered (or withheld, if consent was
revoked meanwhile). After the last attempt a message is ``dead`` and its patient's queue
waits until an administrator asks for it again (``redeliverPartnerDeadLetters``): then
it is retried with a fresh allowance of attempts, ahead of that patient's later
messages. Attempt counts are stored, so they survive a restart, and the
``X-Careteam-Delivery-Attempt`` header, the stored count and the admin view agree.

Each worker holds its partner's lease, a PostgreSQL advisory lock on its own connection
(not a pool connection: a feed keeps it for hours), so one worker per partner runs across
all processes; others stand by. A replay (``registry.replay``) moves the checkpoint and
bumps the feed's epoch: the worker's next conditional checkpoint update fails, and it
re-reads the checkpoint and follows from there.

``PartnerFeeds`` supervises the workers of one process: it starts a worker for every
active Kafka or webhook partner, stops those deactivated, restarts any that failed,
and wakes them all when this process appends to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from services import locks
from services.database import Conn, _init_connection
from services.eventstore import START, EventStore, LogPosition, RecordedEvent
from services.kafka import TopicMaker
from services.logfollow import DATABASE_ERRORS, Backoff, Wake, sleep, take_lease
from services.partners import disclosures
from services.partners.contract import Pseudonyms, Publisher
from services.partners.delivery import (
    KafkaSink,
    Outcome,
    PartnerOptions,
    Result,
    WebhookSink,
    sleep_or_stop,
)
from services.partners.feed import Selection, Selector, load_event
from services.partners.messages import PartnerMessage
from services.partners.registry import (
    DeadLetterStatus,
    DeliveryKind,
    Partner,
    PartnerNotFoundError,
    dead_letters,
    feed_position,
    get_keys,
    get_partner,
    list_partners,
)

log = logging.getLogger("careteam.partners")
DEFAULT_PUBLISHER = Publisher()

# First key of the two-key advisory lock that is a partner feed's lease; the second is
# hashtext('partner:' || id) (services/locks.py).
LEASE_LOCK_NAMESPACE = locks.PARTNER_LEASE

_DATABASE_ERRORS = DATABASE_ERRORS

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class StaleFeedError(RuntimeError):
    """The feed's checkpoint moved under the worker (a replay); it re-reads it."""

    def __init__(self, partner_id: UUID) -> None:
        super().__init__(f"partner feed {partner_id} moved under its worker")
        self.partner_id = partner_id


@dataclass
class WorkerStatus:
    """Counters of one worker in this process (for health checks and tests)."""

    position: LogPosition = START
    leader: bool = False
    delivered: int = 0
    dead_lettered: int = 0
    withheld: int = 0
    redelivered: int = 0
    last_error: str | None = None


async def _connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn, pool_key=dsn)
    return conn


async def advance(
    conn: Conn, partner_id: UUID, epoch: int, current: LogPosition, new: LogPosition
) -> bool:
    """Moves the checkpoint from ``current`` to ``new`` unless a replay moved it first."""
    status = await conn.execute(
        """UPDATE partner_feeds SET tx_id = $3::text::xid8, position = $4, updated_at = now()
           WHERE partner_id = $1 AND epoch = $2
             AND tx_id = $5::text::xid8 AND position = $6""",
        partner_id,
        epoch,
        str(new.tx_id),
        new.position,
        str(current.tx_id),
        current.position,
    )
    return bool(status == "UPDATE 1")


# Set-aside messages still waiting (partner_dead_letters.status): a patient with any of
# them gets its later messages held behind them.
OPEN_STATUSES = ("retrying", "held", "dead", "redelivery_requested")
_OPEN_SQL = ", ".join(f"'{s}'" for s in OPEN_STATUSES)


@dataclass(frozen=True)
class SetAside:
    """A message put in its patient's queue instead of (or after) being sent."""

    event: RecordedEvent
    public_type: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: datetime | None


async def add_dead_letter(conn: Conn, partner_id: UUID, row: SetAside, at: datetime) -> None:
    """Puts a message in its patient's queue for ``partner_id`` (partner_dead_letters)."""
    await conn.execute(
        """INSERT INTO partner_dead_letters (partner_id, event_id, patient_id, public_type,
               status, attempts, last_error, dead_at, updated_at, tx_id, position,
               next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9::text::xid8, $10, $11)""",
        partner_id,
        row.event.event_id,
        row.event.patient_id,
        row.public_type,
        row.status,
        row.attempts,
        row.last_error,
        at,
        str(row.event.tx_id),
        row.event.position,
        row.next_attempt_at,
    )


async def patients_waiting(conn: Conn, partner_id: UUID) -> set[UUID]:
    """Patients with set-aside messages at ``partner_id``: their later messages wait."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT patient_id FROM partner_dead_letters
            WHERE partner_id = $1 AND status IN ({_OPEN_SQL})""",
        partner_id,
    )
    return {r["patient_id"] for r in rows}


# How many patients' queued messages are attempted at once.
DRAIN_CONCURRENCY = 8

_QUEUE_COLUMNS = """id, event_id, patient_id, public_type, status, attempts,
    attempts_at_request, next_attempt_at"""


async def queue_heads(conn: Conn, partner_id: UUID) -> list[asyncpg.Record]:
    """The first set-aside message of each waiting patient (log order within a patient)."""
    return list(
        await conn.fetch(
            f"""SELECT DISTINCT ON (patient_id) {_QUEUE_COLUMNS} FROM partner_dead_letters
                WHERE partner_id = $1 AND status IN ({_OPEN_SQL})
                ORDER BY patient_id, tx_id, position""",
            partner_id,
        )
    )


class PartnerWorker:
    """Follows the log for one partner and delivers its feed."""

    def __init__(
        self,
        partner_id: UUID,
        *,
        store: EventStore,
        dsn: str,
        options: PartnerOptions,
        http: httpx.AsyncClient,
        kafka_bootstrap: str | None,
        clock: Clock = _now,
        publisher: Publisher = DEFAULT_PUBLISHER,
        kafka_options: dict[str, Any] | None = None,
        make_topic: TopicMaker | None = None,
    ) -> None:
        self.partner_id = partner_id
        self._kafka_options = kafka_options
        self._make_topic = make_topic
        self._publisher = publisher
        self._store = store
        self._dsn = dsn
        self._options = options
        self._http = http
        self._kafka = kafka_bootstrap
        self._clock = clock
        self._wake = Wake()  # set by PartnerFeeds on this process's appends
        self.status = WorkerStatus()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set or the partner is deactivated."""
        backoff = Backoff(
            self._options.backoff_initial_seconds, self._options.backoff_max_seconds, jitter=False
        )
        while not stop.is_set():
            try:
                conn = await _connect(self._dsn)
                try:
                    if not await self._take_lease(conn, stop):
                        return
                    if not await self._follow(conn, stop):
                        return
                finally:
                    self.status.leader = False
                    with contextlib.suppress(*_DATABASE_ERRORS):
                        await conn.close()
                backoff.reset()
            except StaleFeedError:
                log.info("partner feed moved; re-reading partner_id=%s", self.partner_id)
            except PartnerNotFoundError:
                return
            except _DATABASE_ERRORS as exc:
                self.status.last_error = type(exc).__name__
                log.warning(
                    "partner feed lost the database; retrying partner_id=%s error=%s",
                    self.partner_id,
                    type(exc).__name__,
                )
                await sleep_or_stop(backoff.next_delay(), stop)

    async def _take_lease(self, conn: Conn, stop: asyncio.Event) -> bool:
        if not await take_lease(
            conn,
            LEASE_LOCK_NAMESPACE,
            f"partner:{self.partner_id}",
            poll_seconds=self._options.lease_poll_seconds,
            stop=stop,
        ):
            return False
        self.status.leader = True
        return True

    async def _follow(self, conn: Conn, stop: asyncio.Event) -> bool:
        """Delivers until stopped (False), deactivated (False) or reconfigured (True)."""
        partner = await get_partner(conn, self.partner_id)
        if not partner.active or partner.delivery is DeliveryKind.GRAPHQL:
            return False
        keys = await get_keys(conn, self.partner_id)
        selector = Selector(partner, Pseudonyms(keys.pseudonym_key), self._clock, self._publisher)
        kafka: KafkaSink | None = None
        webhook: WebhookSink | None = None
        if partner.delivery is DeliveryKind.KAFKA:
            if self._kafka is None or partner.kafka_topic is None:
                log.warning("partner feed needs Kafka; idle partner_id=%s", self.partner_id)
                return False
            kafka = KafkaSink(
                self._kafka,
                partner.kafka_topic,
                self._options,
                client_id=f"careteam-partner-{self.partner_id}",
                client_options=self._kafka_options,
                make_topic=self._make_topic,
            )
        else:
            if partner.webhook_url is None or keys.webhook_secret is None:
                return False
            webhook = WebhookSink(
                partner.webhook_url, keys, self._options, self._http, clock=self._clock
            )
        position, epoch = await feed_position(conn, self.partner_id)
        self.status.position = position
        log.info(
            "partner feed following the log partner_id=%s delivery=%s from=%s",
            self.partner_id,
            partner.delivery.value,
            position.encode(),
        )
        try:
            while not stop.is_set():
                self._wake.clear()
                current = await get_partner(conn, self.partner_id)
                if current.version != partner.version:
                    return current.active
                stored, stored_epoch = await feed_position(conn, self.partner_id)
                if stored_epoch != epoch:  # replayed: follow from the new checkpoint
                    position, epoch = stored, stored_epoch
                    self.status.position = position
                if kafka is not None:
                    if not await self._redeliver(conn, partner, selector, kafka, stop):
                        return False
                elif webhook is not None:
                    if not await self._drain_queues(conn, partner, selector, webhook, stop):
                        return False
                events = await self._store.read_log(
                    position, limit=self._options.page_size, conn=conn, decrypt=False
                )
                if not events:
                    await self._idle(stop)
                    continue
                selection = await selector.select(conn, events)
                moved = await self._deliver_page(
                    conn,
                    partner,
                    selector,
                    kafka,
                    webhook,
                    events,
                    selection,
                    position,
                    epoch,
                    stop,
                )
                if moved is None:
                    return False
                position = moved
                self.status.position = position
            return False
        finally:
            if kafka is not None:
                await kafka.close(abandon=stop.is_set())

    async def _idle(self, stop: asyncio.Event) -> None:
        await sleep(self._options.poll_seconds, stop, self._wake)

    async def _deliver_page(
        self,
        conn: Conn,
        partner: Partner,
        selector: Selector,
        kafka: KafkaSink | None,
        webhook: WebhookSink | None,
        events: Sequence[RecordedEvent],
        selection: Selection,
        position: LogPosition,
        epoch: int,
        stop: asyncio.Event,
    ) -> LogPosition | None:
        """Delivers one page; returns the new checkpoint, or None if stopped first."""
        self.status.withheld += selection.withheld
        end = events[-1].log_position
        if kafka is not None:
            if selection.messages and not await kafka.publish(selection.messages, stop):
                return None
            await self._commit(
                conn, partner, epoch, position, end, selection.messages, selection=selection
            )
            return end
        assert webhook is not None
        waiting = await patients_waiting(conn, partner.partner_id)
        for group in _by_event(selection.messages):
            if stop.is_set():
                return None
            delivered: list[PartnerMessage] = []
            failed: list[tuple[PartnerMessage, Result]] = []
            aside: list[SetAside] = []
            for message in group:
                event = message.event
                if event.patient_id in waiting:
                    aside.append(SetAside(event, message.public.key, "held", 0, "", None))
                    continue
                result = await webhook.attempt(message, 1)
                if result.outcome is Outcome.DELIVERED:
                    delivered.append(message)
                    continue
                if result.sent:
                    failed.append((message, result))
                aside.append(self._after_failure(event, message.public.key, result, 0))
                waiting.add(event.patient_id)
            new = group[0].event.log_position
            await self._commit(
                conn, partner, epoch, position, new, delivered, failed=failed, aside=aside
            )
            position = new
            self.status.position = position
        await self._commit(conn, partner, epoch, position, end, [], selection=selection)
        return end

    def _after_failure(
        self, event: RecordedEvent, public_type: str, result: Result, attempts_at_request: int
    ) -> SetAside:
        """Retrying after a backoff, or dead once the attempts since the last (re)start ran out."""
        used = result.attempts - attempts_at_request
        if used >= self._options.webhook_attempts:
            log.warning(
                "partner webhook message dead-lettered partner_id=%s type=%s attempts=%s error=%s",
                self.partner_id,
                public_type,
                result.attempts,
                result.last_error,
            )
            return SetAside(event, public_type, "dead", result.attempts, result.last_error, None)
        delay = self._options.webhook_delay(used)
        log.info(
            "partner webhook attempt failed partner_id=%s attempt=%s error=%s retry_in=%.2f",
            self.partner_id,
            result.attempts,
            result.last_error,
            delay,
        )
        due = self._clock() + timedelta(seconds=delay)
        return SetAside(event, public_type, "retrying", result.attempts, result.last_error, due)

    async def _commit(
        self,
        conn: Conn,
        partner: Partner,
        epoch: int,
        current: LogPosition,
        new: LogPosition,
        delivered: Sequence[PartnerMessage],
        *,
        failed: Sequence[tuple[PartnerMessage, Result]] = (),
        aside: Sequence[SetAside] = (),
        selection: Selection | None = None,
    ) -> None:
        """Records disclosures and set-aside messages and moves the checkpoint, in one
        transaction.

        The disclosures are committed even when a replay moved the checkpoint meanwhile:
        they happened.
        """
        at = self._clock()
        async with conn.transaction():
            await disclosures.record(conn, partner, delivered, channel=partner.delivery, at=at)
            for message, result in failed:
                await disclosures.record(
                    conn,
                    partner,
                    [message],
                    channel=partner.delivery,
                    at=at,
                    outcome=disclosures.FAILED,
                    attempt=result.attempts,
                    error=result.last_error,
                )
            for row in aside:
                await add_dead_letter(conn, partner.partner_id, row, at)
            for v in selection.violations if selection is not None else ():
                log.error(
                    "partner projection violates its schema; dead-lettered partner_id=%s type=%s",
                    partner.partner_id,
                    v.public.key,
                )
                await add_dead_letter(
                    conn,
                    partner.partner_id,
                    SetAside(v.event, v.public.key, "dead", 0, "CONTRACT_VIOLATION", None),
                    at,
                )
            moved = new == current or await advance(conn, partner.partner_id, epoch, current, new)
        if not moved:
            raise StaleFeedError(partner.partner_id)
        self.status.delivered += len(delivered)
        self.status.dead_lettered += sum(r.status == "dead" for r in aside) + (
            len(selection.violations) if selection else 0
        )

    async def _drain_queues(
        self,
        conn: Conn,
        partner: Partner,
        selector: Selector,
        webhook: WebhookSink,
        stop: asyncio.Event,
    ) -> bool:
        """Sends what is due at the head of the patients' queues, each patient in log order;
        False if stopped.

        A patient whose first message is dead, or not yet due for its next attempt, waits;
        the others go on. The due heads of different patients are attempted concurrently
        (at most ``DRAIN_CONCURRENCY`` at once), so a receiver that is slow for one
        patient does not hold the others' retries back; whatever is delivered lets its
        patient's next message be tried in the next round.
        """
        gate = asyncio.Semaphore(DRAIN_CONCURRENCY)

        async def attempt(row: asyncpg.Record, message: PartnerMessage) -> Result:
            async with gate:
                return await webhook.attempt(message, row["attempts"] + 1)

        while not stop.is_set():
            now = self._clock()
            due = [h for h in await queue_heads(conn, partner.partner_id) if _due(h, now)]
            if not due:
                return True
            attempts: list[tuple[asyncpg.Record, PartnerMessage]] = []
            progressed = False
            for row in due:
                message = await self._project_queued(conn, selector, row)
                if message is None:
                    progressed = True
                else:
                    attempts.append((row, message))
            results = await asyncio.gather(*(attempt(r, m) for r, m in attempts))
            for (row, message), result in zip(attempts, results, strict=True):
                await self._record_queued(conn, partner, row, message, result)
                progressed = progressed or result.outcome is Outcome.DELIVERED
            if not progressed:
                return True
        return False

    async def _project_queued(
        self, conn: Conn, selector: Selector, row: asyncpg.Record
    ) -> PartnerMessage | None:
        """The queued message projected afresh (consent judged again), or None if it may not
        go any more (then it is withheld and leaves the queue)."""
        event = await load_event(conn, row["event_id"])
        selection = (
            await selector.select(conn, [event], only=row["public_type"])
            if event is not None
            else Selection()
        )
        if selection.messages:
            return selection.messages[0]
        error = "CONTRACT_VIOLATION" if selection.violations else "NOT_PERMITTED"
        await self._settle(conn, row["id"], DeadLetterStatus.WITHHELD, row["attempts"], error)
        self.status.withheld += 1
        return None

    async def _record_queued(
        self,
        conn: Conn,
        partner: Partner,
        row: asyncpg.Record,
        message: PartnerMessage,
        result: Result,
    ) -> None:
        """Records one attempt at a queued message: disclosure, status, count, next attempt."""
        at = self._clock()
        redelivery = row["status"] == "redelivery_requested" or row["attempts_at_request"] > 0
        async with conn.transaction():
            if result.outcome is Outcome.DELIVERED:
                await disclosures.record(conn, partner, [message], channel=partner.delivery, at=at)
                status = DeadLetterStatus.REDELIVERED if redelivery else DeadLetterStatus.DELIVERED
                await self._settle(conn, row["id"], status, result.attempts, "")
            else:
                if result.sent:
                    await disclosures.record(
                        conn,
                        partner,
                        [message],
                        channel=partner.delivery,
                        at=at,
                        outcome=disclosures.FAILED,
                        attempt=result.attempts,
                        error=result.last_error,
                    )
                after = self._after_failure(
                    message.event, message.public.key, result, row["attempts_at_request"]
                )
                await conn.execute(
                    """UPDATE partner_dead_letters SET status = $2, attempts = $3,
                           last_error = $4, next_attempt_at = $5, updated_at = $6,
                           dead_at = CASE WHEN $2 = 'dead' THEN $6 ELSE dead_at END
                       WHERE id = $1""",
                    row["id"],
                    after.status,
                    after.attempts,
                    after.last_error,
                    after.next_attempt_at,
                    at,
                )
                if after.status == "dead":
                    self.status.dead_lettered += 1
        if result.outcome is Outcome.DELIVERED:
            self.status.delivered += 1
            if redelivery:
                self.status.redelivered += 1

    async def _redeliver(
        self,
        conn: Conn,
        partner: Partner,
        selector: Selector,
        kafka: KafkaSink,
        stop: asyncio.Event,
    ) -> bool:
        """Sends Kafka dead letters an administrator asked for again; False if stopped."""
        letters = await dead_letters(
            conn, partner.partner_id, status=DeadLetterStatus.REDELIVERY_REQUESTED, limit=50
        )
        for letter in letters:
            event = await load_event(conn, letter.event_id)
            selection = (
                await selector.select(conn, [event], only=letter.public_type)
                if event is not None
                else Selection()
            )
            if not selection.messages:
                error = "CONTRACT_VIOLATION" if selection.violations else "NOT_PERMITTED"
                await self._settle(
                    conn, letter.id, DeadLetterStatus.WITHHELD, letter.attempts, error
                )
                continue
            message = selection.messages[0]
            if not await kafka.publish([message], stop):
                return False
            async with conn.transaction():
                await disclosures.record(
                    conn, partner, [message], channel=partner.delivery, at=self._clock()
                )
                await self._settle(
                    conn, letter.id, DeadLetterStatus.REDELIVERED, letter.attempts + 1, ""
                )
            self.status.redelivered += 1
        return True

    async def _settle(
        self, conn: Conn, letter_id: int, status: DeadLetterStatus, attempts: int, error: str
    ) -> None:
        """Sets a set-aside message's status and total attempt count."""
        await conn.execute(
            """UPDATE partner_dead_letters SET status = $2, attempts = $3,
                   last_error = CASE WHEN $4 = '' THEN last_error ELSE $4 END, updated_at = $5
               WHERE id = $1""",
            letter_id,
            status.value,
            attempts,
            error,
            self._clock(),
        )


def _due(row: asyncpg.Record, now: datetime) -> bool:
    """Whether a queue's head may be attempted now (a dead one waits for a redelivery)."""
    if row["status"] == "dead":
        return False
    due: datetime | None = row["next_attempt_at"]
    return row["status"] != "retrying" or due is None or due <= now


def _by_event(messages: Sequence[PartnerMessage]) -> list[list[PartnerMessage]]:
    """Messages grouped by event, in order (one event may go out in several versions)."""
    groups: list[list[PartnerMessage]] = []
    for m in messages:
        if groups and groups[-1][0].event.event_id == m.event.event_id:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


@dataclass
class _Running:
    worker: PartnerWorker
    stop: asyncio.Event
    task: asyncio.Task[None]


class PartnerFeeds:
    """Runs a worker for every active Kafka or webhook partner in this process."""

    def __init__(
        self,
        store: EventStore,
        dsn: str,
        *,
        kafka_bootstrap: str | None,
        options: PartnerOptions | None = None,
        clock: Clock = _now,
        publisher: Publisher = DEFAULT_PUBLISHER,
        kafka_options: dict[str, Any] | None = None,
        make_topic: TopicMaker | None = None,
    ) -> None:
        self._kafka_options = kafka_options
        self._make_topic = make_topic
        self._publisher = publisher
        self._store = store
        self._dsn = dsn
        self._kafka = kafka_bootstrap
        self._options = options or PartnerOptions()
        self._clock = clock
        self._running: dict[UUID, _Running] = {}
        self._refresh = asyncio.Event()
        store.on_append(self._on_append)

    def _on_append(self, _position: LogPosition) -> None:
        for running in self._running.values():
            running.worker.wake()

    def refresh(self) -> None:
        """Looks at the registry again now (after a change made in this process)."""
        self._refresh.set()

    def workers(self) -> dict[UUID, PartnerWorker]:
        return {pid: r.worker for pid, r in self._running.items()}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Supervises workers until ``stop`` is set or the task is cancelled."""
        stop = stop or asyncio.Event()
        async with httpx.AsyncClient() as http:
            try:
                while not stop.is_set():
                    self._refresh.clear()
                    try:
                        await self._reconcile(http)
                    except _DATABASE_ERRORS as exc:
                        log.warning("partner registry unreadable error=%s", type(exc).__name__)
                    waits = [
                        asyncio.ensure_future(stop.wait()),
                        asyncio.ensure_future(self._refresh.wait()),
                    ]
                    try:
                        await asyncio.wait(
                            waits,
                            timeout=self._options.refresh_seconds,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        for w in waits:
                            w.cancel()
                        await asyncio.gather(*waits, return_exceptions=True)
            finally:
                await self._stop_all()

    async def _reconcile(self, http: httpx.AsyncClient) -> None:
        async with self._store.pool.acquire() as conn:
            partners = await list_partners(conn)
        wanted = {
            p.partner_id
            for p in partners
            if p.delivery is DeliveryKind.WEBHOOK
            or (p.delivery is DeliveryKind.KAFKA and self._kafka is not None)
        }
        for partner_id, running in list(self._running.items()):
            if running.task.done():
                del self._running[partner_id]
                if not running.task.cancelled() and running.task.exception() is not None:
                    log.error(
                        "partner feed worker failed; restarting partner_id=%s error=%s",
                        partner_id,
                        type(running.task.exception()).__name__,
                    )
            elif partner_id not in wanted:
                running.stop.set()
        for partner_id in wanted - self._running.keys():
            worker = PartnerWorker(
                partner_id,
                store=self._store,
                dsn=self._dsn,
                options=self._options,
                http=http,
                kafka_bootstrap=self._kafka,
                clock=self._clock,
                publisher=self._publisher,
                kafka_options=self._kafka_options,
                make_topic=self._make_topic,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop), name=f"partner-feed-{partner_id}")
            self._running[partner_id] = _Running(worker, stop, task)

    async def _stop_all(self) -> None:
        running = list(self._running.values())
        self._running.clear()
        for r in running:
            r.stop.set()
        if not running:
            return
        tasks = [r.task for r in running]
        _done, pending = await asyncio.wait(tasks, timeout=self._options.close_timeout_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
