"""Row 9: a care manager's ``worklist(first: 150)`` over a caseload of 150 patients.

One fresh database per row is seeded as row 3's (``bench.row3_caseload.seed``:
``careteam seed --patients 150`` for one care manager through the domain commands; the
projector catches up).

careteam: ``worklist(first: 150)`` for the care manager's development token, with every
field of an item but the assignee's directory name (kind, urgency, patient, due day,
overdue, task, record, recommendation), the total and the clinic day: the organisation's
zone read once, the registry's stored flag onsets of the care manager's caseload (safety
alerts, outreach due, measurement due), the open tasks from the patient view of the
patients on their care team, sorted by urgency in Python, every patient on the page
audited as a read.

Baseline (the limit): ``bench.raw_caseload``'s ``/worklist``: one SELECT over the same
read models (``rm_registry``'s onset columns and ``rm_patient_view``'s tasks) deriving the
same items for today, ordered the same way, the page built into a JSON array by
PostgreSQL; no authentication, no GraphQL, no audit. See ``bench.portal_reads`` for how
the two are run and compared.

Target: at least 50% of the raw endpoint's throughput (as row 3), and both return the
same items (kind, patient, due day, task) in the same order.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

from bench import portal_reads
from bench.base import RowContext, RowSpec
from bench.portal_reads import Answer, PortalRead
from bench.results import RowResult
from bench.row3_caseload import CARE_MANAGER, CLIENTS, care_manager_token, seed
from bench.row4_lag import ORG

PATIENTS = 150
PAGE = 150
REQUESTS = 400

WORKLIST = """query($first: Int!) {
  worklist(first: $first) {
    __typename
    ... on WorklistConnection {
      totalCount asOf
      edges { cursor node {
        kind urgency patientId dueOn overdue taskId taskKind assigneeId recordId
        recommendationId
      } }
      pageInfo { hasNextPage endCursor }
    }
    ... on Error { code message field }
  }
}"""


def _careteam_answer(page: dict[str, Any]) -> Answer:
    return tuple(
        (n["kind"].lower(), n["patientId"], n["dueOn"], n["taskId"])
        for n in (e["node"] for e in page["edges"])
    )


# A flag on since the facts that raised it (``projections.caseload.ALWAYS``) has the onset
# -infinity in PostgreSQL: careteam answers no due day (null) for it.
_DAYS: dict[str, str | None] = {"-infinity": None}


def _raw_answer(items: list[dict[str, Any]]) -> Answer:
    return tuple(
        (i["kind"], i["patient_id"], _DAYS.get(i["due_on"], i["due_on"]), i["task_id"])
        for i in items
    )


async def measure(ctx: RowContext) -> RowResult:
    return await measure_with(ctx, patients=PATIENTS)


async def measure_with(ctx: RowContext, *, patients: int, requests: int = REQUESTS) -> RowResult:
    """Row 9 on a seeded caseload of ``patients`` (the real row: 150), ``requests`` timed."""
    result = RowResult(number=9, slug=SPEC.slug, title=SPEC.title, method=__doc__ or "")
    result.limits = LIMITS
    env = {"CARETEAM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    read = PortalRead(
        number=9,
        query="worklist",
        careteam_label=f"careteam GraphQL worklist(first: {PAGE}) of {patients} patients, "
        f"{CLIENTS} clients",
        raw_label=f"raw Starlette + asyncpg, one SELECT of the same items, {CLIENTS} clients",
        probes=1,
        requests=requests,
        what="items",
    )
    body = {"query": WORKLIST, "variables": {"first": PAGE}}
    path = f"/worklist?organisationId={ORG}&careManagerId={CARE_MANAGER}&first={PAGE}"
    async with ctx.databases.fresh() as dsn:
        started = time.perf_counter()
        await asyncio.to_thread(seed, dsn, env, patients)
        seeded = time.perf_counter() - started
        ctx.log(f"row 9: seeded {patients} patients in {seeded:.0f} s")
        result.notes.append(f"{patients} patients seeded in {seeded:.0f} s.")
        readers: dict[str, portal_reads.Reader] = {
            "careteam": lambda: portal_reads.careteam_graphql(
                dsn, ctx, env, care_manager_token, lambda _i: body, "worklist", _careteam_answer
            ),
            "raw": lambda: portal_reads.raw_json(dsn, ctx, {}, lambda _i: path, _raw_answer),
        }
        await portal_reads.compare(read, ctx, result, readers)
    return result


LIMITS = """The API server's Python, about 20 ms of CPU per request against 4 ms in
PostgreSQL (measured 2026-12-05): every care-team patient's whole patient-view document
decoded only for its tasks, graphql-core and strawberry completing each item's fields,
the items built and sorted in Python, then the read audit. The raw endpoint reads only
the task arrays and onset columns and builds the page in PostgreSQL; doing the same
(and the caseload's lean completion) would close most of it (docs/performance.md)."""


SPEC = RowSpec(
    number=9,
    slug="worklist",
    title=f"GraphQL worklist of a care manager with {PATIENTS} patients",
    available=portal_reads.needs("worklist"),
    run=measure,
)
