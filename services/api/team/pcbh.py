"""The wider team and Primary Care Behavioral Health (PCBH) over GraphQL.

- Team roles beyond the three CoCM roles (behavioral health consultant, social worker,
  therapist, peer specialist, community health worker): ``addWiderTeamMember`` puts a
  member of staff on a patient's team in a role the organisation's directory lists them
  in (``NOT_IN_ROLE`` otherwise, naming ``userId``; unlike ``assignCareTeam`` this holds
  even before an organisation lists its staff: nobody holds a wider-team role unlisted).
- Caregivers (parent, guardian, other caregiver) are participants, never staff: added
  with no access, then granted one scope at a time on the patient's or guardian's word
  (``grantCaregiverAccess``); ``caregiverView`` shows a caregiver only what is granted.
- PCBH: the PCP offers a warm handoff to a BHC on the team during the visit; the BHC
  accepts, or it is marked missed; the BHC records brief visits of 15-30 minutes.
  ``integratedCare`` is the patient's wider team, handoffs and visits; ``warmHandoffs``
  is the BHC's and the PCP's board with the same-day measure (projections/pcbh.py).
- ``communityServiceLoops``: per community service, how many referral loops close with
  a report back and how fast (projections/trackers.py).

Source of the PCBH model: Reiter, Dobmeyer & Hunter 2018, "The Primary Care Behavioral
Health (PCBH) Model: An Overview and Operational Definition", J Clin Psychol Med Settings
25(2):109-126. docs/team-roles.md and docs/pcbh.md say what each role may see and do.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Annotated, Any
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from domain.common import (
    CaregiverRelationship,
    CaregiverScope,
    WarmHandoffStatus,
    WiderTeamRole,
)
from projections import pcbh as model
from projections import trackers
from projections.clinic_calendar import parse_instant
from projections.keyset import InvalidCursorError, decode_cursor, encode_cursor
from services.api.authz import Denied, check_patient_operation, check_role, patient_scope_sql
from services.api.clinic_day import clinic_day
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.enums import ReferralService
from services.api.errors import ForbiddenError, NotFoundError, result_union
from services.api.patient_types import PatientResult
from services.api.record_commands import INPUT, actor, answer_patient, occurred_at_field
from services.api.registry.types import PageInfo
from services.auth import Role
from services.commands.pcbh import (
    AcceptWarmHandoff,
    AddCaregiver,
    AddWiderTeamMember,
    GrantCaregiverAccess,
    MissWarmHandoff,
    OfferWarmHandoff,
    RecordBriefVisit,
    RemoveWiderTeamMember,
    RevokeCaregiverAccess,
)

strawberry.enum(
    WiderTeamRole, description="Staff roles on a care team beyond the three CoCM roles."
)
strawberry.enum(
    CaregiverRelationship, description="How a caregiver (a participant, not staff) relates."
)
strawberry.enum(CaregiverScope, description="What a caregiver may be allowed to see.")
strawberry.enum(WarmHandoffStatus, description="Where a warm handoff stands.")

_PATIENT = "The patient."


# --- inputs ------------------------------------------------------------------------------


@strawberry.input(description="Put a member of staff on the patient's team in a wider role.")
class AddWiderTeamMemberInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    user_id: UUID = strawberry.field(
        description="The staff member; the directory must list them, active, in the role."
    )
    role: WiderTeamRole = strawberry.field(description="The role on this patient's team.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Take a wider-team member off the patient's team.")
class RemoveWiderTeamMemberInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    user_id: UUID = strawberry.field(description="The wider-team member.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Add a parent, guardian or other caregiver (no access yet).")
class AddCaregiverInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    caregiver_id: UUID = strawberry.field(description="The caregiver's user id (not staff).")
    relationship: CaregiverRelationship = strawberry.field(
        description="How they relate to the patient."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The patient or guardian lets a caregiver see one scope.")
class GrantCaregiverAccessInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    caregiver_id: UUID = strawberry.field(description="The caregiver.")
    scope: CaregiverScope = strawberry.field(description="What they may see.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The patient or guardian withdraws one scope from a caregiver.")
class RevokeCaregiverAccessInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    caregiver_id: UUID = strawberry.field(description="The caregiver.")
    scope: CaregiverScope = strawberry.field(description="What they may no longer see.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The PCP hands the patient to a BHC on the team (you offer).")
class OfferWarmHandoffInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    to_user_id: UUID = strawberry.field(description="The BHC on the patient's team.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="You (the BHC) saw the patient handed to you.")
class AcceptWarmHandoffInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    handoff_id: UUID = strawberry.field(description="The warm handoff.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The warm handoff did not happen.")
class MissWarmHandoffInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    handoff_id: UUID = strawberry.field(description="The warm handoff.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Your brief visit with the patient (you are the BHC).")
class RecordBriefVisitInput:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    minutes: int = strawberry.field(description="15 to 30, both included.")
    handoff_id: UUID | None = strawberry.field(
        default=None, description="The warm handoff that brought the patient, if any."
    )
    occurred_at: datetime | None = occurred_at_field()


# --- views -------------------------------------------------------------------------------


@strawberry.type(description="A member of the wider team on one patient's team.")
class WiderTeamMember:
    user_id: UUID = strawberry.field(description="The member of staff.")
    role: WiderTeamRole = strawberry.field(description="Their role on this team.")


@strawberry.type(description="A caregiver of the patient and what they may see.")
class CaregiverView:
    caregiver_id: UUID = strawberry.field(description="The caregiver.")
    relationship: CaregiverRelationship = strawberry.field(description="Their relationship.")
    scopes: list[CaregiverScope] = strawberry.field(description="Scopes granted; none at first.")


@strawberry.type(description="A warm handoff from the PCP to the BHC.")
class WarmHandoffView:
    id: UUID = strawberry.field(description="Handoff id.")
    patient_id: UUID = strawberry.field(description=_PATIENT)
    from_user_id: UUID = strawberry.field(description="The PCP who handed over.")
    to_user_id: UUID = strawberry.field(description="The BHC.")
    offered_at: datetime = strawberry.field(description="When it was offered.")
    status: WarmHandoffStatus = strawberry.field(description="Offered, accepted or missed.")
    closed_at: datetime | None = strawberry.field(description="When accepted or missed.")
    seen_same_day: bool = strawberry.field(description="Accepted on the clinic day it was offered.")


@strawberry.type(description="A brief BHC visit (15-30 minutes).")
class BriefVisitView:
    id: UUID = strawberry.field(description="Visit id.")
    patient_id: UUID = strawberry.field(description=_PATIENT)
    bhc_id: UUID = strawberry.field(description="The BHC.")
    minutes: int = strawberry.field(description="Minutes, 15 to 30.")
    handoff_id: UUID | None = strawberry.field(description="The handoff that led to it.")
    occurred_at: datetime = strawberry.field(description="When it took place.")


@strawberry.type(description="One patient's wider team, caregivers, handoffs and visits.")
class IntegratedCare:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    members: list[WiderTeamMember] = strawberry.field(description="The wider team.")
    caregivers: list[CaregiverView] = strawberry.field(description="Caregivers (not staff).")
    handoffs: list[WarmHandoffView] = strawberry.field(description="Warm handoffs, oldest first.")
    brief_visits: list[BriefVisitView] = strawberry.field(description="Brief visits, oldest first.")


@strawberry.type(description="Share of warm handoffs seen the same clinic day (PCBH).")
class SameDayHandoffs:
    handoffs: int = strawberry.field(
        description="Handoffs decided: accepted, missed, or offered before today."
    )
    seen_same_day: int = strawberry.field(description="Accepted on the day offered.")
    pending: int = strawberry.field(description="Offered today, not yet answered.")
    share: float | None = strawberry.field(description="seenSameDay / handoffs; null if none.")


BOARD_DEFAULT_PAGE = 50
BOARD_MAX_PAGE = 200
_HANDOFF_ORDER = "board:handoffs:offered_at,id"
_VISIT_ORDER = "board:visits:occurred_at,id"


@strawberry.type(description="One warm handoff and its cursor.")
class WarmHandoffEdge:
    cursor: str = strawberry.field(description="Opaque position of this handoff (an `after`).")
    node: WarmHandoffView = strawberry.field(description="The handoff.")


@strawberry.type(description="A page of warm handoffs, oldest offer first.")
class WarmHandoffConnection:
    edges: list[WarmHandoffEdge] = strawberry.field(description="The handoffs of this page.")
    page_info: PageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Handoffs on the board, all pages.")
    max_page_size: int = strawberry.field(
        default=BOARD_MAX_PAGE, description="The largest `first` accepted."
    )


@strawberry.type(description="One brief visit and its cursor.")
class BriefVisitEdge:
    cursor: str = strawberry.field(description="Opaque position of this visit (an `after`).")
    node: BriefVisitView = strawberry.field(description="The visit.")


@strawberry.type(description="A page of brief visits, oldest first.")
class BriefVisitConnection:
    edges: list[BriefVisitEdge] = strawberry.field(description="The visits of this page.")
    page_info: PageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Visits on the board, all pages.")
    max_page_size: int = strawberry.field(
        default=BOARD_MAX_PAGE, description="The largest `first` accepted."
    )


def _board_page(
    items: list[Any], ordering: str, first: int, after: str | None
) -> tuple[list[tuple[str, Any]], PageInfo]:
    """The page of ``items`` (sorted by (time, id)) after ``after``: (cursor, item) pairs and
    the paging state. A bad size or cursor is a GraphQL error naming the argument."""
    if not 1 <= first <= BOARD_MAX_PAGE:
        raise GraphQLError(
            f"first must be between 1 and {BOARD_MAX_PAGE}",
            extensions={"code": "PAGE_SIZE", "field": "first"},
        )

    def key(item: Any) -> tuple[datetime, UUID]:
        return (item.offered_at if ordering == _HANDOFF_ORDER else item.occurred_at, item.id)

    start = 0
    if after is not None:
        try:
            at, item_id = decode_cursor(ordering, after, 2)
            if at is None or item_id is None:
                raise InvalidCursorError("the cursor is not valid")
            mark = (datetime.fromisoformat(at), UUID(item_id))
        except (InvalidCursorError, ValueError):
            raise GraphQLError(
                "after is not a cursor of this list",
                extensions={"code": "INVALID_CURSOR", "field": "after"},
            ) from None
        start = next((i for i, item in enumerate(items) if key(item) > mark), len(items))
    chosen = items[start : start + first]
    pairs = [(encode_cursor(ordering, list(key(item))), item) for item in chosen]
    info = PageInfo(
        has_next_page=start + first < len(items), end_cursor=pairs[-1][0] if pairs else None
    )
    return pairs, info


@strawberry.type(description="Your warm handoffs and brief visits, with the same-day measure.")
class WarmHandoffBoard:
    as_of: date = strawberry.field(description="The clinic day the board is for.")
    handoffs: list[WarmHandoffView] = strawberry.field(
        description="A BHC: handoffs to you; a PCP: handoffs you made; others: all in reach.",
        deprecation_reason="Unbounded; use handoffPage.",
    )
    brief_visits: list[BriefVisitView] = strawberry.field(
        description="A BHC: your visits; others: the visits of patients in reach.",
        deprecation_reason="Unbounded; use briefVisitPage.",
    )
    same_day: SameDayHandoffs = strawberry.field(description="Over the handoffs listed.")

    @strawberry.field(
        description="The board's handoffs, oldest offer first, a page at a time (`first` 1 "
        "to 200): a BHC's are those handed to them, a PCP's those they handed over."
    )
    def handoff_page(
        self, first: int = BOARD_DEFAULT_PAGE, after: str | None = None
    ) -> WarmHandoffConnection:
        pairs, page_info = _board_page(self.handoffs, _HANDOFF_ORDER, first, after)
        return WarmHandoffConnection(
            edges=[WarmHandoffEdge(cursor=c, node=n) for c, n in pairs],
            page_info=page_info,
            total_count=len(self.handoffs),
        )

    @strawberry.field(
        description="The board's brief visits, oldest first, a page at a time (`first` 1 to 200)."
    )
    def brief_visit_page(
        self, first: int = BOARD_DEFAULT_PAGE, after: str | None = None
    ) -> BriefVisitConnection:
        pairs, page_info = _board_page(self.brief_visits, _VISIT_ORDER, first, after)
        return BriefVisitConnection(
            edges=[BriefVisitEdge(cursor=c, node=n) for c, n in pairs],
            page_info=page_info,
            total_count=len(self.brief_visits),
        )


@strawberry.type(description="A caregiver's view: only what the patient or guardian granted.")
class CaregiverPortal:
    patient_id: UUID = strawberry.field(description=_PATIENT)
    scopes: list[CaregiverScope] = strawberry.field(description="What you may see.")
    care_team: list[WiderTeamMember] | None = strawberry.field(
        description="The wider team, when CARE_TEAM is granted; null otherwise."
    )
    care_team_user_ids: list[UUID] | None = strawberry.field(
        description="The CoCM team's user ids, when CARE_TEAM is granted; null otherwise."
    )
    visit_times: list[datetime] | None = strawberry.field(
        description="When brief visits took place, when VISITS is granted; null otherwise."
    )


@strawberry.type(description="How one community service closes its referral loops.")
class CommunityServiceLoop:
    service: ReferralService = strawberry.field(description="The community service.")
    receiving_organisation_id: UUID | None = strawberry.field(
        description="The receiving organisation, when named."
    )
    referrals: int = strawberry.field(description="Referrals requested.")
    sent: int = strawberry.field(description="Of those, sent.")
    closed_with_report: int = strawberry.field(description="Completed with a report back.")
    declined_or_cancelled: int = strawberry.field(description="Declined or cancelled.")
    open: int = strawberry.field(description="Not final yet.")
    closed_loop_share: float | None = strawberry.field(
        description="closedWithReport / sent; null when none was sent."
    )
    median_days_to_accept: float | None = strawberry.field(
        description="Median clinic days from sent to accepted."
    )
    median_days_to_report_back: float | None = strawberry.field(
        description="Median clinic days from sent to the report back."
    )


IntegratedCareResult = Annotated[
    IntegratedCare | NotFoundError | ForbiddenError,
    result_union("IntegratedCareResult", "The patient's wider team and PCBH record, or why not."),
]
WarmHandoffBoardResult = Annotated[
    WarmHandoffBoard | ForbiddenError,
    result_union("WarmHandoffBoardResult", "Your warm handoff board, or why not."),
]
CaregiverPortalResult = Annotated[
    CaregiverPortal | NotFoundError | ForbiddenError,
    result_union("CaregiverPortalResult", "What you may see as a caregiver, or why not."),
]


@strawberry.type(description="Community service referral loops of your organisation.")
class CommunityServiceLoops:
    as_of: date = strawberry.field(description="The clinic day the figures are for.")
    services: list[CommunityServiceLoop] = strawberry.field(
        description="One row per community service and receiving organisation."
    )


CommunityServiceLoopsResult = Annotated[
    CommunityServiceLoops | ForbiddenError,
    result_union("CommunityServiceLoopsResult", "Community service loops, or why not."),
]


# --- building views ----------------------------------------------------------------------


def _handoff(patient_id: UUID, h: dict[str, Any], zone: tzinfo) -> WarmHandoffView:
    return WarmHandoffView(
        id=UUID(h["id"]),
        patient_id=patient_id,
        from_user_id=UUID(h["from_user_id"]),
        to_user_id=UUID(h["to_user_id"]),
        offered_at=parse_instant(h["offered_at"]),
        status=WarmHandoffStatus(h["status"]),
        closed_at=None if h["closed_at"] is None else parse_instant(h["closed_at"]),
        seen_same_day=model.seen_same_day(h, zone),
    )


def _visit(patient_id: UUID, v: dict[str, Any]) -> BriefVisitView:
    return BriefVisitView(
        id=UUID(v["id"]),
        patient_id=patient_id,
        bhc_id=UUID(v["bhc_id"]),
        minutes=v["minutes"],
        handoff_id=None if v["handoff_id"] is None else UUID(v["handoff_id"]),
        occurred_at=parse_instant(v["occurred_at"]),
    )


def _members(doc: dict[str, Any]) -> list[WiderTeamMember]:
    return [
        WiderTeamMember(user_id=UUID(u), role=WiderTeamRole(r))
        for u, r in sorted(doc["members"].items())
    ]


def _integrated(doc: dict[str, Any], zone: tzinfo) -> IntegratedCare:
    pid = UUID(doc["patient_id"])
    return IntegratedCare(
        patient_id=pid,
        members=_members(doc),
        caregivers=[
            CaregiverView(
                caregiver_id=UUID(c),
                relationship=CaregiverRelationship(v["relationship"]),
                scopes=[CaregiverScope(s) for s in v["scopes"]],
            )
            for c, v in sorted(doc["caregivers"].items())
        ],
        handoffs=[_handoff(pid, h, zone) for h in doc["handoffs"]],
        brief_visits=[_visit(pid, v) for v in doc["visits"]],
    )


async def _held_roles(info: Info[CareteamContext, None], user_id: UUID) -> frozenset[str]:
    """The roles the caller's organisation's directory lists ``user_id`` in (active)."""
    ctx = info.context
    org = ctx.require_principal().organisation_id
    async with ctx.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT roles, active FROM staff WHERE organisation_id = $1 AND user_id = $2",
            org,
            user_id,
        )
    if row is None or not row["active"]:
        return frozenset()
    return frozenset(row["roles"])


# --- mutations ---------------------------------------------------------------------------


@strawberry.type(description="The wider team and PCBH: team roles, caregivers, handoffs, visits.")
class PcbhMutation:
    @strawberry.mutation(
        description="Put a member of staff on the patient's team in a wider-team role they "
        "hold in the directory (NOT_IN_ROLE on userId otherwise; one of the patient's "
        "caregivers is refused with CAREGIVER_NOT_STAFF)."
    )
    async def add_wider_team_member(
        self, info: Info[CareteamContext, None], input: Annotated[AddWiderTeamMemberInput, INPUT]
    ) -> PatientResult:
        held = await _held_roles(info, input.user_id)
        command = AddWiderTeamMember(
            patient=input.patient_id,
            user_id=input.user_id,
            role=input.role.value,
            held_roles=held,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(description="Take a wider-team member off the patient's team.")
    async def remove_wider_team_member(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RemoveWiderTeamMemberInput, INPUT],
    ) -> PatientResult:
        command = RemoveWiderTeamMember(
            patient=input.patient_id, user_id=input.user_id, occurred_at=input.occurred_at
        )
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Add a parent, guardian or other caregiver as a participant: not staff, "
        "and with no access until a scope is granted (CAREGIVER_NOT_STAFF on caregiverId "
        "for a member of the patient's staff team)."
    )
    async def add_caregiver(
        self, info: Info[CareteamContext, None], input: Annotated[AddCaregiverInput, INPUT]
    ) -> PatientResult:
        command = AddCaregiver(
            patient=input.patient_id,
            caregiver_id=input.caregiver_id,
            relationship=input.relationship.value,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Record that the patient or guardian lets a caregiver see one scope."
    )
    async def grant_caregiver_access(
        self, info: Info[CareteamContext, None], input: Annotated[GrantCaregiverAccessInput, INPUT]
    ) -> PatientResult:
        command = GrantCaregiverAccess(
            patient=input.patient_id,
            caregiver_id=input.caregiver_id,
            scope=input.scope.value,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(description="Withdraw one scope from a caregiver.")
    async def revoke_caregiver_access(
        self, info: Info[CareteamContext, None], input: Annotated[RevokeCaregiverAccessInput, INPUT]
    ) -> PatientResult:
        command = RevokeCaregiverAccess(
            patient=input.patient_id,
            caregiver_id=input.caregiver_id,
            scope=input.scope.value,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Hand the patient to a BHC on the team during your visit (you are the "
        "PCP); createdId is the handoff's id. NOT_A_BHC on toUserId for anyone else."
    )
    async def offer_warm_handoff(
        self, info: Info[CareteamContext, None], input: Annotated[OfferWarmHandoffInput, INPUT]
    ) -> PatientResult:
        command = OfferWarmHandoff(
            patient=input.patient_id,
            from_user_id=actor(info),
            to_user_id=input.to_user_id,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(description="You (the BHC) saw the patient handed to you.")
    async def accept_warm_handoff(
        self, info: Info[CareteamContext, None], input: Annotated[AcceptWarmHandoffInput, INPUT]
    ) -> PatientResult:
        command = AcceptWarmHandoff(
            patient=input.patient_id,
            handoff_id=input.handoff_id,
            accepted_by=actor(info),
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(description="The warm handoff did not happen.")
    async def miss_warm_handoff(
        self, info: Info[CareteamContext, None], input: Annotated[MissWarmHandoffInput, INPUT]
    ) -> PatientResult:
        command = MissWarmHandoff(
            patient=input.patient_id, handoff_id=input.handoff_id, occurred_at=input.occurred_at
        )
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Record your brief visit (you are the BHC): 15 to 30 minutes "
        "(BRIEF_VISIT_DURATION on minutes otherwise); createdId is the visit's id."
    )
    async def record_brief_visit(
        self, info: Info[CareteamContext, None], input: Annotated[RecordBriefVisitInput, INPUT]
    ) -> PatientResult:
        command = RecordBriefVisit(
            patient=input.patient_id,
            bhc_id=actor(info),
            minutes=input.minutes,
            handoff_id=input.handoff_id,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)


# --- queries -----------------------------------------------------------------------------


async def _doc(conn: Any, patient_id: UUID) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await conn.fetchval(
        f"SELECT doc FROM {model.TABLE} WHERE key = $1", patient_id
    )
    return doc


@strawberry.type(description="The wider team and PCBH read models.")
class PcbhQuery:
    @strawberry.field(description="One patient's wider team, caregivers, handoffs and visits.")
    async def integrated_care(
        self, info: Info[CareteamContext, None], patient_id: UUID
    ) -> IntegratedCareResult:
        ctx = info.context
        principal = ctx.require_principal()
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await check_patient_operation(conn, principal, "integratedCare", patient_id)
                doc = await _doc(conn, patient_id)
                zone = (await clinic_day(ctx, conn)).zone
        except Denied as denied:
            return await deny(ctx, denied, patient_id)
        if doc is None:
            return NotFoundError(code="NOT_FOUND", message=f"no record {patient_id}")
        await record_reads(ctx, "integratedCare", [patient_id], selected_fields(info))
        return _integrated(doc, zone)

    @strawberry.field(
        description="Your warm handoffs and brief visits with the share seen the same "
        "clinic day: a BHC's are those handed to them, a PCP's those they handed over."
    )
    async def warm_handoffs(self, info: Info[CareteamContext, None]) -> WarmHandoffBoardResult:
        ctx = info.context
        principal = ctx.require_principal()
        operation = "warmHandoffs"
        try:
            check_role(principal, operation)
        except Denied as denied:
            return await deny(ctx, denied, None)
        predicate, params = patient_scope_sql(operation, principal, "p.key", 1)
        async with ctx.runtime.pool.acquire() as conn:
            clinic = await clinic_day(ctx, conn)  # the caller's clinic zone and today
            rows = await conn.fetch(
                f"SELECT p.doc FROM {model.TABLE} p WHERE {predicate} ORDER BY p.key", *params
            )
        me = str(principal.user_id)
        handoffs: list[WarmHandoffView] = []
        raw: list[dict[str, Any]] = []
        visits: list[BriefVisitView] = []
        for row in rows:
            doc = row["doc"]
            pid = UUID(doc["patient_id"])
            for h in doc["handoffs"]:
                if principal.role is Role.BEHAVIORAL_HEALTH_CONSULTANT and h["to_user_id"] != me:
                    continue
                if principal.role is Role.PCP and h["from_user_id"] != me:
                    continue
                raw.append(h)
                handoffs.append(_handoff(pid, h, clinic.zone))
            for v in doc["visits"]:
                if principal.role is Role.BEHAVIORAL_HEALTH_CONSULTANT and v["bhc_id"] != me:
                    continue
                visits.append(_visit(pid, v))
        today = clinic.today
        measure = model.same_day_share(raw, today, clinic.zone)
        patients = list(
            dict.fromkeys([h.patient_id for h in handoffs] + [v.patient_id for v in visits])
        )
        if patients:
            await record_reads(ctx, operation, patients, selected_fields(info))
        return WarmHandoffBoard(
            as_of=today,
            handoffs=sorted(handoffs, key=lambda h: (h.offered_at, h.id)),
            brief_visits=sorted(visits, key=lambda v: (v.occurred_at, v.id)),
            same_day=SameDayHandoffs(
                handoffs=measure.handoffs,
                seen_same_day=measure.seen_same_day,
                pending=measure.pending,
                share=measure.share,
            ),
        )

    @strawberry.field(
        description="As a caregiver: what the patient or guardian allowed you to see, and "
        "nothing else (every section not granted is null)."
    )
    async def caregiver_view(
        self, info: Info[CareteamContext, None], patient_id: UUID
    ) -> CaregiverPortalResult:
        ctx = info.context
        principal = ctx.require_principal()
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await check_patient_operation(conn, principal, "caregiverView", patient_id)
                doc = await _doc(conn, patient_id)
                team = await conn.fetchrow(
                    "SELECT care_manager_id, pcp_id, psychiatric_consultant_id "
                    "FROM rm_patient_access WHERE patient_id = $1",
                    patient_id,
                )
        except Denied as denied:
            return await deny(ctx, denied, patient_id)
        if doc is None:
            return NotFoundError(code="NOT_FOUND", message=f"no record {patient_id}")
        mine = doc["caregivers"].get(str(principal.user_id), {"scopes": []})
        scopes = [CaregiverScope(s) for s in mine["scopes"]]
        show_team = CaregiverScope.CARE_TEAM in scopes
        show_visits = CaregiverScope.VISITS in scopes
        if scopes:
            await record_reads(ctx, "caregiverView", [patient_id], selected_fields(info))
        return CaregiverPortal(
            patient_id=patient_id,
            scopes=scopes,
            care_team=_members(doc) if show_team else None,
            care_team_user_ids=[u for u in team.values() if u is not None]
            if show_team and team is not None
            else None,
            visit_times=[parse_instant(v["occurred_at"]) for v in doc["visits"]]
            if show_visits
            else None,
        )

    @strawberry.field(
        description="Per community service: referral loops sent, closed with a report back, "
        "open, and how fast (median clinic days), across your organisation."
    )
    async def community_service_loops(
        self, info: Info[CareteamContext, None]
    ) -> CommunityServiceLoopsResult:
        ctx = info.context
        principal = ctx.require_principal()
        operation = "communityServiceLoops"
        try:
            check_role(principal, operation)
        except Denied as denied:
            return await deny(ctx, denied, None)

        def scope(key: str, first: int) -> tuple[str, list[object]]:
            return patient_scope_sql(operation, principal, key, first)

        async with ctx.runtime.pool.acquire() as conn:
            docs = await trackers.fetch_community_referrals(conn, scope=scope)
        rows = [
            CommunityServiceLoop(
                service=ReferralService(s.service),
                receiving_organisation_id=s.receiving_organisation_id,
                referrals=s.referrals,
                sent=s.sent,
                closed_with_report=s.closed_with_report,
                declined_or_cancelled=s.declined_or_cancelled,
                open=s.open,
                closed_loop_share=s.closed_loop_share,
                median_days_to_accept=s.median_days_to_accept,
                median_days_to_report_back=s.median_days_to_report_back,
            )
            for s in trackers.community_service_loops(docs)
        ]
        return CommunityServiceLoops(as_of=(await clinic_day(ctx)).today, services=rows)
