"""Row 3's baseline: a raw Starlette + asyncpg endpoint returning a caseload's rows as JSON.

It is the least an HTTP service can do to serve the caseload: one indexed SELECT of the
same read-model rows careteam's ``caseload`` query reads (``rm_registry``, the care
manager's patients on the caseload), their JSON documents joined into one array as
PostgreSQL returned them, no authentication, no GraphQL, no derived columns, no audit.
It runs under uvicorn with the same settings as ``careteam serve`` (one process, the
same pool size, access log on)::

    BENCH_RAW_DSN=postgresql://... python -m bench.raw_caseload --port 8001
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.settings import Settings

QUERY = """SELECT doc::text FROM rm_registry
           WHERE on_caseload AND care_manager_id = $1
           ORDER BY enrolled_at, key
           LIMIT $2"""


def build_app(dsn: str) -> Starlette:
    pool: asyncpg.Pool | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        defaults = Settings()
        pool = await asyncpg.create_pool(
            dsn, min_size=defaults.db_pool_min, max_size=defaults.db_pool_max
        )
        try:
            yield
        finally:
            await pool.close()

    async def caseload(request: Request) -> Response:
        assert pool is not None
        try:
            manager = UUID(request.query_params["careManagerId"])
            first = int(request.query_params.get("first", "200"))
        except (KeyError, ValueError):
            return JSONResponse({"error": "careManagerId and first"}, status_code=400)
        rows = await pool.fetch(QUERY, manager, first)
        body = "[" + ",".join(r[0] for r in rows) + "]"
        return Response(body, media_type="application/json")

    async def ready(_request: Request) -> Response:
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[Route("/caseload", caseload), Route("/readyz", ready)], lifespan=lifespan
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build_app(os.environ["BENCH_RAW_DSN"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", lifespan="on")


if __name__ == "__main__":
    main()
