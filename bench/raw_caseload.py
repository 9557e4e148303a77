"""The baselines of rows 3, 8 and 9: a raw Starlette + asyncpg endpoint per portal query,
returning the rows careteam's query reads as JSON.

Each route is the least an HTTP service can do to serve the same answer: no
authentication, no GraphQL, no audit, the caller's scope given as a parameter.

- ``/caseload`` (row 3): one indexed SELECT of the read-model rows careteam's
  ``caseload`` query reads (``rm_registry``, the care manager's patients on the
  caseload), their JSON documents joined into one array as PostgreSQL returned them, no
  derived columns.
- ``/search`` (row 8): ``searchPatients`` by name prefix and birth date: the same keyed
  digests (``services.patient_search.SearchIndex``, its key from the database's key ring
  opened with ``BENCH_RAW_MASTER_KEY`` as ``careteam serve`` opens it), the same lookup of
  each in ``patient_search_index`` and the same SELECT of the patient view's documents,
  restricted to the care manager's care team (``rm_patient_access``), first page by
  patient id; the documents as PostgreSQL returned them.
- ``/worklist`` (row 9): a care manager's worklist for today in one SELECT: safety
  alerts, outreach and measurement due from the registry's stored flag onsets and the
  open tasks (theirs or the team's) from the patient view, ordered by urgency, due day,
  patient and task as careteam orders them, the page built into one JSON array by
  PostgreSQL. "Today" is the UTC date (the organisation has no zone of its own).

It runs under uvicorn with the same settings as ``careteam serve`` (one process, the
same pool size, access log on)::

    BENCH_RAW_DSN=postgresql://... [BENCH_RAW_MASTER_KEY=base64] \
        python -m bench.raw_caseload --port 8001
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from projections.clinic_calendar import today_in
from services.api.patient.search import NOT_FORGOTTEN
from services.crypto import KeyRing
from services.patient_search import SearchIndex, name_tokens
from services.settings import Settings

QUERY = """SELECT doc::text FROM rm_registry
           WHERE on_caseload AND care_manager_id = $1
           ORDER BY enrolled_at, key
           LIMIT $2"""

# $1 organisation, $2 care manager, $3 page size, $4... the digests (each must match).
SEARCH = """SELECT v.doc::text FROM rm_patient_view v
            WHERE v.organisation_id = $1 AND {digests} AND {not_forgotten}
              AND EXISTS (SELECT 1 FROM rm_patient_access a
                          WHERE a.patient_id = v.key AND a.organisation_id = $1
                            AND $2 IN (a.care_manager_id, a.pcp_id,
                                       a.psychiatric_consultant_id))
            ORDER BY v.key LIMIT $3"""
SEARCH_DIGEST = (
    "v.key IN (SELECT patient_id FROM patient_search_index "
    "WHERE organisation_id = $1 AND digest = ${n})"
)

# $1 organisation, $2 care manager, $3 today, $4 page size.
WORKLIST = """
WITH items AS (
  SELECT f.urgency, f.kind, r.key AS patient_id, f.due_on, NULL::uuid AS task_id,
         NULL::text AS task_kind, NULL::uuid AS assignee_id, false AS overdue
  FROM rm_registry r
  CROSS JOIN LATERAL (VALUES (0, 'safety_alert', r.safety_risk_on),
                             (6, 'outreach_due', r.overdue_contact_on),
                             (7, 'measurement_due', r.measurement_due_on))
       AS f(urgency, kind, due_on)
  WHERE r.organisation_id = $1 AND r.care_manager_id = $2 AND r.on_caseload
    AND f.due_on <= $3
  UNION ALL
  SELECT CASE WHEN (t->>'due_on')::date < $3 THEN 1
              WHEN (t->>'due_on')::date = $3 THEN 5 ELSE 8 END,
         'task', v.key, (t->>'due_on')::date, (t->>'id')::uuid, t->>'kind',
         (t->>'assignee_id')::uuid, (t->>'due_on')::date < $3
  FROM rm_patient_view v
  JOIN rm_patient_access a ON a.patient_id = v.key
  CROSS JOIN LATERAL jsonb_array_elements(v.doc->'tasks') AS t
  WHERE a.organisation_id = $1 AND a.care_manager_id = $2
    AND (t->>'assignee_id' IS NULL OR (t->>'assignee_id')::uuid = $2)
), page AS (
  SELECT * FROM items
  ORDER BY urgency, due_on, patient_id, coalesce(task_id::text, '')
  LIMIT $4
)
SELECT coalesce(json_agg(page ORDER BY urgency, due_on, patient_id,
                         coalesce(task_id::text, '')), '[]')::text
FROM page"""


def _bad(what: str) -> Response:
    return JSONResponse({"error": what}, status_code=400)


def build_app(dsn: str, master_key: bytes | None = None) -> Starlette:
    pool: asyncpg.Pool | None = None
    index: SearchIndex | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal pool, index
        defaults = Settings()
        pool = await asyncpg.create_pool(
            dsn, min_size=defaults.db_pool_min, max_size=defaults.db_pool_max
        )
        if master_key is not None:
            async with pool.acquire() as conn:
                index = SearchIndex((await KeyRing.open(conn, master_key)).blind_index_key())
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
            return _bad("careManagerId and first")
        rows = await pool.fetch(QUERY, manager, first)
        body = "[" + ",".join(r[0] for r in rows) + "]"
        return Response(body, media_type="application/json")

    async def search(request: Request) -> Response:
        assert pool is not None
        if index is None:
            return _bad("no BENCH_RAW_MASTER_KEY")
        query = request.query_params
        try:
            org = UUID(query["organisationId"])
            manager = UUID(query["careManagerId"])
            first = int(query.get("first", "20"))
            birth = date.fromisoformat(query["birthDate"]) if "birthDate" in query else None
        except (KeyError, ValueError):
            return _bad("organisationId, careManagerId, first, birthDate")
        digests = [index.name_digest(org, t) for t in name_tokens(query.get("name", ""))]
        if birth is not None:
            digests.append(index.birth_date_digest(org, birth))
        if not digests:
            return _bad("name or birthDate")
        digests = list(dict.fromkeys(digests))
        where = " AND ".join(SEARCH_DIGEST.format(n=4 + i) for i in range(len(digests)))
        sql = SEARCH.format(digests=where, not_forgotten=NOT_FORGOTTEN)
        rows = await pool.fetch(sql, org, manager, first, *digests)
        body = "[" + ",".join(r[0] for r in rows) + "]"
        return Response(body, media_type="application/json")

    async def worklist(request: Request) -> Response:
        assert pool is not None
        try:
            org = UUID(request.query_params["organisationId"])
            manager = UUID(request.query_params["careManagerId"])
            first = int(request.query_params.get("first", "50"))
        except (KeyError, ValueError):
            return _bad("organisationId, careManagerId and first")
        today = today_in(datetime.now(UTC))
        body: Any = await pool.fetchval(WORKLIST, org, manager, today, first)
        return Response(body, media_type="application/json")

    async def ready(_request: Request) -> Response:
        return JSONResponse({"ready": True})

    routes = [
        Route("/caseload", caseload),
        Route("/search", search),
        Route("/worklist", worklist),
        Route("/readyz", ready),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    master = os.environ.get("BENCH_RAW_MASTER_KEY")
    app = build_app(os.environ["BENCH_RAW_DSN"], base64.b64decode(master) if master else None)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", lifespan="on")


if __name__ == "__main__":
    main()
