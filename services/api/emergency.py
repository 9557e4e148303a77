"""Break-the-glass: emergency access for clinicians outside the care team, and its review.

A clinician of the patient's organisation opens time-limited read access with a reason
(an event on the patient's record, purpose ETREAT); every read in that window is recorded
with purpose ETREAT in the access log; compliance reviews each grant (another event).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.patient import Patient as PatientAggregate
from services.api.authz import Denied, check_role
from services.api.commanding import Written, deny, run
from services.api.context import CareteamContext
from services.api.errors import (
    CommandError,
    ForbiddenError,
    result_union,
)
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


@strawberry.type(description="Emergency access grants, newest first.")
class EmergencyGrants:
    grants: list[EmergencyGrant] = strawberry.field(description="The grants.")


EmergencyGrantsResult = Annotated[
    EmergencyGrants | ForbiddenError,
    result_union("EmergencyGrantsResult", "The grants, or why not."),
]


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
    ) -> EmergencyGrantsResult:
        ctx = info.context
        principal = ctx.require_principal()
        try:
            check_role(principal, "emergencyAccessReviews")
        except Denied as denied:
            return await deny(ctx, denied, None)
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT g.*, (SELECT count(*) FROM access_log l
                                WHERE l.actor_id = g.user_id AND l.patient_id = g.patient_id
                                  AND l.outcome = 'allowed'
                                  AND l.at >= g.granted_at AND l.at < g.expires_at) AS reads
                   FROM rm_emergency_access g
                   WHERE g.organisation_id = $1 AND (NOT $2 OR g.review_outcome IS NULL)
                   ORDER BY g.granted_at DESC LIMIT 500""",
                principal.organisation_id,
                only_open,
            )
        return EmergencyGrants(
            grants=[
                EmergencyGrant(
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
                for r in rows
            ]
        )
