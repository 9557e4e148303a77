"""Commands of the wider team and Primary Care Behavioral Health (docs/pcbh.md).

Patient commands like those of services/commands/commands.py: data only, applied to the
loaded patient at ``now``. What a rule needs from outside the stream is in the command
(``held_roles``: the roles the organisation's directory lists the member in, read by the
resolver), and who acts is the caller (``from_user_id``, ``bhc_id``: the verified
token's user, never the input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from services.commands.commands import PatientCommand


@dataclass(frozen=True, kw_only=True)
class AddWiderTeamMember(PatientCommand):
    operation: ClassVar[str] = "addWiderTeamMember"
    user_id: UUID
    role: str
    held_roles: frozenset[str] = field(default_factory=frozenset)

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.add_wider_team_member(
            user_id=self.user_id,
            role=self.role,
            held_roles=self.held_roles,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class RemoveWiderTeamMember(PatientCommand):
    operation: ClassVar[str] = "removeWiderTeamMember"
    user_id: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.remove_wider_team_member(
            user_id=self.user_id, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class AddCaregiver(PatientCommand):
    operation: ClassVar[str] = "addCaregiver"
    caregiver_id: UUID
    relationship: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.add_caregiver(
            caregiver_id=self.caregiver_id,
            relationship=self.relationship,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class GrantCaregiverAccess(PatientCommand):
    operation: ClassVar[str] = "grantCaregiverAccess"
    caregiver_id: UUID
    scope: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.grant_caregiver_access(
            caregiver_id=self.caregiver_id, scope=self.scope, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class RevokeCaregiverAccess(PatientCommand):
    operation: ClassVar[str] = "revokeCaregiverAccess"
    caregiver_id: UUID
    scope: str

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.revoke_caregiver_access(
            caregiver_id=self.caregiver_id, scope=self.scope, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class OfferWarmHandoff(PatientCommand):
    """The PCP (``from_user_id``) hands the patient to a BHC; creates the handoff."""

    operation: ClassVar[str] = "offerWarmHandoff"
    from_user_id: UUID
    to_user_id: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.offer_warm_handoff(
            from_user_id=self.from_user_id,
            to_user_id=self.to_user_id,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class AcceptWarmHandoff(PatientCommand):
    """The BHC ``accepted_by`` (the caller, from the verified token) accepts the handoff."""

    operation: ClassVar[str] = "acceptWarmHandoff"
    handoff_id: UUID
    accepted_by: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.accept_warm_handoff(
            handoff_id=self.handoff_id,
            accepted_by=self.accepted_by,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class MissWarmHandoff(PatientCommand):
    operation: ClassVar[str] = "missWarmHandoff"
    handoff_id: UUID

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.miss_warm_handoff(
            handoff_id=self.handoff_id, occurred_at=self.at(now), now=now
        )


@dataclass(frozen=True, kw_only=True)
class RecordBriefVisit(PatientCommand):
    """The BHC (``bhc_id``) saw the patient for 15-30 minutes; creates the visit."""

    operation: ClassVar[str] = "recordBriefVisit"
    bhc_id: UUID
    minutes: int
    handoff_id: UUID | None = None

    def apply(self, aggregate: Any, now: datetime) -> object:
        return aggregate.record_brief_visit(
            bhc_id=self.bhc_id,
            minutes=self.minutes,
            handoff_id=self.handoff_id,
            occurred_at=self.at(now),
            now=now,
        )
