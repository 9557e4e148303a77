"""Consent for minors over GraphQL (docs/minors.md).

``grantConsentGivenBy`` records a consent and who gave it: the patient, or a guardian
with their relationship and name. For a patient younger than the organisation's age
(``organisation_consent_rules``, default under 18) treatment and data-sharing consent
given by the patient is refused with ``GUARDIAN_CONSENT_REQUIRED`` on ``givenBy``,
nothing written. Authorised as ``grantConsent``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.minors import DEFAULT_GUARDIAN_CONSENT_UNDER
from services.api.context import CareteamContext
from services.api.enums import ConsentKind, ConsentMethod
from services.api.patient_types import PatientResult
from services.api.record_commands import INPUT, answer_patient, occurred_at_field
from services.commands.commands import GrantConsent


@strawberry.enum(description="Who gave a consent.")
class ConsentGiver(enum.Enum):
    PATIENT = "patient"
    GUARDIAN = "guardian"


@strawberry.enum(description="A guardian's relationship to the patient.")
class GuardianRelationship(enum.Enum):
    PARENT = "parent"
    LEGAL_GUARDIAN = "legal_guardian"
    OTHER_LEGAL_REPRESENTATIVE = "other_legal_representative"


@strawberry.input(description="A consent and who gave it (a guardian, for a minor).")
class GrantConsentGivenByInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    given_by: ConsentGiver = strawberry.field(description="The patient, or a guardian.")
    relationship: GuardianRelationship | None = strawberry.field(
        default=None, description="The guardian's relationship (required for a guardian)."
    )
    giver_name: str | None = strawberry.field(
        default=None, description="The guardian's name (required for a guardian; encrypted)."
    )
    kind: ConsentKind = strawberry.field(description="What the consent covers.")
    method: ConsentMethod | None = strawberry.field(
        default=None, description="Verbal or written; required for collaborative care consent."
    )
    cost_sharing_explained: bool = strawberry.field(
        default=False, description="Whether cost sharing was explained (billing needs it)."
    )
    partner_organisation_id: UUID | None = strawberry.field(
        default=None, description="The partner a data-sharing consent covers (required then)."
    )
    expires_on: date | None = strawberry.field(
        default=None, description="The last day the consent holds; none for no expiry."
    )
    occurred_at: datetime | None = occurred_at_field()


async def guardian_consent_under(ctx: CareteamContext) -> int:
    """The caller's organisation's age rule (default under 18)."""
    async with ctx.runtime.pool.acquire() as conn:
        age: int | None = await conn.fetchval(
            """SELECT guardian_consent_under FROM organisation_consent_rules
               WHERE organisation_id = $1""",
            ctx.require_principal().organisation_id,
        )
    return DEFAULT_GUARDIAN_CONSENT_UNDER if age is None else age


@strawberry.type(description="Consent for minors.")
class MinorsMutation:
    @strawberry.mutation(
        description="Record a consent and who gave it. A minor's (under the organisation's "
        "age, default 18) treatment and data-sharing consent must be given by a guardian. "
        "createdId is the consent's id."
    )
    async def grant_consent_given_by(
        self, info: Info[CareteamContext, None], input: Annotated[GrantConsentGivenByInput, INPUT]
    ) -> PatientResult:
        command = GrantConsent(
            patient=input.patient_id,
            kind=input.kind.value,
            method=input.method.value if input.method else None,
            cost_sharing_explained=input.cost_sharing_explained,
            partner_organisation_id=input.partner_organisation_id,
            expires_on=input.expires_on,
            given_by=input.given_by.value,
            relationship=input.relationship.value if input.relationship else None,
            giver_name=input.giver_name,
            guardian_consent_under=await guardian_consent_under(info.context),
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)
