"""Compliance queries: the audit trail of writes, reads and denials, and time travel."""

from __future__ import annotations

import base64
import enum
import json
from datetime import datetime, tzinfo
from typing import Annotated, Any, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain import errors as domain_errors
from domain.common import require_aware
from projections import caseload as caseload_model
from projections import patient_view
from projections.caseload import CaseloadRow
from projections.clinic_calendar import CLINIC_ZONE, day_of, zone_named
from services.api.authz import Denied, check_patient_operation, check_role, patient_scope_sql
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.errors import (
    ForbiddenError,
    NotFoundError,
    ValidationError,
    camel_path,
    result_union,
)
from services.api.purpose import shown
from services.api.registry.types import CaseloadRowView, PageInfo
from services.api.segments import without_clinical_text
from services.api.types import Patient
from services.database import Conn
from services.eventstore import EventStore, RecordedEvent, row_to_event

MAX_PAGE = 500
# caseloadAsOf: rows a page, and patients read (and replayed) per batch.
MAX_AS_OF_PAGE = 500
AS_OF_BATCH = 500


def arg(description: str) -> Any:
    return strawberry.argument(description=description)


@strawberry.enum(description="What an audit entry records.")
class AuditKind(enum.Enum):
    WRITE = "write"
    READ = "read"
    DENIAL = "denial"


@strawberry.type(
    description="One thing that happened to patient data: a change, a read or a refusal."
)
class AuditEntry:
    kind: AuditKind = strawberry.field(description="write, read or denial.")
    at: datetime = strawberry.field(description="When it was recorded by careteam.")
    actor_id: str | None = strawberry.field(description="Who did it.")
    role: str | None = strawberry.field(description="In which role.")
    organisation_id: str | None = strawberry.field(description="For which organisation.")
    purpose_of_use: str | None = strawberry.field(
        description="Why: an HL7 v3 PurposeOfUse code (TREAT, ETREAT, COC, HPAYMT, HOPERAT, "
        "HLEGAL, ...); older records' TREATMENT, EMERGENCY, PAYMENT, OPERATIONS and AUDIT are "
        "shown as TREAT, ETREAT, HPAYMT, HOPERAT and HOPERAT."
    )
    request_id: str | None = strawberry.field(description="The API request it belongs to.")
    patient_id: UUID | None = strawberry.field(description="Whose data.")
    action: str = strawberry.field(description="Event type for writes; operation otherwise.")
    stream_type: str | None = strawberry.field(description="The record type a write changed.")
    stream_id: UUID | None = strawberry.field(description="The record a write changed.")
    stream_version: int | None = strawberry.field(description="The record's version after it.")
    occurred_at: datetime | None = strawberry.field(
        description="A write's clinical effective time."
    )
    changes: JSON | None = strawberry.field(
        description="For writes: each changed field of the patient's record with before and "
        "after values (other records: the event's data as after)."
    )
    fields: list[str] | None = strawberry.field(description="For reads: the fields returned.")
    reason: str | None = strawberry.field(description="For denials: why it was refused.")


# The audit trail pages with the one PageInfo of every connection (issue 13).
AuditPageInfo = PageInfo


@strawberry.type(description="One audit entry and its cursor.")
class AuditEntryEdge:
    cursor: str = strawberry.field(description="Opaque position of this entry (an `after`).")
    node: AuditEntry = strawberry.field(description="The entry.")


@strawberry.type(description="One page of the audit trail, oldest first (a connection).")
class AuditTrail:
    edges: list[AuditEntryEdge] = strawberry.field(
        description="The entries of this page with their cursors."
    )
    entries: list[AuditEntry] = strawberry.field(
        description="The entries of this page.",
        deprecation_reason="Use edges { node } (a Relay-style connection).",
    )
    page_info: PageInfo = strawberry.field(description="How to get the next page.")
    max_page_size: int = strawberry.field(
        default=MAX_PAGE, description="The largest `first` accepted."
    )


AuditTrailResult = Annotated[
    AuditTrail | ForbiddenError | NotFoundError | ValidationError,
    result_union("AuditTrailResult", "An audit trail page, or why it cannot be shown."),
]
PatientAsOfResult = Annotated[
    Patient | ForbiddenError | NotFoundError | ValidationError,
    result_union(
        "PatientAsOfResult",
        "The patient as careteam knew them then, or why it cannot be shown.",
    ),
]


def _out_of_range(**instants: datetime | None) -> ValidationError | None:
    """A typed error for an instant careteam cannot hold (the domain's accepted years)."""
    for name, value in instants.items():
        if value is None:
            continue
        try:
            require_aware(value, name)
        except domain_errors.DomainError as exc:
            return ValidationError(code=exc.code, message=exc.message, field=camel_path(name))
    return None


def _cursor(as_of: datetime, at: datetime, kind: str, key: int, part: int) -> str:
    raw = json.dumps([as_of.isoformat(), at.isoformat(), kind, key, part])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(text: str) -> tuple[datetime, tuple[datetime, str, int, int]]:
    """The as-of moment of the first page, and the last entry shown (its key and, for a
    read of several patients, which of them: cursors made before lists have no part)."""
    as_of, at, kind, key, *part = json.loads(base64.urlsafe_b64decode(text.encode()))
    if len(part) > 1:
        raise ValueError("not a cursor")
    moment = datetime.fromisoformat(as_of)
    require_aware(moment, "after")
    return moment, (datetime.fromisoformat(at), str(kind), int(key), int(part[0]) if part else 0)


async def query_trail(
    conn: Conn,
    *,
    organisation_id: UUID,
    patient_id: UUID | None,
    actor_id: str | None,
    since: datetime | None,
    until: datetime | None,
    kinds: set[str],
    after: tuple[datetime, str, int, int] | None,
    limit: int,
    as_of: datetime | None = None,
) -> list[dict[str, Any]]:
    """Writes (events), reads and denials (access_log) of one organisation, merged by time;
    only what was recorded before ``as_of`` (so the pages of one trail never grow)."""
    params: list[Any] = [organisation_id]

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    filters = []
    # A read of several patients is one access row naming them all, one entry each here
    # (``access_log_entries``); ``listed`` lets PostgreSQL find them by the GIN index.
    listed = "TRUE"
    if patient_id is not None:
        filters.append(f"t.patient_id = {p(patient_id)}")
        listed = f"l.listed @> ARRAY[{p(patient_id)}]::uuid[]"
    if actor_id is not None:
        filters.append(f"t.actor_id = {p(actor_id)}")
    if since is not None:
        filters.append(f"t.at >= {p(since)}")
    if until is not None:
        filters.append(f"t.at < {p(until)}")
    if as_of is not None:
        filters.append(f"t.at < {p(as_of)}")
    filters.append(f"t.kind = ANY({p(sorted(kinds))}::text[])")
    if after is not None:
        filters.append(
            f"(t.at, t.kind, t.key, t.part) > "
            f"({p(after[0])}, {p(after[1])}, {p(after[2])}, {p(after[3])})"
        )
    sql = f"""
    SELECT * FROM (
        SELECT 'write' AS kind, e.recorded_at AS at, e.position AS key,
               e.metadata->>'actor_id' AS actor_id, e.metadata->>'role' AS role,
               e.metadata->>'organisation_id' AS organisation_id,
               e.metadata->>'purpose_of_use' AS purpose_of_use,
               e.metadata->>'request_id' AS request_id, e.patient_id,
               e.event_type AS action, e.stream_type, e.stream_id, e.stream_version,
               e.occurred_at, NULL::text[] AS fields, NULL::text AS reason, 0::bigint AS part
        FROM events e JOIN rm_patient_access a ON a.patient_id = e.patient_id
        WHERE a.organisation_id = $1
        UNION ALL
        SELECT CASE WHEN l.outcome = 'denied' THEN 'denial' ELSE 'read' END, l.at, l.id,
               l.actor_id::text, l.role, l.organisation_id::text, l.purpose_of_use,
               l.request_id, l.patient_id, l.operation, NULL, NULL, NULL, NULL,
               l.fields, l.reason, l.part
        FROM access_log_entries l LEFT JOIN rm_patient_access a ON a.patient_id = l.patient_id
        WHERE coalesce(a.organisation_id, l.organisation_id) = $1 AND {listed}
    ) t
    WHERE {" AND ".join(filters)}
    ORDER BY t.at, t.kind, t.key, t.part
    LIMIT {p(limit)}
    """
    return [dict(r) for r in await conn.fetch(sql, *params)]


async def changes_for(conn: Conn, rows: list[dict[str, Any]], store: EventStore) -> dict[int, Any]:
    """Before/after of the patient record for each write on a patient stream (by position)."""
    wanted: dict[UUID, int] = {}
    for r in rows:
        if r["kind"] == "write":
            wanted[r["stream_id"]] = max(wanted.get(r["stream_id"], 0), r["stream_version"])
    result: dict[int, Any] = {}
    for stream_id, upto in wanted.items():
        records = await store.decrypt(
            [
                row_to_event(x)
                for x in await conn.fetch(
                    """SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
                          stream_type, stream_version, patient_id, event_type, event_version,
                          payload, metadata, occurred_at, recorded_at
                   FROM events WHERE stream_id = $1 AND stream_version <= $2
                   ORDER BY stream_version""",
                    stream_id,
                    upto,
                )
            ],
            conn,
        )
        doc: dict[str, Any] | None = None
        for record in records:
            if record.stream_type != "patient":
                # Minimum necessary: who wrote what kind of change, not the clinical text.
                result[record.position] = {
                    "after": without_clinical_text(record.payload, record.event_type)
                }
                continue
            before = doc
            doc = patient_view.evolve(doc, record)
            result[record.position] = _diff(before, doc)
    return result


_IGNORED = frozenset({"version", "updated_at"})


def _diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    before, after = before or {}, after or {}
    keys = (set(before) | set(after)) - _IGNORED
    return {
        k: {"before": before.get(k), "after": after.get(k)}
        for k in sorted(keys)
        if before.get(k) != after.get(k)
    }


def as_of(records: list[RecordedEvent]) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = None
    for record in records:
        doc = patient_view.evolve(doc, record)
    return doc


@strawberry.type(description="What compliance staff ask: who did what, who looked, and when.")
class ComplianceQuery:
    @strawberry.field(
        description="Writes, reads and refusals on patient data in your organisation, oldest "
        f"first, filtered; at most {MAX_PAGE} a page. Compliance role only; audited."
    )
    async def audit_trail(
        self,
        info: Info[CareteamContext, None],
        patient_id: Annotated[UUID | None, arg("One patient.")] = None,
        actor_id: Annotated[UUID | None, arg("One actor.")] = None,
        since: Annotated[datetime | None, arg("From (inclusive).")] = None,
        until: Annotated[datetime | None, arg("Until (exclusive).")] = None,
        kinds: Annotated[list[AuditKind] | None, arg("Which kinds (default all).")] = None,
        first: Annotated[int, arg("Page size.")] = 100,
        after: Annotated[
            str | None,
            arg(
                "Cursor of a page end. It carries the moment of the first page: every page "
                "shows only what was recorded before it, so the reads recorded for these "
                "pages never lengthen them."
            ),
        ] = None,
    ) -> AuditTrailResult:
        ctx = info.context
        principal = ctx.require_principal()
        try:
            if patient_id is not None:
                async with ctx.runtime.pool.acquire() as conn:
                    await check_patient_operation(conn, principal, "auditTrail", patient_id)
            else:
                check_role(principal, "auditTrail")
        except Denied as denied:
            return await deny(ctx, denied, patient_id)
        if (bad := _out_of_range(since=since, until=until)) is not None:
            return bad
        if not 1 <= first <= MAX_PAGE:
            return ValidationError(
                code="PAGE_SIZE", message=f"first must be 1..{MAX_PAGE}", field="first"
            )
        # The first page fixes the moment the whole trail is read as of; its cursor carries
        # it, so the reads recorded for these pages (after it) never lengthen the trail.
        try:
            as_of, cursor = _decode_cursor(after) if after else (ctx.runtime.clock(), None)
        except (ValueError, TypeError, domain_errors.DomainError):
            return ValidationError(
                code="BAD_CURSOR", message="after is not a cursor", field="after"
            )
        async with ctx.runtime.pool.acquire() as conn:
            rows = await query_trail(
                conn,
                organisation_id=principal.organisation_id,
                patient_id=patient_id,
                actor_id=str(actor_id) if actor_id else None,
                since=since,
                until=until,
                kinds={k.value for k in kinds} if kinds else {k.value for k in AuditKind},
                after=cursor,
                limit=first + 1,
                as_of=as_of,
            )
            page = rows[:first]
            changes = await changes_for(conn, page, ctx.runtime.store)
        patients = sorted({r["patient_id"] for r in page if r["patient_id"]})
        await record_reads(ctx, "auditTrail", patients, ("auditTrail",))
        entries = [
            AuditEntry(
                kind=AuditKind(r["kind"]),
                at=r["at"],
                actor_id=r["actor_id"],
                role=r["role"],
                organisation_id=r["organisation_id"],
                purpose_of_use=shown(r["purpose_of_use"]),
                request_id=r["request_id"],
                patient_id=r["patient_id"],
                action=r["action"],
                stream_type=r["stream_type"],
                stream_id=r["stream_id"],
                stream_version=r["stream_version"],
                occurred_at=r["occurred_at"],
                changes=cast(JSON, changes.get(r["key"])) if r["kind"] == "write" else None,
                fields=r["fields"],
                reason=r["reason"],
            )
            for r in page
        ]
        cursors = [_cursor(as_of, r["at"], r["kind"], r["key"], r["part"]) for r in page]
        return AuditTrail(
            edges=[AuditEntryEdge(cursor=c, node=e) for c, e in zip(cursors, entries, strict=True)],
            entries=entries,
            page_info=PageInfo(
                has_next_page=len(rows) > first,
                end_cursor=cursors[-1] if cursors else None,
            ),
        )

    @strawberry.field(
        description="The patient as careteam knew them at an instant: only what had been "
        "recorded by then (each fact keeps its own clinical effective time). Audited."
    )
    async def patient_as_of(
        self,
        info: Info[CareteamContext, None],
        id: Annotated[UUID, arg("The patient.")],
        at: Annotated[datetime, arg("The instant (recorded time).")],
    ) -> PatientAsOfResult:
        ctx = info.context
        principal = ctx.require_principal()
        if (bad := _out_of_range(at=at)) is not None:
            return bad
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await check_patient_operation(conn, principal, "patientAsOf", id)
        except Denied as denied:
            return await deny(ctx, denied, id)
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
                          stream_type, stream_version, patient_id, event_type, event_version,
                          payload, metadata, occurred_at, recorded_at
                   FROM events WHERE stream_id = $1 AND recorded_at <= $2
                   ORDER BY stream_version""",
                id,
                at,
            )
        doc = as_of(await ctx.runtime.store.decrypt([row_to_event(r) for r in rows]))
        if doc is None:
            return NotFoundError(code="PATIENT_NOT_FOUND", message=f"no patient {id} at that time")
        await record_reads(ctx, "patientAsOf", [id], selected_fields(info))
        return Patient.from_doc(doc)

    @strawberry.field(
        description="The caseload registry as careteam knew it at an instant (only what had "
        "been recorded by then), optionally for one care manager. Compliance and admins; "
        "audited."
    )
    async def caseload_as_of(
        self,
        info: Info[CareteamContext, None],
        at: Annotated[datetime, arg("The instant (recorded time).")],
        care_manager_id: Annotated[UUID | None, arg("One care manager's caseload.")] = None,
        first: Annotated[
            int, arg(f"How many rows in this page (1 to {MAX_AS_OF_PAGE}).")
        ] = MAX_AS_OF_PAGE,
        after: Annotated[str | None, arg("The endCursor of the previous page (same `at`).")] = None,
    ) -> CaseloadAsOfResult:
        ctx = info.context
        if (bad := _out_of_range(at=at)) is not None:
            return bad
        if not 1 <= first <= MAX_AS_OF_PAGE:
            return ValidationError(
                code="PAGE_SIZE_OUT_OF_RANGE",
                message=f"first must be between 1 and {MAX_AS_OF_PAGE}",
                field="first",
            )
        start: UUID | None = None
        if after is not None:
            start = _decode_caseload_cursor(after, at)
            if start is None:
                return ValidationError(
                    code="INVALID_CURSOR",
                    message="after is not a cursor of this query for this instant",
                    field="after",
                )
        try:
            check_role(ctx.require_principal(), "caseloadAsOf")
        except Denied as denied:
            return await deny(ctx, denied, None)
        rows, more = await load_caseload_page(ctx, at, care_manager_id, first, start)
        await record_reads(ctx, "caseloadAsOf", [r.patient_id for r in rows], ("caseloadAsOf",))
        end = _caseload_cursor(at, rows[-1].patient_id) if rows and more else None
        return CaseloadAsOf(
            at=at,
            rows=[CaseloadRowView.build(r) for r in rows],
            page_info=AuditPageInfo(has_next_page=more, end_cursor=end),
        )


# --- caseloadAsOf, paged (issue #19 item 4) -------------------------------------------
# One page is a keyset range of patient ids: the patients whose stream existed by ``at``
# are read in batches in patient-id order, and only each batch's events are replayed
# (per patient, as of ``at``), so memory is bounded by the page, never the organisation.


@strawberry.type(description="The registry as careteam knew it at an instant (recorded time).")
class CaseloadAsOf:
    at: datetime = strawberry.field(description="The instant asked about.")
    rows: list[CaseloadRowView] = strawberry.field(
        description="One row per patient enrolled then (with flags as of that day), in "
        "patient id order; at most `first` a page."
    )
    page_info: AuditPageInfo = strawberry.field(description="How to get the next page.")


CaseloadAsOfResult = Annotated[
    CaseloadAsOf | ForbiddenError | ValidationError,
    result_union("CaseloadAsOfResult", "The past registry, or why not."),
]


def caseload_as_of(
    records: list[RecordedEvent],
    at: datetime,
    care_manager_id: UUID | None,
    zone: tzinfo = CLINIC_ZONE,
) -> list[CaseloadRow]:
    """Pure: registry rows from the events recorded by ``at`` (already filtered), with the
    time-dependent values (weeks, flags, minutes this month) evaluated for that day, a
    calendar day in the clinic ``zone`` (docs/clinical-time.md, section 9)."""
    docs: dict[UUID, dict[str, Any] | None] = {}
    minutes: dict[UUID, int] = {}
    day = day_of(at, zone)
    for record in records:
        docs[record.patient_id] = caseload_model.evolve(docs.get(record.patient_id), record)
        if record.event_type == "patient.contact_logged":
            when = day_of(record.to_domain_event().occurred_at, zone)
            if (when.year, when.month) == (day.year, day.month):
                minutes[record.patient_id] = minutes.get(record.patient_id, 0) + int(
                    record.payload["minutes"]
                )
    rows = []
    for pid, doc in docs.items():
        if doc is None or caseload_model.current_episode(doc) is None:
            continue
        if care_manager_id is not None and doc["care_team"]["care_manager_id"] != str(
            care_manager_id
        ):
            continue
        rows.append(caseload_model.caseload_row(doc, day, minutes.get(pid, 0), zone))
    rows.sort(key=lambda r: (r.enrolled_at or at, str(r.patient_id)))
    return rows


def _caseload_cursor(at: datetime, patient_id: UUID) -> str:
    text = json.dumps({"at": at.isoformat(), "after": str(patient_id)})
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode_caseload_cursor(text: str, at: datetime) -> UUID | None:
    """The patient id a cursor continues after, or None when it is not a cursor of a
    caseloadAsOf page for this same instant."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text.encode()))
        if datetime.fromisoformat(data["at"]) != at:
            return None
        return UUID(data["after"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


async def load_caseload_page(
    ctx: CareteamContext,
    at: datetime,
    care_manager_id: UUID | None,
    first: int,
    after: UUID | None,
) -> tuple[list[CaseloadRow], bool]:
    """One page of the registry as of ``at``: at most ``first`` rows after the patient id
    ``after``, in patient id order, and whether more rows follow. Reads patients in
    batches of ``AS_OF_BATCH`` (keyset on the stream id) and replays only their events."""
    principal = ctx.require_principal()
    predicate, params = patient_scope_sql("caseloadAsOf", principal, "s.patient_id", 4)
    rows: list[CaseloadRow] = []
    cursor = after
    async with ctx.runtime.pool.acquire() as conn:
        # The clinic zone as the log knew it at ``at`` (the organisation's stream).
        zone = zone_named(
            await conn.fetchval(
                """SELECT payload->>'time_zone' FROM events
                   WHERE stream_id = $1 AND stream_type = 'organisation' AND recorded_at <= $2
                   ORDER BY stream_version DESC LIMIT 1""",
                principal.organisation_id,
                at,
            )
        )
        while len(rows) <= first:
            ids = [
                r["stream_id"]
                for r in await conn.fetch(
                    f"""SELECT s.stream_id FROM streams s
                        WHERE s.stream_type = 'patient' AND s.created_at <= $1
                          AND ($2::uuid IS NULL OR s.stream_id > $2::uuid) AND {predicate}
                        ORDER BY s.stream_id LIMIT $3""",
                    at,
                    cursor,
                    AS_OF_BATCH,
                    *params,
                )
            ]
            if not ids:
                return rows, False
            events = await conn.fetch(
                """SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id,
                          stream_type, stream_version, patient_id, event_type, event_version,
                          payload, metadata, occurred_at, recorded_at
                   FROM events e
                   WHERE e.stream_id = ANY($2::uuid[]) AND e.recorded_at <= $1
                   ORDER BY e.tx_id, e.position""",
                at,
                ids,
            )
            records = await ctx.runtime.store.decrypt([row_to_event(r) for r in events], conn)
            batch = caseload_as_of(records, at, care_manager_id, zone)
            rows.extend(sorted(batch, key=lambda r: str(r.patient_id)))
            cursor = ids[-1]
            if len(ids) < AS_OF_BATCH and len(rows) <= first:
                return rows, False
    return rows[:first], True
