"""Break-the-glass: emergency access for clinicians outside the care team, and its review.

A clinician of the patient's organisation opens time-limited read access with a reason
(an event on the patient's record, purpose ETREAT); every read in that window is recorded
with purpose ETREAT in the access log; compliance reviews each grant (another event).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.patient import Patient as PatientAggregate
from projections.keyset import InvalidCursorError, decode_cursor, encode_cursor
from services.api.authz import Denied, check_role
from services.api.commanding import Written, deny, run
from services.api.context import CareteamContext
from services.api.errors import (
    CommandError,
    ForbiddenError,
    ValidationError,
    result_union,
)
from services.api.registry.types import PageInfo
from services.commands.commands import BreakTheGlass, ReviewEmergencyAccess


@strawberry.enum(description="Compliance's verdict on an emergency access.")
class EmergencyReviewOutcome(enum.Enum):
    APPROPRIATE = "appropriate"
    INAPPROPRIATE = "inappropriate"


@strawberry.type(description="An emergency access grant, open or reviewed.")
class EmergencyGrant:
    grant_id: UUID = strawberry.field(description="Grant id.")
    patient_id: UUID = strawberry.field(description="Whose record was opened.")
    user_id: UUID = strawberry.field(description="Who opened it.")
    role: str = strawberry.field(description="In which role.")
    reason: str = strawberry.field(
        description="The reason they gave; empty once the patient is forgotten."
    )
    granted_at: datetime = strawberry.field(description="When the window opened.")
    expires_at: datetime = strawberry.field(description="When the window closes.")
    reads: int = strawberry.field(description="Reads of the patient by that user in the window.")
    review_outcome: str | None = strawberry.field(description="The review verdict, once made.")
    reviewed_by: UUID | None = strawberry.field(description="The reviewer.")


@strawberry.type(description="Emergency access is open for the caller until it expires.")
class EmergencyAccessPayload:
    grant_id: UUID = strawberry.field(description="The grant (for the review).")
    expires_at: datetime = strawberry.field(description="When access ends.")
    log_position: str = strawberry.field(description="Log position of the grant's event.")


@strawberry.type(description="The review was recorded.")
class EmergencyReviewPayload:
    grant_id: UUID = strawberry.field(description="The reviewed grant.")
    log_position: str = strawberry.field(description="Log position of the review's event.")


BreakTheGlassResult = Annotated[
    EmergencyAccessPayload | CommandError,
    result_union("BreakTheGlassResult", "Emergency access, or why not."),
]
ReviewEmergencyAccessResult = Annotated[
    EmergencyReviewPayload | CommandError,
    result_union("ReviewEmergencyAccessResult", "The review, or why not."),
]


MAX_GRANT_PAGE = 200


@strawberry.type(description="One emergency access grant and its cursor.")
class EmergencyGrantEdge:
    cursor: str = strawberry.field(description="Opaque position of this grant (an `after`).")
    node: EmergencyGrant = strawberry.field(description="The grant.")


@strawberry.type(description="Emergency access grants, newest first, a page at a time.")
class EmergencyGrants:
    edges: list[EmergencyGrantEdge] = strawberry.field(description="The grants of this page.")
    page_info: PageInfo = strawberry.field(description="Paging state.")
    total_count: int = strawberry.field(description="Grants matching the filter, all pages.")
    max_page_size: int = strawberry.field(
        default=MAX_GRANT_PAGE, description="The largest `first` accepted."
    )
    # The deprecated capped list, read only when a portal still selects it.
    all_grants: strawberry.Private[Callable[[], Awaitable[list[EmergencyGrant]]]]

    @strawberry.field(
        description="The grants, newest first; at most 500.",
        deprecation_reason="Capped at 500: use edges { node } (paged with first/after).",
    )
    async def grants(self) -> list[EmergencyGrant]:
        return await self.all_grants()


EmergencyGrantsResult = Annotated[
    EmergencyGrants | ValidationError | ForbiddenError,
    result_union("EmergencyGrantsResult", "The grants, or why not."),
]

_GRANT_ORDER = "emergency:granted_at,grant_id"
# Reads of the patient under the grant: rows of that patient alone, and list reads
# naming it (``access_log_entries``, one entry per patient; ``listed`` uses its index).
_GRANTS = """SELECT g.*, (SELECT count(*) FROM access_log_entries l
                         WHERE l.actor_id = g.user_id AND l.patient_id = g.patient_id
                           AND l.listed @> ARRAY[g.patient_id] AND l.outcome = 'allowed'
                           AND l.at >= g.granted_at AND l.at < g.expires_at) AS reads
            FROM rm_emergency_access g
            WHERE g.organisation_id = $1 AND (NOT $2 OR g.review_outcome IS NULL)"""


def _grant(r: Any) -> EmergencyGrant:
    return EmergencyGrant(
        grant_id=r["grant_id"],
        patient_id=r["patient_id"],
        user_id=r["user_id"],
        role=r["role"],
        reason=r["reason"],
        granted_at=r["granted_at"],
        expires_at=r["expires_at"],
        reads=r["reads"],
        review_outcome=r["review_outcome"],
        reviewed_by=r["reviewed_by"],
    )


def _grant_cursor(r: Any) -> str:
    return encode_cursor(_GRANT_ORDER, [r["granted_at"], r["grant_id"]])


def _grant_after(after: str | None) -> tuple[str, UUID] | None:
    """The (granted_at, grant_id) a page starts after; InvalidCursorError when forged."""
    if after is None:
        return None
    granted_at, grant_id = decode_cursor(_GRANT_ORDER, after, 2)
    try:
        if granted_at is None or grant_id is None:
            raise ValueError
        datetime.fromisoformat(granted_at)
        return granted_at, UUID(grant_id)
    except ValueError:
        raise InvalidCursorError("the cursor is not valid") from None


def _arg(description: str) -> Any:
    return strawberry.argument(description=description)


@strawberry.type(description="Break-the-glass commands.")
class EmergencyMutation:
    @strawberry.mutation(
        description="Open time-limited read access to a patient outside your care team, with "
        "a reason (1 to 240 minutes). Every read in the window is tagged and reviewed."
    )
    async def break_the_glass(
        self,
        info: Info[CareteamContext, None],
        patient_id: Annotated[UUID, _arg("The patient.")],
        reason: Annotated[str, _arg("Why emergency access is needed.")],
        minutes: Annotated[int, _arg("How long access lasts.")] = 60,
    ) -> BreakTheGlassResult:
        ctx = info.context
        principal = ctx.require_principal()
        command = BreakTheGlass(
            patient=patient_id,
            user_id=principal.user_id,
            role=principal.role.value,
            reason=reason,
            minutes=minutes,
        )
        written = await run(ctx, command, info)
        if not isinstance(written, Written):
            return written
        assert written.created_id is not None
        # A repeat of the same request answers with the grant the first one made.
        patient = written.aggregate
        if patient is None:
            patient = await ctx.runtime.app.load(PatientAggregate, patient_id)
        grant = patient.emergency_grants[written.created_id]
        return EmergencyAccessPayload(
            grant_id=grant.grant_id, expires_at=grant.expires_at, log_position=written.log_position
        )

    @strawberry.mutation(description="Record compliance's review of an emergency access.")
    async def review_emergency_access(
        self,
        info: Info[CareteamContext, None],
        patient_id: Annotated[UUID, _arg("The patient.")],
        grant_id: Annotated[UUID, _arg("The grant.")],
        outcome: Annotated[EmergencyReviewOutcome, _arg("The verdict.")],
        note: Annotated[str | None, _arg("A note for the record.")] = None,
    ) -> ReviewEmergencyAccessResult:
        ctx = info.context
        reviewer = ctx.require_principal().user_id
        command = ReviewEmergencyAccess(
            patient=patient_id,
            grant_id=grant_id,
            reviewer_id=reviewer,
            outcome=outcome.value,
            note=note,
        )
        written = await run(ctx, command, info)
        if not isinstance(written, Written):
            return written
        return EmergencyReviewPayload(grant_id=grant_id, log_position=written.log_position)


@strawberry.type(description="Compliance's review queue for emergency access.")
class EmergencyQuery:
    @strawberry.field(
        description="Emergency access grants in your organisation, newest first, with how many "
        "reads each made (compliance only)."
    )
    async def emergency_access_reviews(
        self,
        info: Info[CareteamContext, None],
        only_open: Annotated[bool, _arg("Only grants not yet reviewed.")] = True,
        first: Annotated[int, _arg(f"How many grants in this page (1 to {MAX_GRANT_PAGE}).")] = 50,
        after: Annotated[str | None, _arg("The endCursor of the previous page.")] = None,
    ) -> EmergencyGrantsResult:
        ctx = info.context
        principal = ctx.require_principal()
        try:
            check_role(principal, "emergencyAccessReviews")
        except Denied as denied:
            return await deny(ctx, denied, None)
        if not 1 <= first <= MAX_GRANT_PAGE:
            return ValidationError(
                code="PAGE_SIZE", message=f"first must be 1..{MAX_GRANT_PAGE}", field="first"
            )
        try:
            start = _grant_after(after)
        except InvalidCursorError:
            return ValidationError(
                code="INVALID_CURSOR", message="after is not a cursor of this list", field="after"
            )
        org = principal.organisation_id
        beyond = "AND (g.granted_at, g.grant_id) < ($3::timestamptz, $4::uuid)" if start else ""
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""{_GRANTS} {beyond}
                    ORDER BY g.granted_at DESC, g.grant_id DESC LIMIT {first + 1}""",
                org,
                only_open,
                *((datetime.fromisoformat(start[0]), start[1]) if start else ()),
            )
            total = await conn.fetchval(
                """SELECT count(*) FROM rm_emergency_access g
                   WHERE g.organisation_id = $1 AND (NOT $2 OR g.review_outcome IS NULL)""",
                org,
                only_open,
            )
        page = rows[:first]
        edges = [EmergencyGrantEdge(cursor=_grant_cursor(r), node=_grant(r)) for r in page]

        async def all_grants() -> list[EmergencyGrant]:
            async with ctx.runtime.pool.acquire() as conn:
                capped = await conn.fetch(
                    f"{_GRANTS} ORDER BY g.granted_at DESC LIMIT 500", org, only_open
                )
            return [_grant(r) for r in capped]

        return EmergencyGrants(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=int(total),
            all_grants=all_grants,
        )
