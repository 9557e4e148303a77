"""The Referral aggregate: closing the loop with an outside service.

Status machine (docs/clinical-rules.md, 'Referrals')::

    requested -> sent -> accepted -> scheduled -> completed (report back required)
                     \\-> declined (reason required)
    any of requested, sent, accepted, scheduled -> cancelled (reason required)

A referral to a community service (``domain.common.COMMUNITY_SERVICES``: housing, food,
transportation, benefits, peer support, legal aid) may also go accepted -> completed: a
food bank or a benefits office often gives no appointment, so the loop is sent,
accepted, report back (docs/pcbh.md, 'Community services').

completed, declined and cancelled are final. A referral that is not final after its
expected-by date is overdue.

Completion (docs/clinical-time.md, 'Referral completion'): only from scheduled, so every
completed referral had an appointment, and not dated before that appointment (the
service cannot have been delivered, nor its report written, before it took place).
"""

from collections.abc import Mapping
from datetime import date, datetime
from typing import ClassVar, Final, Self
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.codec import Snapshotting
from domain.common import (
    COMMUNITY_SERVICES,
    MAX_SHORT_TEXT_LENGTH,
    Problems,
    ReferralService,
    ReferralStatus,
    applies,
    check_occurred_at,
    require_aware,
    require_enum,
    require_text,
    require_uuid,
)
from domain.errors import (
    BlankValueError,
    CompletedBeforeAppointmentError,
    InvalidExpectedByError,
    InvalidReferralTransitionError,
    OutOfOrderError,
    ReasonRequiredError,
    ReportBackRequiredError,
)

FINAL_STATUSES: Final = frozenset(
    {ReferralStatus.COMPLETED, ReferralStatus.DECLINED, ReferralStatus.CANCELLED}
)

TRANSITIONS: Final[Mapping[ReferralStatus, frozenset[ReferralStatus]]] = {
    ReferralStatus.REQUESTED: frozenset({ReferralStatus.SENT, ReferralStatus.CANCELLED}),
    ReferralStatus.SENT: frozenset(
        {ReferralStatus.ACCEPTED, ReferralStatus.DECLINED, ReferralStatus.CANCELLED}
    ),
    ReferralStatus.ACCEPTED: frozenset({ReferralStatus.SCHEDULED, ReferralStatus.CANCELLED}),
    ReferralStatus.SCHEDULED: frozenset({ReferralStatus.COMPLETED, ReferralStatus.CANCELLED}),
    ReferralStatus.COMPLETED: frozenset(),
    ReferralStatus.DECLINED: frozenset(),
    ReferralStatus.CANCELLED: frozenset(),
}
"""Legal moves: current status -> allowed next statuses."""


def _ts(now: datetime) -> datetime:
    require_aware(now, "now")
    return now


class Referral(Snapshotting, Aggregate):
    """A referral of one patient to an outside service, tracked until the loop closes."""

    STREAM_TYPE: ClassVar[str] = "referral"
    TOPIC: ClassVar[str] = STREAM_TYPE

    # --- state: declared once; snapshots and their codec derive from it (domain.codec) --

    patient_id: UUID
    service: ReferralService
    receiving_organisation_id: UUID | None
    reason: str
    expected_by: date
    requested_by: UUID | None
    status: ReferralStatus
    requested_at: datetime
    last_change_at: datetime
    sent_at: datetime | None
    accepted_at: datetime | None
    scheduled_at: datetime | None
    appointment_at: datetime | None
    closed_at: datetime | None
    decline_reason: str | None
    cancel_reason: str | None
    report_back_summary: str | None

    class Event(Aggregate.Event):
        """Base of the referral's events."""

        # Inherited by the library's unused ``Referral.Created`` (explicit topics need one).
        TOPIC: ClassVar[str] = "referral.created"

    class Requested(Aggregate.Created):
        """A referral to an outside service was requested."""

        EVENT_NAME: ClassVar[str] = "referral.requested"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        service: str
        receiving_organisation_id: UUID | None
        reason: str
        expected_by: date
        requested_by: UUID | None
        occurred_at: datetime

    class Sent(Aggregate.Event):
        """The referral was sent to the receiving organisation."""

        EVENT_NAME: ClassVar[str] = "referral.sent"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        occurred_at: datetime

    class Accepted(Aggregate.Event):
        """The receiving organisation accepted the referral."""

        EVENT_NAME: ClassVar[str] = "referral.accepted"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        occurred_at: datetime

    class Declined(Aggregate.Event):
        """The receiving organisation declined the referral."""

        EVENT_NAME: ClassVar[str] = "referral.declined"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason"})
        patient_id: UUID
        reason: str
        occurred_at: datetime

    class Scheduled(Aggregate.Event):
        """An appointment with the receiving service was scheduled."""

        EVENT_NAME: ClassVar[str] = "referral.scheduled"
        TOPIC: ClassVar[str] = EVENT_NAME
        patient_id: UUID
        appointment_at: datetime
        occurred_at: datetime

    class Completed(Aggregate.Event):
        """The service was delivered and its report came back: the loop is closed."""

        EVENT_NAME: ClassVar[str] = "referral.completed"
        TOPIC: ClassVar[str] = EVENT_NAME
        FREE_TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset({"report_back_summary"})
        patient_id: UUID
        report_back_summary: str
        occurred_at: datetime

    class Cancelled(Aggregate.Event):
        """The referral was cancelled before it completed."""

        EVENT_NAME: ClassVar[str] = "referral.cancelled"
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
        self.service = ReferralService(e.service)
        self.receiving_organisation_id = e.receiving_organisation_id
        self.reason = e.reason
        self.expected_by = e.expected_by
        self.requested_by = e.requested_by
        self.status = ReferralStatus.REQUESTED
        self.requested_at = e.occurred_at
        self.last_change_at = e.occurred_at
        self.sent_at = None
        self.accepted_at = None
        self.scheduled_at = None
        self.appointment_at = None
        self.closed_at = None
        self.decline_reason = None
        self.cancel_reason = None
        self.report_back_summary = None

    @classmethod
    def request(
        cls,
        *,
        patient_id: UUID,
        service: ReferralService | str,
        reason: str,
        expected_by: date,
        occurred_at: datetime,
        now: datetime,
        receiving_organisation_id: UUID | None = None,
        requested_by: UUID | None = None,
        id: UUID | None = None,  # the library's name for the aggregate id
    ) -> Self:
        """Request a referral for a patient, due back by ``expected_by``."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(check_occurred_at, occurred_at, now)
        problems.check(require_uuid, patient_id, "patient_id")
        what = problems.check(require_enum, ReferralService, service, "service")
        why = problems.check(require_text, reason, "reason")
        for name, value in (
            ("receiving_organisation_id", receiving_organisation_id),
            ("requested_by", requested_by),
            ("id", id),
        ):
            if value is not None:
                problems.check(require_uuid, value, name)
        problems.check(_check_expected_by, expected_by, occurred_at)
        problems.raise_any()
        assert what is not None and why is not None  # checked above
        return cls._create(
            cls.Requested,
            id=id,
            timestamp=_ts(now),
            patient_id=patient_id,
            service=what.value,
            receiving_organisation_id=receiving_organisation_id,
            reason=why,
            expected_by=expected_by,
            requested_by=requested_by,
            occurred_at=occurred_at,
        )

    # --- queries ----------------------------------------------------------------------

    @property
    def is_final(self) -> bool:
        """Completed, declined or cancelled."""
        return self.status in FINAL_STATUSES

    def is_overdue(self, on: date) -> bool:
        """Not final and past its expected-by date on ``on``."""
        return not self.is_final and on > self.expected_by

    # --- commands ---------------------------------------------------------------------

    def send(self, *, occurred_at: datetime, now: datetime) -> None:
        """Record that the referral went to the receiving organisation."""
        self._check(ReferralStatus.SENT, occurred_at, now)
        self._sent(patient_id=self.patient_id, occurred_at=occurred_at, timestamp=_ts(now))

    def accept(self, *, occurred_at: datetime, now: datetime) -> None:
        """Record that the receiving organisation accepted."""
        self._check(ReferralStatus.ACCEPTED, occurred_at, now)
        self._accepted(patient_id=self.patient_id, occurred_at=occurred_at, timestamp=_ts(now))

    def decline(self, *, reason: str, occurred_at: datetime, now: datetime) -> None:
        """Record that the receiving organisation declined, and why."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check, ReferralStatus.DECLINED, occurred_at, now)
        why = problems.check(_reason, reason)
        problems.raise_any()
        assert why is not None  # checked above
        self._declined(
            patient_id=self.patient_id, reason=why, occurred_at=occurred_at, timestamp=_ts(now)
        )

    def schedule(self, *, appointment_at: datetime, occurred_at: datetime, now: datetime) -> None:
        """Record the appointment the receiving service gave."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check, ReferralStatus.SCHEDULED, occurred_at, now)
        problems.check(require_aware, appointment_at, "appointment_at")
        problems.raise_any()
        self._scheduled(
            patient_id=self.patient_id,
            appointment_at=appointment_at,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def complete(self, *, report_back_summary: str, occurred_at: datetime, now: datetime) -> None:
        """Close the loop: the service happened and its report came back.

        Refused before the appointment (``CompletedBeforeAppointmentError`` naming
        ``occurredAt``); at the appointment's own instant it is allowed.
        """
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check, ReferralStatus.COMPLETED, occurred_at, now)
        timely = not problems  # the appointment is compared with a well-formed time only
        if timely and self.appointment_at is not None and occurred_at < self.appointment_at:
            problems.add(
                CompletedBeforeAppointmentError(
                    "occurredAt lies before the referral's appointment",
                    aggregate_id=self.id,
                    field="occurredAt",
                )
            )
        summary = problems.check(_report_back, report_back_summary, self.id)
        problems.raise_any()
        assert summary is not None  # checked above
        self._completed(
            patient_id=self.patient_id,
            report_back_summary=summary,
            occurred_at=occurred_at,
            timestamp=_ts(now),
        )

    def cancel(self, *, reason: str, occurred_at: datetime, now: datetime) -> None:
        """Cancel a referral that is not final yet."""
        # issue 13: every field problem at once (domain.common.Problems), nothing written.
        problems = Problems()
        problems.check(self._check, ReferralStatus.CANCELLED, occurred_at, now)
        why = problems.check(_reason, reason)
        problems.raise_any()
        assert why is not None  # checked above
        self._cancelled(
            patient_id=self.patient_id, reason=why, occurred_at=occurred_at, timestamp=_ts(now)
        )

    # --- helpers ----------------------------------------------------------------------

    @property
    def is_community_service(self) -> bool:
        """A referral to a community service (its loop may close without an appointment)."""
        return self.service in COMMUNITY_SERVICES

    def _allowed(self) -> frozenset[ReferralStatus]:
        allowed = TRANSITIONS[self.status]
        if self.is_community_service and self.status is ReferralStatus.ACCEPTED:
            allowed = allowed | {ReferralStatus.COMPLETED}
        return allowed

    def _check(self, target: ReferralStatus, occurred_at: datetime, now: datetime) -> None:
        check_occurred_at(occurred_at, now)
        if target not in self._allowed():
            raise InvalidReferralTransitionError(
                f"cannot move referral from {self.status.value} to {target.value}",
                aggregate_id=self.id,
            )
        if occurred_at < self.last_change_at:
            raise OutOfOrderError(
                f"{target.value} precedes the referral's previous step",
                aggregate_id=self.id,
                field="occurred_at",
            )

    # --- apply (state changes only: these run again on replay) ------------------------

    @applies(Sent)
    def _sent(self, e: Sent) -> None:
        self.status = ReferralStatus.SENT
        self.sent_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(Accepted)
    def _accepted(self, e: Accepted) -> None:
        self.status = ReferralStatus.ACCEPTED
        self.accepted_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(Declined)
    def _declined(self, e: Declined) -> None:
        self.status = ReferralStatus.DECLINED
        self.decline_reason = e.reason
        self.closed_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(Scheduled)
    def _scheduled(self, e: Scheduled) -> None:
        self.status = ReferralStatus.SCHEDULED
        self.scheduled_at = e.occurred_at
        self.appointment_at = e.appointment_at
        self.last_change_at = e.occurred_at

    @applies(Completed)
    def _completed(self, e: Completed) -> None:
        self.status = ReferralStatus.COMPLETED
        self.report_back_summary = e.report_back_summary
        self.closed_at = e.occurred_at
        self.last_change_at = e.occurred_at

    @applies(Cancelled)
    def _cancelled(self, e: Cancelled) -> None:
        self.status = ReferralStatus.CANCELLED
        self.cancel_reason = e.reason
        self.closed_at = e.occurred_at
        self.last_change_at = e.occurred_at


def _reason(reason: str) -> str:
    try:
        return require_text(reason, "reason", max_length=MAX_SHORT_TEXT_LENGTH * 10)
    except BlankValueError:
        raise ReasonRequiredError("a reason is required", field="reason") from None


def _report_back(summary: str, referral_id: UUID | None) -> str:
    try:
        return require_text(summary, "report_back_summary")
    except BlankValueError:
        raise ReportBackRequiredError(
            "a referral is completed only with a report back",
            aggregate_id=referral_id,
            field="report_back_summary",
        ) from None


def _check_expected_by(expected_by: date, occurred_at: datetime) -> None:
    """A date, not before the request's day."""
    if isinstance(expected_by, datetime) or not isinstance(expected_by, date):
        raise InvalidExpectedByError("expected_by must be a date", field="expected_by")
    if isinstance(occurred_at, datetime) and expected_by < occurred_at.date():
        raise InvalidExpectedByError("expected_by lies before the request", field="expected_by")
