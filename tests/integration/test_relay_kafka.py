"""The relay publishes the whole log to Kafka, at least once, surviving crashes and outages.

Real PostgreSQL (a fresh database per test) and the real Kafka broker at
CARETEAM_KAFKA_BOOTSTRAP_SERVERS (or 127.0.0.1:9092); the outage test starts a second
broker of its own with deploy/kafka/kafka.sh so that it can stop it without disturbing
anyone. Events are made by the Patient aggregate's own commands.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber
from aiokafka.structs import ConsumerRecord

from domain.patient import Patient
from services.database import create_pool
from services.eventstore import EventMetadata, EventStore, LogPosition, RecordedEvent
from services.relay import Relay, RelayOptions, relay_lag
from services.relay.messages import sequence_of
from services.relay.relay import _Page, _Pipeline, read_checkpoint
from tests.factories import new_patient
from tests.integration.standbys import Standbys, child_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # slow: scheduled first (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
META = EventMetadata(actor_id="relay-test", role="care_manager", organisation_id="org-1")
TIMEOUT_S = 60.0

Record = ConsumerRecord[bytes, bytes]


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    """An event store on a fresh test database."""
    from services.settings import Settings

    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=6))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


@pytest.fixture
def topic(fresh_topic: str) -> str:
    """A new topic on the shared broker, deleted afterwards."""
    return fresh_topic


@pytest.fixture
def own_broker() -> Iterator[_Broker]:
    """A second single-node broker on its own ports and run dir, which a test may stop."""
    port = _free_port_pair()
    broker = _Broker(port, Path(tempfile.mkdtemp(prefix="careteam-relay-kafka-")))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.run_dir, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------


class _Broker:
    """deploy/kafka/kafka.sh for one run dir and port."""

    def __init__(self, port: int, run_dir: Path) -> None:
        self.port = port
        self.run_dir = run_dir
        self.bootstrap = f"127.0.0.1:{port}"

    def _kafka_sh(self, action: str) -> None:
        env = {
            **os.environ,
            "CARETEAM_KAFKA_PORT": str(self.port),
            "CARETEAM_KAFKA_CONTROLLER_PORT": str(self.port + 1),
            "CARETEAM_KAFKA_RUN_DIR": str(self.run_dir),
        }
        done = subprocess.run(
            ["bash", str(KAFKA_SH), action], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"kafka.sh {action} failed:\n{done.stderr[-3000:]}"

    def start(self) -> None:
        self._kafka_sh("start")

    def stop(self) -> None:
        self._kafka_sh("stop")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _free_port_pair() -> int:
    """A client port whose neighbour (the controller port) is free too."""
    for port in range(19092, 19192, 2):
        if not _listening(port) and not _listening(port + 1):
            return port
    raise RuntimeError("no free port pair for a second Kafka broker")


class _Patients:
    """Synthetic patients whose commands append real events to the store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.patients: list[Patient] = []
        self.events: list[RecordedEvent] = []

    async def _append(self, patient: Patient, *, new: bool) -> None:
        events = patient.collect_events()
        self.events += await self.store.append(
            stream_type="patient",
            stream_id=patient.id,
            patient_id=patient.id,
            expected_version=0 if new else patient.version - len(events),
            events=events,
            metadata=META,
            now=datetime.now(UTC),
        )

    async def enroll(self, count: int) -> None:
        """Registers and enrolls ``count`` new patients (two events each)."""
        for _ in range(count):
            now = datetime.now(UTC)
            patient = new_patient(now=now)
            patient.enroll(occurred_at=now, now=now)
            await self._append(patient, new=True)
            self.patients.append(patient)

    async def log_contacts(self, rounds: int) -> None:
        """Logs one contact per patient per round, round by round, so patients interleave."""
        for _ in range(rounds):
            for patient in self.patients:
                now = datetime.now(UTC)
                patient.log_contact(
                    activity="contact", modality="phone", minutes=15, occurred_at=now, now=now
                )
                await self._append(patient, new=False)


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Polls ``check`` until it holds; fails after TIMEOUT_S."""
    async with asyncio.timeout(TIMEOUT_S):
        # Polling: the checkpoint lives in PostgreSQL, which offers nothing to wait on.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _wait_until_caught_up(store: EventStore) -> None:
    async def caught_up() -> bool:
        return (await relay_lag(store.pool)).events_behind == 0

    await _eventually(caught_up)


async def _consume_ids(bootstrap: str, topic: str, want: set[str]) -> list[Record]:
    """Every record of ``topic`` from the start until all ``want`` ids were seen (and 1 s more)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Record] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not want <= {_header(r, "ce_id") for r in records}:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        # Anything still on its way (duplicates) arrives now.
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def _header(record: Record, name: str) -> str:
    return dict(record.headers)[name].decode()


def _first_copies(records: list[Record]) -> list[Record]:
    """Records with duplicates dropped by ce_id, in partition order, as a consumer would."""
    seen: set[str] = set()
    kept = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        ce_id = _header(record, "ce_id")
        if ce_id not in seen:
            seen.add(ce_id)
            kept.append(record)
    return kept


def _assert_exactly_the_log_in_patient_order(
    records: list[Record], log: list[RecordedEvent]
) -> None:
    """After dropping duplicates: one record per event, each patient's in log order."""
    unique = _first_copies(records)
    assert sorted(_header(r, "ce_id") for r in unique) == sorted(str(e.event_id) for e in log)
    published: dict[str, list[str]] = defaultdict(list)
    for record in unique:
        assert record.key is not None
        published[record.key.decode()].append(_header(record, "ce_id"))
    expected: dict[str, list[str]] = defaultdict(list)
    for event in sorted(log, key=lambda e: e.log_position):
        expected[str(event.patient_id)].append(str(event.event_id))
    assert published == expected


# --- tests ---------------------------------------------------------------------------


async def test_every_event_reaches_the_topic_in_patient_order_as_a_binary_cloudevent(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> None:
    """Events written before and while the relay runs arrive once each, keyed and ordered."""
    patients = _Patients(store)
    await patients.enroll(6)
    await patients.log_contacts(2)
    relay = Relay(
        store,
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        options=RelayOptions(page_size=7, poll_seconds=0.05),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _wait_until_caught_up(store)
        await patients.log_contacts(2)  # the in-process append wakes the relay
        await _wait_until_caught_up(store)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)

    by_id = {str(e.event_id): e for e in patients.events}
    records = await _consume_ids(kafka_bootstrap, topic, set(by_id))

    assert len(records) == len(patients.events) == 6 * 2 + 6 * 4
    _assert_exactly_the_log_in_patient_order(records, patients.events)
    for record in records:
        event = by_id[_header(record, "ce_id")]
        recorded_at = event.recorded_at.astimezone(UTC)
        assert record.key == str(event.patient_id).encode()
        assert dict(record.headers) == {
            "ce_specversion": b"1.0",
            "ce_id": str(event.event_id).encode(),
            "ce_source": f"/careteam/patient/{event.stream_id}".encode(),
            "ce_type": f"org.careteam.{event.event_type}.v{event.event_version}".encode(),
            "ce_subject": str(event.patient_id).encode(),
            "ce_time": recorded_at.isoformat().replace("+00:00", "Z").encode(),
            "ce_sequence": sequence_of(event.log_position).encode(),
            "content-type": b"application/json",
        }
        data = json.loads(record.value or b"")
        assert data["payload"] == event.payload
        assert data["metadata"] == event.metadata
        assert (data["stream_id"], data["stream_version"], data["event_version"]) == (
            str(event.stream_id),
            event.stream_version,
            event.event_version,
        )
        assert LogPosition.decode(data["position"]) == event.log_position
    lag = await relay.lag()
    assert lag.events_behind == 0
    assert lag.checkpoint == lag.head == max(e.log_position for e in patients.events)
    assert relay.status.published_events == len(patients.events)


async def test_a_relay_process_killed_mid_stream_and_restarted_loses_no_event(
    store: EventStore, topic: str, kafka_bootstrap: str, db_dsn: str, tmp_path: Path
) -> None:
    """SIGKILL between pages or mid-page: the restarted relay re-sends, so nothing is missing."""
    patients = _Patients(store)
    await patients.enroll(40)
    await patients.log_contacts(10)
    total = len(patients.events)
    env = {
        **os.environ,
        "CARETEAM_DATABASE_URL": db_dsn,
        "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CARETEAM_KAFKA_TOPIC": topic,
    }
    command = [sys.executable, "-m", "services.relay", "--page-size", "3", "--poll-seconds", "0.05"]

    def spawn(log_name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log_name).open("wb") as out:
            return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=out)

    first = spawn("first.log")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while (await relay_lag(store.pool)).events_behind > total * 2 // 3:
                assert first.poll() is None, (tmp_path / "first.log").read_text()
                await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    behind_at_kill = (await relay_lag(store.pool)).events_behind
    assert 0 < behind_at_kill < total, "the kill must land mid-stream"

    second = spawn("second.log")
    try:
        await _wait_until_caught_up(store)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0, (tmp_path / "second.log").read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()

    lag = await asyncio.to_thread(
        subprocess.run, [*command, "--lag"], env=env, cwd=REPO, capture_output=True, check=True
    )
    assert json.loads(lag.stdout)["events_behind"] == 0
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    _assert_exactly_the_log_in_patient_order(records, patients.events)
    # At least once: only the pages in flight at the kill (at most pages_in_flight of
    # them, 3 events each) may come twice.
    assert total <= len(records) <= total + RelayOptions().pages_in_flight * 3


async def test_the_relay_catches_up_without_loss_after_the_broker_was_down(
    store: EventStore, own_broker: _Broker
) -> None:
    """Commands succeed while the broker is down; the relay retries and publishes them all."""
    topic = f"test.relay.outage.{uuid4().hex}"
    patients = _Patients(store)
    await patients.enroll(5)
    relay = Relay(
        store,
        bootstrap_servers=own_broker.bootstrap,
        topic=topic,
        options=RelayOptions(
            page_size=10,
            poll_seconds=0.05,
            publish_timeout_seconds=2.0,
            backoff_max_seconds=0.5,
            request_timeout_ms=2000,
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _wait_until_caught_up(store)

        await asyncio.to_thread(own_broker.stop)
        written_during_outage = len(patients.events)
        await patients.log_contacts(3)
        await patients.enroll(3)
        written_during_outage = len(patients.events) - written_during_outage

        async def failed_twice() -> bool:
            return relay.status.failures >= 2

        await _eventually(failed_twice)
        assert (await relay.lag()).events_behind == written_during_outage

        await asyncio.to_thread(own_broker.start)
        await _wait_until_caught_up(store)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)

    records = await _consume_ids(
        own_broker.bootstrap, topic, {str(e.event_id) for e in patients.events}
    )
    _assert_exactly_the_log_in_patient_order(records, patients.events)
    assert relay.status.producer_starts >= 2


async def test_a_producer_stuck_on_out_of_order_sequence_numbers_is_replaced(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> None:
    """A producer whose every send fails (aiokafka issue 1017) is recreated; nothing is lost."""
    patients = _Patients(store)
    await patients.enroll(3)
    producers: list[AIOKafkaProducer] = []

    def make_producer() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all"
        )
        producers.append(producer)
        return producer

    relay = Relay(
        store,
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        options=RelayOptions(poll_seconds=0.05, backoff_initial_seconds=0.05),
        producer_factory=make_producer,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _wait_until_caught_up(store)
        # The state issue 1017 describes: the producer's sender failed fatally, and every
        # later send raises the same error until the producer is recreated.
        producers[0]._message_accumulator.fail_all(OutOfOrderSequenceNumber())
        await patients.log_contacts(2)
        await _wait_until_caught_up(store)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)

    assert len(producers) == 2
    assert relay.status.last_error == "OutOfOrderSequenceNumber"
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    assert len(records) == len(patients.events)
    _assert_exactly_the_log_in_patient_order(records, patients.events)


async def test_two_relays_with_one_name_publish_through_one_holder_of_the_lease(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> None:
    """The second relay stands by while the first runs, and takes over when it stops."""
    patients = _Patients(store)
    await patients.enroll(3)
    options = RelayOptions(poll_seconds=0.05, lease_poll_seconds=0.1)
    first = Relay(store, bootstrap_servers=kafka_bootstrap, topic=topic, options=options)
    second = Relay(store, bootstrap_servers=kafka_bootstrap, topic=topic, options=options)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    await _wait_until_caught_up(store)
    second_task = asyncio.create_task(second.run(stop_second))
    try:
        await asyncio.sleep(0.3)
        assert (first.status.leader, second.status.leader) == (True, False)

        stop_first.set()
        await asyncio.wait_for(first_task, TIMEOUT_S)
        await patients.log_contacts(1)
        await _wait_until_caught_up(store)
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.wait_for(asyncio.gather(first_task, second_task), TIMEOUT_S)

    assert (first.status.published_events, second.status.published_events) == (6, 3)
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    assert len(records) == len(patients.events)


async def test_the_lag_counts_events_written_since_the_checkpoint_without_kafka(
    store: EventStore,
) -> None:
    """With no relay ever run, the lag is the whole log and the checkpoint is the start."""
    patients = _Patients(store)
    await patients.enroll(2)
    await patients.log_contacts(1)

    lag = await relay_lag(store.pool)

    assert lag.events_behind == 6
    assert lag.checkpoint == LogPosition(0, 0)
    assert lag.head == max(e.log_position for e in patients.events)
    assert lag.as_json()["events_behind"] == 6


class _HeldAcks(AIOKafkaProducer):  # type: ignore[misc]
    """A real producer whose first ``held`` records' acknowledgements reach the relay only
    when the test releases them (or as failures, when it fails them). The records
    themselves go to the broker at once, like any other."""

    def __init__(self, *args: Any, held: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = held
        self.acks: list[asyncio.Future[Any]] = []  # the broker's, for every record sent
        self.release = asyncio.Event()
        self.failure: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = await super().send(*args, **kwargs)
        self.acks.append(ack)
        if len(self.acks) > self.held:
            return ack
        seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._hold(ack, seen)))
        return seen

    async def _hold(self, ack: asyncio.Future[Any], seen: asyncio.Future[Any]) -> None:
        await self.release.wait()
        result = await asyncio.gather(ack, return_exceptions=True)
        if seen.done():  # the relay dropped the page
            return
        if self.failure is not None:
            seen.set_exception(self.failure)
        elif isinstance(result[0], BaseException):
            seen.set_exception(result[0])
        else:
            seen.set_result(result[0])


async def _pipelined_relay_with_first_page_held(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> tuple[Relay, list[_HeldAcks]]:
    producers: list[_HeldAcks] = []

    def make_producer() -> _HeldAcks:
        # Only the first producer holds its first page (5 records).
        producer = _HeldAcks(
            bootstrap_servers=kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            held=5 if not producers else 0,
        )
        producers.append(producer)
        return producer

    relay = Relay(
        store,
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        options=RelayOptions(
            page_size=5, pages_in_flight=2, poll_seconds=0.05, backoff_initial_seconds=0.05
        ),
        producer_factory=make_producer,
    )
    return relay, producers


async def _second_page_acknowledged_first_still_held(
    relay: Relay, producers: list[_HeldAcks]
) -> None:
    async def second_page_acked() -> bool:
        acks = producers[0].acks if producers else []
        return len(acks) >= 10 and all(a.done() for a in acks[5:10])

    await _eventually(second_page_acked)
    producer = producers[0]
    await asyncio.sleep(0.3)  # time enough for a wrong checkpoint move, or a third page
    # Page 2 is acknowledged, page 1 is not: the checkpoint stays before page 1, and no
    # third page is sent (two pages in flight at most).
    assert len(producer.acks) == 10
    assert relay.status.position == LogPosition(0, 0)
    assert relay.status.published_events == 0


async def test_a_later_page_acknowledged_first_does_not_move_the_checkpoint_past_the_gap(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> None:
    """Pipelined pages: the checkpoint waits for the earliest unacknowledged page."""
    patients = _Patients(store)
    await patients.enroll(7)  # 14 events: pages of 5, 5 and 4
    relay, producers = await _pipelined_relay_with_first_page_held(store, topic, kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _second_page_acknowledged_first_still_held(relay, producers)
        assert (await relay.lag()).events_behind == 14

        producers[0].release.set()
        await _wait_until_caught_up(store)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)

    assert len(producers) == 1 and relay.status.failures == 0
    assert relay.status.published_events == 14
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    assert len(records) == 14
    _assert_exactly_the_log_in_patient_order(records, patients.events)


async def test_an_earlier_page_failing_after_a_later_one_was_acknowledged_resends_both(
    store: EventStore, topic: str, kafka_bootstrap: str
) -> None:
    """The failed page's producer is replaced and everything from the checkpoint is sent
    again; the acknowledged later page never moved the checkpoint."""
    patients = _Patients(store)
    await patients.enroll(7)
    relay, producers = await _pipelined_relay_with_first_page_held(store, topic, kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _second_page_acknowledged_first_still_held(relay, producers)

        producers[0].failure = KafkaError("injected: page 1 not acknowledged")
        producers[0].release.set()
        await _wait_until_caught_up(store)
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)

    assert len(producers) == 2
    assert relay.status.failures == 1 and relay.status.last_error == "KafkaError"
    assert relay.status.published_events == 14
    # The second producer sent all 14 again from the checkpoint (the start of the log).
    assert len(producers[1].acks) == 14
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    assert 14 + 5 <= len(records) <= 14 + 10  # the first producer's pages arrived too
    _assert_exactly_the_log_in_patient_order(records, patients.events)


async def test_the_checkpoint_moves_only_over_leading_pages_acknowledged_in_full(
    store: EventStore,
) -> None:
    """The bookkeeping alone, with acknowledgements in any order (no broker needed: the
    futures stand for the producer's): a done later page never moves the checkpoint past
    an earlier pending or failed one."""
    relay = Relay(store, bootstrap_servers="127.0.0.1:9", topic="unused")
    loop = asyncio.get_running_loop()

    def page(end: int, futures: list[asyncio.Future[Any]]) -> _Page:
        return _Page(LogPosition(1, end), len(futures), loop.time() + 30, futures)

    def done() -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = loop.create_future()
        future.set_result(None)
        return future

    async with store.pool.acquire() as conn:
        pipe = _Pipeline(await read_checkpoint(conn, relay.name))
        pending: asyncio.Future[Any] = loop.create_future()
        pipe.pages.extend(
            [page(5, [done(), pending]), page(10, [done(), done()]), page(15, [done()])]
        )

        await relay._checkpoint(conn, pipe, wait_for=0)
        assert pipe.checkpoint == await read_checkpoint(conn, relay.name) == LogPosition(0, 0)
        assert len(pipe.pages) == 3

        pending.set_result(None)
        await relay._checkpoint(conn, pipe, wait_for=0)
        assert pipe.checkpoint == await read_checkpoint(conn, relay.name) == LogPosition(1, 15)
        assert not pipe.pages and relay.status.published_events == 5

        failed: asyncio.Future[Any] = loop.create_future()
        failed.set_exception(KafkaError("injected"))
        pipe.pages.extend([page(20, [done()]), page(25, [done(), failed]), page(30, [done()])])
        with pytest.raises(KafkaError):
            await relay._checkpoint(conn, pipe, wait_for=3)
        # Moved over the page before the failed one, not past the failed one.
        assert pipe.checkpoint == await read_checkpoint(conn, relay.name) == LogPosition(1, 20)
        assert len(pipe.pages) == 2
        pipe.discard()
        assert pipe.read_to == LogPosition(1, 20)


async def test_killing_the_leading_relay_process_hands_the_stream_to_a_standby(
    store: EventStore, topic: str, kafka_bootstrap: str, db_dsn: str, tmp_path: Path
) -> None:
    """Two relay processes, one leading and one standing by, under a stream of commands;
    the leader is killed with SIGKILL three times (a new standby started each time): a
    standby takes the lease each time, and the topic holds exactly the log after
    dropping duplicates, each patient's events in log order."""
    patients = _Patients(store)
    await patients.enroll(12)
    copies = Standbys(
        [sys.executable, "-m", "services.relay", "--page-size", "5", "--poll-seconds", "0.05"],
        child_env(
            CARETEAM_DATABASE_URL=db_dsn,
            CARETEAM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            CARETEAM_KAFKA_TOPIC=topic,
        ),
        tmp_path,
        "relay lease taken",
        REPO,
    )
    stop = asyncio.Event()

    async def stream() -> None:
        while not stop.is_set():
            await patients.log_contacts(1)

    writing = asyncio.create_task(stream())
    takeovers: list[float] = []
    try:
        copies.start()
        copies.start()
        for _ in range(3):
            await asyncio.sleep(0.3)  # the stream runs on under the leader a while
            takeovers.append(await copies.kill_leader())
            copies.start()
        await asyncio.sleep(0.3)
        stop.set()
        await writing
        await _wait_until_caught_up(store)
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
        await copies.stop()
    print(
        f"relay takeover seconds after SIGKILL: {[round(t, 2) for t in takeovers]}; "
        f"{len(patients.events)} events"
    )
    records = await _consume_ids(kafka_bootstrap, topic, {str(e.event_id) for e in patients.events})
    _assert_exactly_the_log_in_patient_order(records, patients.events)
