"""Sampling profiles of a process while a row measures it (py-spy), summarised for the report.

A target that is missed must say what limits it; a profile of the process doing the work
says where its CPU goes. ``sample(pid, path)`` runs ``py-spy record`` against ``pid``
(another process: the API server, or the bench process itself for rows whose careteam
code runs in-process) in ``--nonblocking`` mode, so the profiled process is never paused,
at 100 samples a second, writing collapsed stacks ("frame;frame;frame count" lines, the
input of any flame-graph tool) to ``path``. ``summarise`` reads them back: own time (the
frame on top of the stack) by package and by function, and inclusive time (anywhere on
the stack) of careteam's own functions, as percentages of the samples that had Python on
the CPU (idle threads are not sampled).

py-spy needs ptrace rights over the process (the same user, and a ptrace_scope that
allows it); when it cannot attach, the profile says why instead of failing the row.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.results import Profile

RATE = 100
TOP = 15
# "function (module/path.py:123)" -> "function (module/path.py)": lines differ per sample.
_LINE = re.compile(r":\d+\)$")
# Inclusive time is listed for careteam's own code only (that is what can be changed),
# leaving out the entry points and middleware every request passes through, and the
# benchmark's own harness.
_OURS = re.compile(r"\((services|domain|projections)/")
_THROUGH = re.compile(r"\(services/cli\.py\)|__call__ \(services/api/app\.py\)|\(bench/")
# "name (package/module.py:12)" -> "package"; "<frozen abc>" and the like stay as they are.
_PACKAGE = re.compile(r"\(([^/)]+)/")


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@contextlib.contextmanager
def sample(pid: int, path: Path, label: str) -> Iterator[Profile]:
    """Samples ``pid`` for the duration of the block; the Profile is filled on exit."""
    profile = Profile(label=label, raw_path=str(path))
    exe = _py_spy()
    if exe is None:
        profile.error = "py-spy is not installed (uv sync installs it with the dev group)"
        yield profile
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [exe, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"]
    command += ["--nonblocking", "--output", str(path)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield profile
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        _fill(profile, path, err.decode(errors="replace") if err else "")


def _fill(profile: Profile, path: Path, stderr: str) -> None:
    # py-spy may still be flushing when it exits on a slow machine.
    for _ in range(20):
        if path.exists() and path.stat().st_size > 0:
            break
        time.sleep(0.1)
    if not path.exists() or path.stat().st_size == 0:
        profile.error = "py-spy wrote no samples: " + (stderr.strip().splitlines() or ["?"])[-1]
        return
    collapsed = path.read_text(errors="replace")
    profile.samples, profile.own, profile.inclusive = summarise(collapsed)
    profile.packages = by_package(collapsed)


def frame_name(frame: str) -> str:
    return _LINE.sub(")", frame.strip())


def summarise(
    collapsed: str, top: int = TOP
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, top own-time frames, top inclusive frames) from collapsed stacks, each
    frame with its share of the samples in percent."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            if _OURS.search(name) and not _THROUGH.search(name):
                inclusive[name] += count
    if total == 0:
        return 0, [], []

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in counter.most_common(top)]

    return total, share(own), share(inclusive)


def by_package(collapsed: str, top: int = TOP) -> list[tuple[str, float]]:
    """Own time by the top-level package of the frame on top of the stack."""
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        leaf = stack.split(";")[-1]
        match = _PACKAGE.search(leaf)
        own[match.group(1) if match else frame_name(leaf)] += int(count_text)
        total += int(count_text)
    return [(name, 100.0 * n / total) for name, n in own.most_common(top)] if total else []


@contextlib.contextmanager
def sampled_into(
    profiles: list[Profile] | None, pid: int, path: Path, label: str
) -> Iterator[None]:
    """Samples ``pid`` for the block and appends the profile to ``profiles``; does nothing
    when ``profiles`` is None (a run that is not profiled)."""
    if profiles is None:
        yield
        return
    with sample(pid, path, label) as profile:
        yield
    profiles.append(profile)
