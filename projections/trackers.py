"""Referral and consultation trackers: every open loop, its next step, and what is overdue.

Answers "which loops are still open, whose move is it, and which step is late?" for the
PCP's panel (referrals to close, recommendations to answer), the psychiatric
consultant's queue (notes to draft and sign) and the care manager. One document per
referral and per consultation note, holding the effective time of every step; the
next step, its due day and whether it is overdue are derived on read for the query's
"today" (projections.tracker_rules), because lateness grows with time while nothing
is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from domain.common import COMMUNITY_SERVICES
from domain.consultation import ConsultationNote
from domain.referral import Referral
from projections.clinic_calendar import CLINIC_ZONE, day_of, parse_instant
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import (
    InvalidCursorError,
    Scope,
    decode_cursor,
    encode_cursor,
    unrestricted,
)
from projections.source import Conn, RecordedEvent
from projections.tracker_rules import RULE_ID, rules_for

REFERRAL_NAME = "referral_tracker"
REFERRAL_TABLE = "rm_referral_tracker"
CONSULTATION_NAME = "consultation_tracker"
CONSULTATION_TABLE = "rm_consultation_tracker"

REFERRAL_FINAL: Final = frozenset({"completed", "declined", "cancelled"})
_COMMUNITY: Final = frozenset(s.value for s in COMMUNITY_SERVICES)


class Actor(StrEnum):
    """Whose move the next step is."""

    CARE_MANAGER = "care_manager"
    RECEIVING_ORGANISATION = "receiving_organisation"
    PSYCHIATRIC_CONSULTANT = "psychiatric_consultant"
    PCP = "pcp"


@dataclass(frozen=True)
class Step:
    """A step still to be taken, by whom, by when, and whether it is late on ``as_of``."""

    name: str
    actor: Actor
    due_on: date
    overdue: bool
    rule_id: str
    rule_version: str
    recommendation_id: UUID | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- referrals -------------------------------------------------------------------------


def evolve_referral(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: one referral's tracker document after ``record``."""
    if record.stream_type != "referral":
        return doc
    ev = record.to_domain_event()
    if isinstance(ev, Referral.Requested):
        return {
            "id": str(record.stream_id),
            "patient_id": str(ev.patient_id),
            "service": ev.service,
            "receiving_organisation_id": None
            if ev.receiving_organisation_id is None
            else str(ev.receiving_organisation_id),
            "reason": ev.reason,
            "expected_by": ev.expected_by.isoformat(),
            "requested_by": None if ev.requested_by is None else str(ev.requested_by),
            "status": "requested",
            "requested_at": ev.occurred_at.isoformat(),
            "sent_at": None,
            "accepted_at": None,
            "scheduled_at": None,
            "appointment_at": None,
            "closed_at": None,
            "close_reason": None,
            "report_back": False,
        }
    if doc is None:
        return None
    doc = copy_doc(doc)
    match ev:
        case Referral.Sent():
            doc.update(status="sent", sent_at=_iso(ev.occurred_at))
        case Referral.Accepted():
            doc.update(status="accepted", accepted_at=_iso(ev.occurred_at))
        case Referral.Declined():
            doc.update(status="declined", closed_at=_iso(ev.occurred_at), close_reason=ev.reason)
        case Referral.Scheduled():
            doc.update(
                status="scheduled",
                scheduled_at=_iso(ev.occurred_at),
                appointment_at=_iso(ev.appointment_at),
            )
        case Referral.Completed():
            # The report's text stays in the referral stream: the tracker only needs to
            # know that it came back.
            doc.update(status="completed", closed_at=_iso(ev.occurred_at), report_back=True)
        case Referral.Cancelled():
            doc.update(status="cancelled", closed_at=_iso(ev.occurred_at), close_reason=ev.reason)
        case _:
            pass
    return doc


def erase_referral(doc: Doc) -> Doc:
    """Pure: the referral's document once its patient is forgotten (no free text)."""
    doc = copy_doc(doc)
    doc.update(reason=None, close_reason=None)
    return doc


def _at(doc: Doc, key: str, zone: tzinfo = CLINIC_ZONE) -> date:
    """The clinic day (in ``zone``) of a stored instant."""
    return day_of(parse_instant(doc[key]), zone)


def referral_next_step(doc: Doc, today: date, zone: tzinfo = CLINIC_ZONE) -> Step | None:
    """The referral's next step with its due day (None once it is final); days are counted
    from the stored instants' days in the clinic ``zone``, as ``today`` is."""
    rules = rules_for(_at(doc, "requested_at", zone))
    status = doc["status"]
    if status in REFERRAL_FINAL:
        return None
    if status == "requested":
        name, actor = "send", Actor.CARE_MANAGER
        due = _at(doc, "requested_at", zone) + timedelta(days=rules.referral_send_days)
    elif status == "sent":
        name, actor = "answer", Actor.RECEIVING_ORGANISATION
        due = _at(doc, "sent_at", zone) + timedelta(days=rules.referral_answer_days)
    elif status == "accepted" and doc["service"] in _COMMUNITY:
        # A community service may report back without an appointment (domain.referral).
        name, actor = "report_back", Actor.RECEIVING_ORGANISATION
        due = _at(doc, "accepted_at", zone) + timedelta(days=rules.referral_report_back_days)
    elif status == "accepted":
        name, actor = "schedule", Actor.RECEIVING_ORGANISATION
        due = _at(doc, "accepted_at", zone) + timedelta(days=rules.referral_schedule_days)
    else:
        name, actor = "report_back", Actor.RECEIVING_ORGANISATION
        due = _at(doc, "appointment_at", zone) + timedelta(days=rules.referral_report_back_days)
    return Step(name, actor, due, today > due, RULE_ID, rules.version)


def referral_overdue(doc: Doc, today: date) -> bool:
    """Not final and past its expected-by day (domain.referral ``Referral.is_overdue``)."""
    return doc["status"] not in REFERRAL_FINAL and today > date.fromisoformat(doc["expected_by"])


def _referral_columns(doc: Doc) -> dict[str, Any]:
    return {
        "patient_id": UUID(doc["patient_id"]),
        "status": doc["status"],
        "open": doc["status"] not in REFERRAL_FINAL,
        "expected_by": date.fromisoformat(doc["expected_by"]),
    }


def _stream_key(stream_type: str) -> Any:
    def key_of(record: RecordedEvent) -> UUID | None:
        return record.stream_id if record.stream_type == stream_type else None

    return key_of


referral_projection = KeyedDocumentProjection(
    name=REFERRAL_NAME,
    table=REFERRAL_TABLE,
    key_of=_stream_key("referral"),
    evolve=evolve_referral,
    columns={"patient_id": "uuid", "status": "text", "open": "boolean", "expected_by": "date"},
    derive=_referral_columns,
    erase=erase_referral,
)


# --- consultation notes ------------------------------------------------------------------


def _recommendation(doc: Doc, rec_id: UUID) -> dict[str, Any] | None:
    for rec in doc["recommendations"]:
        if rec["id"] == str(rec_id):
            found: dict[str, Any] = rec
            return found
    return None


def _respond(doc: Doc, rec_id: UUID, response: str, by: UUID, at: datetime) -> None:
    rec = _recommendation(doc, rec_id)
    if rec is not None:
        rec.update(response=response, responded_by=str(by), responded_at=at.isoformat())


def evolve_consultation(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: one consultation note's tracker document after ``record``."""
    if record.stream_type != "consultation_note":
        return doc
    ev = record.to_domain_event()
    if isinstance(ev, ConsultationNote.Requested):
        return {
            "id": str(record.stream_id),
            "patient_id": str(ev.patient_id),
            "requested_by": str(ev.requested_by),
            "consultant_id": None if ev.consultant_id is None else str(ev.consultant_id),
            "question": ev.question,
            "status": "requested",
            "requested_at": ev.occurred_at.isoformat(),
            "drafted_at": None,
            "draft_number": 0,
            "author_id": None,
            "signed_at": None,
            "signed_by": None,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "withdrawn_at": None,
            "addendum_count": 0,
            "recommendations": [],
        }
    if doc is None:
        return None
    doc = copy_doc(doc)
    match ev:
        case ConsultationNote.Drafted():
            doc.update(status="drafted", draft_number=ev.draft_number, author_id=str(ev.author_id))
            # The sign step is timed from the first draft: redrafting does not reset it.
            doc["drafted_at"] = doc["drafted_at"] or ev.occurred_at.isoformat()
        case ConsultationNote.RecommendationAdded():
            doc["recommendations"].append(
                {
                    "id": str(ev.recommendation_id),
                    "text": ev.text,
                    "added_at": ev.occurred_at.isoformat(),
                    "response": None,
                    "responded_by": None,
                    "responded_at": None,
                    "implemented_at": None,
                }
            )
        case ConsultationNote.RecommendationRemoved():
            doc["recommendations"] = [
                r for r in doc["recommendations"] if r["id"] != str(ev.recommendation_id)
            ]
        case ConsultationNote.Signed():
            doc.update(status="signed", signed_at=_iso(ev.occurred_at), signed_by=str(ev.signed_by))
        case ConsultationNote.AddendumAdded():
            doc["addendum_count"] += 1
        case ConsultationNote.Acknowledged():
            doc.update(
                status="acknowledged",
                acknowledged_at=_iso(ev.occurred_at),
                acknowledged_by=str(ev.pcp_id),
            )
        case ConsultationNote.RecommendationAccepted():
            _respond(doc, ev.recommendation_id, "accepted", ev.responded_by, ev.occurred_at)
        case ConsultationNote.RecommendationModified():
            _respond(doc, ev.recommendation_id, "modified", ev.responded_by, ev.occurred_at)
        case ConsultationNote.RecommendationDeclined():
            _respond(doc, ev.recommendation_id, "declined", ev.responded_by, ev.occurred_at)
        case ConsultationNote.RecommendationImplemented():
            rec = _recommendation(doc, ev.recommendation_id)
            if rec is not None:
                rec["implemented_at"] = ev.occurred_at.isoformat()
        case ConsultationNote.Withdrawn():
            doc.update(status="withdrawn", withdrawn_at=_iso(ev.occurred_at))
        case _:
            pass
    return doc


def erase_consultation(doc: Doc) -> Doc:
    """Pure: the note's document once its patient is forgotten (no question, no
    recommendation text)."""
    doc = copy_doc(doc)
    doc["question"] = None
    for rec in doc["recommendations"]:
        rec["text"] = None
    return doc


def consultation_steps(doc: Doc, today: date, zone: tzinfo = CLINIC_ZONE) -> list[Step]:
    """The note's open steps (one per recommendation once the PCP has acknowledged); due
    days counted from the stored instants' days in the clinic ``zone``."""
    rules = rules_for(_at(doc, "requested_at", zone))
    status = doc["status"]

    def step(name: str, actor: Actor, since: str, days: int, rec: str | None = None) -> Step:
        due = day_of(parse_instant(since), zone) + timedelta(days=days)
        recommendation = None if rec is None else UUID(rec)
        return Step(name, actor, due, today > due, RULE_ID, rules.version, recommendation)

    consultant = Actor.PSYCHIATRIC_CONSULTANT
    if status == "withdrawn":
        return []
    if status == "requested":
        return [step("draft", consultant, doc["requested_at"], rules.consultation_draft_days)]
    if status == "drafted":
        return [step("sign", consultant, doc["drafted_at"], rules.consultation_sign_days)]
    if status == "signed":
        days = rules.consultation_acknowledge_days
        return [step("acknowledge", Actor.PCP, doc["signed_at"], days)]
    steps = []
    for rec in doc["recommendations"]:
        if rec["response"] is None:
            days = rules.consultation_respond_days
            steps.append(step("respond", Actor.PCP, doc["acknowledged_at"], days, rec["id"]))
        elif rec["response"] in ("accepted", "modified") and rec["implemented_at"] is None:
            days = rules.consultation_implement_days
            steps.append(step("implement", Actor.PCP, rec["responded_at"], days, rec["id"]))
    return steps


def _awaits_pcp(rec: dict[str, Any]) -> bool:
    """Not answered yet, or accepted or modified and not implemented yet."""
    return rec["response"] is None or (
        rec["response"] in ("accepted", "modified") and rec["implemented_at"] is None
    )


def recommendations_awaiting(doc: Doc) -> int:
    """How many of the note's recommendations wait for the PCP (not how many steps).

    A signed note not yet acknowledged: every recommendation on it (one "acknowledge"
    step covers them all). An acknowledged note: each recommendation not answered yet,
    or accepted or modified and not implemented yet. A note still with the consultant,
    or withdrawn, has none waiting for the PCP.
    """
    if doc["status"] == "signed":
        return len(doc["recommendations"])
    if doc["status"] == "acknowledged":
        return sum(1 for r in doc["recommendations"] if _awaits_pcp(r))
    return 0


def _consultation_open(doc: Doc) -> bool:
    if doc["status"] == "withdrawn":
        return False
    if doc["status"] != "acknowledged":
        return True
    return any(_awaits_pcp(r) for r in doc["recommendations"])


def _consultation_columns(doc: Doc) -> dict[str, Any]:
    consultant = doc["consultant_id"]
    return {
        "patient_id": UUID(doc["patient_id"]),
        "consultant_id": None if consultant is None else UUID(consultant),
        "status": doc["status"],
        "open": _consultation_open(doc),
    }


consultation_projection = KeyedDocumentProjection(
    name=CONSULTATION_NAME,
    table=CONSULTATION_TABLE,
    key_of=_stream_key("consultation_note"),
    evolve=evolve_consultation,
    columns={"patient_id": "uuid", "consultant_id": "uuid", "status": "text", "open": "boolean"},
    derive=_consultation_columns,
    erase=erase_consultation,
)


# --- queries -----------------------------------------------------------------------------

# Trackers carry no organisation or care team of their own: they join the registry,
# so who may see a loop follows the patient's current care team.
_REGISTRY = "rm_registry"


def _referral_filter(
    *,
    patient_id: UUID | None,
    pcp_id: UUID | None,
    care_manager_id: UUID | None,
    open_only: bool,
    scope: Scope,
) -> tuple[str, list[object]]:
    """The WHERE condition (over ``t`` and the registry ``r``) and its parameters $1...."""
    scope_sql, scope_args = scope("t.patient_id", 5)
    return (
        f"""($1::uuid IS NULL OR t.patient_id = $1::uuid)
            AND ($2::uuid IS NULL OR r.pcp_id = $2::uuid)
            AND ($3::uuid IS NULL OR r.care_manager_id = $3::uuid)
            AND (NOT $4::boolean OR t.open)
            AND {scope_sql}""",
        [patient_id, pcp_id, care_manager_id, open_only, *scope_args],
    )


def _consultation_filter(
    *,
    patient_id: UUID | None,
    consultant_id: UUID | None,
    pcp_id: UUID | None,
    statuses: Sequence[str] | None,
    open_only: bool,
    scope: Scope,
) -> tuple[str, list[object]]:
    """The WHERE condition (over ``t`` and the registry ``r``) and its parameters $1....

    A request that names no consultant goes to the patient's psychiatric consultant."""
    scope_sql, scope_args = scope("t.patient_id", 6)
    return (
        f"""($1::uuid IS NULL OR t.patient_id = $1::uuid)
            AND ($2::uuid IS NULL
                 OR COALESCE(t.consultant_id, r.psychiatric_consultant_id) = $2::uuid)
            AND ($3::uuid IS NULL OR r.pcp_id = $3::uuid)
            AND ($4::text[] IS NULL OR t.status = ANY($4::text[]))
            AND (NOT $5::boolean OR t.open)
            AND {scope_sql}""",
        [
            patient_id,
            consultant_id,
            pcp_id,
            None if statuses is None else list(statuses),
            open_only,
            *scope_args,
        ],
    )


async def fetch_referrals(
    conn: Conn,
    *,
    patient_id: UUID | None = None,
    pcp_id: UUID | None = None,
    care_manager_id: UUID | None = None,
    open_only: bool = True,
    limit: int = 500,
    scope: Scope = unrestricted,
) -> list[Doc]:
    """Referral documents, oldest request first, filtered by patient or care team member."""
    where, args = _referral_filter(
        patient_id=patient_id,
        pcp_id=pcp_id,
        care_manager_id=care_manager_id,
        open_only=open_only,
        scope=scope,
    )
    rows = await conn.fetch(
        f"""SELECT t.doc FROM {REFERRAL_TABLE} t JOIN {_REGISTRY} r ON r.key = t.patient_id
            WHERE {where}
            ORDER BY t.doc->>'requested_at', t.key
            LIMIT {int(limit)}""",
        *args,
    )
    return [r["doc"] for r in rows]


async def fetch_consultations(
    conn: Conn,
    *,
    patient_id: UUID | None = None,
    consultant_id: UUID | None = None,
    pcp_id: UUID | None = None,
    statuses: Sequence[str] | None = None,
    open_only: bool = True,
    limit: int = 500,
    scope: Scope = unrestricted,
) -> list[Doc]:
    """Consultation documents, oldest request first.

    A request that names no consultant goes to the patient's psychiatric consultant.
    """
    where, args = _consultation_filter(
        patient_id=patient_id,
        consultant_id=consultant_id,
        pcp_id=pcp_id,
        statuses=statuses,
        open_only=open_only,
        scope=scope,
    )
    rows = await conn.fetch(
        f"""SELECT t.doc FROM {CONSULTATION_TABLE} t JOIN {_REGISTRY} r ON r.key = t.patient_id
            WHERE {where}
            ORDER BY t.doc->>'requested_at', t.key
            LIMIT {int(limit)}""",
        *args,
    )
    return [r["doc"] for r in rows]


# --- tracker pages (issue 13: every list that can grow is a connection) -------------------

TRACKER_DEFAULT_PAGE: Final = 50
TRACKER_MAX_PAGE: Final = 200
# One ordering for both kinds of loop: oldest request first, then the record id. The
# request instant is compared as text in the "C" collation (byte order), so SQL, the
# cursor and the Python filter below agree on one total order whatever the database's
# default collation is.
_TRACKER_ORDER: Final = "tracker:requested_at,key"


class TrackerPageSizeError(ValueError):
    """``first`` outside 1..TRACKER_MAX_PAGE."""

    code = "PAGE_SIZE"


@dataclass(frozen=True)
class TrackerPage:
    """One page of loops in their order, with the cursor of each and the total count."""

    docs: list[Doc]
    cursors: list[str]
    has_next_page: bool
    total_count: int


def tracker_cursor(doc: Doc) -> str:
    """The opaque position of a loop (a referral or a consultation note) in the order."""
    return encode_cursor(_TRACKER_ORDER, [doc["requested_at"], doc["id"]])


def _tracker_after(after: str | None) -> tuple[str, UUID] | None:
    if after is None:
        return None
    requested_at, key = decode_cursor(_TRACKER_ORDER, after, 2)
    if requested_at is None or key is None:
        raise InvalidCursorError("the cursor is not valid")
    try:
        return requested_at, UUID(key)
    except ValueError:
        raise InvalidCursorError("the cursor is not valid") from None


def check_tracker_page(first: int, after: str | None) -> tuple[str, UUID] | None:
    """The position to start after; raises TrackerPageSizeError or InvalidCursorError."""
    if not 1 <= first <= TRACKER_MAX_PAGE:
        raise TrackerPageSizeError(f"first must be between 1 and {TRACKER_MAX_PAGE}")
    return _tracker_after(after)


async def _tracker_page(
    conn: Conn,
    table: str,
    where: str,
    args: list[object],
    *,
    first: int,
    after: str | None,
    keep: Callable[[Doc], bool] | None,
) -> TrackerPage:
    start = check_tracker_page(first, after)
    order = """ORDER BY t.doc->>'requested_at' COLLATE "C", t.key"""
    source = f"FROM {table} t JOIN {_REGISTRY} r ON r.key = t.patient_id WHERE {where}"
    if keep is None:
        # Keyset in SQL: only the page (and one row more) is read, and a count.
        n = len(args)
        beyond = (
            f"""AND (t.doc->>'requested_at' COLLATE "C", t.key)
                    > (${n + 1}::text COLLATE "C", ${n + 2}::uuid)"""
            if start is not None
            else ""
        )
        rows = await conn.fetch(
            f"SELECT t.doc {source} {beyond} {order} LIMIT {int(first) + 1}",
            *args,
            *(start or ()),
        )
        total = int(await conn.fetchval(f"SELECT count(*) {source}", *args))
        docs = [r["doc"] for r in rows]
    else:
        # A filter only Python can apply (whether a step is late depends on today, the
        # clinic zone and the rules in force when the loop began): every matching loop
        # is read to count them, and the page is cut after the cursor's position.
        kept = [r["doc"] for r in await conn.fetch(f"SELECT t.doc {source} {order}", *args)]
        kept = [d for d in kept if keep(d)]
        total = len(kept)
        if start is not None:
            kept = [d for d in kept if (d["requested_at"], UUID(d["id"])) > start]
        docs = kept[: first + 1]
    page = docs[:first]
    return TrackerPage(
        docs=page,
        cursors=[tracker_cursor(d) for d in page],
        has_next_page=len(docs) > first,
        total_count=total,
    )


async def page_referrals(
    conn: Conn,
    *,
    first: int,
    after: str | None,
    patient_id: UUID | None = None,
    pcp_id: UUID | None = None,
    care_manager_id: UUID | None = None,
    open_only: bool = True,
    keep: Callable[[Doc], bool] | None = None,
    scope: Scope = unrestricted,
) -> TrackerPage:
    """A page of referral documents, oldest request first, after the cursor ``after``
    (of ``tracker_cursor``); ``keep`` filters documents SQL cannot (e.g. overdue)."""
    where, args = _referral_filter(
        patient_id=patient_id,
        pcp_id=pcp_id,
        care_manager_id=care_manager_id,
        open_only=open_only,
        scope=scope,
    )
    return await _tracker_page(
        conn, REFERRAL_TABLE, where, args, first=first, after=after, keep=keep
    )


async def page_consultations(
    conn: Conn,
    *,
    first: int,
    after: str | None,
    patient_id: UUID | None = None,
    consultant_id: UUID | None = None,
    pcp_id: UUID | None = None,
    statuses: Sequence[str] | None = None,
    open_only: bool = True,
    keep: Callable[[Doc], bool] | None = None,
    scope: Scope = unrestricted,
) -> TrackerPage:
    """A page of consultation documents, oldest request first, after the cursor ``after``
    (of ``tracker_cursor``); ``keep`` filters documents SQL cannot (e.g. overdue)."""
    where, args = _consultation_filter(
        patient_id=patient_id,
        consultant_id=consultant_id,
        pcp_id=pcp_id,
        statuses=statuses,
        open_only=open_only,
        scope=scope,
    )
    return await _tracker_page(
        conn, CONSULTATION_TABLE, where, args, first=first, after=after, keep=keep
    )


# --- community services (issue 18, item 5; owner: pcbh) ----------------------------------


@dataclass(frozen=True)
class CommunityServiceLoopStats:
    """How one community service (and receiving organisation) closes its loops.

    ``closed_loop_share`` is completed-with-report-back over referrals sent (a referral
    never sent has not reached the service); the medians count clinic days
    (``clinic_calendar.day_of``) from sent to accepted and from sent to the report back,
    over the referrals that reached that step. docs/pcbh.md, 'Community services'.
    """

    service: str
    receiving_organisation_id: UUID | None
    referrals: int
    sent: int
    closed_with_report: int
    declined_or_cancelled: int
    open: int
    closed_loop_share: float | None
    median_days_to_accept: float | None
    median_days_to_report_back: float | None


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


def _days(doc: Doc, start: str, end: str) -> int | None:
    if doc.get(start) is None or doc.get(end) is None:
        return None
    return (_at(doc, end) - _at(doc, start)).days


def community_service_loops(docs: Sequence[Doc]) -> list[CommunityServiceLoopStats]:
    """Pure: per (community service, receiving organisation), the loop figures."""
    groups: dict[tuple[str, str | None], list[Doc]] = {}
    for doc in docs:
        if doc["service"] not in _COMMUNITY:
            continue
        groups.setdefault((doc["service"], doc["receiving_organisation_id"]), []).append(doc)
    out = []
    for (service, org), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        sent = [d for d in group if d["sent_at"] is not None]
        done = [d for d in group if d["status"] == "completed"]
        accept_days = [x for d in sent if (x := _days(d, "sent_at", "accepted_at")) is not None]
        report_days = [x for d in done if (x := _days(d, "sent_at", "closed_at")) is not None]
        out.append(
            CommunityServiceLoopStats(
                service=service,
                receiving_organisation_id=None if org is None else UUID(org),
                referrals=len(group),
                sent=len(sent),
                closed_with_report=len(done),
                declined_or_cancelled=sum(d["status"] in ("declined", "cancelled") for d in group),
                open=sum(d["status"] not in REFERRAL_FINAL for d in group),
                closed_loop_share=None if not sent else len(done) / len(sent),
                median_days_to_accept=_median(accept_days),
                median_days_to_report_back=_median(report_days),
            )
        )
    return out


async def fetch_community_referrals(
    conn: Conn, *, limit: int = 5000, scope: Scope = unrestricted
) -> list[Doc]:
    """Referral documents to community services in scope, oldest request first."""
    scope_sql, scope_args = scope("t.patient_id", 3)
    rows = await conn.fetch(
        f"""SELECT t.doc FROM {REFERRAL_TABLE} t
            WHERE t.doc->>'service' = ANY($1::text[]) AND {scope_sql}
            ORDER BY t.doc->>'requested_at', t.key
            LIMIT $2""",
        sorted(_COMMUNITY),
        limit,
        *scope_args,
    )
    return [r["doc"] for r in rows]
