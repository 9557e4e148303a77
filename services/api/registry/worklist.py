"""Worklists: what needs doing today, across the caller's patients, most urgent first.

- A care manager: safety alerts, open tasks (theirs or the team's, with due day and
  overdue), outreach due (Overdue contact) and measurement due, for their caseload.
- A PCP: safety alerts, each consultation recommendation awaiting their response, and
  tasks assigned to them.
- A psychiatric consultant: patients needing psychiatric review, consultation requests
  to answer, and tasks assigned to them.
- The wider team (docs/team-roles.md), on the patients whose team they are on: a
  behavioral health consultant the warm handoffs offered to them and not yet accepted or
  missed (the patient is in the clinic: as urgent as a safety alert on the clinic day of
  the offer, overdue from the next); every wider-team member the tasks assigned to them.

Urgency, in this order: safety alert (and a warm handoff offered today); overdue task
(and a warm handoff left open from an earlier day); recommendation awaiting response;
review needed; consultation requested; task due today; outreach due; measurement due; a
task due later. Within one urgency, the earliest due day first, then the patient.
"Today" is the clock's instant in the caller's organisation's zone (services.api.
clinic_day, read once per request), so a task due on a day is due on that local day and
overdue from the next; consultation days are the stored instants' local days. The
flags come from the registry's stored flag onsets for the clinic's "today" (the same
rule modules and rows as the caseload); tasks from the patient view. Every patient on
the page is recorded as read.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from projections import caseload, pcbh, trackers
from projections.clinic_calendar import CLINIC_ZONE, day_of, parse_instant
from services.api.authz import WIDER_TEAM_ROLES, patient_scope_sql
from services.api.clinic_day import clinic_day
from services.api.commanding import record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.errors import ForbiddenError, ValidationError, result_union
from services.api.registry.types import RegistryPageInfo
from services.api.types import staff_name
from services.auth import Role

MAX_PAGE = 200


@strawberry.enum(description="What a worklist item asks for.")
class WorklistItemKind(enum.Enum):
    SAFETY_ALERT = "safety_alert"
    TASK = "task"
    RECOMMENDATION_AWAITING = "recommendation_awaiting"
    REVIEW_NEEDED = "review_needed"
    CONSULTATION_REQUESTED = "consultation_requested"
    OUTREACH_DUE = "outreach_due"
    MEASUREMENT_DUE = "measurement_due"
    # A warm handoff offered to the caller (a BHC) that is neither accepted nor missed.
    HANDOFF_AWAITING = "handoff_awaiting"


@strawberry.type(description="One thing to do for one patient.")
class WorklistItem:
    kind: WorklistItemKind = strawberry.field(description="What is asked.")
    urgency: int = strawberry.field(description="0 is most urgent; the list is in this order.")
    patient_id: UUID = strawberry.field(description="The patient.")
    due_on: date | None = strawberry.field(
        description="The day it is due (for flags: the day the flag was raised; null when "
        "a recorded fact raised it, such as a screening's answer, or it was on from the first "
        "day the rules apply: the patient's flags say when and why)."
    )
    overdue: bool = strawberry.field(description="Due before today and not done.")
    task_id: UUID | None = strawberry.field(description="The task, for TASK items.")
    task_kind: str | None = strawberry.field(description="The task's kind, for TASK items.")
    assignee_id: UUID | None = strawberry.field(
        description="Who the task is assigned to; null for the whole team."
    )

    @strawberry.field(
        description="The assignee's display name from the staff directory; null for the "
        "whole team or an assignee not in the directory."
    )
    async def assignee_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.assignee_id)

    record_id: UUID | None = strawberry.field(
        description="The consultation note, for recommendation and consultation items; the "
        "warm handoff, for HANDOFF_AWAITING items."
    )
    recommendation_id: UUID | None = strawberry.field(
        description="The recommendation awaiting a response."
    )


@strawberry.type(description="One worklist item and its cursor.")
class WorklistEdge:
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: WorklistItem = strawberry.field(description="The item.")


@strawberry.type(description="A page of the caller's worklist, most urgent first.")
class WorklistConnection:
    edges: list[WorklistEdge] = strawberry.field(description="The items of this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Items in the whole worklist today.")
    as_of: date = strawberry.field(description="The clinic day the worklist is for.")


WorklistResult = Annotated[
    WorklistConnection | ValidationError | ForbiddenError,
    result_union("WorklistResult", "Your worklist for today, or why not."),
]


@dataclass(frozen=True)
class _Item:
    urgency: int
    due_on: date | None
    patient_id: UUID
    kind: WorklistItemKind
    task_id: UUID | None = None
    task_kind: str | None = None
    assignee_id: UUID | None = None
    record_id: UUID | None = None
    recommendation_id: UUID | None = None
    overdue: bool = False

    def key(self) -> tuple[int, date, str, str]:
        return (
            self.urgency,
            self.due_on or date.min,
            str(self.patient_id),
            str(self.task_id or self.recommendation_id or self.record_id or ""),
        )


# Any stored onset within a day of today ($3; NULL in a UTC clinic, where none is off).
_NEAR_TODAY = " OR ".join(
    f"{c} BETWEEN $3::date - 1 AND $3::date + 1" for c in caseload.ONSET_COLUMNS.values()
)


def _is_utc(zone: tzinfo) -> bool:
    return str(zone) in ("UTC", "Etc/UTC")


def _local_onsets(row: Any, zone: tzinfo) -> Mapping[str, Any]:
    """The row's onsets in the clinic zone: stored ones, or re-derived near today."""
    if row["near_doc"] is None:
        return row
    return {"key": row["key"], **caseload.onsets_in_zone(row["near_doc"], zone)}


def _on(value: date | None, today: date) -> bool:
    return value is not None and value <= today


def _raised_on(onset: date) -> date | None:
    """A flag's due day: the day it was raised, or None when it is raised by a recorded
    fact or from the first day the rules apply (the stored onset ``ALWAYS``, which is no
    day to show; the patient's flags say when and why)."""
    return None if onset == caseload.ALWAYS else onset


def _flag_items(rows: list[Any], today: date, role: Role) -> list[_Item]:
    items: list[_Item] = []
    for r in rows:
        pid = r["key"]
        if _on(r["safety_risk_on"], today):
            items.append(
                _Item(0, _raised_on(r["safety_risk_on"]), pid, WorklistItemKind.SAFETY_ALERT)
            )
        if role is Role.CARE_MANAGER:
            if _on(r["overdue_contact_on"], today):
                items.append(
                    _Item(
                        6, _raised_on(r["overdue_contact_on"]), pid, WorklistItemKind.OUTREACH_DUE
                    )
                )
            if _on(r["measurement_due_on"], today):
                items.append(
                    _Item(
                        7,
                        _raised_on(r["measurement_due_on"]),
                        pid,
                        WorklistItemKind.MEASUREMENT_DUE,
                    )
                )
        if role is Role.PSYCHIATRIST and _on(r["needs_review_on"], today):
            items.append(
                _Item(3, _raised_on(r["needs_review_on"]), pid, WorklistItemKind.REVIEW_NEEDED)
            )
    return items


def _task_items(docs: list[Any], today: date, me: UUID, team_tasks: bool) -> list[_Item]:
    items: list[_Item] = []
    for pid, doc in docs:
        for task in doc.get("tasks", []):
            assignee = UUID(task["assignee_id"]) if task.get("assignee_id") else None
            if assignee != me and not (team_tasks and assignee is None):
                continue
            due = date.fromisoformat(task["due_on"])
            urgency = 1 if due < today else 5 if due == today else 8
            items.append(
                _Item(
                    urgency,
                    due,
                    pid,
                    WorklistItemKind.TASK,
                    task_id=UUID(task["id"]),
                    task_kind=task["kind"],
                    assignee_id=assignee,
                    overdue=due < today,
                )
            )
    return items


def _consultation_items(docs: list[Any], role: Role, zone: tzinfo = CLINIC_ZONE) -> list[_Item]:
    items: list[_Item] = []
    for doc in docs:
        pid, note = UUID(doc["patient_id"]), UUID(doc["id"])
        if role is Role.PCP and doc["status"] in ("signed", "acknowledged"):
            signed = day_of(parse_instant(doc["signed_at"]), zone) if doc.get("signed_at") else None
            for rec in doc["recommendations"]:
                if rec["response"] is None:
                    items.append(
                        _Item(
                            2,
                            signed,
                            pid,
                            WorklistItemKind.RECOMMENDATION_AWAITING,
                            record_id=note,
                            recommendation_id=UUID(rec["id"]),
                        )
                    )
        if role is Role.PSYCHIATRIST and doc["status"] in ("requested", "drafted"):
            asked = day_of(parse_instant(doc["requested_at"]), zone)
            items.append(
                _Item(4, asked, pid, WorklistItemKind.CONSULTATION_REQUESTED, record_id=note)
            )
    return items


def _handoff_items(docs: list[Any], me: UUID, today: date, zone: tzinfo) -> list[_Item]:
    """The warm handoffs offered to ``me`` and still open, from the patients' PCBH docs."""
    items: list[_Item] = []
    for doc in docs:
        for handoff in doc["handoffs"]:
            if handoff["to_user_id"] != str(me) or handoff["status"] != "offered":
                continue
            offered = day_of(parse_instant(handoff["offered_at"]), zone)
            items.append(
                _Item(
                    0 if offered >= today else 1,
                    offered,
                    UUID(doc["patient_id"]),
                    WorklistItemKind.HANDOFF_AWAITING,
                    record_id=UUID(handoff["id"]),
                    overdue=offered < today,
                )
            )
    return items


async def _wider_team_items(conn: Any, principal: Any, today: date, zone: tzinfo) -> list[_Item]:
    """A wider-team member's items on the patients whose team they are on (the scope of
    ``integratedCare``): their open warm handoffs (a BHC) and the tasks assigned to them."""
    predicate, params = patient_scope_sql("integratedCare", principal, "p.key", 1)
    rows = await conn.fetch(
        f"""SELECT p.key, p.doc AS pcbh, v.doc AS view FROM {pcbh.TABLE} p
            LEFT JOIN rm_patient_view v ON v.key = p.key
            WHERE {predicate}""",
        *params,
    )
    me = principal.user_id
    items = _task_items([(r["key"], r["view"]) for r in rows if r["view"]], today, me, False)
    if principal.role is Role.BEHAVIORAL_HEALTH_CONSULTANT:
        items += _handoff_items([r["pcbh"] for r in rows], me, today, zone)
    return items


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"w:{index}".encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("w:") or not text[2:].isdigit():
        return None
    return int(text[2:]) + 1


_SLOT = {
    Role.CARE_MANAGER: "care_manager_id",
    Role.PCP: "pcp_id",
    Role.PSYCHIATRIST: "psychiatric_consultant_id",
}


@strawberry.type(description="What needs doing today.")
class WorklistQuery:
    @strawberry.field(
        description="Your worklist for today across your patients, most urgent first (see "
        "WorklistItem.urgency): for care managers tasks, safety alerts, outreach and "
        "measurement due; for PCPs safety alerts, recommendations awaiting your response and "
        "your tasks; for psychiatric consultants reviews needed, consultation requests and "
        "your tasks; for the wider team, on the patients whose team you are on, the tasks "
        "assigned to you and, for a behavioral health consultant, the warm handoffs offered "
        "to you and still open. Clinicians and the wider team only."
    )
    async def worklist(
        self, info: Info[CareteamContext, None], first: int = 50, after: str | None = None
    ) -> WorklistResult:
        ctx = info.context
        principal = ctx.require_principal()
        slot = _SLOT.get(principal.role)
        if slot is None and principal.role not in WIDER_TEAM_ROLES:
            return ForbiddenError(code="ROLE_NOT_PERMITTED", message="worklist is not permitted")
        if not 1 <= first <= MAX_PAGE:
            return ValidationError(
                code="INVALID_PAGE_SIZE", message=f"first must be 1 to {MAX_PAGE}", field="first"
            )
        start = 0
        if after is not None:
            offset = _offset(after)
            if offset is None:
                return ValidationError(
                    code="INVALID_CURSOR", message="after is not a cursor", field="after"
                )
            start = offset
        me, org = principal.user_id, principal.organisation_id
        if slot is None:
            async with ctx.runtime.pool.acquire() as conn:
                clinic = await clinic_day(ctx, conn)
                items = await _wider_team_items(conn, principal, clinic.today, clinic.zone)
            return await _page(info, items, start, first, clinic.today)
        async with ctx.runtime.pool.acquire() as conn:
            clinic = await clinic_day(ctx, conn)  # the caller's clinic zone, read once
            today = clinic.today
            # The stored onsets are days in the zone the organisation's stream recorded
            # (UTC before it records one, e.g. a zone set before the zone went into the
            # log): a row with one within a day of today is re-derived in the clinic zone
            # (its document comes along only then), exact whatever the stored zone.
            rows = await conn.fetch(
                f"""SELECT key, safety_risk_on, overdue_contact_on, measurement_due_on,
                           needs_review_on,
                           CASE WHEN {_NEAR_TODAY} THEN doc END AS near_doc
                    FROM rm_registry
                    WHERE organisation_id = $1 AND {slot} = $2 AND on_caseload""",
                org,
                me,
                None if _is_utc(clinic.zone) else today,
            )
            docs = await conn.fetch(
                f"""SELECT v.key, v.doc FROM rm_patient_view v
                    JOIN rm_patient_access a ON a.patient_id = v.key
                    WHERE a.organisation_id = $1 AND a.{slot} = $2""",
                org,
                me,
            )
            notes: list[Any] = []
            if principal.role is Role.PCP:
                notes = await trackers.fetch_consultations(
                    conn, pcp_id=me, statuses=["signed", "acknowledged"]
                )
            elif principal.role is Role.PSYCHIATRIST:
                notes = await trackers.fetch_consultations(
                    conn, consultant_id=me, statuses=["requested", "drafted"]
                )
        team = {r["key"] for r in docs}
        local = [_local_onsets(r, clinic.zone) for r in rows]
        items = _flag_items(local, today, principal.role)
        items += _task_items(
            [(r["key"], r["doc"]) for r in docs], today, me, principal.role is Role.CARE_MANAGER
        )
        items += [
            i
            for i in _consultation_items(notes, principal.role, clinic.zone)
            if i.patient_id in team
        ]
        return await _page(info, items, start, first, today)


async def _page(
    info: Info[CareteamContext, None], items: list[_Item], start: int, first: int, today: date
) -> WorklistConnection:
    """The page of ``items`` (most urgent first) from ``start``; its patients are audited."""
    ctx = info.context
    items.sort(key=_Item.key)
    page = items[start : start + first]
    edges = [
        WorklistEdge(
            cursor=_cursor(start + n),
            node=WorklistItem(
                kind=i.kind,
                urgency=i.urgency,
                patient_id=i.patient_id,
                due_on=i.due_on,
                overdue=i.overdue,
                task_id=i.task_id,
                task_kind=i.task_kind,
                assignee_id=i.assignee_id,
                record_id=i.record_id,
                recommendation_id=i.recommendation_id,
            ),
        )
        for n, i in enumerate(page)
    ]
    patients = list(dict.fromkeys(i.patient_id for i in page))
    if patients:
        await record_reads(ctx, "worklist", patients, selected_fields(info))
    return WorklistConnection(
        edges=edges,
        page_info=RegistryPageInfo(
            has_next_page=start + first < len(items),
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=len(items),
        as_of=today,
    )
