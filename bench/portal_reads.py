"""What rows 8 and 9 share: one portal query over HTTP, careteam against its raw endpoint.

Each run starts the two servers one after the other, never at once, in alternating order,
pinned to the server core: a real ``careteam serve`` (its audit chain sealer in its own
``serve --components sealer`` on the same core, its CPU counted as careteam's, as row 3
runs it) and the raw Starlette + asyncpg endpoint of ``bench.raw_caseload`` under the same
uvicorn settings. Before timing, each server answers every distinct request of the row
once (the probes); the two systems' answers are compared, probe by probe (a ``Check``).
Then ``CLIENTS`` clients send requests in a closed loop as in row 3 (each its next when
the previous one answered; ``WARMUP`` not counted); a timed request counts only when its
answer equals that server's answer to the same probe. Throughput is requests answered per
second; p50 and p99 are latencies as the client saw them. The last careteam run is
profiled with py-spy.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from bench import profiling
from bench.base import Availability, RowContext
from bench.environment import Monitor, describe_cores
from bench.http import MiniHttpClient
from bench.results import Check, Profile, RowResult, Target
from bench.row3_caseload import CLIENTS, WARMUP, ReadSample, closed_loop, summarise_reads
from bench.row4_lag import (
    WITHOUT_SEALER,
    ApiServer,
    api_server,
    feature_missing,
    headless_parts,
)

# What one response returned, in order, comparable between careteam and the raw endpoint.
Answer = tuple[Hashable, ...]
Call = Callable[[int], Awaitable[Answer]]
Reader = Callable[[], contextlib.AbstractAsyncContextManager[tuple[ApiServer, Call]]]
TARGET = Target("at least 50% of the raw endpoint's throughput", ">=", 0.5)
ZERO = Target("zero", "<=", 0.0)
SYSTEMS = ("careteam", "raw")


def needs(field: str) -> Availability:
    """A row's availability: row 4's (the API with auth) and ``field`` in the schema."""

    def available() -> str | None:
        missing = feature_missing()
        if missing is not None:
            return missing
        from services.api.schema import build_schema

        return None if field in build_schema().as_str() else f"the schema has no {field}"

    return available


@dataclass(frozen=True)
class PortalRead:
    """One row's query: its number and name, the two systems' labels, how many distinct
    requests it sends (request ``i`` is probe ``i % probes``) and how many it times."""

    number: int
    query: str
    careteam_label: str
    raw_label: str
    probes: int
    requests: int
    what: str = "rows"


@contextlib.asynccontextmanager
async def careteam_graphql(
    dsn: str,
    ctx: RowContext,
    env: dict[str, str],
    token: Callable[[ApiServer], str],
    body: Callable[[int], dict[str, Any]],
    root: str,
    answer: Callable[[dict[str, Any]], Answer],
) -> AsyncIterator[tuple[ApiServer, Call]]:
    """A ``careteam serve`` (sealer apart) and a call posting ``body(i)`` with ``token``'s
    bearer; the call returns ``answer`` of the connection under ``root``, or raises."""
    async with (
        headless_parts(dsn, ctx.cores.server, "sealer", env=env) as sealer_pid,
        api_server(
            dsn, ctx.cores.server, env={**env, "CARETEAM_COMPONENTS": WITHOUT_SEALER}
        ) as server,
    ):
        server.parts = (sealer_pid,)
        headers = {"Authorization": f"Bearer {token(server)}"}
        async with MiniHttpClient(server.url, connections=CLIENTS, headers=headers) as client:

            async def call(i: int) -> Answer:
                response = await client.post_json("/graphql", body(i))
                data: dict[str, Any] = response.json()
                page = (data.get("data") or {}).get(root) or {}
                if response.status != 200 or "edges" not in page:
                    raise RuntimeError(f"{root} answered {response.status}: {str(data)[:300]}")
                return answer(page)

            yield server, call


@contextlib.asynccontextmanager
async def raw_json(
    dsn: str,
    ctx: RowContext,
    env: dict[str, str],
    path: Callable[[int], str],
    answer: Callable[[Any], Answer],
) -> AsyncIterator[tuple[ApiServer, Call]]:
    """The raw endpoint (``bench.raw_caseload``) and a call getting ``path(i)``."""
    command = [sys.executable, "-m", "bench.raw_caseload", "--port", "{port}"]
    async with api_server(
        dsn, ctx.cores.server, env={**env, "BENCH_RAW_DSN": dsn}, command=command
    ) as server:
        async with MiniHttpClient(server.url, connections=CLIENTS) as client:

            async def call(i: int) -> Answer:
                response = await client.get(path(i))
                if response.status != 200:
                    raise RuntimeError(f"raw endpoint answered {response.status}")
                return answer(response.json())

            yield server, call


async def run_one(
    read: PortalRead, reader: Reader, ctx: RowContext, profiles: list[Profile] | None
) -> tuple[ReadSample, list[Answer]]:
    """One system's run: the probes' answers, then the timed closed loop."""
    async with reader() as (server, call):
        answers = [await call(i) for i in range(read.probes)]

        async def timed(i: int) -> bool:
            return await call(i) == answers[i % read.probes]

        with profiling.sampled_into(
            profiles,
            server.pid,
            ctx.profile_path(read.number, "careteam-serve"),
            f"careteam serve answering {read.query} (last run)",
        ):
            with Monitor(
                ctx.server.postmaster_pid, extra_pid=server.pid, also=server.parts
            ) as monitor:
                sample = await closed_loop(CLIENTS, WARMUP, read.requests, timed)
        sample.usage = monitor.usage
    return sample, answers


async def compare(
    read: PortalRead, ctx: RowContext, result: RowResult, readers: dict[str, Reader]
) -> None:
    """Every run of both systems, summarised into ``result``."""
    samples: dict[str, list[ReadSample]] = {s: [] for s in SYSTEMS}
    differing: list[int] = []
    sizes: list[int] = []
    for run in range(ctx.options.runs):
        answers: dict[str, list[Answer]] = {}
        for system in SYSTEMS if run % 2 == 0 else SYSTEMS[::-1]:
            profiled = system == "careteam" and ctx.profiles_run(run)
            sample, answers[system] = await run_one(
                read, readers[system], ctx, result.profiles if profiled else None
            )
            samples[system].append(sample)
            ctx.log(
                f"row {read.number} run {run + 1}/{ctx.options.runs} {system:<8} "
                f"{sample.rate:>7,.1f} req/s p50 {sample.ms(50):6.1f} ms "
                f"p99 {sample.ms(99):6.1f} ms errors {sample.errors}"
                + (f" (first: {sample.first_error})" if sample.first_error else "")
            )
        pairs = zip(answers["careteam"], answers["raw"], strict=True)
        differing.append(sum(mine != raw for mine, raw in pairs))
        sizes = [len(a) for a in answers["raw"]]
    summarise(result, read, samples, differing)
    if sizes:
        result.notes.append(
            f"{read.what.capitalize()} per answer over the {read.probes} distinct requests: "
            f"{min(sizes)} to {max(sizes)} (median {statistics.median(sizes):g})."
        )
    result.placement = {
        "bench process (HTTP clients)": describe_cores(ctx.cores.loadgen),
        "careteam serve / raw endpoint (one at a time)": describe_cores(ctx.cores.server),
        "PostgreSQL server": ctx.server.describe(),
    }


def summarise(
    result: RowResult,
    read: PortalRead,
    samples: dict[str, list[ReadSample]],
    differing: list[int],
) -> None:
    summarise_reads(
        result,
        samples,
        {"careteam": read.careteam_label, "raw": read.raw_label},
        comparison=f"{read.query} requests/s: careteam / raw endpoint",
        failed="requests that failed or answered differently from their probe (all runs)",
        target=TARGET,
    )
    result.checks.append(
        Check(
            label=f"requests whose careteam and raw answers differed (all runs, "
            f"{read.probes} per run)",
            value=float(sum(differing)),
            unit="requests",
            target=ZERO,
            detail="per run: " + ", ".join(str(d) for d in differing),
        )
    )
