"""The ConsultationNote aggregate: the psychiatric consultation loop.

Steps (docs/clinical-rules.md, 'Consultation loop')::

    requested (care manager asks a question)
      -> drafted (psychiatrist; redraft allowed while unsigned; recommendations,
         each with its own id, are added to the draft)
      -> signed (immutable from then on: any edit or a second signature raises;
         corrections are addenda, which exist only after signing)
      -> acknowledged (by the PCP)
      -> each recommendation accepted / modified (change text) / declined (reason)
      -> implemented (accepted or modified recommendations only)

An unsigned request can be withdrawn (with a reason); a withdrawn note is final.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final, Self
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.codec import Snapshotting
from domain.common import (
    NoteStatus,
    Problems,
    RecommendationResponse,
    applies,
    check_occurred_at,
    require_aware,
    require_enum,
    require_text,
    require_uuid,
)
from domain.errors import (
    BlankValueError,
    DuplicateIdError,
    NoteAlreadyAcknowledgedError,
    NoteAlreadySignedError,
    NoteNotAcknowledgedError,
    NoteNotDraftedError,
    NoteNotSignedError,
    NoteWithdrawnError,
    OutOfOrderError,
    ReasonRequiredError,
    RecommendationAlreadyAnsweredError,
    RecommendationAlreadyImplementedError,
    RecommendationNotAcceptedError,
    RecommendationNotFoundError,
)

_UNSIGNED: Final = frozenset({NoteStatus.REQUESTED, NoteStatus.DRAFTED})
_SIGNED: Final = frozenset({NoteStatus.SIGNED, NoteStatus.ACKNOWLEDGED})


@dataclass
class Recommendation:
    """One recommendation of the note and the PCP's response to it."""

    recommendation_id: UUID
    text: str
    added_at: datetime
    response: RecommendationResponse | None = None
    response_text: str | None = None
    responded_by: UUID | None = None
    responded_at: datetime | None = None
    implemented_at: datetime | None = None


@dataclass
class Addendum:
    """A correction or addition written after signing."""

    addendum_id: UUID
    author_id: UUID
    text: str
    written_at: datetime


def _ts(now: datetime) -> datetime:
    require_aware(now, "now")
    return now


def _required_text(
    value: str,
    field: str,
    message: str,
    blank: type[BlankValueError] | type[ReasonRequiredError] = ReasonRequiredError,
) -> str:
    """Text that must be given: blank is ``blank`` (with ``message``) naming ``field``."""
    try:
        return require_text(value, field)
    except BlankValueError:
        raise blank(message, field=field) from None


class ConsultationNote(Snapshotting, Aggregate):
    """A psychiatric consultant's note on one patient, with its recommendations."""

    STREAM_TYPE: ClassVar[str] = "consultation_note"
    TOPIC: ClassVar[str] = STREAM_TYPE

    # --- state: declared once; snapshots and their codec derive from it (domain.codec) --

    patient_id: UUID
    requested_by: UUID
    consultant_id: UUID | None
    question: str
    requested_at: datetime
    last_change_at: datetime
    status: NoteStatus
    author_id: UUID | None
    content: str | None
    draft_number: int
    drafted_at: datetime | None
    signed_by: UUID | None
    signed_at: datetime | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    withdrawn_at: datetime | None
    withdraw_reason: str | None
    recommendations: dict[UUID, Recommendation]
    addenda: list[Addendum]

    class Event(Aggregate.Event):
        """Base of the consultation note's events."""

        # Inherited by the library's unused ``ConsultationNote.Created`` (explicit
        # topics need one).
        TOPIC: ClassVar[str] = "consultation_note.created"

    class Requested(Aggregate.Created):
        """The care manager asked the psychiatric consultant a question."""

        EVENT_NAME: ClassVar[str] = "consultation_note.requested"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"question"})
        patient_id: UUID
        requested_by: UUID
        consultant_id: UUID | None
        question: str
        occurred_at: datetime

    class Drafted(Aggregate.Event):
        """The psychiatrist wrote (or rewrote) the draft."""

        EVENT_NAME: ClassVar[str] = "consultation_note.drafted"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"content"})
        patient_id: UUID
        author_id: UUID
        draft_number: int
        content: str
        occurred_at: datetime

    class RecommendationAdded(Aggregate.Event):
        """A recommendation was added to the unsigned note."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_added"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"text"})
        patient_id: UUID
        recommendation_id: UUID
        text: str
        occurred_at: datetime

    class RecommendationRemoved(Aggregate.Event):
        """A recommendation was taken out of the unsigned note."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_removed"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        recommendation_id: UUID
        occurred_at: datetime

    class Signed(Aggregate.Event):
        """The psychiatrist signed the note; it is immutable from now on."""

        EVENT_NAME: ClassVar[str] = "consultation_note.signed"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        signed_by: UUID
        recommendation_ids: list[UUID]
        occurred_at: datetime

    class AddendumAdded(Aggregate.Event):
        """An addendum was written to the signed note."""

        EVENT_NAME: ClassVar[str] = "consultation_note.addendum_added"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"text"})
        patient_id: UUID
        addendum_id: UUID
        author_id: UUID
        text: str
        occurred_at: datetime

    class Acknowledged(Aggregate.Event):
        """The PCP acknowledged the signed note."""

        EVENT_NAME: ClassVar[str] = "consultation_note.acknowledged"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        pcp_id: UUID
        occurred_at: datetime

    class RecommendationAccepted(Aggregate.Event):
        """The PCP accepted a recommendation as written."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_accepted"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        recommendation_id: UUID
        responded_by: UUID
        occurred_at: datetime

    class RecommendationModified(Aggregate.Event):
        """The PCP accepted a recommendation with a change."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_modified"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"change"})
        patient_id: UUID
        recommendation_id: UUID
        responded_by: UUID
        change: str
        occurred_at: datetime

    class RecommendationDeclined(Aggregate.Event):
        """The PCP declined a recommendation, with a reason."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_declined"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        recommendation_id: UUID
        responded_by: UUID
        reason: str
        occurred_at: datetime

    class RecommendationImplemented(Aggregate.Event):
        """An accepted or modified recommendation was put into practice."""

        EVENT_NAME: ClassVar[str] = "consultation_note.recommendation_implemented"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        recommendation_id: UUID
        occurred_at: datetime

    class Withdrawn(Aggregate.Event):
        """The consultation request was withdrawn before signing."""

        EVENT_NAME: ClassVar[str] = "consultation_note.withdrawn"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        reason: str
        occurred_at: datetime

    def __init__(self) -> None:
        """Nothing: the state is set from the creation event by :meth:`_requested`."""

    @applies(Requested)
    def _requested(self, e: Requested) -> None:
        """Initial state (runs on replay too: no checks here)."""
        self.patient_id = e.patient_id
        self.requested_by = e.requested_by
        self.consultant_id = e.consultant_id
        self.question = e.question
        self.requested_at = e.occurred_at
        self.last_change_at = e.occurred_at
        self.status = NoteStatus.REQUESTED
        self.author_id = None
        self.content = None
        self.draft_number = 0
        self.drafted_at = None
        self.signed_by = None
        self.signed_at = None
        self.acknowledged_by = None
        self.acknowledged_at = None
        self.withdrawn_at = None
        self.withdraw_reason = None
        self.recommendations = {}
        self.addenda = []

    @classmethod
    def request(
        cls,
        *,
        patient_id: UUID,
        requested_by: UUID,
        question: str,
        occurred_at: datetime,
        now: datetime,
        consultant_id: UUID | None = None,
        id: UUID | None = None,  # the library's name for the aggregate id
    ) -> Self:
        """The care manager asks the psychiatric consultant about a patient."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(check_occurred_at, occurred_at, now)
        problems.check(require_uuid, patient_id, "patient_id")
        problems.check(require_uuid, requested_by, "requested_by")
        for name, value in (("consultant_id", consultant_id), ("id", id)):
            if value is not None:
                problems.check(require_uuid, value, name)
        text = problems.check(require_text, question, "question")
        problems.raise_any()
        assert text is not None  # checked above
        return cls._create(
            cls.Requested,
            id=id,
            timestamp=_ts(now),
            patient_id=patient_id,
            requested_by=requested_by,
            consultant_id=consultant_id,
            question=text,
            occurred_at=occurred_at,
        )

    # --- queries ----------------------------------------------------------------------

    @property
    def is_signed(self) -> bool:
        """Signed (and possibly acknowledged)."""
        return self.status in _SIGNED

    @property
    def pending_recommendations(self) -> list[Recommendation]:
        """Recommendations of a signed note the PCP has not answered yet."""
        if not self.is_signed:
            return []
        return [r for r in self.recommendations.values() if r.response is None]

    # --- commands before signing ------------------------------------------------------

    def draft(self, *, author_id: UUID, content: str, occurred_at: datetime, now: datetime) -> None:
        """Write or rewrite the draft (allowed until the note is signed)."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_unsigned, occurred_at, now)
        problems.check(require_uuid, author_id, "author_id")
        text = problems.check(require_text, content, "content")
        problems.raise_any()
        assert text is not None  # checked above
        self._drafted(
            patient_id=self.patient_id,
            author_id=author_id,
            draft_number=self.draft_number + 1,
            content=text,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def add_recommendation(
        self,
        *,
        text: str,
        occurred_at: datetime,
        now: datetime,
        recommendation_id: UUID | None = None,
    ) -> UUID:
        """Add a recommendation to the drafted, unsigned note; returns its id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_unsigned, occurred_at, now)
        body = problems.check(require_text, text, "text")
        problems.raise_any()
        assert body is not None  # checked above
        if self.status is not NoteStatus.DRAFTED:
            raise NoteNotDraftedError("write a draft before recommendations", aggregate_id=self.id)
        if recommendation_id is None:
            new_id = uuid4()
        else:
            new_id = require_uuid(recommendation_id, "recommendation_id")
            if new_id in self.recommendations:
                raise DuplicateIdError(
                    f"recommendation_id {new_id} exists already", aggregate_id=self.id
                )
        self._recommendation_added(
            patient_id=self.patient_id,
            recommendation_id=new_id,
            text=body,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def remove_recommendation(
        self, *, recommendation_id: UUID, occurred_at: datetime, now: datetime
    ) -> None:
        """Take a recommendation out of the unsigned note."""
        self._check_unsigned(occurred_at, now)
        self._recommendation(recommendation_id)
        self._recommendation_removed(
            patient_id=self.patient_id,
            recommendation_id=recommendation_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def sign(self, *, signed_by: UUID, occurred_at: datetime, now: datetime) -> None:
        """Sign the drafted note; from now on it is immutable."""
        self._check_unsigned(occurred_at, now)
        require_uuid(signed_by, "signed_by")
        if self.status is not NoteStatus.DRAFTED:
            raise NoteNotDraftedError("there is no draft to sign", aggregate_id=self.id)
        self._signed(
            patient_id=self.patient_id,
            signed_by=signed_by,
            recommendation_ids=list(self.recommendations),
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def withdraw(self, *, reason: str, occurred_at: datetime, now: datetime) -> None:
        """Withdraw the request before the note is signed."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_unsigned, occurred_at, now)
        why = problems.check(_required_text, reason, "reason", "withdrawing needs a reason")
        problems.raise_any()
        assert why is not None  # checked above
        self._withdrawn(
            patient_id=self.patient_id, reason=why, occurred_at=occurred_at, timestamp=_ts(now)
        )

    # --- commands after signing -------------------------------------------------------

    def add_addendum(
        self,
        *,
        author_id: UUID,
        text: str,
        occurred_at: datetime,
        now: datetime,
        addendum_id: UUID | None = None,
    ) -> UUID:
        """Add a correction or addition to the signed note; returns its id."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_signed, occurred_at, now)
        problems.check(require_uuid, author_id, "author_id")
        body = problems.check(require_text, text, "text")
        problems.raise_any()
        assert body is not None  # checked above
        if addendum_id is None:
            new_id = uuid4()
        else:
            new_id = require_uuid(addendum_id, "addendum_id")
            if any(a.addendum_id == new_id for a in self.addenda):
                raise DuplicateIdError(f"addendum_id {new_id} exists already", aggregate_id=self.id)
        self._addendum_added(
            patient_id=self.patient_id,
            addendum_id=new_id,
            author_id=author_id,
            text=body,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )
        return new_id

    def acknowledge(self, *, pcp_id: UUID, occurred_at: datetime, now: datetime) -> None:
        """The PCP acknowledges the signed note."""
        self._check_signed(occurred_at, now)
        require_uuid(pcp_id, "pcp_id")
        if self.status is NoteStatus.ACKNOWLEDGED:
            raise NoteAlreadyAcknowledgedError(
                "the note was acknowledged already", aggregate_id=self.id
            )
        self._acknowledged(
            patient_id=self.patient_id, pcp_id=pcp_id, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def respond_to_recommendation(
        self,
        *,
        recommendation_id: UUID,
        response: RecommendationResponse | str,
        responded_by: UUID,
        occurred_at: datetime,
        now: datetime,
        text: str | None = None,
    ) -> None:
        """The PCP accepts, modifies (``text`` = the change) or declines (``text`` = the
        reason) one recommendation of the acknowledged note.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check_signed, occurred_at, now)
        checked = problems.check(require_enum, RecommendationResponse, response, "response")
        problems.check(require_uuid, responded_by, "responded_by")
        if checked is RecommendationResponse.MODIFIED:
            problems.check(
                _required_text,
                text or "",
                "text",
                "a modified recommendation needs the change text",
                BlankValueError,
            )
        elif checked is RecommendationResponse.DECLINED:
            problems.check(
                _required_text, text or "", "text", "declining a recommendation needs a reason"
            )
        problems.raise_any()
        assert checked is not None  # checked above
        answer = checked
        if self.status is not NoteStatus.ACKNOWLEDGED:
            raise NoteNotAcknowledgedError(
                "the PCP must acknowledge the note first", aggregate_id=self.id
            )
        rec = self._recommendation(recommendation_id)
        if rec.response is not None:
            raise RecommendationAlreadyAnsweredError(
                f"recommendation {recommendation_id} was answered already", aggregate_id=self.id
            )
        ts = _ts(now)
        if answer is RecommendationResponse.ACCEPTED:
            self._recommendation_accepted(
                patient_id=self.patient_id,
                recommendation_id=recommendation_id,
                responded_by=responded_by,
                occurred_at=occurred_at,
                timestamp=ts,
            )
        elif answer is RecommendationResponse.MODIFIED:
            try:
                change = require_text(text or "", "text")
            except BlankValueError:
                raise BlankValueError(
                    "a modified recommendation needs the change text", aggregate_id=self.id
                ) from None
            self._recommendation_modified(
                patient_id=self.patient_id,
                recommendation_id=recommendation_id,
                responded_by=responded_by,
                change=change,
                occurred_at=occurred_at,
                timestamp=ts,
            )
        else:
            try:
                why = require_text(text or "", "text")
            except BlankValueError:
                raise ReasonRequiredError(
                    "declining a recommendation needs a reason", aggregate_id=self.id
                ) from None
            self._recommendation_declined(
                patient_id=self.patient_id,
                recommendation_id=recommendation_id,
                responded_by=responded_by,
                reason=why,
                occurred_at=occurred_at,
                timestamp=ts,
            )

    def accept_recommendation(
        self, *, recommendation_id: UUID, responded_by: UUID, occurred_at: datetime, now: datetime
    ) -> None:
        """Shortcut for :meth:`respond_to_recommendation` with ``accepted``."""
        self.respond_to_recommendation(
            recommendation_id=recommendation_id,
            response=RecommendationResponse.ACCEPTED,
            responded_by=responded_by,
            occurred_at=occurred_at,
            now=now,
        )

    def modify_recommendation(
        self,
        *,
        recommendation_id: UUID,
        responded_by: UUID,
        change: str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Shortcut for :meth:`respond_to_recommendation` with ``modified``."""
        self.respond_to_recommendation(
            recommendation_id=recommendation_id,
            response=RecommendationResponse.MODIFIED,
            responded_by=responded_by,
            occurred_at=occurred_at,
            now=now,
            text=change,
        )

    def decline_recommendation(
        self,
        *,
        recommendation_id: UUID,
        responded_by: UUID,
        reason: str,
        occurred_at: datetime,
        now: datetime,
    ) -> None:
        """Shortcut for :meth:`respond_to_recommendation` with ``declined``."""
        self.respond_to_recommendation(
            recommendation_id=recommendation_id,
            response=RecommendationResponse.DECLINED,
            responded_by=responded_by,
            occurred_at=occurred_at,
            now=now,
            text=reason,
        )

    def implement_recommendation(
        self, *, recommendation_id: UUID, occurred_at: datetime, now: datetime
    ) -> None:
        """Record that an accepted or modified recommendation was put into practice."""
        self._check_signed(occurred_at, now)
        rec = self._recommendation(recommendation_id)
        if rec.response not in (RecommendationResponse.ACCEPTED, RecommendationResponse.MODIFIED):
            raise RecommendationNotAcceptedError(
                f"recommendation {recommendation_id} is not accepted or modified",
                aggregate_id=self.id,
            )
        if rec.implemented_at is not None:
            raise RecommendationAlreadyImplementedError(
                f"recommendation {recommendation_id} was implemented already",
                aggregate_id=self.id,
            )
        self._recommendation_implemented(
            patient_id=self.patient_id,
            recommendation_id=recommendation_id,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    # --- helpers ----------------------------------------------------------------------

    def _check_time(self, occurred_at: datetime, now: datetime) -> None:
        check_occurred_at(occurred_at, now)
        if occurred_at < self.requested_at:
            raise OutOfOrderError(
                "the step precedes the request", aggregate_id=self.id, field="occurred_at"
            )

    def _check_unsigned(self, occurred_at: datetime, now: datetime) -> None:
        """Edits are allowed only before signing, and never on a withdrawn note."""
        self._check_time(occurred_at, now)
        if self.status is NoteStatus.WITHDRAWN:
            raise NoteWithdrawnError("the request was withdrawn", aggregate_id=self.id)
        if self.status not in _UNSIGNED:
            raise NoteAlreadySignedError(
                "the note is signed; corrections are addenda", aggregate_id=self.id
            )

    def _check_signed(self, occurred_at: datetime, now: datetime) -> None:
        self._check_time(occurred_at, now)
        if self.status is NoteStatus.WITHDRAWN:
            raise NoteWithdrawnError("the request was withdrawn", aggregate_id=self.id)
        if self.status not in _SIGNED:
            raise NoteNotSignedError("the note is not signed yet", aggregate_id=self.id)
        if self.signed_at is not None and occurred_at < self.signed_at:
            raise OutOfOrderError(
                "the step precedes the signature", aggregate_id=self.id, field="occurred_at"
            )

    def _recommendation(self, recommendation_id: UUID) -> Recommendation:
        rec = self.recommendations.get(recommendation_id)
        if rec is None:
            raise RecommendationNotFoundError(
                f"no recommendation {recommendation_id}", aggregate_id=self.id
            )
        return rec

    # --- apply (state changes only: these run again on replay) ------------------------

    @applies(Drafted)
    def _drafted(self, e: Drafted) -> None:
        self.status = NoteStatus.DRAFTED
        self.author_id = e.author_id
        self.draft_number = e.draft_number
        self.content = e.content
        self.drafted_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(RecommendationAdded)
    def _recommendation_added(self, e: RecommendationAdded) -> None:
        self.recommendations[e.recommendation_id] = Recommendation(
            recommendation_id=e.recommendation_id, text=e.text, added_at=e.occurred_at
        )
        self.last_change_at = e.occurred_at

    @applies(RecommendationRemoved)
    def _recommendation_removed(self, e: RecommendationRemoved) -> None:
        self.recommendations.pop(e.recommendation_id, None)
        self.last_change_at = e.occurred_at

    @applies(Signed)
    def _signed(self, e: Signed) -> None:
        self.status = NoteStatus.SIGNED
        self.signed_by = e.signed_by
        self.signed_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(AddendumAdded)
    def _addendum_added(self, e: AddendumAdded) -> None:
        self.addenda.append(
            Addendum(
                addendum_id=e.addendum_id,
                author_id=e.author_id,
                text=e.text,
                written_at=e.occurred_at,
            )
        )
        self.last_change_at = e.occurred_at

    @applies(Acknowledged)
    def _acknowledged(self, e: Acknowledged) -> None:
        self.status = NoteStatus.ACKNOWLEDGED
        self.acknowledged_by = e.pcp_id
        self.acknowledged_at = e.occurred_at
        self.last_change_at = e.occurred_at

    def _answer(
        self,
        recommendation_id: UUID,
        response: RecommendationResponse,
        responded_by: UUID,
        text: str | None,
        occurred_at: datetime,
    ) -> None:
        rec = self.recommendations[recommendation_id]
        rec.response = response
        rec.response_text = text
        rec.responded_by = responded_by
        rec.responded_at = occurred_at
        self.last_change_at = occurred_at

    @applies(RecommendationAccepted)
    def _recommendation_accepted(self, e: RecommendationAccepted) -> None:
        self._answer(
            e.recommendation_id,
            RecommendationResponse.ACCEPTED,
            e.responded_by,
            None,
            e.occurred_at,
        )

    @applies(RecommendationModified)
    def _recommendation_modified(self, e: RecommendationModified) -> None:
        self._answer(
            e.recommendation_id,
            RecommendationResponse.MODIFIED,
            e.responded_by,
            e.change,
            e.occurred_at,
        )

    @applies(RecommendationDeclined)
    def _recommendation_declined(self, e: RecommendationDeclined) -> None:
        self._answer(
            e.recommendation_id,
            RecommendationResponse.DECLINED,
            e.responded_by,
            e.reason,
            e.occurred_at,
        )

    @applies(RecommendationImplemented)
    def _recommendation_implemented(self, e: RecommendationImplemented) -> None:
        self.recommendations[e.recommendation_id].implemented_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.status = NoteStatus.WITHDRAWN
        self.withdrawn_at = e.occurred_at
        self.withdraw_reason = e.reason
        self.last_change_at = e.occurred_at
