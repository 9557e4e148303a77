"""Row 6: one care event fanned out to many ``careEvents`` subscribers over WebSocket.

A real ``careteam serve`` subprocess (API and projector in one process, pinned to the
same core as PostgreSQL, as in row 4; the audit chain sealer in its own ``serve
--components sealer`` on that core too, its CPU counted as careteam's, as a deployment
that keeps it off the event loop serving WebSockets runs it, and as row 3 does) on a
fresh database holds 10 patients registered
by one care manager (development token), who is therefore on each patient's team. N
subscribers (N = 1, then N = 200; a fresh database and a fresh server for each) each
open their own WebSocket (graphql-transport-ws, the token in ``connection_init``, the
client's default permessage-deflate offer accepted as a browser's would be), each as a
different administrator of the organisation, and subscribe to ``careEvents`` for those
10 patients. Warm-up rounds of one event per patient are sent until every subscriber has
received a whole round: every subscription is then established and has decided its
access to every patient. Then the care manager sends ``createTask`` mutations (each
appends exactly one ``patient.task_created`` event, with a fresh ``sourceId`` that
identifies it in the delivered payload) from a ``MiniHttpClient`` at a fixed open-loop
rate of 5/s (mutations are sent on schedule whatever earlier ones are doing), 100 of
them (``--events`` lowers that). The rate is a choice: 5 events a second reaching all
200 subscribers is 1,000 deliveries a second, under what one server process can send
(about 2,300 a second measured on this machine), so the row measures the cost of fanning
out, not a queue; at 20/s (4,000 deliveries a second) the server falls behind and the
200-subscriber p99 grows with the length of the run (measured: 87x the single p99).
A task rather than ``assignCareTeam`` (row 4's mutation): a care-team change makes
every subscriber decide its access to that patient again with one SQL query each, which
would make every measured event the rare costly one.

Delivery latency of an event to a subscriber is the time the subscriber's frame was
received minus the time the mutation was sent: its request is written at once, on a
connection of its own if need be (the HTTP client has more connections than mutations
can be outstanding), not queued behind slow answers. Not from its response, which
careteam sends only after the read models applied the event, often after the event was
delivered; the response time is reported on its own. Every (event, subscriber) pair
counts: 100 at N = 1, 20,000 at N = 200. A pair whose frame never arrived within 30 s
of the last mutation is missing; a missing delivery counts as an unbounded latency (so
more than 1% missing makes the p99 unbounded) and the number missing has a target of
zero.

careteam audits every ``careEvents`` delivery as a read of patient data before sending
it, so N subscribers means N audit records per event: real product cost, measured here.
The N subscribers share one document and one scope (administrators of one
organisation), so careteam executes each event once for all of them and records their N
reads in one call (services/api/fanout.py); each still gets its own frame.

Also reported, per N and as medians over ``--runs``: careteam serve's peak RSS (reset
after the subscribers connected, so it includes their connections) and CPU, its CPU per
delivery, PostgreSQL's peak PSS and CPU, the bench process's CPU, and the
``createTask`` response time.

The client: all N WebSockets (the ``websockets`` library, as the end-to-end tests use)
run on one asyncio loop in the bench process, pinned to its own core. Each connection's
reader only timestamps a frame the moment ``recv`` returns it and keeps the bytes; JSON
is parsed after the run. Frames arriving together (one per connection) are still read
one after another, so the last of 200 is timestamped late by the client's per-frame cost
(tens of microseconds each): at N = 200 the client adds up to a few milliseconds to a
burst and could be the limit if the bench process's CPU nears one core (reported with
the results).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench import profiling, stats
from bench.base import RowContext, RowSpec, usage_series
from bench.environment import Monitor, Usage, describe_cores
from bench.http import MiniHttpClient
from bench.results import Check, Comparison, Profile, RowResult, Series, Target
from bench.row4_lag import (
    ORG,
    REQUEST_TIMEOUT,
    WITHOUT_SEALER,
    admin_token,
    api_server,
    graphql_post,
    headless_parts,
    register_patients,
)

SUBSCRIBERS = (1, 200)
EVENTS = 100
RATE = 5.0
PATIENTS = 10
TARGET = Target("p99 at most 3x the single-subscriber p99", "<=", 3.0)
ZERO = Target("zero", "<=", 0.0)
DELIVERY_TIMEOUT = 30.0
WARMUP_ROUNDS = 5
WARMUP_ROUND_TIMEOUT = 60.0
WARMUP_QUIET = 2.0
CONNECT_BATCH = 25
PROTOCOL = Subprotocol("graphql-transport-ws")

SUBSCRIBE = """subscription($ids: [UUID!]) {
  careEvents(patientIds: $ids) { eventType payload }
}"""
CREATE_TASK = """mutation($id: UUID!, $source: UUID!, $due: Date!) {
  createTask(input: {patientId: $id, kind: OTHER, dueOn: $due, sourceId: $source}) {
    __typename
  }
}"""


def feature_missing() -> str | None:
    """Why row 6 cannot run (None: it can): it needs the API, the subscription and
    the mutation it measures."""
    try:
        from services.api.schema import build_schema
        from services.auth import DevIssuer, Role  # noqa: F401
    except ImportError as exc:
        return f"the API cannot be imported ({exc})"
    sdl = build_schema().as_str()
    for needed in ("careEvents", "registerPatient", "createTask", "sourceId"):
        if needed not in sdl:
            return f"the GraphQL schema has no {needed}"
    return None


@dataclass
class FanoutSample:
    """One fan-out run: a latency per delivered (event, subscriber) pair, in seconds."""

    subscribers: int
    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    missing: int = 0
    duplicates: int = 0
    sent: int = 0
    failed: int = 0
    first_error: str = ""
    mutation_latencies: list[float] = field(default_factory=list)
    seconds: float = float("nan")
    usage: Usage = field(default_factory=Usage)

    def ms(self, q: float) -> float:
        """The q-th percentile delivery latency; a missing delivery is unbounded."""
        return stats.percentile(self.latencies + [math.inf] * self.missing, q) * 1000.0

    @property
    def delivery_rate(self) -> float:
        return stats.throughput(len(self.latencies), self.seconds)

    @property
    def api_cpu_per_delivery_ms(self) -> float:
        """CPU time of careteam serve per delivered (event, subscriber) pair, in ms; at
        one subscriber it is dominated by the mutation that made the event."""
        if not self.latencies:
            return math.nan
        return self.usage.extra_cpu * self.seconds / len(self.latencies) * 1000.0


class Subscriber:
    """One WebSocket subscribed to careEvents; keeps each frame with its arrival time."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.frames: list[tuple[float, bytes]] = []
        self.error = ""
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        clock = time.perf_counter
        frames = self.frames
        recv = self.socket.recv
        try:
            while True:
                data = await recv(decode=False)
                frames.append((clock(), data))
        except ConnectionClosed as exc:
            self.error = f"connection closed: {exc}"[:300]

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await self.socket.close()


def delivered(frame: bytes) -> tuple[str | None, str]:
    """A frame's ``sourceId`` when it delivers a task event; else (None, what it was)."""
    message: dict[str, Any] = json.loads(frame)
    if message.get("type") != "next":
        return None, f"{message.get('type')}: {str(message.get('payload'))[:200]}"
    event = ((message.get("payload") or {}).get("data") or {}).get("careEvents") or {}
    payload = event.get("payload") or {}
    source = payload.get("source_id") if isinstance(payload, dict) else None
    return (str(source), "") if source is not None else (None, str(event.get("eventType")))


async def open_subscriber(url: str, token: str, patients: list[str]) -> Subscriber:
    socket = await connect(
        url, subprotocols=[PROTOCOL], ping_interval=None, close_timeout=2.0, proxy=None
    )
    try:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await socket.send(json.dumps(init))
        ack = json.loads(await asyncio.wait_for(socket.recv(), REQUEST_TIMEOUT))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"expected connection_ack, got {str(ack)[:200]}")
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": SUBSCRIBE, "variables": {"ids": patients}},
        }
        await socket.send(json.dumps(subscribe))
    except BaseException:
        await socket.close()
        raise
    return Subscriber(socket)


async def open_subscribers(url: str, tokens: list[str], patients: list[str]) -> list[Subscriber]:
    """One WebSocket per token, ``CONNECT_BATCH`` handshakes at a time."""
    subscribers: list[Subscriber] = []
    try:
        for first in range(0, len(tokens), CONNECT_BATCH):
            batch = tokens[first : first + CONNECT_BATCH]
            opened = await asyncio.gather(
                *(open_subscriber(url, t, patients) for t in batch), return_exceptions=True
            )
            for item in opened:
                if isinstance(item, Subscriber):
                    subscribers.append(item)
            for item in opened:
                if isinstance(item, BaseException):
                    raise item
    except BaseException:
        await close_all(subscribers)
        raise
    return subscribers


async def close_all(subscribers: list[Subscriber]) -> None:
    await asyncio.gather(*(s.aclose() for s in subscribers), return_exceptions=True)


class Mutations:
    """Sends createTask mutations as the care manager; remembers when each was sent.

    Each burst gets a fresh client (``burst``): uvicorn closes a keep-alive connection
    idle for 5 s, and the client does not retry a request on a connection the server
    closed, so connections are never kept across the waits between bursts."""

    def __init__(self, url: str, token: str, patients: list[str]) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._patients = patients
        self._due = (date.today() + timedelta(days=7)).isoformat()
        self.sent_at: dict[str, float] = {}
        self.failed = 0
        self.first_error = ""
        self.latencies: list[float] = []

    def burst(self, connections: int) -> MiniHttpClient:
        return MiniHttpClient(self._url, connections=connections, headers=self._headers)

    async def send(self, client: MiniHttpClient, i: int) -> str:
        """Sends one; returns its source id (whether or not it succeeded)."""
        source = str(uuid4())
        variables = {"id": self._patients[i % len(self._patients)], "source": source}
        variables["due"] = self._due
        t0 = time.perf_counter()
        self.sent_at[source] = t0
        try:
            body = await asyncio.wait_for(
                graphql_post(client, "", CREATE_TASK, variables), REQUEST_TIMEOUT
            )
            result = (body.get("data") or {}).get("createTask") or {}
            if result.get("__typename") != "PatientPayload":
                raise RuntimeError(f"createTask answered {str(body)[:200]}")
            self.latencies.append(time.perf_counter() - t0)
        except Exception as exc:
            self.failed += 1
            if not self.first_error:
                self.first_error = f"{type(exc).__name__}: {exc}"[:300]
        return source


async def warm_up(mutations: Mutations, subscribers: list[Subscriber], patients: int) -> None:
    """Rounds of one event per patient until every subscriber received a whole round. A
    round ends when every subscriber has it, or when no frame arrived for WARMUP_QUIET
    seconds (a subscriber that was not subscribed yet missed some of it)."""
    seen: list[set[str]] = []
    sources: set[str] = set()
    for _ in range(WARMUP_ROUNDS):
        marks = [len(s.frames) for s in subscribers]
        async with mutations.burst(patients) as client:
            sent = await asyncio.gather(*(mutations.send(client, i) for i in range(patients)))
        sources = set(sent)
        seen = [set() for _ in subscribers]
        deadline = time.perf_counter() + WARMUP_ROUND_TIMEOUT
        quiet_since, total = time.perf_counter(), sum(marks)
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            for k, sub in enumerate(subscribers):
                for _at, frame in sub.frames[marks[k] :]:
                    source, _what = delivered(frame)
                    if source in sources:
                        seen[k].add(source)
                marks[k] = len(sub.frames)
            if all(len(s) == len(sources) for s in seen):
                return
            if sum(marks) != total:
                quiet_since, total = time.perf_counter(), sum(marks)
            elif time.perf_counter() - quiet_since > WARMUP_QUIET:
                break
    got = sum(1 for s in seen if len(s) == len(sources))
    frames = sum(len(s.frames) for s in subscribers)
    other = next(
        (what for s in subscribers for _at, f in s.frames if (what := delivered(f)[1])), ""
    )
    errors = next((s.error for s in subscribers if s.error), "")
    raise RuntimeError(
        f"warm-up: {got} of {len(subscribers)} subscribers received a whole round "
        f"({frames} frames in all{f'; one was {other}' if other else ''}"
        f"{f'; {errors}' if errors else ''})"
    )


async def send_open_loop(mutations: Mutations, events: int, rate: float) -> list[str]:
    """``events`` mutations, the i-th due at start + i/rate, without waiting for answers
    (one connection each, so none waits for another's answer); returns their source ids
    once every one has answered (or timed out)."""
    loop = asyncio.get_running_loop()
    async with mutations.burst(events) as client:
        start = loop.time() + 0.05
        tasks: list[asyncio.Task[str]] = []
        for i in range(events):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(mutations.send(client, i)))
        return list(await asyncio.gather(*tasks))


async def wait_for_frames(subscribers: list[Subscriber], marks: list[int], count: int) -> None:
    """Until every subscriber has ``count`` frames past its mark (cheap: no parsing while
    deliveries may still arrive), or DELIVERY_TIMEOUT."""
    deadline = time.perf_counter() + DELIVERY_TIMEOUT
    while time.perf_counter() < deadline:
        if all(len(s.frames) - m >= count for s, m in zip(subscribers, marks, strict=True)):
            return
        await asyncio.sleep(0.02)


def tally(
    sample: FanoutSample,
    subscribers: list[Subscriber],
    marks: list[int],
    sources: list[str],
    sent_at: dict[str, float],
) -> None:
    """Latency of every (event, subscriber) pair that arrived; the others are missing."""
    wanted = set(sources)
    for sub, mark in zip(subscribers, marks, strict=True):
        got: set[str] = set()
        for at, frame in sub.frames[mark:]:
            source, what = delivered(frame)
            if source is None or source not in wanted:
                if what and not sample.first_error:
                    sample.first_error = f"unexpected frame: {what}"[:300]
                continue
            if source in got:
                sample.duplicates += 1
                continue
            got.add(source)
            sample.latencies.append(at - sent_at[source])
        sample.missing += len(wanted - got)
        if sub.error and len(got) < len(wanted) and not sample.first_error:
            sample.first_error = sub.error
    sample.expected = len(wanted) * len(subscribers)


async def run_fanout(
    dsn: str,
    ctx: RowContext,
    subscribers: int,
    events: int,
    rate: float,
    profiles: list[Profile] | None = None,
) -> FanoutSample:
    """One fan-out run on a fresh ``careteam serve`` against ``dsn``."""
    from services.auth import DevIssuer, Role

    sample = FanoutSample(subscribers=subscribers)
    # Two processes on one database: the same master key for both.
    env = {"CARETEAM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    async with (
        headless_parts(dsn, ctx.cores.server, "sealer", env=env) as sealer_pid,
        api_server(
            dsn, ctx.cores.server, env={**env, "CARETEAM_COMPONENTS": WITHOUT_SEALER}
        ) as server,
    ):
        server.parts = (sealer_pid,)
        manager = DevIssuer(server.data_dir).mint(
            role=Role.CARE_MANAGER, user_id=uuid4(), organisation_id=ORG
        )
        headers = {"Authorization": f"Bearer {manager}"}
        async with MiniHttpClient(server.url, connections=8, headers=headers) as client:
            patients = await register_patients(client, server.url, PATIENTS)
        tokens = [admin_token(server.data_dir) for _ in range(subscribers)]
        ws_url = server.url.replace("http://", "ws://", 1) + "/graphql"
        subs = await open_subscribers(ws_url, tokens, patients)
        try:
            mutations = Mutations(server.url, manager, patients)
            await warm_up(mutations, subs, len(patients))
            mutations.failed, mutations.first_error, mutations.latencies = 0, "", []
            marks = [len(s.frames) for s in subs]
            with profiling.sampled_into(
                profiles,
                server.pid,
                ctx.profile_path(6, f"careteam-serve-{subscribers}"),
                f"careteam serve fanning out to {subscribers} subscribers (last run)",
            ):
                with Monitor(
                    ctx.server.postmaster_pid, extra_pid=server.pid, also=server.parts
                ) as monitor:
                    t0 = time.perf_counter()
                    sources = await send_open_loop(mutations, events, rate)
                    await wait_for_frames(subs, marks, events)
                    sample.seconds = time.perf_counter() - t0
            sample.usage = monitor.usage
        finally:
            await close_all(subs)
    tally(sample, subs, marks, sources, mutations.sent_at)
    sample.sent = len(sources)
    sample.failed = mutations.failed
    sample.mutation_latencies = mutations.latencies
    if mutations.first_error:
        sample.first_error = mutations.first_error
    return sample


async def measure(ctx: RowContext) -> RowResult:
    return await measure_with(ctx, subscribers=SUBSCRIBERS, events=EVENTS, rate=RATE)


async def measure_with(
    ctx: RowContext, *, subscribers: tuple[int, int], events: int, rate: float
) -> RowResult:
    """Row 6 with a small and a large number of subscribers (the real row: 1 and 200)."""
    opts = ctx.options
    result = RowResult(number=6, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    count = max(1, min(opts.events, events))
    samples: dict[int, list[FanoutSample]] = {n: [] for n in subscribers}
    for run in range(opts.runs):
        order = list(subscribers) if run % 2 == 0 else list(reversed(subscribers))
        for n in order:
            profiles = result.profiles if n == max(subscribers) and ctx.profiles_run(run) else None
            async with ctx.databases.fresh() as dsn:
                sample = await run_fanout(dsn, ctx, n, count, rate, profiles)
            samples[n].append(sample)
            ctx.log(
                f"row 6 run {run + 1}/{opts.runs} {n:>4} subscribers  "
                f"p50 {sample.ms(50):7.1f} ms p99 {sample.ms(99):7.1f} ms  "
                f"delivered {len(sample.latencies)}/{sample.expected} "
                f"missing {sample.missing} duplicates {sample.duplicates} "
                f"failed mutations {sample.failed}  bench CPU {sample.usage.bench_cpu:.2f}"
                + (f" (first: {sample.first_error})" if sample.first_error else "")
            )
    _summarise(result, samples, subscribers, count, rate)
    result.placement = {
        "bench process (every WebSocket subscriber and the HTTP mutation client, one "
        "asyncio loop)": describe_cores(ctx.cores.loadgen),
        "careteam serve (API, projector, event feed) and serve --components sealer": (
            describe_cores(ctx.cores.server)
        ),
        "PostgreSQL server": ctx.server.describe(),
    }
    return result


def _summarise(
    result: RowResult,
    samples: dict[int, list[FanoutSample]],
    subscribers: tuple[int, int],
    count: int,
    rate: float,
) -> None:
    small, large = subscribers
    p99: dict[int, Series] = {}
    for n, runs in samples.items():
        baseline = n == small
        label = f"careEvents to {n} WebSocket subscriber{'s' if n != 1 else ''}"
        for q in (50, 99):
            series = result.add(
                Series(
                    key=f"n{n}_p{q}",
                    label=f"{label}: p{q} delivery latency",
                    unit="ms",
                    runs=[s.ms(q) for s in runs],
                    higher_is_better=False,
                    baseline=baseline,
                )
            )
            if q == 99:
                p99[n] = series
        result.add(
            Series(
                key=f"n{n}_mutation_p50",
                label=f"{label}: createTask response p50 (read-your-writes included)",
                unit="ms",
                runs=[stats.median(s.mutation_latencies) * 1000.0 for s in runs],
                higher_is_better=False,
                baseline=baseline,
            )
        )
        result.add(
            Series(
                key=f"n{n}_deliveries",
                label=f"{label}: deliveries per second",
                unit="deliveries/s",
                runs=[s.delivery_rate for s in runs],
                baseline=baseline,
            )
        )
        result.add(
            Series(
                key=f"n{n}_api_cpu_per_delivery",
                label=f"{label}: careteam serve CPU per delivery (mutation included)",
                unit="ms",
                runs=[s.api_cpu_per_delivery_ms for s in runs],
                kind="cpu",
                higher_is_better=False,
                baseline=baseline,
            )
        )
        result.series.extend(
            usage_series(f"n{n}", label, [s.usage for s in runs], baseline=baseline)
        )
    real = subscribers == SUBSCRIBERS
    result.comparisons.append(
        Comparison.of(
            f"p99 delivery latency: {large} subscribers / {small}",
            p99[large],
            p99[small],
            TARGET if real else None,
        )
    )
    if not real:
        result.notes.append(
            f"The target applies to {SUBSCRIBERS[1]} against {SUBSCRIBERS[0]} subscribers."
        )
    every = [s for runs in samples.values() for s in runs]
    result.checks.append(
        Check(
            label="deliveries missing: an event a subscriber never received (all runs)",
            value=float(sum(s.missing for s in every)),
            unit="deliveries",
            target=ZERO,
            detail=f"{sum(s.expected for s in every):,} expected (events x subscribers, "
            f"{count} events at {rate:g}/s per run); "
            f"{sum(s.duplicates for s in every)} duplicates; "
            f"{sum(s.failed for s in every)} mutations failed"
            + next((f"; first error: {s.first_error}" for s in every if s.first_error), ""),
        )
    )
    busy = max((s.usage.bench_cpu for s in samples[large]), default=math.nan)
    if busy > 0.8:
        result.notes.append(
            f"The bench process used {busy:.2f} of a core at {large} subscribers: "
            "the WebSocket clients may be part of what limits the fan-out."
        )


LIMITS = """Subscribers with the same document, variables and scope share one execution
per event (one access decision, one audit call with every member's read record, one
GraphQL execution, one JSON encoding of the result); each still gets its own frame. An
event's last frame leaves a few milliseconds after its first; what sets the p99 is the
path before the first frame: the command, the projector's page before the feed may
deliver and the audit statement of N records, on a core shared with PostgreSQL. An
append hidden from the log's readers by an older open transaction used to cost a whole
poll (0.1 s) and decided the p99 at both sizes; followers owed an event now read again
within milliseconds (docs/performance.md)."""


SPEC = RowSpec(
    number=6,
    slug="fanout",
    title="Subscription fan-out over WebSocket",
    available=feature_missing,
    run=measure,
)
