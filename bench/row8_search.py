"""Row 8: ``searchPatients`` by name prefix and by birth date among 20,000 patients.

One fresh database per row holds ``PATIENTS`` patients made as row 7 makes its log
(``bench.row7_scale.prepare``: journeys from ``workload.py`` COPYed with each patient's
own key, read models built by careteam's projector, the audit chain sealed), with
``EVENTS_PER_PATIENT`` events each (registration, enrollment, care team, start of
treatment, one contact or screening) and one care manager per 100 patients. COPY
bypasses the registration's transaction that writes the search digests, so the index is
then built by ``services.patient_search.backfill`` (as ``careteam
backfill-search-index`` does) and analysed. Both durations are reported.

The searches are the care manager's of ``row7_scale.manager(0)`` (100 patients) in the
organisation of all 20,000: ``SEARCHES`` distinct ones, one in two by a name prefix (the
first three letters of a family name, or two letters of a given and of a family name)
and one in two by a birth date, each taken from one of the care manager's patients, first
page of ``PAGE``. A name prefix matches about a sixth of the organisation in the index
(synthetic names repeat), of which the care team scope keeps the care manager's own.

careteam: ``searchPatients(name:, birthDate:, first: 20)`` with every field of a match
(identity, MRN, episode status, registration), for the care manager's development
token: the criteria turned into keyed digests, looked up in ``patient_search_index``,
the patient view's documents restricted in the same SQL to the patients the caller may
read, every patient returned audited as a read.

Baseline (the limit): ``bench.raw_caseload``'s ``/search``: the same digests computed by
the same code with the same key, the same lookup and SELECT of the patient view (scoped
to the care manager's care team) returning the documents as JSON, no authentication, no
GraphQL, no audit. See ``bench.portal_reads`` for how the two are run and compared.

Target: at least 50% of the raw endpoint's throughput (as row 3), and both return the
same patients in the same order for every search.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any
from urllib.parse import urlencode

import asyncpg

from bench import portal_reads
from bench.base import RowContext, RowSpec
from bench.portal_reads import Answer, PortalRead
from bench.results import RowResult
from bench.row3_caseload import CLIENTS
from bench.row4_lag import ApiServer
from bench.row7_scale import manager, prepare, token
from bench.workload import ORG
from services.crypto import KeyRing
from services.database import create_pool
from services.eventstore import EventStore
from services.patient_search import SearchIndex, backfill
from services.settings import Settings

PATIENTS = 20_000
EVENTS_PER_PATIENT = 5
SEARCHES = 16
PAGE = 20
REQUESTS = 800
CARE_MANAGER = manager(0)

SEARCH = """query($name: String, $birthDate: Date, $first: Int!) {
  searchPatients(name: $name, birthDate: $birthDate, first: $first) {
    __typename
    ... on PatientMatchConnection {
      edges { cursor node {
        patientId displayName givenName familyName birthDate mrn episodeStatus registeredAt
      } }
      pageInfo { hasNextPage endCursor }
    }
    ... on Error { code message field }
  }
}"""


async def prepare_search(dsn: str, master: bytes, patients: int, ctx: RowContext) -> str:
    """Loads and projects ``patients`` patients (row 7's loader), builds their search
    index; returns a line saying what that took."""
    loaded = await prepare(
        dsn, master, patients * EVENTS_PER_PATIENT, ctx, per_patient=EVENTS_PER_PATIENT, row=8
    )
    pool = await create_pool(dsn, Settings(db_pool_min=1, db_pool_max=2))
    try:
        keyring = KeyRing(master)
        started = time.perf_counter()
        report = await backfill(
            EventStore(pool, keyring=keyring), SearchIndex(keyring.blind_index_key())
        )
        indexed = time.perf_counter() - started
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE patient_search_index")
            digests = await conn.fetchval("SELECT count(*) FROM patient_search_index")
    finally:
        await pool.close()
    line = (
        f"{loaded.patients:,} patients ({loaded.events:,} events) loaded with COPY in "
        f"{loaded.load_seconds:.0f} s, read models built in {loaded.project_seconds:.0f} s, "
        f"search index of {report.indexed:,} patients ({digests:,} digests) built by "
        f"backfill in {indexed:.0f} s."
    )
    ctx.log(f"row 8: {line}")
    return line


async def searches(dsn: str, count: int) -> list[dict[str, Any]]:
    """``count`` searches (variables of ``SEARCH``, without ``first``) from the care
    manager's patients: one in two by a name prefix, one in two by a birth date."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT v.doc->>'given_name' AS given, v.doc->>'family_name' AS family,
                      v.doc->>'birth_date' AS born
               FROM rm_patient_view v JOIN rm_patient_access a ON a.patient_id = v.key
               WHERE a.care_manager_id = $1 ORDER BY v.key""",
            CARE_MANAGER,
        )
    finally:
        await conn.close()
    if not rows:
        raise RuntimeError("the care manager has no patients to search for")
    out: list[dict[str, Any]] = []
    for i in range(count):
        row = rows[(i // 2) % len(rows)]
        if i % 2:
            out.append({"name": None, "birthDate": row["born"]})
        elif i % 4 == 0:
            out.append({"name": row["family"][:3], "birthDate": None})
        else:
            out.append({"name": f"{row['given'][:2]} {row['family'][:2]}", "birthDate": None})
    return out


def _careteam_answer(page: dict[str, Any]) -> Answer:
    return tuple(e["node"]["patientId"] for e in page["edges"])


def _raw_answer(docs: list[dict[str, Any]]) -> Answer:
    return tuple(d["id"] for d in docs)


async def measure(ctx: RowContext) -> RowResult:
    return await measure_with(ctx, patients=PATIENTS)


async def measure_with(ctx: RowContext, *, patients: int, requests: int = REQUESTS) -> RowResult:
    """Row 8 on ``patients`` patients (the real row: 20,000), ``requests`` timed."""
    result = RowResult(number=8, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    master = os.urandom(32)
    key = base64.b64encode(master).decode()
    read = PortalRead(
        number=8,
        query="searchPatients",
        careteam_label=f"careteam GraphQL searchPatients among {patients:,} patients, "
        f"{CLIENTS} clients",
        raw_label=f"raw Starlette + asyncpg, the same index lookup, {CLIENTS} clients",
        probes=SEARCHES,
        requests=requests,
        what="patients",
    )
    async with ctx.databases.fresh() as dsn:
        result.notes.append(await prepare_search(dsn, master, patients, ctx))
        criteria = await searches(dsn, SEARCHES)

        def body(i: int) -> dict[str, Any]:
            return {"query": SEARCH, "variables": {**criteria[i % SEARCHES], "first": PAGE}}

        def path(i: int) -> str:
            given = {k: v for k, v in criteria[i % SEARCHES].items() if v is not None}
            query = {"organisationId": ORG, "careManagerId": CARE_MANAGER, "first": PAGE}
            return "/search?" + urlencode({**query, **given})

        def manager_token(server: ApiServer) -> str:
            return token(server, "care_manager", CARE_MANAGER)

        env = {"CARETEAM_MASTER_KEY": key}
        readers: dict[str, portal_reads.Reader] = {
            "careteam": lambda: portal_reads.careteam_graphql(
                dsn, ctx, env, manager_token, body, "searchPatients", _careteam_answer
            ),
            "raw": lambda: portal_reads.raw_json(
                dsn, ctx, {"BENCH_RAW_MASTER_KEY": key}, path, _raw_answer
            ),
        }
        await portal_reads.compare(read, ctx, result, readers)
    return result


LIMITS = """PostgreSQL: per request about 4.3 ms of its CPU for careteam against 0.9 ms for
the raw endpoint (measured 2026-12-05), with the same digests and index lookup on both
sides. What careteam adds in SQL: the read audit of every patient returned (access-log
rows written, indexed and sealed on the same core) and the caller's scope predicate,
which also holds the break-the-glass clause and is checked for each of the index's
candidates (a name prefix matches about a sixth of the organisation before the care team
keeps its own). Next: the query plan of the scoped lookup, and one access-log row per
list read (docs/performance.md)."""


SPEC = RowSpec(
    number=8,
    slug="search",
    title=f"GraphQL searchPatients among {PATIENTS:,} patients",
    available=portal_reads.needs("searchPatients"),
    run=measure,
)
