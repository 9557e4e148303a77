"""Consultation note commands: the psychiatric consultation loop (docs/clinical-rules.md,
'Consultation loop'), request -> draft -> sign -> acknowledge -> respond -> implement.
Who asks, writes, signs, acknowledges and responds is the caller, from the token.
Each answers with ``ConsultationNoteResult``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from services.api.context import CareteamContext
from services.api.enums import RecommendationResponse
from services.api.record_commands import INPUT, actor, answer_record, occurred_at_field
from services.api.record_types import ConsultationNotePayload, ConsultationNoteResult
from services.commands.commands import (
    AcknowledgeConsultationNote,
    AddAddendum,
    AddRecommendation,
    DraftConsultationNote,
    ImplementRecommendation,
    RemoveRecommendation,
    RequestConsultation,
    RespondToRecommendation,
    SignConsultationNote,
    WithdrawConsultation,
)

_NOTE = "The consultation note."


@strawberry.input(description="Ask the psychiatric consultant a question about a patient.")
class RequestConsultationInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    question: str = strawberry.field(description="The question for the consultant.")
    consultant_id: UUID | None = strawberry.field(
        default=None, description="The psychiatric consultant asked, if a particular one."
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Write or rewrite the draft of an unsigned note.")
class DraftConsultationNoteInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    content: str = strawberry.field(description="The note's full text.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Add a recommendation to the drafted, unsigned note.")
class AddRecommendationInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    text: str = strawberry.field(description="The recommendation.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Take a recommendation out of the unsigned note.")
class RemoveRecommendationInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    recommendation_id: UUID = strawberry.field(description="The recommendation.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Sign the drafted note; it is immutable from then on.")
class SignConsultationNoteInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Withdraw a consultation request before its note is signed.")
class WithdrawConsultationInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    reason: str = strawberry.field(description="Why it is withdrawn (must not be blank).")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="A correction or addition to the signed note.")
class AddAddendumInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    text: str = strawberry.field(description="The addendum.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="Acknowledge the signed note as the patient's PCP.")
class AcknowledgeConsultationNoteInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(
    description="Answer one recommendation of the acknowledged note: accept it, modify it "
    "(text is the change) or decline it (text is the reason)."
)
class RespondToRecommendationInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    recommendation_id: UUID = strawberry.field(description="The recommendation.")
    response: RecommendationResponse = strawberry.field(description="Accept, modify or decline.")
    text: str | None = strawberry.field(
        default=None,
        description="The change when modifying, the reason when declining (required for both).",
    )
    occurred_at: datetime | None = occurred_at_field()


@strawberry.input(description="An accepted or modified recommendation was put into practice.")
class ImplementRecommendationInput:
    consultation_note_id: UUID = strawberry.field(description=_NOTE)
    recommendation_id: UUID = strawberry.field(description="The recommendation.")
    occurred_at: datetime | None = occurred_at_field()


@strawberry.type(description="Consultation note commands.")
class ConsultationMutation:
    @strawberry.mutation(description="Ask the psychiatric consultant a question (you ask).")
    async def request_consultation(
        self, info: Info[CareteamContext, None], input: Annotated[RequestConsultationInput, INPUT]
    ) -> ConsultationNoteResult:
        command = RequestConsultation(
            patient=input.patient_id,
            requested_by=actor(info),
            question=input.question,
            consultant_id=input.consultant_id,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Write or rewrite the draft (you are its author).")
    async def draft_consultation_note(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[DraftConsultationNoteInput, INPUT],
    ) -> ConsultationNoteResult:
        author = actor(info)
        command = DraftConsultationNote(
            consultation_note_id=input.consultation_note_id,
            author_id=author,
            content=input.content,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Add a recommendation to the draft; createdId is its id.")
    async def add_recommendation(
        self, info: Info[CareteamContext, None], input: Annotated[AddRecommendationInput, INPUT]
    ) -> ConsultationNoteResult:
        command = AddRecommendation(
            consultation_note_id=input.consultation_note_id,
            text=input.text,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Take a recommendation out of the unsigned note.")
    async def remove_recommendation(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RemoveRecommendationInput, INPUT],
    ) -> ConsultationNoteResult:
        command = RemoveRecommendation(
            consultation_note_id=input.consultation_note_id,
            recommendation_id=input.recommendation_id,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Sign the note (you sign); corrections are addenda after.")
    async def sign_consultation_note(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[SignConsultationNoteInput, INPUT],
    ) -> ConsultationNoteResult:
        signer = actor(info)
        command = SignConsultationNote(
            consultation_note_id=input.consultation_note_id,
            signed_by=signer,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Withdraw the request before the note is signed.")
    async def withdraw_consultation(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[WithdrawConsultationInput, INPUT],
    ) -> ConsultationNoteResult:
        command = WithdrawConsultation(
            consultation_note_id=input.consultation_note_id,
            reason=input.reason,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Add an addendum to the signed note; createdId is its id.")
    async def add_addendum(
        self, info: Info[CareteamContext, None], input: Annotated[AddAddendumInput, INPUT]
    ) -> ConsultationNoteResult:
        author = actor(info)
        command = AddAddendum(
            consultation_note_id=input.consultation_note_id,
            author_id=author,
            text=input.text,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(description="Acknowledge the signed note as the PCP (you acknowledge).")
    async def acknowledge_consultation_note(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[AcknowledgeConsultationNoteInput, INPUT],
    ) -> ConsultationNoteResult:
        pcp = actor(info)
        command = AcknowledgeConsultationNote(
            consultation_note_id=input.consultation_note_id,
            pcp_id=pcp,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(
        description="Accept, modify or decline (with a reason) one recommendation."
    )
    async def respond_to_recommendation(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RespondToRecommendationInput, INPUT],
    ) -> ConsultationNoteResult:
        responder = actor(info)
        command = RespondToRecommendation(
            consultation_note_id=input.consultation_note_id,
            recommendation_id=input.recommendation_id,
            response=input.response.value,
            responded_by=responder,
            text=input.text,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)

    @strawberry.mutation(
        description="Record that an accepted or modified recommendation was put into practice."
    )
    async def implement_recommendation(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[ImplementRecommendationInput, INPUT],
    ) -> ConsultationNoteResult:
        command = ImplementRecommendation(
            consultation_note_id=input.consultation_note_id,
            recommendation_id=input.recommendation_id,
            occurred_at=input.occurred_at,
        )
        return await answer_record(info, command, ConsultationNotePayload.build)
