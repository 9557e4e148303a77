"""GraphQL queries over the role read models; merged into the root Query.

Every query evaluates time-dependent values (flags, weeks, days since, overdue steps,
"this month") for "today" read from the injected clock (``runtime.clock()``), turned
into a calendar day in the caller's organisation's zone, and reads stored instants as
days in the same zone (services.api.clinic_day, one zone lookup per query). Every query
is restricted in SQL to the patients the caller may read (services.api.authz, the
``patient`` grant: the care team, or the organisation for compliance and admin roles).
Resolvers stay short: the SQL and the derivations live in the projection modules.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date, tzinfo
from typing import Annotated, Any, Final, TypeVar
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from domain.rules import NoRuleInForceError
from projections import billing, review_queue, trackers
from projections import caseload as caseload_model
from projections import outcomes as outcomes_model
from projections import panel as panel_model
from projections.caseload import CaseloadRow
from projections.clinic_calendar import month_start
from projections.document import Doc
from projections.keyset import InvalidCursorError, Scope
from services import jsontext
from services.api.authz import patient_scope_sql
from services.api.clinic_day import clinic_day
from services.api.commanding import record_reads
from services.api.context import CareteamContext
from services.api.errors import ValidationError, result_union
from services.api.registry.types import (
    BillingCode,
    BillingRowView,
    BillingSummary,
    CareManagerOutcomesView,
    CaseloadConnection,
    CaseloadEdge,
    CaseloadRowView,
    CaseloadSortKey,
    ConsultationTrackerConnection,
    ConsultationTrackerEdge,
    ConsultationTrackerView,
    EpisodeOutcomeView,
    OutcomesReport,
    PageOf,
    Panel,
    PanelPatientConnection,
    PanelPatientEdge,
    PanelPatientView,
    ProjectionLagView,
    ReferralTrackerConnection,
    ReferralTrackerEdge,
    ReferralTrackerView,
    RegistryPageInfo,
    ReviewQueue,
    ReviewQueueEdge,
    ReviewQueueEntry,
)
from services.auth import Role
from services.database import Conn

C = TypeVar("C", ReferralTrackerConnection, ConsultationTrackerConnection)

# The authorisation grant every read model here is checked against: reading a registry
# row, a bill or a tracker is reading that patient's data.
READ_OPERATION: Final = "patient"


async def _today(ctx: CareteamContext) -> tuple[date, tzinfo]:
    """Today in the caller's clinic zone, and the zone (issue 18: clinic calendars)."""
    day = await clinic_day(ctx)
    return day.today, day.zone


def _scope(ctx: CareteamContext) -> Scope:
    principal = ctx.require_principal()

    def scope(key: str, first: int) -> tuple[str, list[object]]:
        return patient_scope_sql(READ_OPERATION, principal, key, first)

    return scope


def _selected_paths(selections: Sequence[Selection], prefix: str) -> list[str]:
    paths: list[str] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            path = f"{prefix}.{selection.name}" if prefix else selection.name
            inner = _selected_paths(selection.selections, path)
            paths.extend(inner or [path])
        else:  # fragments add fields, not a level
            paths.extend(_selected_paths(selection.selections, prefix))
    return paths


# The selected field paths of each parsed field (strawberry's parser cache hands every
# request for a document the same nodes; the paths depend on nothing else: names and
# fragments, not variables). Each entry keeps its nodes alive, so their ids in the key
# cannot be reused by another document meanwhile. Bounded: past it, it starts afresh.
_PATHS: dict[tuple[int, ...], tuple[object, tuple[str, ...]]] = {}
_MAX_PATHS: Final = 256


def _field_paths(info: Info[CareteamContext, None]) -> tuple[str, ...]:
    raw = info._raw_info
    key = (id(raw.operation), *map(id, raw.field_nodes))
    known = _PATHS.get(key)
    if known is not None:
        return known[1]
    paths = tuple(dict.fromkeys(_selected_paths(info.selected_fields, "")))
    if len(_PATHS) >= _MAX_PATHS:
        _PATHS.clear()
    _PATHS[key] = ((raw.operation, raw.field_nodes), paths)
    return paths


async def _audit(
    info: Info[CareteamContext, None],
    patient_ids: Iterable[UUID],
    *,
    on_team: frozenset[UUID] | None = None,
) -> None:
    """Records that these patients' data is being returned, with the field paths selected
    (e.g. ``caseload.edges.node.latestPhq9.total``); returns once committed. ``on_team``:
    those the caller's care team includes, when the read already knows (see record_reads)."""
    ids = list(dict.fromkeys(patient_ids))
    if ids:
        fields = _field_paths(info)
        team = None if on_team is None else set(on_team)
        await record_reads(info.context, info.field_name, ids, fields, on_team=team)


def _bad_request(exc: Exception) -> GraphQLError:
    """An expected input problem, shown to the caller with a stable code."""
    return GraphQLError(str(exc), extensions={"code": getattr(exc, "code", "BAD_REQUEST")})


def _clinician(ctx: CareteamContext) -> UUID | None:
    """The caller's user id when the read audit needs their care-team membership (a
    clinician off the team reads under break-the-glass), else None."""
    principal = ctx.require_principal()
    return principal.user_id if principal.is_clinician else None


def _caller_if(ctx: CareteamContext, role: Role) -> UUID | None:
    principal = ctx.require_principal()
    return principal.user_id if principal.role is role else None


async def _rows(
    conn: Conn, page: caseload_model.Page, today: date, zone: tzinfo
) -> list[CaseloadRow]:
    """The page's registry rows for today, with this month's minutes."""
    ids = [UUID(doc["id"]) for _, doc in page.rows]
    minutes = await billing.minutes_in_month(conn, ids, today)
    return [
        caseload_model.caseload_row(doc, today, minutes.get(UUID(doc["id"]), 0), zone)
        for _, doc in page.rows
    ]


async def _caseload_views(
    ctx: CareteamContext, conn: Conn, page: caseload_model.Page, today: date, zone: tzinfo
) -> tuple[list[CaseloadRowView], float] | None:
    """The rows of a caseload page, for today with this month's minutes, and when the
    first of their memo entries expires; None when a row changed while they were read
    (the caller reads the page again with its documents).

    Each row is taken from the process's memo when the same version of that patient's
    row (``Page.versions``) was derived for the same day, zone and minutes before
    (services.row_memo); only the documents of the others are read (from the page when it
    has them, else ``fetch_documents``), decoded and derived."""
    minutes = await billing.minutes_in_month(conn, list(page.keys), today)
    memo = ctx.runtime.caseload_rows
    views: list[CaseloadRowView | None] = []
    missing: list[int] = []
    earliest = float("inf")
    for index, (patient_id, version) in enumerate(zip(page.keys, page.versions, strict=True)):
        found = memo.get_expiring((patient_id, version, today, zone, minutes.get(patient_id, 0)))
        if found is None:
            missing.append(index)
            views.append(None)
        else:
            views.append(found[0])
            earliest = min(earliest, found[1])
    if missing:
        texts: dict[UUID, str] = {}
        if page.rows[missing[0]][1] is not None:  # fetched with the page
            texts = {page.keys[i]: page.rows[i][1] for i in missing}
        else:
            current = await caseload_model.fetch_documents(conn, [page.keys[i] for i in missing])
            for i in missing:
                document = current.get(page.keys[i])
                if document is None or document[0] != page.versions[i]:
                    return None  # changed (or gone) since the page was read
                texts[page.keys[i]] = document[1]
        for i in missing:
            patient_id = page.keys[i]
            month = minutes.get(patient_id, 0)
            row = caseload_model.caseload_row(jsontext.loads(texts[patient_id]), today, month, zone)
            view = CaseloadRowView.build(row)
            expires = memo.put((patient_id, page.versions[i], today, zone, month), view)
            earliest = min(earliest, expires)
            views[i] = view
    return [view for view in views if view is not None], earliest


def _caseload_connection(
    ctx: CareteamContext,
    page: caseload_model.Page,
    views: list[CaseloadRowView],
    today: date,
    expires: float,
) -> CaseloadConnection:
    """The page as a connection: the same object as last time when the page holds the same
    row objects under the same cursors with the same counts, so the completed fields the
    lean execution memoises on it are reused (services.api.lean_execution). The key names
    the rows by identity; the memo's entry keeps them alive, so an identity cannot be
    reused by another row while the key exists. The entry expires with the first of its
    rows' entries in the row memo (``expires``), so a page never keeps a row in memory
    longer than the row memo would (docs/erasure.md)."""
    cursors = tuple(cursor for cursor, _ in page.rows)
    key = (cursors, tuple(map(id, views)), page.has_next_page, page.total_count, today)
    memo = ctx.runtime.caseload_pages
    connection: CaseloadConnection | None = memo.get(key)
    if connection is None:
        edges = [
            CaseloadEdge(cursor=cursor, node=view)
            for cursor, view in zip(cursors, views, strict=True)
        ]
        connection = CaseloadConnection(
            edges=edges, page_info=_page_info(page), total_count=page.total_count, as_of=today
        )
        memo.put(key, connection, expires_at=expires)
    return connection


# --- the PCP's panel, paged (issue 13: `panel.patients` was capped at 500) -------------
PANEL_DEFAULT_PAGE: Final = 50
PANEL_MAX_PAGE: Final = 200


def _panel_cursor(offset: int) -> str:
    """The position of the row at ``offset`` (0-based) in the panel's order. An offset, not
    a keyset: the order (safety alert first, then family name) reads encrypted-at-rest names
    that a forgotten patient loses, so a page boundary may shift by a row when the panel
    changes between pages; a portal refreshing the panel starts from the first page."""
    return base64.urlsafe_b64encode(f"panel:{offset}".encode()).decode()


def _panel_start(first: int, after: str | None) -> int:
    if not 1 <= first <= PANEL_MAX_PAGE:
        raise GraphQLError(
            f"first must be between 1 and {PANEL_MAX_PAGE}",
            extensions={"code": "PAGE_SIZE", "field": "first"},
        )
    if after is None:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(after.encode()).decode().partition(":")
        offset = int(number)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        offset = -1
        kind = ""
    if kind != "panel" or offset < 0:
        raise GraphQLError(
            "after is not a cursor of the panel",
            extensions={"code": "INVALID_CURSOR", "field": "after"},
        )
    return offset + 1


async def _panel_page_docs(
    conn: Conn, *, today: date, pcp_id: UUID, scope: Scope, first: int, start: int
) -> tuple[list[Doc], int]:
    """One page of the PCP's patients on the caseload in the panel's order, and how many
    there are in all (the same rows and order as ``panel_model.fetch_panel_docs``)."""
    scope_sql, scope_args = scope("key", 3)
    where = f"pcp_id = $1 AND on_caseload AND {scope_sql}"
    rows = await conn.fetch(
        f"""SELECT doc FROM {caseload_model.TABLE}
            WHERE {where} AND $2::date IS NOT NULL
            ORDER BY (safety_risk_on IS NOT NULL AND safety_risk_on <= $2) DESC,
                     lower(family_name), key
            LIMIT {int(first)} OFFSET {int(start)}""",
        pcp_id,
        today,
        *scope_args,
    )
    total = await conn.fetchval(
        f"SELECT count(*) FROM {caseload_model.TABLE} WHERE {where} AND $2::date IS NOT NULL",
        pcp_id,
        today,
        *scope_args,
    )
    return [r["doc"] for r in rows], int(total)


def _panel_patients(
    docs: list[Doc],
    notes: list[Doc],
    referrals: list[ReferralTrackerView],
    today: date,
    zone: tzinfo,
) -> list[PanelPatientView]:
    patients = []
    for doc in docs:
        row = caseload_model.caseload_row(doc, today, zone=zone)
        mine = [r for r in referrals if r.patient_id == row.patient_id]
        patients.append(
            PanelPatientView.build(
                panel_model.PanelPatient(
                    row=row,
                    safety_risk=any(f.kind == "safety_risk" for f in row.flags),
                    recommendations_awaiting=sum(
                        trackers.recommendations_awaiting(n)
                        for n in notes
                        if n["patient_id"] == str(row.patient_id)
                    ),
                    open_referrals=len(mine),
                    overdue_referrals=sum(r.overdue for r in mine),
                )
            )
        )
    return patients


def _page_info(page: caseload_model.Page) -> RegistryPageInfo:
    end = page.rows[-1][0] if page.rows else None
    return RegistryPageInfo(has_next_page=page.has_next_page, end_cursor=end)


def _consultation_views(
    docs: list[Doc], today: date, zone: tzinfo
) -> list[ConsultationTrackerView]:
    return [
        ConsultationTrackerView.build(d, trackers.consultation_steps(d, today, zone)) for d in docs
    ]


def _referral_views(docs: list[Doc], today: date, zone: tzinfo) -> list[ReferralTrackerView]:
    return [
        ReferralTrackerView.build(
            d, trackers.referral_overdue(d, today), trackers.referral_next_step(d, today, zone)
        )
        for d in docs
    ]


def _referral_overdue(today: date, zone: tzinfo) -> Callable[[Doc], bool]:
    """The tracker's `overdue` (past expected-by, or its next step late) as a filter."""
    return lambda d: _referral_views([d], today, zone)[0].overdue


def _consultation_overdue(today: date, zone: tzinfo) -> Callable[[Doc], bool]:
    """The tracker's `overdue` (any open step late) as a filter."""
    return lambda d: any(s.overdue for s in trackers.consultation_steps(d, today, zone))


def _page_field(exc: Exception) -> str:
    """The argument a refused page names: the size or the cursor."""
    return "first" if isinstance(exc, trackers.TrackerPageSizeError) else "after"


def _page_error(exc: Exception) -> GraphQLError:
    """A refused page of a list the panel returns itself: an entry in `errors` with the
    code and the argument at fault, as for the panel's patientPage."""
    return GraphQLError(
        str(exc),
        extensions={"code": getattr(exc, "code", "BAD_REQUEST"), "field": _page_field(exc)},
    )


def _page_refused(exc: Exception) -> ValidationError:
    return ValidationError(
        code=getattr(exc, "code", "BAD_REQUEST"), message=str(exc), field=_page_field(exc)
    )


def _page_info_of(page: trackers.TrackerPage) -> RegistryPageInfo:
    return RegistryPageInfo(
        has_next_page=page.has_next_page, end_cursor=page.cursors[-1] if page.cursors else None
    )


def _referral_connection(
    page: trackers.TrackerPage, today: date, zone: tzinfo
) -> ReferralTrackerConnection:
    views = _referral_views(page.docs, today, zone)
    return ReferralTrackerConnection(
        edges=[
            ReferralTrackerEdge(cursor=c, node=v) for c, v in zip(page.cursors, views, strict=True)
        ],
        page_info=_page_info_of(page),
        total_count=page.total_count,
    )


def _consultation_connection(
    page: trackers.TrackerPage, today: date, zone: tzinfo
) -> ConsultationTrackerConnection:
    views = _consultation_views(page.docs, today, zone)
    return ConsultationTrackerConnection(
        edges=[
            ConsultationTrackerEdge(cursor=c, node=v)
            for c, v in zip(page.cursors, views, strict=True)
        ],
        page_info=_page_info_of(page),
        total_count=page.total_count,
    )


async def _audit_under(info: Info[Any, None], operation: str, patient_ids: Iterable[UUID]) -> None:
    """Like ``_audit`` for a paged list under ``operation`` (e.g. the panel's referrals): the
    field paths start with the operation and the list's field."""
    ids = list(dict.fromkeys(patient_ids))
    if ids:
        fields = tuple(dict.fromkeys(_selected_paths(info.selected_fields, operation)))
        await record_reads(info.context, operation, ids, fields)


def _loops_page_of(
    ctx: CareteamContext,
    parent: str,
    fetch: Callable[..., Awaitable[trackers.TrackerPage]],
    connection: Callable[[trackers.TrackerPage, date, tzinfo], C],
    today: date,
    zone: tzinfo,
    **filters: Any,
) -> PageOf[C]:
    """Reads a page of referral or consultation loops inside ``parent`` (the panel or the
    review queue) when a portal selects it: refused pages are `errors` entries naming the
    argument, and the patients of the page are recorded as read under ``parent``."""

    async def read(sub: Info[Any, None], first: int, after: str | None) -> C:
        async with ctx.runtime.pool.acquire() as conn:
            try:
                page = await fetch(conn, first=first, after=after, scope=_scope(ctx), **filters)
            except (trackers.TrackerPageSizeError, InvalidCursorError) as exc:
                raise _page_error(exc) from None
        await _audit_under(sub, parent, (UUID(d["patient_id"]) for d in page.docs))
        return connection(page, today, zone)

    return read


ReferralTrackerResult = Annotated[
    ReferralTrackerConnection | ValidationError,
    result_union("ReferralTrackerResult", "A page of referral loops, or why not."),
]
ConsultationTrackerResult = Annotated[
    ConsultationTrackerConnection | ValidationError,
    result_union("ConsultationTrackerResult", "A page of consultation loops, or why not."),
]


@strawberry.type(description="The role read models: registry, billing, outcomes, queues, trackers.")
class RegistryQuery:
    @strawberry.field(
        description="The care manager's caseload registry (enrolled, active treatment, relapse "
        "prevention), one row per patient with its flags for today; a keyset page. A care "
        "manager who names nobody gets their own caseload; other roles get every caseload "
        "they may see unless they name a care manager."
    )
    async def caseload(
        self,
        info: Info[CareteamContext, None],
        care_manager_id: UUID | None = None,
        flagged_first: bool = True,
        sort_by: CaseloadSortKey = CaseloadSortKey.ENROLLED_AT,
        first: int = caseload_model.DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> CaseloadConnection:
        ctx = info.context
        care_manager_id = care_manager_id or _caller_if(ctx, Role.CARE_MANAGER)
        async with ctx.runtime.pool.acquire() as conn:
            day = await clinic_day(ctx, conn)  # one connection for the whole read
            today, zone = day.today, day.zone
            # The page without its documents first: the memo usually has every row's
            # version; when a row changes meanwhile, the page is read again with them.
            read = None
            for without_docs in (True, False):
                try:
                    page = await caseload_model.fetch_caseload(
                        conn,
                        today=today,
                        care_manager_id=care_manager_id,
                        flagged_first=flagged_first,
                        sort=caseload_model.CaseloadSort(sort_by.value),
                        first=first,
                        after=after,
                        scope=_scope(ctx),
                        as_text=True,
                        without_docs=without_docs,
                        team_of=_clinician(ctx),
                    )
                except (caseload_model.PageSizeError, InvalidCursorError) as exc:
                    raise _bad_request(exc) from None
                read = await _caseload_views(ctx, conn, page, today, zone)
                if read is not None:
                    break
            assert read is not None  # a page read with its documents always has its rows
            views, expires = read
        await _audit(info, (view.patient_id for view in views), on_team=page.on_team)
        return _caseload_connection(ctx, page, views, today, expires)

    @strawberry.field(description="One patient's registry row for today; null when not visible.")
    async def registry_row(
        self, info: Info[CareteamContext, None], patient_id: UUID
    ) -> CaseloadRowView | None:
        ctx = info.context
        today, zone = await _today(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            docs = await caseload_model.fetch_docs(conn, [patient_id], _scope(ctx))
            minutes = await billing.minutes_in_month(conn, [patient_id], today)
        if patient_id not in docs:
            return None
        row = caseload_model.caseload_row(docs[patient_id], today, minutes.get(patient_id, 0), zone)
        await _audit(info, [patient_id])
        return CaseloadRowView.build(row)

    @strawberry.field(
        description="Minutes and billable codes of the month containing `month` (any day of "
        "it), per patient, derived with the billing rules in force that month."
    )
    async def billing_summary(
        self,
        info: Info[CareteamContext, None],
        month: date,
        care_manager_id: UUID | None = None,
        patient_id: UUID | None = None,
    ) -> BillingSummary:
        ctx = info.context
        if not 1900 <= month.year <= 2199:  # the domain's accepted years
            raise GraphQLError(
                "month must lie in the years 1900 to 2199",
                extensions={"code": "DATETIME_OUT_OF_RANGE"},
            )
        first = month_start(month)
        async with ctx.runtime.pool.acquire() as conn:
            try:
                rows = await billing.fetch_billing_month(
                    conn,
                    first,
                    care_manager_id=care_manager_id,
                    patient_id=patient_id,
                    scope=_scope(ctx),
                )
            except NoRuleInForceError as exc:
                raise _bad_request(exc) from None
        totals = billing.code_summary(rows)
        await _audit(info, (r.patient_id for r in rows))
        return BillingSummary(
            month=first,
            rows=[BillingRowView.build(r, first) for r in rows],
            billable_units=[BillingCode(code=c, units=u) for c, u in sorted(totals.items())],
        )

    @strawberry.field(
        description="Response, remission, 12-week, DRR-E and CMS159 outcomes per episode and per "
        "care manager, by effective time, as of `asOf` (default today)."
    )
    async def outcomes(
        self,
        info: Info[CareteamContext, None],
        care_manager_id: UUID | None = None,
        as_of: date | None = None,
    ) -> OutcomesReport:
        ctx = info.context
        today, zone = await _today(ctx)
        day = as_of or today
        async with ctx.runtime.pool.acquire() as conn:
            episodes = await outcomes_model.fetch_outcomes(
                conn, day, care_manager_id=care_manager_id, scope=_scope(ctx), zone=zone
            )
        await _audit(info, (e.patient_id for e in episodes))
        return OutcomesReport(
            as_of=day,
            by_care_manager=[
                CareManagerOutcomesView.build(c) for c in outcomes_model.by_care_manager(episodes)
            ],
            episodes=[EpisodeOutcomeView.build(e) for e in episodes],
        )

    @strawberry.field(
        description="The psychiatric consultant's review queue: patients needing review (safety "
        "first, then not improving, then new), and notes to draft and to sign. The consultant "
        "defaults to the caller when the caller is a psychiatrist."
    )
    async def review_queue(
        self,
        info: Info[CareteamContext, None],
        psychiatric_consultant_id: UUID | None = None,
        first: int = caseload_model.DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> ReviewQueue:
        ctx = info.context
        today, zone = await _today(ctx)
        consultant = psychiatric_consultant_id or _caller_if(ctx, Role.PSYCHIATRIST)
        scope = _scope(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            try:
                page = await review_queue.fetch_review_page(
                    conn,
                    today=today,
                    consultant_id=consultant,
                    first=first,
                    after=after,
                    scope=scope,
                )
            except (caseload_model.PageSizeError, InvalidCursorError) as exc:
                raise _bad_request(exc) from None
            rows = await _rows(conn, page, today, zone)
            to_draft = await trackers.fetch_consultations(
                conn, consultant_id=consultant, statuses=["requested"], scope=scope
            )
            to_sign = await trackers.fetch_consultations(
                conn, consultant_id=consultant, statuses=["drafted"], scope=scope
            )
        entries = [
            ReviewQueueEntry.build(
                cursor, review_queue.ReviewEntry(review_queue.priority_of(row), row)
            )
            for (cursor, _), row in zip(page.rows, rows, strict=True)
        ]
        # The deprecated note lists are recorded as read only when selected; their paged
        # successors record the patients of their page when read.
        selected = {p.split(".")[1] for p in _selected_paths(info.selected_fields, "") if "." in p}
        await _audit(
            info,
            [row.patient_id for row in rows]
            + ([UUID(d["patient_id"]) for d in to_draft] if "notesToDraft" in selected else [])
            + ([UUID(d["patient_id"]) for d in to_sign] if "notesToSign" in selected else []),
        )

        return ReviewQueue(
            as_of=today,
            patients=entries,
            edges=[ReviewQueueEdge(cursor=e.cursor, node=e) for e in entries],
            page_info=_page_info(page),
            total_count=page.total_count,
            notes_to_draft=_consultation_views(to_draft, today, zone),
            notes_to_sign=_consultation_views(to_sign, today, zone),
            to_draft_page_of=_loops_page_of(
                ctx,
                info.field_name,
                trackers.page_consultations,
                _consultation_connection,
                today,
                zone,
                consultant_id=consultant,
                statuses=["requested"],
            ),
            to_sign_page_of=_loops_page_of(
                ctx,
                info.field_name,
                trackers.page_consultations,
                _consultation_connection,
                today,
                zone,
                consultant_id=consultant,
                statuses=["drafted"],
            ),
        )

    @strawberry.field(
        description="The PCP's panel: patients with latest scores and safety alerts, "
        "recommendations awaiting the PCP, open and overdue referrals. The PCP defaults to the "
        "caller when the caller is a PCP."
    )
    async def panel(
        self,
        info: Info[CareteamContext, None],
        pcp_id: UUID | None = None,
        first: int = PANEL_DEFAULT_PAGE,
        after: str | None = None,
    ) -> Panel:
        ctx = info.context
        today, zone = await _today(ctx)
        pcp = pcp_id or _caller_if(ctx, Role.PCP)
        if pcp is None:
            raise GraphQLError("pcpId is required", extensions={"code": "PCP_REQUIRED"})
        start = _panel_start(first, after)
        scope = _scope(ctx)
        paths = _selected_paths(info.selected_fields, "")
        wants_all = any(p.startswith(f"{info.field_name}.patients.") for p in paths)
        async with ctx.runtime.pool.acquire() as conn:
            page_docs, total = await _panel_page_docs(
                conn, today=today, pcp_id=pcp, scope=scope, first=first, start=start
            )
            # The deprecated capped list only when a portal still asks for it, so a paged
            # portal's read audit lists only the patients of its page.
            docs = (
                await panel_model.fetch_panel_docs(conn, today=today, pcp_id=pcp, scope=scope)
                if wants_all
                else []
            )
            notes = await trackers.fetch_consultations(
                conn, pcp_id=pcp, statuses=["signed", "acknowledged"], scope=scope
            )
            referral_docs = await trackers.fetch_referrals(conn, pcp_id=pcp, scope=scope)
        awaiting = _consultation_views(notes, today, zone)
        referrals = _referral_views(referral_docs, today, zone)
        patients = _panel_patients(docs, notes, referrals, today, zone)
        page = _panel_patients(page_docs, notes, referrals, today, zone)
        edges = [
            PanelPatientEdge(cursor=_panel_cursor(start + i), node=p) for i, p in enumerate(page)
        ]
        # The deprecated lists are recorded as read only when a portal still selects them;
        # their paged successors record the patients of their page when read.
        selected = {p.split(".")[1] for p in paths if p.count(".") >= 1}
        await _audit(
            info,
            [p.patient_id for p in patients]
            + [p.patient_id for p in page]
            + ([n.patient_id for n in awaiting] if "consultationsAwaiting" in selected else [])
            + ([r.patient_id for r in referrals] if "referrals" in selected else []),
        )

        return Panel(
            as_of=today,
            patients=patients,
            patient_page=PanelPatientConnection(
                edges=edges,
                page_info=RegistryPageInfo(
                    has_next_page=start + len(page) < total,
                    end_cursor=edges[-1].cursor if edges else None,
                ),
                total_count=total,
                max_page_size=PANEL_MAX_PAGE,
            ),
            consultations_awaiting=awaiting,
            referrals=referrals,
            consultations_page_of=_loops_page_of(
                ctx,
                info.field_name,
                trackers.page_consultations,
                _consultation_connection,
                today,
                zone,
                pcp_id=pcp,
                statuses=["signed", "acknowledged"],
            ),
            referrals_page_of=_loops_page_of(
                ctx,
                info.field_name,
                trackers.page_referrals,
                _referral_connection,
                today,
                zone,
                pcp_id=pcp,
            ),
        )

    @strawberry.field(
        description="Referral loops with their next step and due day; open ones by default; "
        "at most 500.",
        deprecation_reason="Capped at 500: use referralTrackerPage (a connection with "
        "first/after and totalCount).",
    )
    async def referral_tracker(
        self,
        info: Info[CareteamContext, None],
        patient_id: UUID | None = None,
        open_only: bool = True,
        overdue_only: bool = False,
    ) -> list[ReferralTrackerView]:
        ctx = info.context
        today, zone = await _today(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            docs = await trackers.fetch_referrals(
                conn, patient_id=patient_id, open_only=open_only, scope=_scope(ctx)
            )
        views = _referral_views(docs, today, zone)
        shown = [v for v in views if v.overdue] if overdue_only else views
        await _audit(info, (v.patient_id for v in shown))
        return shown

    @strawberry.field(
        description="Referral loops with their next step and due day, oldest request first, "
        "a page at a time (`first` 1 to 200; pass `pageInfo.endCursor` as `after`); open ones "
        "by default. Every patient on the page is recorded as read."
    )
    async def referral_tracker_page(
        self,
        info: Info[CareteamContext, None],
        patient_id: UUID | None = None,
        open_only: bool = True,
        overdue_only: bool = False,
        first: int = trackers.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ReferralTrackerResult:
        ctx = info.context
        today, zone = await _today(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            try:
                page = await trackers.page_referrals(
                    conn,
                    first=first,
                    after=after,
                    patient_id=patient_id,
                    open_only=open_only,
                    keep=_referral_overdue(today, zone) if overdue_only else None,
                    scope=_scope(ctx),
                )
            except (trackers.TrackerPageSizeError, InvalidCursorError) as exc:
                return _page_refused(exc)
        found = _referral_connection(page, today, zone)
        await _audit(info, (e.node.patient_id for e in found.edges))
        return found

    @strawberry.field(
        description="Consultation loops with their open steps and due days; open ones by "
        "default; at most 500.",
        deprecation_reason="Capped at 500: use consultationTrackerPage (a connection with "
        "first/after and totalCount).",
    )
    async def consultation_tracker(
        self,
        info: Info[CareteamContext, None],
        patient_id: UUID | None = None,
        psychiatric_consultant_id: UUID | None = None,
        open_only: bool = True,
        overdue_only: bool = False,
    ) -> list[ConsultationTrackerView]:
        ctx = info.context
        today, zone = await _today(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            docs = await trackers.fetch_consultations(
                conn,
                patient_id=patient_id,
                consultant_id=psychiatric_consultant_id,
                open_only=open_only,
                scope=_scope(ctx),
            )
        views = _consultation_views(docs, today, zone)
        shown = [v for v in views if v.overdue] if overdue_only else views
        await _audit(info, (v.patient_id for v in shown))
        return shown

    @strawberry.field(
        description="Consultation loops with their open steps and due days, oldest request "
        "first, a page at a time (`first` 1 to 200; pass `pageInfo.endCursor` as `after`); "
        "open ones by default. Every patient on the page is recorded as read."
    )
    async def consultation_tracker_page(
        self,
        info: Info[CareteamContext, None],
        patient_id: UUID | None = None,
        psychiatric_consultant_id: UUID | None = None,
        open_only: bool = True,
        overdue_only: bool = False,
        first: int = trackers.TRACKER_DEFAULT_PAGE,
        after: str | None = None,
    ) -> ConsultationTrackerResult:
        ctx = info.context
        today, zone = await _today(ctx)
        async with ctx.runtime.pool.acquire() as conn:
            try:
                page = await trackers.page_consultations(
                    conn,
                    first=first,
                    after=after,
                    patient_id=patient_id,
                    consultant_id=psychiatric_consultant_id,
                    open_only=open_only,
                    keep=_consultation_overdue(today, zone) if overdue_only else None,
                    scope=_scope(ctx),
                )
            except (trackers.TrackerPageSizeError, InvalidCursorError) as exc:
                return _page_refused(exc)
        found = _consultation_connection(page, today, zone)
        await _audit(info, (e.node.patient_id for e in found.edges))
        return found

    @strawberry.field(description="How many log events each read model has not applied yet.")
    async def projection_lag(self, info: Info[CareteamContext, None]) -> list[ProjectionLagView]:
        info.context.require_principal()
        lag = await info.context.runtime.projector.lag()
        return [
            ProjectionLagView(name=name, events_behind=v["events_behind"], position=v["position"])
            for name, v in sorted(lag.items())
        ]
