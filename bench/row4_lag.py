"""Row 4: a mutation's effect visible in the read model, end to end over HTTP.

A real ``careteam serve`` subprocess (API and projector in one process, on a fresh
database of the row's server) takes ``assignCareTeam`` mutations from an admin's
development token at a fixed rate (``--rate``, default 300 commands/s) for
``--lag-seconds`` (default 20 s) after a 2-second warm-up that is not counted. Each
mutation names a new care manager; it counts as visible when its own response (which
careteam answers only after every read model has applied the command's events:
read-your-writes) shows that care manager. The lag of a command is the time from the
moment it was due to be sent to its response: the load is open-loop (commands are sent
on schedule whether or not earlier ones have answered), so a slow server cannot hide its
queue by slowing the client (no coordinated omission). A command that failed, timed out
(10 s), was refused as a conflict, or was not sent because 256 were already outstanding
never became visible: it counts as an unbounded lag, so when more than 1% of commands
fail the p99 is reported as unbounded. Before the load, 20 commands sent one at a time
give the unloaded latency (service time without queueing). The client is
``bench.http.MiniHttpClient`` (about 0.1 ms of CPU per request; httpx costs
1.2-2.7 ms here and would saturate the load generator's core before the server's).

Baseline: a raw asyncpg round trip at the same rate from the same process: one
``INSERT ... RETURNING`` per command on a pool of 16 connections, the least a write that
its writer then sees can cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from bench import profiling, stats
from bench.base import RowContext, RowSpec, usage_series
from bench.environment import Monitor, Usage, describe_cores, pin_tree
from bench.http import MiniHttpClient
from bench.results import Check, Comparison, Profile, RowResult, Series, Target

TARGET_RATE = 300.0
TARGET = Target("p99 at most 50 ms at 300 commands/s", "<=", 50.0)
ZERO = Target("zero", "<=", 0.0)
ORG = UUID("00000000-0000-4000-8000-00000000b0b4")
PATIENTS = 500
WARMUP_SECONDS = 2.0
REQUEST_TIMEOUT = 10.0
RAW_POOL = 16
MAX_IN_FLIGHT = 256
PROBES = 20

REGISTER = """mutation($input: RegisterPatientInput!) {
  registerPatient(input: $input) { __typename ... on PatientPayload { patient { id } } }
}"""
ASSIGN = """mutation($id: UUID!, $cm: UUID!) {
  assignCareTeam(input: {patientId: $id, careManagerId: $cm}) {
    __typename ... on PatientPayload { patient { careTeam { careManagerId } } }
  }
}"""


def feature_missing() -> str | None:
    """Why row 4 cannot run (None: it can): it needs the API with auth and the mutation."""
    try:
        from services.api.schema import build_schema
        from services.auth import DevIssuer, Role  # noqa: F401
    except ImportError as exc:
        return f"the API cannot be imported ({exc})"
    sdl = build_schema().as_str()
    for needed in ("registerPatient", "assignCareTeam", "careManagerId"):
        if needed not in sdl:
            return f"the GraphQL schema has no {needed}"
    return None


@dataclass
class LagSample:
    """One open-loop run: a lag per counted command (seconds) and what went wrong."""

    lags: list[float] = field(default_factory=list)
    errors: int = 0
    stale: int = 0
    sent: int = 0
    dropped: int = 0
    first_error: str = ""
    unloaded: list[float] = field(default_factory=list)
    seconds: float = float("nan")
    usage: Usage = field(default_factory=Usage)

    def ms(self, q: float) -> float:
        """The q-th percentile lag over every counted command; one that failed or whose
        response did not show it never became visible, so it counts as unbounded."""
        failed = [math.inf] * (self.errors + self.stale)
        return stats.percentile(self.lags + failed, q) * 1000.0

    @property
    def achieved_rate(self) -> float:
        """Commands per second that became visible (failed ones do not count)."""
        return stats.throughput(len(self.lags), self.seconds)


async def open_loop(
    rate: float, count: int, warmup: int, call: Callable[[int], Awaitable[str]]
) -> LagSample:
    """Calls ``call(i)`` for i in range(count), the i-th due at start + i/rate, without
    waiting for earlier calls; ``call`` answers "ok", "stale" or "error". The first
    ``warmup`` calls are not counted. A call that would exceed MAX_IN_FLIGHT outstanding
    ones is not sent and counts as an error (the server is not keeping up), and every
    call ends within REQUEST_TIMEOUT, so a run always ends soon after its last call."""
    sample = LagSample()
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    def count_outcome(i: int, outcome: str, lag: float) -> None:
        if i < warmup:
            return
        if outcome == "ok":
            sample.lags.append(lag)
        elif outcome == "stale":
            sample.stale += 1
        else:
            sample.errors += 1

    async def one(i: int, due: float) -> None:
        try:
            outcome = await asyncio.wait_for(call(i), REQUEST_TIMEOUT)
        except Exception as exc:
            outcome = "error"
            if not sample.first_error:
                sample.first_error = f"{type(exc).__name__}: {exc}"[:300]
        count_outcome(i, outcome, loop.time() - due)

    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            sample.dropped += int(i >= warmup)
            count_outcome(i, "error", math.inf)
            continue
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    measured_from = start + warmup / rate
    if tasks:
        await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT + 5.0)
    for task in list(tasks):  # only if the event loop itself fell far behind
        task.cancel()
    sample.seconds = loop.time() - measured_from
    sample.sent = count - warmup
    return sample


# --- careteam serve ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ApiServer:
    url: str
    pid: int
    data_dir: Path
    log_path: Path
    # Processes running the server's other parts apart (their CPU counts as its own).
    parts: tuple[int, ...] = ()


@contextlib.asynccontextmanager
async def api_server(
    dsn: str,
    cores: frozenset[int],
    *,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> AsyncIterator[ApiServer]:
    """``careteam serve`` on a free loopback port against ``dsn``, pinned to ``cores``.

    ``env`` adds environment variables; ``command`` replaces ``careteam serve`` with
    another server (``{port}`` in it is replaced by the port) that answers ``/readyz``."""
    data_dir = Path(tempfile.mkdtemp(prefix="careteam-bench-api-"))
    port = _free_port()
    log_path = data_dir / "server.log"
    env = {**os.environ, "CARETEAM_DATABASE_URL": dsn, **(env or {})}
    if command is None:
        cmd = [sys.executable, "-m", "services.cli", "serve", "--port", str(port)]
        cmd += ["--data-dir", str(data_dir)]
    else:
        cmd = [part.replace("{port}", str(port)) for part in command]
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:
        pin_tree(proc.pid, cores)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60.0
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{cmd[2:4]} exited:\n{_tail(log_path)}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/readyz", timeout=1.0)).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[2:4]} not ready:\n{_tail(log_path)}")
                await asyncio.sleep(0.2)
        pin_tree(proc.pid, cores)  # threads started while it booted
        yield ApiServer(url=url, pid=proc.pid, data_dir=data_dir, log_path=log_path)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


# What ``careteam serve`` runs when the audit chain sealer runs apart (``--components``).
WITHOUT_SEALER = "api,projector,relay,partners"


@contextlib.asynccontextmanager
async def headless_parts(
    dsn: str, cores: frozenset[int], components: str, *, env: dict[str, str] | None = None
) -> AsyncIterator[int]:
    """``careteam serve --components components`` (no API) against ``dsn``, pinned to
    ``cores``, for as long as the block runs; yields its pid."""
    data_dir = Path(tempfile.mkdtemp(prefix="careteam-bench-parts-"))
    log_path = data_dir / "parts.log"
    env = {**os.environ, "CARETEAM_DATABASE_URL": dsn, **(env or {})}
    cmd = [sys.executable, "-m", "services.cli", "serve", "--components", components]
    cmd += ["--data-dir", str(data_dir)]
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:
        pin_tree(proc.pid, cores)
        await asyncio.sleep(1.0)
        if proc.returncode is not None:
            raise RuntimeError(f"serve --components {components} exited:\n{_tail(log_path)}")
        pin_tree(proc.pid, cores)  # threads started while it booted
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:]


def admin_token(data_dir: Path) -> str:
    from services.auth import DevIssuer, Role

    return DevIssuer(data_dir).mint(role=Role.ADMIN, user_id=uuid4(), organisation_id=ORG)


async def graphql_post(
    client: MiniHttpClient, _url: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post_json("/graphql", {"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


async def register_patients(client: MiniHttpClient, url: str, count: int) -> list[str]:
    """Registers ``count`` patients, eight at a time; returns their ids."""

    async def one(i: int) -> str:
        variables = {
            "input": {
                "givenName": "Bench",
                "familyName": f"Patient{i}",
                "birthDate": "1980-01-01",
                "mrn": f"MRN-B{i:05d}",
            }
        }
        body = await graphql_post(client, url, REGISTER, variables)
        result = (body.get("data") or {}).get("registerPatient") or {}
        if result.get("__typename") != "PatientPayload":
            raise RuntimeError(f"registerPatient failed: {body}")
        patient_id: str = result["patient"]["id"]
        return patient_id

    ids: list[str] = []
    for first in range(0, count, 8):
        ids += await asyncio.gather(*(one(i) for i in range(first, min(count, first + 8))))
    return ids


async def run_careteam(
    dsn: str,
    ctx: RowContext,
    count: int,
    warmup: int,
    api_cores: frozenset[int],
    profiles: list[Profile] | None = None,
) -> LagSample:
    async with api_server(dsn, api_cores) as server:
        headers = {"Authorization": f"Bearer {admin_token(server.data_dir)}"}
        async with MiniHttpClient(server.url, connections=MAX_IN_FLIGHT, headers=headers) as client:
            patients = await register_patients(client, server.url, PATIENTS)

            async def call(i: int) -> str:
                manager = str(uuid4())
                body = await graphql_post(
                    client, server.url, ASSIGN, {"id": patients[i % len(patients)], "cm": manager}
                )
                result = (body.get("data") or {}).get("assignCareTeam") or {}
                if result.get("__typename") != "PatientPayload":
                    raise RuntimeError(f"assignCareTeam answered {str(body)[:200]}")
                seen = result["patient"]["careTeam"]["careManagerId"]
                return "ok" if seen == manager else "stale"

            # Unloaded: one command at a time, to tell service time from queueing.
            unloaded: list[float] = []
            for i in range(PROBES):
                t0 = time.perf_counter()
                outcome = await call(i)
                unloaded.append(time.perf_counter() - t0)
                if outcome != "ok":
                    raise RuntimeError(
                        "assignCareTeam's response did not show its own change even "
                        f"without load:\n{_tail(server.log_path)}"
                    )
            with profiling.sampled_into(
                profiles,
                server.pid,
                ctx.profile_path(4, "careteam-serve"),
                f"careteam serve taking mutations at {ctx.options.rate:g}/s (last run)",
            ):
                with Monitor(ctx.server.postmaster_pid, extra_pid=server.pid) as monitor:
                    sample = await open_loop(ctx.options.rate, count, warmup, call)
            sample.usage = monitor.usage
            sample.unloaded = unloaded
    return sample


async def run_raw(dsn: str, ctx: RowContext, count: int, warmup: int) -> LagSample:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_round_trip (id uuid PRIMARY KEY, "
            "at timestamptz NOT NULL DEFAULT now())"
        )
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=RAW_POOL, max_size=RAW_POOL)
    try:

        async def call(_i: int) -> str:
            ident = uuid4()
            got = await pool.fetchval(
                "INSERT INTO bench_round_trip (id) VALUES ($1) RETURNING id", ident
            )
            return "ok" if got == ident else "stale"

        with Monitor(ctx.server.postmaster_pid) as monitor:
            sample = await open_loop(ctx.options.rate, count, warmup, call)
        sample.usage = monitor.usage
    finally:
        await pool.close()
    return sample


async def measure(ctx: RowContext) -> RowResult:
    opts = ctx.options
    result = RowResult(number=4, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    warmup = int(opts.rate * WARMUP_SECONDS)
    count = warmup + max(1, int(opts.rate * opts.lag_seconds))
    api_cores = ctx.cores.server
    samples: dict[str, list[LagSample]] = {"careteam": [], "raw": []}
    for run in range(opts.runs):
        order = ["careteam", "raw"] if run % 2 == 0 else ["raw", "careteam"]
        for system in order:
            async with ctx.databases.fresh() as dsn:
                if system == "careteam":
                    profiles = result.profiles if ctx.profiles_run(run) else None
                    sample = await run_careteam(dsn, ctx, count, warmup, api_cores, profiles)
                else:
                    sample = await run_raw(dsn, ctx, count, warmup)
            samples[system].append(sample)
            ctx.log(
                f"row 4 run {run + 1}/{opts.runs} {system:<8} p50 {sample.ms(50):7.1f} ms "
                f"p99 {sample.ms(99):7.1f} ms  {sample.achieved_rate:5.0f}/s  "
                f"errors {sample.errors} (not sent: {sample.dropped}) stale {sample.stale}"
                + (f" (first: {sample.first_error})" if sample.first_error else "")
            )
    _summarise(result, samples, opts.rate)
    result.placement = {
        "bench process (open-loop HTTP client, raw asyncpg client)": describe_cores(
            ctx.cores.loadgen
        ),
        "careteam serve (API and projector)": describe_cores(api_cores),
        "PostgreSQL server": ctx.server.describe(),
    }
    return result


def _summarise(result: RowResult, samples: dict[str, list[LagSample]], rate: float) -> None:
    labels = {
        "careteam": f"careteam mutation to visible read model over HTTP at {rate:.0f}/s",
        "raw": f"raw asyncpg INSERT ... RETURNING round trip at {rate:.0f}/s",
    }
    p99: dict[str, Series] = {}
    for system, runs in samples.items():
        baseline = system != "careteam"
        for q in (50, 99):
            series = result.add(
                Series(
                    key=f"{system}_p{q}",
                    label=f"{labels[system]}: p{q} lag",
                    unit="ms",
                    runs=[s.ms(q) for s in runs],
                    higher_is_better=False,
                    baseline=baseline,
                )
            )
            if q == 99:
                p99[system] = series
        if system == "careteam":
            result.add(
                Series(
                    key="careteam_unloaded_median",
                    label="careteam mutation over HTTP, one at a time (no load): median latency",
                    unit="ms",
                    runs=[stats.median(s.unloaded) * 1000.0 for s in runs],
                    higher_is_better=False,
                )
            )
        result.add(
            Series(
                key=f"{system}_rate",
                label=f"{labels[system]}: commands/s that became visible",
                unit="commands/s",
                runs=[s.achieved_rate for s in runs],
                baseline=baseline,
            )
        )
        result.series.extend(
            usage_series(system, labels[system], [s.usage for s in runs], baseline=baseline)
        )
    result.comparisons.append(
        Comparison.of("p99 lag: careteam / raw round trip", p99["careteam"], p99["raw"])
    )
    at_target = rate == TARGET_RATE
    result.checks.append(
        Check(
            label=f"careteam p99 lag at {rate:g} commands/s (median over runs)",
            value=p99["careteam"].median,
            unit="ms",
            target=TARGET if at_target else None,
            detail="" if at_target else f"the target applies at {TARGET_RATE:g} commands/s",
        )
    )
    ours = samples["careteam"]
    result.checks.append(
        Check(
            label="commands that failed or whose response did not show them (all runs)",
            value=float(sum(s.errors + s.stale for s in ours)),
            unit="commands",
            target=ZERO,
            detail=f"{sum(s.sent for s in ours):,} counted commands; "
            f"{sum(s.errors for s in ours)} errors (of which "
            f"{sum(s.dropped for s in ours)} not sent: over {MAX_IN_FLIGHT} outstanding), "
            f"{sum(s.stale for s in ours)} stale"
            + next((f"; first error: {s.first_error}" for s in ours if s.first_error), ""),
        )
    )


LIMITS = """One careteam serve and PostgreSQL share one core: 300 commands/s needs at most
3.3 ms of CPU per command for both. Measured 2026-12-06/07 (docs/performance.md, row 4's
passes): the core saturates at about 150-260 commands/s depending on the machine's day,
the API server process using about 0.74 of it and PostgreSQL about 0.24, some 4-5 ms per
command. In that process a profile at 170/s had 61% of the samples in requests (HTTP,
middleware, the strawberry view and executor, the command) and 26% in the projector's
pages (about two events a page below saturation, each page a fixed cost). Per command: 3
statements from the request (checked load with the policy's and the directory's checks,
which reads only the events after the aggregate kept in memory; append; answer view), a
share of the projector's page (5 statements for a page of one command: the log read,
BEGIN, one read shared by every read model the event touches, the registry's zones with
it, one write that also moves the checkpoints of the partitions with events, COMMIT),
the audit chain sealer and the read audit's group commit. A trivial authenticated GraphQL
request costs the server about 0.45 ms of CPU; a projector page of one event about
2.5-3 ms (careteam and PostgreSQL), of which the registry's and care-team months'
derivations are the largest parts. Past the rate the core can serve, the queue grows
without bound. Neither another core for the API process (298/s, p99 174 ms) nor two API
processes (254/s, the whole machine busy) meets the target; it needs a cheaper command
path (no general GraphQL executor per mutation) and cheaper per-event derivations."""


SPEC = RowSpec(
    number=4,
    slug="lag",
    title="Mutation to read model visible, end to end over HTTP",
    available=feature_missing,
    run=measure,
)
