"""What every row module shares: its options, its context and the shape of a row."""

from __future__ import annotations

import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.environment import BenchServer, CorePlan, Databases, Usage
from bench.results import Kind, RowResult, Series

DEFAULT_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True)
class BenchOptions:
    """What ``python -m bench`` was asked to do."""

    rows: tuple[int, ...] = DEFAULT_ROWS
    events: int = 20_000
    writers: tuple[int, ...] = (1, 16)
    runs: int = 3
    out: Path = Path("bench-results")
    rate: float = 300.0
    scale_events: int = 1_000_000
    lag_seconds: float = 20.0
    pin: bool = True
    charts: bool = True
    profile: bool = True
    quiet: bool = False


@dataclass
class RowContext:
    """What a row gets: options, its server, fresh databases, the core plan, a logger."""

    options: BenchOptions
    server: BenchServer
    databases: Databases
    cores: CorePlan
    log: Callable[[str], None] = field(default=lambda _m: None)

    def profile_path(self, row: int, name: str) -> Path:
        """Where a row's profile of ``name`` is written (beside the report)."""
        return self.options.out / "profiles" / f"row{row}-{name}.txt"

    def profiles_run(self, run: int) -> bool:
        """Whether ``run`` (0-based) is the one profiled: the last, when profiling is on."""
        return self.options.profile and run == self.options.runs - 1


def stderr_logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    return log


# A row: its number, a slug, a title, whether its feature exists (None: yes; else why
# not), and the coroutine that measures it.
Availability = Callable[[], str | None]


@dataclass(frozen=True)
class RowSpec:
    number: int
    slug: str
    title: str
    available: Availability
    run: Callable[[RowContext], Awaitable[RowResult]]


def always() -> str | None:
    return None


def usage_series(key: str, label: str, usages: list[Usage], *, baseline: bool) -> list[Series]:
    """Memory and CPU series for one system's measurements (one Usage per run); figures
    that could not be measured (an external server) are left out."""
    out: list[Series] = []

    def add(suffix: str, what: str, unit: str, values: list[float], kind: Kind) -> None:
        if all(math.isnan(v) for v in values):
            return
        out.append(
            Series(
                key=f"{key}_{suffix}",
                label=f"{label}: {what}",
                unit=unit,
                runs=values,
                kind=kind,
                higher_is_better=False,
                baseline=baseline,
            )
        )

    add("rss", "bench process peak RSS", "bytes", [u.bench_peak_rss for u in usages], "memory")
    add(
        "server_pss",
        "PostgreSQL peak PSS (postmaster and backends)",
        "bytes",
        [u.server_peak_pss for u in usages],
        "memory",
    )
    add("api_rss", "API server peak RSS", "bytes", [u.extra_peak_rss for u in usages], "memory")
    add("cpu", "bench process CPU", "cores", [u.bench_cpu for u in usages], "cpu")
    add("server_cpu", "PostgreSQL CPU", "cores", [u.server_cpu for u in usages], "cpu")
    add("api_cpu", "API server CPU", "cores", [u.extra_cpu for u in usages], "cpu")
    add(
        "other_cpu",
        "CPU used by everything else on the machine",
        "cores",
        [u.other_cpu for u in usages],
        "cpu",
    )
    return out
