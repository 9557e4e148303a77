"""Row 5: the relay publishing the log to Kafka, against a raw aiokafka producer.

Each run appends N events (``--events``, at most 50,000) from real Patient journeys
(``workload.py``: registrations, enrollments, care teams, contacts, screenings; about one
screening in six raises a safety flag and tasks) into a fresh database with careteam's
``EventStore``, one journey per append, identifying fields encrypted with a per-patient
key as in production (Kafka only ever gets the ciphertext). Each system then publishes
those N events to a fresh topic of 3 partitions, created and ready before its clock
starts:

- **careteam**: the real relay (``services.relay.Relay`` with the default
  ``RelayOptions``, as ``careteam relay`` runs it), its checkpoint at the start of the
  log. Timed from the start of ``Relay.run`` until its checkpoint in PostgreSQL covers
  the last event: take the lease, start the producer, then page by page (500 events) read
  the log, build the CloudEvent records, send them, await every acknowledgement and move
  the checkpoint.
- **raw aiokafka producer**: an ``AIOKafkaProducer`` with the relay's producer settings
  (idempotent, ``acks=all``, the same request timeout, batch size and linger, no
  compression) sending the same records (built before the clock starts with
  ``to_kafka_message`` from the same events: same keys, headers and values) all at once,
  then awaiting every acknowledgement. Timed from its ``start()`` to the last ack.

Throughput is events over that wall time; the ratio pairs the two systems run by run.
The bench process's CPU time per event shows what each system costs where both run.
The systems alternate going first; one raw send to a throwaway topic before the first
run warms the broker and is not counted. After each relay run its topic is read back
from the beginning: every event must be there exactly once (by ``ce_id``), byte for byte
the baseline's record under the same key, and each patient's events in log order. With
profiling on, one more relay run after the last one, not counted, is sampled by py-spy
(the sampler shares the bench process's core, so a counted run would be slowed).

Kafka: the broker at ``CARETEAM_KAFKA_BOOTSTRAP_SERVERS`` (not pinned; its topics are
deleted afterwards), or else a private single-node broker that ``deploy/kafka/kafka.sh``
starts in a temporary folder for this row, its JVM pinned to the PostgreSQL core. The
broker's CPU and peak RSS are reported with each system's; storage is the topic's log
segment bytes on the private broker's disk per event (not measured on an external
broker). The bench process (relay, raw producer and the read-back) holds the pre-built
records during both systems' runs, so its peak RSS includes them for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from bench import profiling, stats
from bench.base import RowContext, RowSpec, usage_series
from bench.environment import Monitor, Usage, describe_cores, pin_tree
from bench.results import Check, Comparison, Profile, RowResult, Series, Target
from bench.row2_rebuild import load_log
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import START, EventStore, LogPosition, RecordedEvent
from services.relay.messages import KafkaMessage, to_kafka_message
from services.relay.relay import DEFAULT_NAME, Relay, RelayOptions
from services.settings import Settings

OURS, RAW = "careteam", "raw"
LABELS = {
    OURS: "careteam relay, log to Kafka with checkpoints",
    RAW: "raw aiokafka producer, same records and settings",
}
TARGET = Target("at least 50% of the raw producer", ">=", 0.5)
ZERO = Target("zero", "<=", 0.0)
BOOTSTRAP_ENV = "CARETEAM_KAFKA_BOOTSTRAP_SERVERS"
KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
MAX_EVENTS = 50_000
PARTITIONS = 3
TOPIC_PREFIX = "careteam.bench.relay."
PROFILE_NAME = "relay:bench-profile"
LOAD_WRITERS = 4
READ_PAGE = 5_000
WAIT_POLL_SECONDS = 0.002
TOPIC_READY_SECONDS = 30.0
BROKER_START_SECONDS = 180.0
STOP_SECONDS = 30.0


def broker_missing() -> str | None:
    """Why row 5 cannot run (None: it can): it needs a broker, or Java to start one."""
    if os.environ.get(BOOTSTRAP_ENV):
        return None
    if shutil.which("java") is None:
        return (
            f"no Kafka broker: {BOOTSTRAP_ENV} is unset and java is not installed to start "
            "one with deploy/kafka/kafka.sh"
        )
    if not KAFKA_SH.is_file():
        return f"no Kafka broker: {BOOTSTRAP_ENV} is unset and {KAFKA_SH} is missing"
    if not (KAFKA_SH.parent / "target" / "lib").is_dir() and shutil.which("mvn") is None:
        return (
            f"no Kafka broker: {BOOTSTRAP_ENV} is unset, the Kafka jars are not fetched yet "
            "and mvn is not installed to fetch them"
        )
    return None


@dataclass
class Sample:
    """One system publishing one run's events."""

    events: int
    seconds: float
    usage: Usage = field(default_factory=Usage)
    bytes_per_event: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return stats.throughput(self.events, self.seconds)

    @property
    def cpu_per_event_us(self) -> float:
        """CPU time of the bench process (relay or producer) per event, in microseconds."""
        if not self.events:
            return float("nan")
        return self.usage.bench_cpu * self.usage.seconds / self.events * 1e6


# --- the broker ----------------------------------------------------------------------


@dataclass
class Broker:
    """The broker the row publishes to; pid, cores and data folder only if it started it."""

    bootstrap: str
    pid: int | None = None
    data_dir: Path | None = None
    cores: frozenset[int] = frozenset()

    def describe(self) -> str:
        if self.pid is None:
            return f"external broker ({BOOTSTRAP_ENV}): not pinned"
        return (
            f"private single-node broker (deploy/kafka/kafka.sh), JVM pinned to "
            f"{describe_cores(self.cores)}"
        )

    def topic_bytes(self, topic: str) -> float:
        """Bytes of the topic's log segments on disk (NaN on an external broker)."""
        if self.data_dir is None:
            return float("nan")
        total = 0
        for partition in range(PARTITIONS):
            folder = self.data_dir / f"{topic}-{partition}"
            with contextlib.suppress(OSError):
                total += sum(f.stat().st_size for f in folder.glob("*.log"))
        return float(total)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A free loopback port whose neighbour (the controller port) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port < 65535 and _port_free(port + 1):
            return port
    raise RuntimeError("no free pair of ports for a private Kafka broker")


async def _kafka_sh(action: str, env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(KAFKA_SH),
        action,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), BROKER_START_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(
            f"kafka.sh {action} did not finish in {BROKER_START_SECONDS:.0f} s"
        ) from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-3000:]
        raise RuntimeError(f"kafka.sh {action} failed:\n{tail}")


@contextlib.asynccontextmanager
async def kafka_broker(cores: frozenset[int]) -> AsyncIterator[Broker]:
    """The broker at CARETEAM_KAFKA_BOOTSTRAP_SERVERS, or a private one on free ports in
    a temporary folder (its JVM pinned to ``cores``), stopped and deleted afterwards."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield Broker(bootstrap=external)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="careteam-bench-kafka-"))
    port = _free_port_pair()
    env = {
        **os.environ,
        "CARETEAM_KAFKA_PORT": str(port),
        "CARETEAM_KAFKA_CONTROLLER_PORT": str(port + 1),
        "CARETEAM_KAFKA_RUN_DIR": str(run_dir),
    }
    try:
        await _kafka_sh("start", env)
        pid = int((run_dir / "kafka.pid").read_text().strip())
        pinned = frozenset(cores) if pin_tree(pid, cores) else frozenset()
        yield Broker(
            bootstrap=f"127.0.0.1:{port}", pid=pid, data_dir=run_dir / "data", cores=pinned
        )
    finally:
        try:
            await _kafka_sh("stop", env)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


async def create_topic(admin: Any, kind: str) -> str:
    """Creates a fresh topic and waits until every partition has a leader; its name."""
    name = f"{TOPIC_PREFIX}{kind}.{uuid4().hex[:12]}"
    await admin.create_topics(
        [NewTopic(name=name, num_partitions=PARTITIONS, replication_factor=1)]
    )
    deadline = time.monotonic() + TOPIC_READY_SECONDS
    while True:
        topics = await admin.describe_topics([name])
        partitions = [p for t in topics if t["topic"] == name for p in t["partitions"]]
        ready = [p for p in partitions if p["error_code"] == 0 and p["leader"] >= 0]
        if len(ready) == PARTITIONS:
            return name
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {name} has no leader after {TOPIC_READY_SECONDS:.0f} s")
        await asyncio.sleep(0.05)


async def delete_topics(admin: Any, names: Sequence[str]) -> None:
    with contextlib.suppress(Exception):  # cleanup of a benchmark topic must not fail a row
        await admin.delete_topics(list(names))


# --- the workload --------------------------------------------------------------------


async def read_whole_log(store: EventStore) -> list[RecordedEvent]:
    """Every event in log order, identifying fields as ciphertext (what the relay reads)."""
    out: list[RecordedEvent] = []
    position: LogPosition = START
    while batch := await store.read_log(position, limit=READ_PAGE, decrypt=False):
        out += batch
        position = batch[-1].log_position
    return out


# --- the two systems -----------------------------------------------------------------


async def run_ours(
    store: EventStore,
    broker: Broker,
    topic: str,
    head: LogPosition,
    events: int,
    server: int | None,
    *,
    name: str = DEFAULT_NAME,
) -> Sample:
    """The relay from the start of the log until its checkpoint covers ``head``."""
    relay = Relay(store, bootstrap_servers=broker.bootstrap, topic=topic, name=name)
    timeout = max(120.0, events / 100.0)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    failure: BaseException | None = None
    try:
        with Monitor(server, extra_pid=broker.pid) as monitor:
            start = time.perf_counter()
            task = asyncio.create_task(relay.run(stop))
            while relay.status.position < head:
                if task.done():
                    task.result()
                    raise RuntimeError("the relay stopped before it published every event")
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(
                        f"the relay did not publish {events:,} events in {timeout:.0f} s "
                        f"(at {relay.status.published_events:,}; failures "
                        f"{relay.status.failures}, last error {relay.status.last_error})"
                    )
                await asyncio.sleep(WAIT_POLL_SECONDS)
            elapsed = time.perf_counter() - start
    finally:
        stop.set()
        if task is not None:
            # Stopping (closing the producer) is not timed; a relay that does not stop is
            # cancelled, which abandons its producer.
            done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
            if not done:
                task.cancel()
            [outcome] = await asyncio.gather(task, return_exceptions=True)
            failure = outcome if isinstance(outcome, BaseException) else None
    if isinstance(failure, Exception):
        raise failure
    return Sample(
        events=relay.status.published_events,
        seconds=elapsed,
        usage=monitor.usage,
        extra={
            "producer_starts": float(relay.status.producer_starts),
            "failures": float(relay.status.failures),
        },
    )


def raw_producer(bootstrap: str, options: RelayOptions) -> Any:
    """An aiokafka producer with the relay's producer settings (see ``Relay._new_producer``)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="careteam-bench-raw",
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=options.request_timeout_ms,
        max_batch_size=options.max_batch_size,
        linger_ms=options.linger_ms,
    )


async def run_raw(
    messages: Sequence[KafkaMessage], broker: Broker, topic: str, server: int | None
) -> Sample:
    """Every record sent at once by one producer, then every acknowledgement awaited."""
    producer = raw_producer(broker.bootstrap, RelayOptions())
    try:
        with Monitor(server, extra_pid=broker.pid) as monitor:
            start = time.perf_counter()
            await producer.start()
            futures = [
                await producer.send(topic, value=m.value, key=m.key, headers=m.headers)
                for m in messages
            ]
            await asyncio.gather(*futures)
            elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    return Sample(events=len(messages), seconds=elapsed, usage=monitor.usage)


# --- reading a topic back ------------------------------------------------------------


@dataclass
class Delivery:
    """What a topic holds compared with the events that were appended."""

    records: int = 0
    missing: int = 0
    duplicates: int = 0
    unexpected: int = 0
    different: int = 0
    out_of_order: int = 0

    @property
    def wrong(self) -> int:
        return self.missing + self.duplicates + self.unexpected + self.different


async def read_back(
    bootstrap: str, topic: str, expected: dict[bytes, KafkaMessage], seconds: float
) -> Delivery:
    """Reads every partition of ``topic`` from the beginning to its end offset and compares
    each record with the expected one of the same ``ce_id``."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    seen: dict[bytes, int] = {}
    last_sequence: dict[bytes, bytes] = {}
    out = Delivery()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[Any, int] = await consumer.end_offsets(partitions)
        next_offset = {tp: 0 for tp in partitions}
        deadline = time.monotonic() + seconds
        while any(next_offset[tp] < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read topic {topic} back in {seconds:.0f} s")
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    next_offset[tp] = record.offset + 1
                    out.records += 1
                    headers = dict(record.headers)
                    ce_id = headers.get("ce_id", b"")
                    seen[ce_id] = seen.get(ce_id, 0) + 1
                    want = expected.get(ce_id)
                    if want is None:
                        out.unexpected += 1
                        continue
                    if (record.key, record.value, list(record.headers)) != (
                        want.key,
                        want.value,
                        want.headers,
                    ):
                        out.different += 1
                    sequence = headers.get("ce_sequence", b"")
                    previous = last_sequence.get(record.key)
                    if previous is not None and sequence <= previous:
                        out.out_of_order += 1
                    last_sequence[record.key] = sequence
    finally:
        await consumer.stop()
    out.missing = sum(1 for ce_id in expected if ce_id not in seen)
    out.duplicates = sum(n - 1 for ce_id, n in seen.items() if n > 1 and ce_id in expected)
    return out


async def topic_records(bootstrap: str, topic: str) -> int:
    """Records in a topic: its end offsets summed over partitions."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends: dict[Any, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


# --- the row -------------------------------------------------------------------------


@dataclass
class Collected:
    """What the runs measured so far."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: {OURS: [], RAW: []})
    deliveries: list[Delivery] = field(default_factory=list)
    raw_records: list[int] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)


async def measure(ctx: RowContext) -> RowResult:
    opts = ctx.options
    result = RowResult(number=5, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    n = min(opts.events, MAX_EVENTS)
    if n < opts.events:
        result.notes.append(f"Capped at {MAX_EVENTS:,} events per run (asked {opts.events:,}).")
    got = Collected()
    async with kafka_broker(ctx.cores.server) as broker:
        ctx.log(f"row 5 Kafka: {broker.describe()} at {broker.bootstrap}")
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            for run in range(opts.runs):
                async with ctx.databases.fresh() as dsn:
                    await _one_run(ctx, run, n, dsn, admin, broker, got)
        finally:
            await admin.close()
        result.placement = {
            "bench process (relay, raw producer, read-back consumer)": describe_cores(
                ctx.cores.loadgen
            ),
            "PostgreSQL server": ctx.server.describe(),
            "Kafka broker": broker.describe(),
        }
    result.profiles.extend(got.profiles)
    _summarise(result, got, n)
    return result


async def _one_run(
    ctx: RowContext, run: int, n: int, dsn: str, admin: Any, broker: Broker, got: Collected
) -> None:
    """One run: append ``n`` events, then publish them with each system in turn."""
    server = ctx.server.postmaster_pid
    pool = await create_pool(dsn, Settings(db_pool_min=2, db_pool_max=LOAD_WRITERS + 1))
    try:
        store = EventStore(pool, snapshot_every=0, keyring=KeyRing(os.urandom(32)))
        await load_log(store, n, seed=5)
        events = await read_whole_log(store)
        if len(events) != n:
            raise RuntimeError(f"appended {n:,} events, the log holds {len(events):,}")
        messages = [to_kafka_message(e) for e in events]
        expected = {dict(m.headers)["ce_id"]: m for m in messages}
        head = events[-1].log_position
        if run == 0:
            await _warm_up(admin, broker, messages, server)
            ctx.log(f"row 5 broker warmed up with {n:,} records (not counted)")
        for system in [OURS, RAW] if run % 2 == 0 else [RAW, OURS]:
            topic = await create_topic(admin, system)
            try:
                if system == OURS:
                    sample = await run_ours(store, broker, topic, head, n, server)
                    seconds = max(60.0, n / 200)
                    got.deliveries.append(
                        await read_back(broker.bootstrap, topic, expected, seconds)
                    )
                else:
                    sample = await run_raw(messages, broker, topic, server)
                    got.raw_records.append(await topic_records(broker.bootstrap, topic))
                sample.bytes_per_event = broker.topic_bytes(topic) / n
            finally:
                await delete_topics(admin, [topic])
            got.samples[system].append(sample)
            ctx.log(
                f"row 5 run {run + 1}/{ctx.options.runs} {system:<8} "
                f"{sample.rate:>9,.0f} events/s ({n:,} events)"
            )
        if ctx.profiles_run(run):
            # An extra relay run under py-spy, not counted: the sampler shares the bench
            # process's core and would slow a counted run.
            topic = await create_topic(admin, "profile")
            path = ctx.profile_path(5, "relay")
            label = "bench process running the relay (an extra, uncounted run)"
            try:
                with profiling.sample(os.getpid(), path, label) as profile:
                    await run_ours(store, broker, topic, head, n, server, name=PROFILE_NAME)
            finally:
                await delete_topics(admin, [topic])
            got.profiles.append(profile)
    finally:
        await pool.close()


async def _warm_up(
    admin: Any, broker: Broker, messages: Sequence[KafkaMessage], server: int | None
) -> None:
    """One uncounted raw send, so that neither system meets a cold broker."""
    topic = await create_topic(admin, "warmup")
    try:
        await run_raw(messages, broker, topic, server)
    finally:
        await delete_topics(admin, [topic])


def _summarise(result: RowResult, got: Collected, events: int) -> None:
    samples, deliveries = got.samples, got.deliveries
    rate: dict[str, Series] = {}
    for system in (OURS, RAW):
        rate[system] = result.add(
            Series(
                key=system,
                label=f"{LABELS[system]}, {events:,} events",
                unit="events/s",
                runs=[s.rate for s in samples[system]],
                baseline=system != OURS,
            )
        )
    result.comparisons.append(
        Comparison.of(f"careteam relay / {LABELS[RAW]}", rate[OURS], rate[RAW], TARGET)
    )
    runs = len(deliveries)
    result.checks.append(
        Check(
            label="events not in the relay's topic exactly once, as sent (all runs)",
            value=float(sum(d.wrong for d in deliveries)),
            unit="events",
            target=ZERO,
            detail=(
                f"{events * runs:,} appended over {runs} run(s), "
                f"{sum(d.records for d in deliveries):,} records read back; missing "
                f"{sum(d.missing for d in deliveries)}, duplicated "
                f"{sum(d.duplicates for d in deliveries)}, unknown "
                f"{sum(d.unexpected for d in deliveries)}, different from the baseline's "
                f"record {sum(d.different for d in deliveries)}; the raw producer's topics "
                f"held {sum(got.raw_records):,} records; producer restarts in the relay "
                f"{sum(s.extra['producer_starts'] - 1 for s in samples[OURS]):.0f}"
            ),
        )
    )
    result.checks.append(
        Check(
            label="a patient's events out of log order in the relay's topic (all runs)",
            value=float(sum(d.out_of_order for d in deliveries)),
            unit="events",
            target=ZERO,
            detail="by ce_sequence, per key (patient id) in partition order",
        )
    )
    for system in (OURS, RAW):
        result.series.extend(
            _usage(system, LABELS[system], [s.usage for s in samples[system]], system != OURS)
        )
        result.add(
            Series(
                key=f"{system}_cpu_per_event",
                label=f"{LABELS[system]}: bench process CPU time per event",
                unit="us/event",
                runs=[s.cpu_per_event_us for s in samples[system]],
                kind="cpu",
                higher_is_better=False,
                baseline=system != OURS,
            )
        )
    if all(math.isnan(s.bytes_per_event) for s in samples[OURS]):
        result.notes.append("Kafka storage not measured: the broker is external.")
        return
    for system in (OURS, RAW):
        result.add(
            Series(
                key=f"{system}_kafka_bytes_per_event",
                label=f"{LABELS[system]}: topic log segments on the broker's disk",
                unit="bytes/event",
                runs=[s.bytes_per_event for s in samples[system]],
                kind="storage",
                higher_is_better=False,
                baseline=system != OURS,
            )
        )


def _usage(key: str, label: str, usages: list[Usage], baseline: bool) -> list[Series]:
    """``usage_series`` with its extra process named for what it is here: the broker."""
    out = usage_series(key, label, usages, baseline=baseline)
    for s in out:
        if s.key.endswith("_api_rss"):
            s.key = f"{key}_broker_rss"
            s.label = f"{label}: Kafka broker (JVM) peak RSS"
        elif s.key.endswith("_api_cpu"):
            s.key = f"{key}_broker_cpu"
            s.label = f"{label}: Kafka broker CPU"
    return out


LIMITS = """Building each Kafka record in Python (envelope, headers) and aiokafka's pure-Python
partitioner hashing every key, on the bench process's core; see the profile."""


SPEC = RowSpec(
    number=5,
    slug="relay",
    title="Relay: log to Kafka",
    available=broker_missing,
    run=measure,
)
