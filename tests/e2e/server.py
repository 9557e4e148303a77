"""Starts a real ``careteam serve`` process for end-to-end tests and talks GraphQL to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx

from services.auth import DevIssuer, Role

DEFAULT_ORG = UUID("00000000-0000-4000-8000-000000000001")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """One ``careteam serve`` subprocess on a free loopback port."""

    def __init__(
        self, *, data_dir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.args = args
        self.data_dir = data_dir
        base = {k: v for k, v in os.environ.items() if k != "CARETEAM_KAFKA_BOOTSTRAP_SERVERS"}
        self.env = {**base, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"
        self.default_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = self._spawn(log)
        self._wait_ready(timeout)
        return self

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in time:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def token(
        self,
        role: str = "care_manager",
        *,
        user: UUID | None = None,
        org: UUID = DEFAULT_ORG,
        **kwargs: Any,
    ) -> str:
        """A token from the server's development issuer (same data folder)."""
        return DevIssuer(self.data_dir).mint(
            role=Role(role), user_id=user or uuid4(), organisation_id=org, **kwargs
        )

    def use(self, token: str) -> ServerProcess:
        """Sends ``token`` with every later request of this client."""
        self.default_token = token
        return self

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> dict[str, Any]:
        """POSTs a GraphQL document; returns the decoded JSON body (any status)."""
        bearer = token or self.default_token
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {bearer}"} if bearer else {},
            timeout=30.0,
        )
        body: dict[str, Any] = response.json()
        return body
