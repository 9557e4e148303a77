"""The Referral aggregate: the closed loop, every illegal transition, reasons, replay."""

import json
from collections.abc import Callable
from datetime import date, timedelta
from uuid import uuid4

import pytest

from domain.common import ReferralStatus
from domain.errors import (
    CompletedBeforeAppointmentError,
    InvalidExpectedByError,
    InvalidReferralTransitionError,
    InvalidTransitionError,
    OccurredInFutureError,
    OutOfOrderError,
    ReasonRequiredError,
    ReportBackRequiredError,
)
from domain.referral import FINAL_STATUSES, TRANSITIONS, Referral
from tests.unit.domain.domain_support import NOW, T0, assert_replays, day, names, replay

PATIENT = uuid4()
R = ReferralStatus


def new_referral() -> Referral:
    """A requested referral to psychotherapy, due back in 30 days."""
    return Referral.request(
        patient_id=PATIENT,
        service="psychotherapy",
        reason="PHQ-9 not improving",
        expected_by=date(2026, 4, 1),
        occurred_at=T0,
        now=NOW,
    )


Step = Callable[[Referral], None]

STEPS: dict[ReferralStatus, Step] = {
    R.SENT: lambda r: r.send(occurred_at=day(1), now=NOW),
    R.ACCEPTED: lambda r: r.accept(occurred_at=day(2), now=NOW),
    R.DECLINED: lambda r: r.decline(reason="no capacity", occurred_at=day(2), now=NOW),
    R.SCHEDULED: lambda r: r.schedule(appointment_at=day(9), occurred_at=day(3), now=NOW),
    R.COMPLETED: lambda r: r.complete(
        report_back_summary="Seen; CBT started.", occurred_at=day(10), now=NOW
    ),
    R.CANCELLED: lambda r: r.cancel(reason="patient moved", occurred_at=day(4), now=NOW),
}

PATHS: dict[ReferralStatus, list[ReferralStatus]] = {
    R.REQUESTED: [],
    R.SENT: [R.SENT],
    R.ACCEPTED: [R.SENT, R.ACCEPTED],
    R.DECLINED: [R.SENT, R.DECLINED],
    R.SCHEDULED: [R.SENT, R.ACCEPTED, R.SCHEDULED],
    R.COMPLETED: [R.SENT, R.ACCEPTED, R.SCHEDULED, R.COMPLETED],
    R.CANCELLED: [R.CANCELLED],
}


def referral_in(status: ReferralStatus) -> Referral:
    """A referral brought to ``status`` through the commands."""
    referral = new_referral()
    for step in PATHS[status]:
        STEPS[step](referral)
    assert referral.status is status
    return referral


ILLEGAL = [(src, dst) for src in ReferralStatus for dst in STEPS if dst not in TRANSITIONS[src]]
LEGAL = [(src, dst) for src in ReferralStatus for dst in STEPS if dst in TRANSITIONS[src]]


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_illegal_referral_transition_raises(source: ReferralStatus, target: ReferralStatus) -> None:
    """Every move outside the closed loop raises INVALID_REFERRAL_TRANSITION."""
    referral = referral_in(source)
    referral.collect_events()
    with pytest.raises(InvalidReferralTransitionError) as info:
        STEPS[target](referral)
    assert isinstance(info.value, InvalidTransitionError)
    assert info.value.code == "INVALID_REFERRAL_TRANSITION"
    assert referral.status is source
    assert referral.collect_events() == []


@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_legal_referral_transition_moves_the_status(
    source: ReferralStatus, target: ReferralStatus
) -> None:
    """Every move in the closed loop is allowed."""
    referral = referral_in(source)
    STEPS[target](referral)
    assert referral.status is target


def test_illegal_transition_table_covers_each_final_state() -> None:
    """Final states allow nothing, so every step from them is illegal."""
    for final in FINAL_STATUSES:
        assert TRANSITIONS[final] == frozenset()
    assert len(ILLEGAL) + len(LEGAL) == len(ReferralStatus) * len(STEPS)


@pytest.mark.parametrize("source", [R.REQUESTED, R.SENT, R.ACCEPTED, R.SCHEDULED])
def test_cancel_is_allowed_from_every_open_state(source: ReferralStatus) -> None:
    """Cancelling works until the referral is final."""
    referral = referral_in(source)
    referral.cancel(reason="no longer needed", occurred_at=day(20), now=NOW)
    assert referral.cancel_reason == "no longer needed"


def test_full_loop_emits_the_stable_event_names() -> None:
    """Requested, sent, accepted, scheduled and completed, in order."""
    referral = referral_in(R.COMPLETED)
    assert names(referral.collect_events()) == [
        "referral.requested",
        "referral.sent",
        "referral.accepted",
        "referral.scheduled",
        "referral.completed",
    ]
    assert referral.report_back_summary == "Seen; CBT started."
    assert referral.closed_at == day(10)


@pytest.mark.parametrize("summary", ["", "   "])
def test_completion_without_report_back_is_rejected(summary: str) -> None:
    """The loop closes only with the report back."""
    referral = referral_in(R.SCHEDULED)
    with pytest.raises(ReportBackRequiredError):
        referral.complete(report_back_summary=summary, occurred_at=day(10), now=NOW)


def test_completion_before_the_appointment_is_refused_naming_occurred_at() -> None:
    """The appointment is day 9: completing one microsecond before it is a typed error
    naming the field, writing nothing; at the appointment's own instant it closes."""
    referral = referral_in(R.SCHEDULED)
    referral.collect_events()
    appointment = day(9)
    with pytest.raises(CompletedBeforeAppointmentError) as refused:
        referral.complete(
            report_back_summary="Seen.",
            occurred_at=appointment - timedelta(microseconds=1),
            now=NOW,
        )
    assert refused.value.field == "occurredAt"
    assert referral.collect_events() == [] and referral.status is R.SCHEDULED
    referral.complete(report_back_summary="Seen.", occurred_at=appointment, now=NOW)
    assert referral.status is R.COMPLETED and referral.closed_at == appointment


def test_a_referral_is_never_completed_without_an_appointment() -> None:
    """Completion is only legal from scheduled: an accepted referral without an
    appointment cannot be completed (the choice of docs/clinical-time.md)."""
    referral = referral_in(R.ACCEPTED)
    with pytest.raises(InvalidReferralTransitionError):
        referral.complete(report_back_summary="Seen.", occurred_at=day(10), now=NOW)


def test_a_stored_completion_before_its_appointment_still_replays() -> None:
    """Completions stored before the rule existed are not refused on replay."""
    referral = referral_in(R.SCHEDULED)
    referral._completed(  # the apply method, as an old stored event
        patient_id=PATIENT, report_back_summary="Seen.", occurred_at=day(4), timestamp=NOW
    )
    history = referral.collect_events()
    assert_replays(referral, history)
    assert replay(history).status is R.COMPLETED


def test_cancel_without_reason_is_rejected() -> None:
    """Cancelling needs a reason."""
    with pytest.raises(ReasonRequiredError):
        new_referral().cancel(reason=" ", occurred_at=day(1), now=NOW)


def test_decline_without_reason_is_rejected() -> None:
    """Declining needs a reason."""
    with pytest.raises(ReasonRequiredError):
        referral_in(R.SENT).decline(reason="", occurred_at=day(2), now=NOW)


def test_expected_by_before_the_request_is_rejected() -> None:
    """A referral cannot be due before it was requested."""
    with pytest.raises(InvalidExpectedByError):
        Referral.request(
            patient_id=PATIENT,
            service="psychotherapy",
            reason="r",
            expected_by=T0.date() - timedelta(days=1),
            occurred_at=T0,
            now=NOW,
        )


def test_referral_is_overdue_after_its_expected_by_date_until_final() -> None:
    """Open past expected_by is overdue; a completed one never is."""
    referral = referral_in(R.SENT)
    assert not referral.is_overdue(date(2026, 4, 1))
    assert referral.is_overdue(date(2026, 4, 2))
    done = referral_in(R.COMPLETED)
    assert not done.is_overdue(date(2027, 1, 1))


def test_step_dated_before_the_previous_one_is_rejected() -> None:
    """Steps are in time order."""
    referral = referral_in(R.ACCEPTED)
    with pytest.raises(OutOfOrderError):
        referral.schedule(appointment_at=day(9), occurred_at=day(1), now=NOW)


def test_future_step_is_rejected() -> None:
    """A step cannot happen after now."""
    with pytest.raises(OccurredInFutureError):
        new_referral().send(occurred_at=NOW + timedelta(days=1), now=NOW)


def test_referral_belongs_to_its_patient_and_chosen_id() -> None:
    """patient_id is exposed and events carry it for partitioning."""
    chosen = uuid4()
    referral = Referral.request(
        id=chosen,
        patient_id=PATIENT,
        service="specialty_psychiatry",
        reason="r",
        expected_by=date(2026, 5, 1),
        occurred_at=T0,
        now=NOW,
    )
    referral.send(occurred_at=day(1), now=NOW)
    assert referral.id == chosen
    assert referral.patient_id == PATIENT
    assert all(e.patient_id == PATIENT for e in referral.collect_events())  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", list(ReferralStatus))
def test_referral_replays_and_snapshots_in_every_state(status: ReferralStatus) -> None:
    """Replay and snapshot round trips rebuild an equal referral."""
    referral = referral_in(status)
    assert_replays(referral, referral.collect_events())
    state = json.loads(json.dumps(referral.snapshot_state()))
    assert Referral.from_snapshot_state(state) == referral
