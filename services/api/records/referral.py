"""Referral commands: the closed loop from request to report back (docs/clinical-rules.md,
'Referrals'). Each answers with ``ReferralResult``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from services.api.context import CareteamContext
from services.api.enums import ReferralService
from services.api.record_commands import INPUT, actor, answer_record, occurred_at_field
from services.api.record_types import ReferralPayload, ReferralResult
from services.commands.commands import (
    AcceptReferral,
    CancelReferral,
    CompleteReferral,
    DeclineReferral,
    RequestReferral,
    ScheduleReferral,
    SendReferral,
)

_REFERRAL = "The referral."


@strawberry.input(description="Request a referral to an outside service (the caller requests).")
class RequestReferralInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    service: ReferralService = strawberry.field(description="The service referred to.")
    reason: str = strawberry.field(description="Why the patient is referred.")
    expected_by: date = strawberry.field(
        description="The day the loop should be closed by (not before the request)."
    )
    receiving_organisation_id: UUID | None = strawberry.field(
        default=None, description="The receiving organisation, when known."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The referral went to the receiving organisation.")
class SendReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The receiving organisation accepted the referral.")
class AcceptReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The receiving organisation declined the referral.")
class DeclineReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    reason: str = strawberry.field(description="Why it was declined (must not be blank).")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The receiving service gave an appointment.")
class ScheduleReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    appointment_at: datetime = strawberry.field(description="The appointment (may be ahead).")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="The service happened and its report came back: the loop closes.")
class CompleteReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    report_back_summary: str = strawberry.field(
        description="The receiving service's report back (must not be blank)."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Cancel a referral that is not final yet.")
class CancelReferralInput:
    referral_id: UUID = strawberry.field(description=_REFERRAL)
    reason: str = strawberry.field(description="Why it is cancelled (must not be blank).")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.type(description="Referral commands.")
class ReferralMutation:
    @strawberry.mutation(description="Request a referral to an outside service.")
    async def request_referral(
        self, info: Info[CareteamContext, None], input: Annotated[RequestReferralInput, INPUT]
    ) -> ReferralResult:
        command = RequestReferral(
            patient=input.patient_id,
            service=input.service.value,
            reason=input.reason,
            expected_by=input.expected_by,
            receiving_organisation_id=input.receiving_organisation_id,
            requested_by=actor(info),
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(description="Record that the referral was sent.")
    async def send_referral(
        self, info: Info[CareteamContext, None], input: Annotated[SendReferralInput, INPUT]
    ) -> ReferralResult:
        command = SendReferral(referral_id=input.referral_id, occurred_at=input.occurred_at)
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(description="Record that the receiving organisation accepted.")
    async def accept_referral(
        self, info: Info[CareteamContext, None], input: Annotated[AcceptReferralInput, INPUT]
    ) -> ReferralResult:
        command = AcceptReferral(referral_id=input.referral_id, occurred_at=input.occurred_at)
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(description="Record that the receiving organisation declined, and why.")
    async def decline_referral(
        self, info: Info[CareteamContext, None], input: Annotated[DeclineReferralInput, INPUT]
    ) -> ReferralResult:
        command = DeclineReferral(
            referral_id=input.referral_id, reason=input.reason, occurred_at=input.occurred_at
        )
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(description="Record the appointment the receiving service gave.")
    async def schedule_referral(
        self, info: Info[CareteamContext, None], input: Annotated[ScheduleReferralInput, INPUT]
    ) -> ReferralResult:
        command = ScheduleReferral(
            referral_id=input.referral_id,
            appointment_at=input.appointment_at,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(
        description="Close the loop: the service happened and its report came back."
    )
    async def complete_referral(
        self, info: Info[CareteamContext, None], input: Annotated[CompleteReferralInput, INPUT]
    ) -> ReferralResult:
        command = CompleteReferral(
            referral_id=input.referral_id,
            report_back_summary=input.report_back_summary,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ReferralPayload.build)

    @strawberry.mutation(description="Cancel a referral that is not final yet, with a reason.")
    async def cancel_referral(
        self, info: Info[CareteamContext, None], input: Annotated[CancelReferralInput, INPUT]
    ) -> ReferralResult:
        command = CancelReferral(
            referral_id=input.referral_id, reason=input.reason, occurred_at=input.occurred_at
        )
        return await answer_record(info, command, ReferralPayload.build)
