"""Several copies of one careteam process (a relay, the partner workers) on one database:
one leads through its lease, the others stand by. Tests kill the leader with SIGKILL and
see a standby take over, telling the leader by the log line it writes on taking the lease.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path


class Standbys:
    """Copies of ``command`` with ``env``; each logs to its own file in ``folder``."""

    def __init__(
        self, command: list[str], env: dict[str, str], folder: Path, marker: str, cwd: Path
    ) -> None:
        self.command = command
        self.env = env
        self.folder = folder
        self.marker = marker  # what a copy logs when it takes the lease
        self.cwd = cwd
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._started = 0

    def start(self) -> int:
        n = self._started
        self._started += 1
        with self._log(n).open("wb") as out:
            self.procs[n] = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=out, stderr=out
            )
        return n

    def _log(self, n: int) -> Path:
        return self.folder / f"copy-{n}.log"

    def leaders(self) -> list[int]:
        """The running copies that have logged taking the lease."""
        return [
            n
            for n, proc in self.procs.items()
            if proc.poll() is None and self.marker in self._log(n).read_text(errors="replace")
        ]

    async def leader(self, within: float = 60.0) -> int:
        deadline = time.monotonic() + within
        while len(found := self.leaders()) != 1:
            assert len(found) < 2, f"two leaders at once: {found}"
            for n, proc in self.procs.items():
                assert proc.poll() is None, self._log(n).read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no copy took the lease"
            await asyncio.sleep(0.02)
        return found[0]

    async def kill_leader(self, within: float = 60.0) -> float:
        """SIGKILLs the leader; returns the seconds until another copy took the lease."""
        victim = await self.leader(within)
        proc = self.procs.pop(victim)
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.to_thread(proc.wait, 30)
        await self.leader(within)
        return time.monotonic() - killed

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


def child_env(**values: str) -> dict[str, str]:
    """This process's environment without a broker address, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k != "CARETEAM_KAFKA_BOOTSTRAP_SERVERS"}
    env.update(values)
    return env
