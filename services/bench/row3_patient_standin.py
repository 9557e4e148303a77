"""Row 3 STAND-IN: one patient's view over GraphQL, until the caseload query exists.

**This is not the caseload row.** The caseload GraphQL query is still being built; until
it lands this row measures the nearest read path that exists, ``patient(id:)``, so the
harness (server, auth, closed-loop readers, baseline, report) is ready for it. Replace
the query and the baseline when the caseload query is in the schema.

A real ``careteam serve`` subprocess on a fresh database holds 100 registered patients.
Sixteen concurrent clients (closed loop: each sends its next request when the previous
one answered) read random patients with an admin's development token, selecting the
identity, episode, care team, flags and open tasks; 200 warm-up requests are not
counted, then ``--events`` requests (at most 3,000) are timed.

Baseline: the same number of reads of the same read-model rows straight from
PostgreSQL with asyncpg (``SELECT doc FROM rm_patient_view WHERE key = $1``), sixteen
concurrent, from the bench process: the work the API wraps.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from services.bench import stats
from services.bench.base import RowContext, RowSpec, usage_series
from services.bench.environment import Monitor, Usage, describe_cores
from services.bench.http import MiniHttpClient
from services.bench.results import Comparison, RowResult, Series
from services.bench.row4_lag import (
    REQUEST_TIMEOUT,
    admin_token,
    api_server,
    feature_missing,
    graphql_post,
    register_patients,
)

CLIENTS = 16
PATIENTS = 100
WARMUP = 200
MAX_REQUESTS = 3_000

READ = """query($id: UUID!) {
  patient(id: $id) {
    __typename
    ... on Patient {
      id givenName familyName birthDate mrn status episodeNumber enrolledAt
      careTeam { careManagerId pcpId psychiatricConsultantId }
      flags { kind ruleId raisedAt }
      openTasks { kind dueOn }
    }
  }
}"""


@dataclass
class ReadSample:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = float("nan")
    usage: Usage = field(default_factory=Usage)

    @property
    def rate(self) -> float:
        return stats.throughput(len(self.latencies), self.seconds)

    def ms(self, q: float) -> float:
        return stats.percentile(self.latencies, q) * 1000.0


async def closed_loop(
    clients: int, warmup: int, count: int, call: Callable[[int], Awaitable[bool]]
) -> ReadSample:
    """``clients`` workers share ``warmup + count`` requests; only the last ``count``
    are timed (from the moment the first timed one starts)."""
    sample = ReadSample()
    next_index = 0
    started_at: list[float] = []

    async def worker() -> None:
        nonlocal next_index
        while next_index < warmup + count:
            i = next_index
            next_index += 1
            if i == warmup:
                started_at.append(time.perf_counter())
            t0 = time.perf_counter()
            try:
                ok = await asyncio.wait_for(call(i), REQUEST_TIMEOUT)
            except Exception:
                ok = False
            if i < warmup:
                continue
            if ok:
                sample.latencies.append(time.perf_counter() - t0)
            else:
                sample.errors += 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    begin = started_at[0] if started_at else time.perf_counter()
    sample.seconds = time.perf_counter() - begin
    return sample


async def run_careteam(dsn: str, ctx: RowContext, count: int) -> ReadSample:
    async with api_server(dsn, ctx.cores.server) as server:
        headers = {"Authorization": f"Bearer {admin_token(server.data_dir)}"}
        async with MiniHttpClient(server.url, connections=CLIENTS, headers=headers) as client:
            patients = await register_patients(client, server.url, PATIENTS)
            rnd = random.Random(3)

            async def call(_i: int) -> bool:
                body = await graphql_post(client, server.url, READ, {"id": rnd.choice(patients)})
                result = (body.get("data") or {}).get("patient") or {}
                return result.get("__typename") == "Patient"

            with Monitor(ctx.server.postmaster_pid, extra_pid=server.pid) as monitor:
                sample = await closed_loop(CLIENTS, WARMUP, count, call)
            sample.usage = monitor.usage
    return sample


async def run_raw(dsn: str, ctx: RowContext, keys: list[UUID], count: int) -> ReadSample:
    pool = await asyncpg.create_pool(dsn, min_size=CLIENTS, max_size=CLIENTS)
    try:
        rnd = random.Random(3)

        async def call(_i: int) -> bool:
            doc = await pool.fetchval(
                "SELECT doc FROM rm_patient_view WHERE key = $1", rnd.choice(keys)
            )
            return doc is not None

        with Monitor(ctx.server.postmaster_pid) as monitor:
            sample = await closed_loop(CLIENTS, WARMUP, count, call)
        sample.usage = monitor.usage
    finally:
        await pool.close()
    return sample


async def measure(ctx: RowContext) -> RowResult:
    opts = ctx.options
    result = RowResult(number=3, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.notes.append(
        "STAND-IN: measures patient(id:), not the caseload query (not in the schema yet)."
    )
    count = min(opts.events, MAX_REQUESTS)
    samples: dict[str, list[ReadSample]] = {"careteam": [], "raw": []}
    for run in range(opts.runs):
        async with ctx.databases.fresh() as dsn:
            # careteam first: its registrations fill the read model the baseline reads.
            ours = await run_careteam(dsn, ctx, count)
            conn = await asyncpg.connect(dsn)
            try:
                keys = [r["key"] for r in await conn.fetch("SELECT key FROM rm_patient_view")]
            finally:
                await conn.close()
            raw = await run_raw(dsn, ctx, keys, count)
        for system, sample in (("careteam", ours), ("raw", raw)):
            samples[system].append(sample)
            ctx.log(
                f"row 3 (stand-in) run {run + 1}/{opts.runs} {system:<8} "
                f"{sample.rate:>7,.0f} reads/s p99 {sample.ms(99):6.1f} ms errors {sample.errors}"
            )
    labels = {
        "careteam": f"STAND-IN careteam patient(id:) over HTTP, {CLIENTS} clients",
        "raw": f"raw asyncpg SELECT of the same read-model row, {CLIENTS} clients",
    }
    rate: dict[str, Series] = {}
    for system, runs in samples.items():
        baseline = system != "careteam"
        rate[system] = result.add(
            Series(
                key=f"{system}_rate",
                label=labels[system],
                unit="reads/s",
                runs=[s.rate for s in runs],
                baseline=baseline,
            )
        )
        result.add(
            Series(
                key=f"{system}_p99",
                label=f"{labels[system]}: p99 latency",
                unit="ms",
                runs=[s.ms(99) for s in runs],
                higher_is_better=False,
                baseline=baseline,
            )
        )
        result.series.extend(
            usage_series(system, labels[system], [s.usage for s in runs], baseline=baseline)
        )
    result.comparisons.append(
        Comparison.of("STAND-IN reads/s: careteam / raw asyncpg", rate["careteam"], rate["raw"])
    )
    errors = sum(s.errors for s in samples["careteam"])
    if errors:
        result.notes.append(f"{errors} careteam reads failed or were refused.")
    result.placement = {
        "bench process (HTTP clients, raw asyncpg clients)": describe_cores(ctx.cores.loadgen),
        "careteam serve (API and projector)": describe_cores(ctx.cores.server),
        "PostgreSQL server": ctx.server.describe(),
    }
    return result


SPEC = RowSpec(
    number=3,
    slug="patient-standin",
    title="STAND-IN for the caseload query: patient(id:) over GraphQL",
    available=feature_missing,
    run=measure,
)
