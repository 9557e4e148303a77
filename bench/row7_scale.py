"""Row 7: every role's query on a log of 1 million events and 20,000 patients, against the
same queries on 10,000 events.

Two databases on the row's server: a large one with ``--scale-events`` events (default
1,000,000; 50 per patient, so 20,000 patients) and a small one with 10,000 events (200
patients). Both are made the same way:

1. Patient journeys from ``workload.py`` (the domain commands users call: registration,
   enrollment, care team, start of treatment, then contacts and PHQ-9 screenings, about
   one screening in six raising a safety flag and tasks), 50 events each. Care teams are
   shared as in a real organisation: one care manager per 100 patients, one PCP per 50,
   one psychiatric consultant per 400, so the queried care manager, PCP and consultant
   have the same number of patients at both scales and only the size of everything
   around them changes.
2. Loaded with COPY (``copy_records_to_table``) into ``streams`` and ``events`` in
   chunks of 1,000 patients, one transaction each, exactly as the event store stores
   them: payloads encoded by the codec, identifying fields encrypted with each patient's
   own key (created through the key ring, as the first append would).
3. The read models are built by careteam's projector (``ProjectionRunner.catch_up``, in
   the bench process) and every event is sealed into the audit hash chain
   (``seal_once``) before any query, so the server measured is not catching up. Both
   durations are reported.

Each run starts ``careteam serve`` on the small database and on the large one, one after
the other in alternating order (pinned to the server core), and sends each query at
least ``REQUESTS`` times (after ``WARMUP`` not counted) from ``CLIENTS`` closed-loop
clients, and keeps sending it until ``SECONDS`` have passed, with each role's own
development token:

- care manager: ``caseload(first: 100)`` with every column (row 3's selection);
- care manager: ``patient(id:)`` of one of their patients (identity, episode, team,
  flags, open tasks);
- PCP: ``panel`` (their 50 patients with safety flags, awaiting recommendations and
  referrals);
- psychiatric consultant: ``reviewQueue(first: 50)``;
- admin: ``billingSummary`` of the current month for one care manager;
- compliance: ``auditTrail(patientId:, first: 100)`` of one patient.

The figure is, per query, p99 latency at the large scale over p99 at the small scale
(target: at most 1.5). Every read is audited, so the access log grows during the row as
it does in production. Also reported: p50s, the server's peak RSS, bytes per event of
the event log (table and indexes) and of the whole database, and load, projection and
sealing times.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from bench import profiling, stats
from bench.base import RowContext, RowSpec, usage_series
from bench.environment import Monitor, Usage, describe_cores
from bench.http import MiniHttpClient
from bench.results import Check, Comparison, Profile, RowResult, Series, Target
from bench.row3_caseload import CASELOAD
from bench.row4_lag import REQUEST_TIMEOUT, ApiServer, api_server, feature_missing
from bench.workload import META, ORG, STREAM_TYPE, Command, Team, patient_journey
from domain import codec
from projections.registry import all_projections
from services.audit.chain import seal_once
from services.crypto import KeyRing, encrypt_fields, patient_key_fields
from services.database import create_pool
from services.eventstore import EventStore
from services.projector.runner import ProjectionRunner
from services.settings import Settings

SMALL_EVENTS = 10_000
EVENTS_PER_PATIENT = 50
PATIENTS_PER_MANAGER = 100
PATIENTS_PER_PCP = 50
PATIENTS_PER_PSYCHIATRIST = 400
CHUNK_PATIENTS = 1_000
CLIENTS = 4
WARMUP = 10
REQUESTS = 150
SECONDS = 8.0
TARGET = Target("p99 at most 1.5x the same query at 10,000 events", "<=", 1.5)
ZERO = Target("zero", "<=", 0.0)


def _id(kind: int, n: int) -> UUID:
    """A stable id for team member ``n`` of a kind (1 care manager, 2 PCP, 3 consultant)."""
    return UUID(f"00000000-0000-4000-8{kind:03d}-{n:012d}")


def manager(n: int) -> UUID:
    return _id(1, n)


def pcp(n: int) -> UUID:
    return _id(2, n)


def psychiatrist(n: int) -> UUID:
    return _id(3, n)


@dataclass
class Loaded:
    """What one database holds and what making it cost."""

    events: int = 0
    patients: int = 0
    first_patient: UUID | None = None
    load_seconds: float = float("nan")
    project_seconds: float = float("nan")
    seal_seconds: float = float("nan")
    event_log_bytes: float = float("nan")
    database_bytes: float = float("nan")


def _constant(team: tuple[UUID, UUID, UUID | None]) -> Team:
    return lambda: team


def journeys(
    total_events: int, now: datetime, seed: int, per_patient: int = EVENTS_PER_PATIENT
) -> Iterator[list[list[Command]]]:
    """Chunks of CHUNK_PATIENTS patient journeys of ``per_patient`` events each, adding up
    to ``total_events`` events."""
    rnd = random.Random(seed)
    patients = total_events // per_patient

    def chunk(first: int) -> list[list[Command]]:
        out: list[list[Command]] = []
        for i in range(first, min(patients, first + CHUNK_PATIENTS)):
            team = (
                manager(i // PATIENTS_PER_MANAGER),
                pcp(i // PATIENTS_PER_PCP),
                psychiatrist(i // PATIENTS_PER_PSYCHIATRIST),
            )
            out.append(
                patient_journey(
                    rnd,
                    length=per_patient,
                    now=now,
                    single_event=False,
                    team=_constant(team),
                )
            )
        return out

    return (chunk(first) for first in range(0, patients, CHUNK_PATIENTS))


async def load(
    pool: asyncpg.Pool,
    raw: asyncpg.Connection,
    keyring: KeyRing,
    total_events: int,
    seed: int,
    per_patient: int = EVENTS_PER_PATIENT,
) -> Loaded:
    """COPYs ``total_events`` events (chunks of CHUNK_PATIENTS patients, ``per_patient``
    events each) into the log. ``raw`` has asyncpg's own jsonb codec (binary COPY), so
    documents go as JSON text."""
    loaded = Loaded()
    now = datetime.now(UTC)
    meta = orjson.dumps(META.as_json(), option=orjson.OPT_SORT_KEYS).decode()
    started = time.perf_counter()
    for chunk in journeys(total_events, now, seed, per_patient):
        streams: list[tuple[UUID, str, UUID]] = []
        events: list[tuple[Any, ...]] = []
        async with pool.acquire() as conn:
            keys = {}
            for journey in chunk:
                pid = journey[0].patient_id
                keys[pid] = await keyring.data_key(conn, pid)
            for journey in chunk:
                pid = journey[0].patient_id
                streams.append((pid, STREAM_TYPE, pid))
                version = 0
                for command in journey:
                    for event in command.events:
                        version += 1
                        payload = codec.encode_payload(event)
                        personal = patient_key_fields(type(event))
                        if personal:
                            payload = encrypt_fields(payload, personal, pid, keys[pid])
                        events.append(
                            (
                                uuid4(),
                                pid,
                                STREAM_TYPE,
                                version,
                                pid,
                                codec.event_name(event),
                                codec.event_version(event),
                                orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode(),
                                meta,
                                getattr(event, "occurred_at", None) or now,
                            )
                        )
        async with raw.transaction():
            await raw.copy_records_to_table(
                "streams", records=streams, columns=["stream_id", "stream_type", "patient_id"]
            )
            await raw.copy_records_to_table(
                "events",
                records=events,
                columns=[
                    "event_id",
                    "stream_id",
                    "stream_type",
                    "stream_version",
                    "patient_id",
                    "event_type",
                    "event_version",
                    "payload",
                    "metadata",
                    "occurred_at",
                ],
            )
        if loaded.first_patient is None and chunk:
            loaded.first_patient = chunk[0][0].patient_id
        loaded.events += len(events)
        loaded.patients += len(chunk)
    loaded.load_seconds = time.perf_counter() - started
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE")
    return loaded


async def prepare(
    dsn: str,
    master_key: bytes,
    total_events: int,
    ctx: RowContext,
    *,
    per_patient: int = EVENTS_PER_PATIENT,
    row: int = 7,
) -> Loaded:
    """Loads, projects and seals one database (``per_patient`` events per patient); returns
    what it holds. ``row`` names the row in the progress lines."""
    pool = await create_pool(dsn, Settings(db_pool_min=1, db_pool_max=4))
    try:
        keyring = KeyRing(master_key)
        raw = await asyncpg.connect(dsn)
        try:
            loaded = await load(pool, raw, keyring, total_events, seed=7, per_patient=per_patient)
        finally:
            await raw.close()
        ctx.log(
            f"row {row}: {loaded.events:,} events for {loaded.patients:,} patients loaded with "
            f"COPY in {loaded.load_seconds:.0f} s"
        )
        store = EventStore(pool, keyring=keyring)
        runner = ProjectionRunner(store, all_projections(), page_size=2_000)
        started = time.perf_counter()
        await runner.catch_up()
        loaded.project_seconds = time.perf_counter() - started
        ctx.log(f"row {row}: read models built in {loaded.project_seconds:.0f} s")
        started = time.perf_counter()
        async with pool.acquire() as conn:
            while await seal_once(conn, limit=20_000):
                pass
            loaded.seal_seconds = time.perf_counter() - started
            ctx.log(f"row {row}: audit chain sealed in {loaded.seal_seconds:.0f} s")
            await conn.execute("VACUUM ANALYZE")
            loaded.event_log_bytes = float(
                await conn.fetchval(
                    "SELECT pg_total_relation_size('events') + pg_total_relation_size('streams')"
                )
            )
            loaded.database_bytes = float(
                await conn.fetchval("SELECT pg_database_size(current_database())")
            )
    finally:
        await pool.close()
    return loaded


# --- the queries ---------------------------------------------------------------------

PATIENT = """query($id: UUID!) { patient(id: $id) { __typename ... on Patient {
  id givenName familyName birthDate mrn status episodeNumber enrolledAt
  careTeam { careManagerId pcpId psychiatricConsultantId }
  flags { kind ruleId raisedAt } openTasks { kind dueOn } } } }"""
PANEL = """{ panel { asOf patients { patientId givenName familyName mrn status
  weeksInTreatment latestPhq9 { total severity takenAt } phq9PercentChange safetyRisk
  safetyFlags { kind summary } recommendationsAwaiting openReferrals overdueReferrals }
  consultationsAwaiting { id } referrals { id } } }"""
REVIEW_QUEUE = """{ reviewQueue(first: 50) { totalCount asOf patients { priority patient {
  patientId givenName familyName status weeksInTreatment latestPhq9 { total takenAt }
  phq9PercentChange flags { kind summary } reviewReasons } } } }"""
BILLING = """query($month: Date!, $cm: UUID!) { billingSummary(month: $month, careManagerId: $cm)
  { month rows { patientId countedMinutes codes { code units } billable readyToSubmit
  missingDocumentation } billableUnits { code units } } }"""
AUDIT = """query($id: UUID!) { auditTrail(patientId: $id, first: 100) { __typename
  ... on AuditTrail { entries { kind at actorId role action streamVersion fields }
  pageInfo { hasNextPage endCursor } } } }"""


@dataclass(frozen=True)
class Query:
    key: str
    label: str
    role: str
    user: UUID
    text: str
    variables: Callable[[Loaded], dict[str, Any]]
    root: str


QUERIES = (
    Query(
        "caseload",
        "care manager: caseload(first: 100)",
        "care_manager",
        manager(0),
        CASELOAD,
        lambda _l: {"first": 100},
        "caseload",
    ),
    Query(
        "patient",
        "care manager: patient(id:)",
        "care_manager",
        manager(0),
        PATIENT,
        lambda loaded: {"id": str(loaded.first_patient)},
        "patient",
    ),
    Query("panel", "PCP: panel", "pcp", pcp(0), PANEL, lambda _l: {}, "panel"),
    Query(
        "review_queue",
        "psychiatric consultant: reviewQueue(first: 50)",
        "psychiatrist",
        psychiatrist(0),
        REVIEW_QUEUE,
        lambda _l: {},
        "reviewQueue",
    ),
    Query(
        "billing",
        "admin: billingSummary for one care manager",
        "admin",
        UUID("00000000-0000-4000-8000-00000000ad01"),
        BILLING,
        lambda _l: {"month": datetime.now(UTC).date().isoformat(), "cm": str(manager(0))},
        "billingSummary",
    ),
    Query(
        "audit",
        "compliance: auditTrail(patientId:, first: 100)",
        "compliance",
        UUID("00000000-0000-4000-8000-00000000c0c0"),
        AUDIT,
        lambda loaded: {"id": str(loaded.first_patient)},
        "auditTrail",
    ),
)


@dataclass
class QuerySample:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def ms(self, q: float) -> float:
        return stats.percentile(self.latencies, q) * 1000.0


@dataclass
class ScaleSample:
    queries: dict[str, QuerySample] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)


def rows_in(key: str, answer: dict[str, Any]) -> int:
    """How many rows a query's answer holds (its main list; 1 for one patient)."""
    lists = {
        "caseload": ("edges",),
        "panel": ("patients",),
        "review_queue": ("patients",),
        "billing": ("rows",),
        "audit": ("entries",),
    }
    if key not in lists:
        return 1
    value: Any = answer
    for name in lists[key]:
        value = value.get(name) or []
    return len(value)


def token(server: ApiServer, role: str, user: UUID) -> str:
    from services.auth import DevIssuer, Role

    return DevIssuer(server.data_dir).mint(role=Role(role), user_id=user, organisation_id=ORG)


async def closed_loop(
    count: int, seconds: float, call: Callable[[], Awaitable[None]]
) -> QuerySample:
    """CLIENTS workers send WARMUP requests, then timed ones until at least ``count`` were
    sent and ``seconds`` have passed (a fast query gets many samples, so its p99 is not
    one slow request among a hundred)."""
    sample = QuerySample()
    issued = 0
    timed_from: list[float] = []

    def more() -> bool:
        if issued < WARMUP + count:
            return True
        return bool(timed_from) and time.perf_counter() - timed_from[0] < seconds

    async def worker() -> None:
        nonlocal issued
        while more():
            timed = issued >= WARMUP
            if issued == WARMUP:
                timed_from.append(time.perf_counter())
            issued += 1
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(call(), REQUEST_TIMEOUT)
            except Exception as exc:
                if timed:
                    sample.errors += 1
                    if not sample.first_error:
                        sample.first_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            if timed:
                sample.latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return sample


async def query_all(
    dsn: str,
    ctx: RowContext,
    env: dict[str, str],
    loaded: Loaded,
    profiles: list[Profile] | None,
    effort: tuple[int, float] = (REQUESTS, SECONDS),
) -> ScaleSample:
    result = ScaleSample()
    async with api_server(dsn, ctx.cores.server, env=env) as server:
        with profiling.sampled_into(
            profiles,
            server.pid,
            ctx.profile_path(7, "careteam-serve-large"),
            f"careteam serve answering every role query at {loaded.events:,} events (last run)",
        ):
            with Monitor(ctx.server.postmaster_pid, extra_pid=server.pid) as monitor:
                for query in QUERIES:
                    headers = {"Authorization": f"Bearer {token(server, query.role, query.user)}"}
                    async with MiniHttpClient(
                        server.url, connections=CLIENTS, headers=headers
                    ) as client:
                        body = {"query": query.text, "variables": query.variables(loaded)}

                        async def call(
                            q: Query = query, c: MiniHttpClient = client, b: dict[str, Any] = body
                        ) -> None:
                            response = await c.post_json("/graphql", b)
                            data = response.json()
                            answer = (data.get("data") or {}).get(q.root)
                            if response.status != 200 or not answer:
                                raise RuntimeError(f"{response.status}: {str(data)[:300]}")
                            result.rows[q.key] = rows_in(q.key, answer)

                        result.queries[query.key] = await closed_loop(*effort, call)
            result.usage = monitor.usage
    return result


async def measure(ctx: RowContext) -> RowResult:
    return await measure_with(ctx, large_events=ctx.options.scale_events)


async def measure_with(
    ctx: RowContext,
    *,
    large_events: int,
    requests: int = REQUESTS,
    seconds: float = SECONDS,
) -> RowResult:
    """Row 7 with ``large_events`` in the large database (the real row: 1,000,000) and
    each query sent at least ``requests`` times for at least ``seconds``."""
    result = RowResult(number=7, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    master = os.urandom(32)
    env = {"CARETEAM_MASTER_KEY": base64.b64encode(master).decode()}
    small_events = min(SMALL_EVENTS, large_events)
    scales = {"small": small_events, "large": large_events}
    samples: dict[str, list[ScaleSample]] = {"small": [], "large": []}
    loaded: dict[str, Loaded] = {}
    async with contextlib.AsyncExitStack() as stack:
        dsns = {}
        for scale, events in scales.items():
            dsns[scale] = await stack.enter_async_context(ctx.databases.fresh())
            loaded[scale] = await prepare(dsns[scale], master, events, ctx)
        for run in range(ctx.options.runs):
            for scale in ("small", "large") if run % 2 == 0 else ("large", "small"):
                profiled = scale == "large" and ctx.profiles_run(run)
                sample = await query_all(
                    dsns[scale],
                    ctx,
                    env,
                    loaded[scale],
                    result.profiles if profiled else None,
                    (requests, seconds),
                )
                samples[scale].append(sample)
                ctx.log(
                    f"row 7 run {run + 1}/{ctx.options.runs} {scale:<5} "
                    + " ".join(f"{k} p99 {q.ms(99):.0f} ms" for k, q in sample.queries.items())
                )
    _summarise(result, samples, loaded, scales)
    result.placement = {
        "bench process (loader, projector, sealer, HTTP clients)": describe_cores(
            ctx.cores.loadgen
        ),
        "careteam serve": describe_cores(ctx.cores.server),
        "PostgreSQL server": ctx.server.describe(),
    }
    return result


def _summarise(
    result: RowResult,
    samples: dict[str, list[ScaleSample]],
    loaded: dict[str, Loaded],
    scales: dict[str, int],
) -> None:
    names = {"small": f"{scales['small']:,} events", "large": f"{scales['large']:,} events"}
    for query in QUERIES:
        p99: dict[str, Series] = {}
        for scale in ("small", "large"):
            runs = [s.queries[query.key] for s in samples[scale]]
            baseline = scale == "small"
            for q in (50, 99):
                series = result.add(
                    Series(
                        key=f"{query.key}_{scale}_p{q}",
                        label=f"{query.label} at {names[scale]}: p{q}",
                        unit="ms",
                        runs=[r.ms(q) for r in runs],
                        higher_is_better=False,
                        baseline=baseline,
                    )
                )
                if q == 99:
                    p99[scale] = series
        result.comparisons.append(
            Comparison.of(
                f"{query.label}: p99 at {names['large']} / at {names['small']}",
                p99["large"],
                p99["small"],
                target=TARGET,
            )
        )
    for scale in ("small", "large"):
        result.series.extend(
            usage_series(
                scale,
                f"careteam serve at {names[scale]}",
                [s.usage for s in samples[scale]],
                baseline=scale == "small",
            )
        )
        info = loaded[scale]
        per_event = info.event_log_bytes / max(1, info.events)
        result.add(
            Series(
                key=f"{scale}_log_bytes_per_event",
                label=f"event log (events and streams, with indexes) at {names[scale]}",
                unit="bytes/event",
                runs=[per_event],
                kind="storage",
                higher_is_better=False,
                baseline=scale == "small",
            )
        )
        result.add(
            Series(
                key=f"{scale}_database_bytes_per_event",
                label=f"whole database (log, read models, audit) at {names[scale]}",
                unit="bytes/event",
                runs=[info.database_bytes / max(1, info.events)],
                kind="storage",
                higher_is_better=False,
                baseline=scale == "small",
            )
        )
    failed = {
        q.key: sum(s.queries[q.key].errors for runs in samples.values() for s in runs)
        for q in QUERIES
    }
    first = next(
        (
            s.queries[q.key].first_error
            for runs in samples.values()
            for s in runs
            for q in QUERIES
            if s.queries[q.key].first_error
        ),
        "",
    )
    result.checks.append(
        Check(
            label="queries that failed (all runs, both scales)",
            value=float(sum(failed.values())),
            unit="requests",
            target=ZERO,
            detail=", ".join(f"{k} {v}" for k, v in failed.items() if v)
            + (f"; first: {first}" if first else ""),
        )
    )
    for scale in ("small", "large"):
        counts = samples[scale][-1].rows if samples[scale] else {}
        result.notes.append(
            f"Rows in each answer at {names[scale]}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + "."
        )
    large = loaded["large"]
    result.notes.append(
        f"Large database: {large.events:,} events, {large.patients:,} patients; loaded with "
        f"COPY in {large.load_seconds:.0f} s, read models built in "
        f"{large.project_seconds:.0f} s "
        f"({stats.throughput(large.events, large.project_seconds):,.0f} events/s), "
        f"audit chain sealed in {large.seal_seconds:.0f} s."
    )


LIMITS = """Queries read by indexed keys and keyset pages, so their cost follows the size of the
answer, not of the log; a p99 that moves is one slow request in a few hundred (compare
the p50s and the per-run ratios). The audit trail also grows with every audited read of
the row itself."""


SPEC = RowSpec(
    number=7,
    slug="scale",
    title="Role queries at 1 million events and 20,000 patients",
    available=feature_missing,
    run=measure,
)
