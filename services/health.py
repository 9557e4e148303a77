"""Health of a careteam process: liveness and readiness, for the API's /healthz and
/readyz and for a worker (``serve --components`` without ``api``) on
``CARETEAM_HEALTH_PORT``, so Kubernetes can probe every component the same way.

Ready means: the database answers within two seconds, no migration this release needs is
pending, and the audit chain (if this process seals it) is intact. Live means the
process answers at all (a worker whose loop died ends the process instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.database import RETRY_AFTER_SECONDS, pending_migrations

log = logging.getLogger("careteam.health")


async def readiness(runtime: Any) -> JSONResponse:
    """The /readyz answer for a running process's ``runtime`` (None while starting)."""
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        async with runtime.pool.acquire(timeout=2) as conn:
            pending = await pending_migrations(conn)
    except Exception:
        log.warning("readiness check failed: database unreachable")
        return JSONResponse(
            {"status": "database unreachable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if pending:
        return JSONResponse({"status": "migrations pending"}, status_code=503)
    if not runtime.chain_health.intact:
        reason = runtime.chain_health.reason
        return JSONResponse({"status": "audit chain broken", "reason": reason}, 503)
    return JSONResponse({"status": "ready"})


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def worker_app(holder: dict[str, Any]) -> Starlette:
    """/healthz and /readyz of a worker; ``holder["runtime"]`` once it has started."""

    async def readyz(_request: Request) -> JSONResponse:
        return await readiness(holder.get("runtime"))

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


@contextlib.asynccontextmanager
async def worker_probes(host: str, port: int | None, holder: dict[str, Any]) -> AsyncIterator[None]:
    """Serves ``worker_app`` on ``host:port`` while the block runs (nothing when None)."""
    if port is None:
        yield
        return
    import uvicorn

    config = uvicorn.Config(
        worker_app(holder),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
