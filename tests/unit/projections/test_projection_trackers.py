"""Referral and consultation trackers: next steps, due days and overdue as days pass."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from domain.consultation import ConsultationNote
from domain.referral import Referral
from projections.trackers import (
    Actor,
    consultation_steps,
    evolve_consultation,
    evolve_referral,
    recommendations_awaiting,
    referral_next_step,
    referral_overdue,
)
from tests.unit.projections.projection_support import (
    CARE_MANAGER,
    NOW,
    PCP,
    PSYCHIATRIST,
    Log,
    day,
    fold,
    on,
)

PATIENT = UUID("00000000-0000-4000-8000-0000000000aa")


def referral_doc(referral: Referral, log: Log) -> dict[str, Any]:
    log.take(referral)
    return fold(evolve_referral, log.records)


def new_referral() -> Referral:
    return Referral.request(
        patient_id=PATIENT,
        service="psychotherapy",
        reason="weekly therapy",
        expected_by=on(30),
        occurred_at=day(0),
        now=NOW,
    )


def test_a_requested_referral_is_due_to_be_sent_within_two_days() -> None:
    """The care manager's send step is late from the third day."""
    doc = referral_doc(new_referral(), Log())
    step = referral_next_step(doc, on(2))
    assert step is not None and (step.name, step.actor) == ("send", Actor.CARE_MANAGER)
    assert step.due_on == on(2) and not step.overdue
    later = referral_next_step(doc, on(3))
    assert later is not None and later.overdue


def test_each_referral_step_is_timed_from_the_previous_one() -> None:
    """Sent, accepted, scheduled: the next step and its due day follow the loop."""
    referral, log = new_referral(), Log()
    referral.send(occurred_at=day(1), now=NOW)
    step = referral_next_step(referral_doc(referral, log), on(2))
    assert step is not None and (step.name, step.due_on) == ("answer", on(15))
    referral.accept(occurred_at=day(5), now=NOW)
    referral.schedule(appointment_at=day(20), occurred_at=day(6), now=NOW)
    step = referral_next_step(referral_doc(referral, log), on(28))
    assert step is not None and (step.name, step.due_on) == ("report_back", on(27))
    assert step.overdue


def test_a_referral_not_closed_after_its_expected_day_is_overdue_until_completed() -> None:
    """Closing the loop needs the report back; then nothing is overdue."""
    referral, log = new_referral(), Log()
    referral.send(occurred_at=day(1), now=NOW)
    doc = referral_doc(referral, log)
    assert not referral_overdue(doc, on(30)) and referral_overdue(doc, on(31))
    referral.accept(occurred_at=day(2), now=NOW)
    referral.schedule(appointment_at=day(10), occurred_at=day(3), now=NOW)
    referral.complete(report_back_summary="seen", occurred_at=day(12), now=NOW)
    closed = referral_doc(referral, log)
    assert closed["report_back"] and not referral_overdue(closed, on(40))
    assert referral_next_step(closed, on(40)) is None
    assert "seen" not in str(closed)  # the report's text stays in the referral stream


def consultation(log: Log, note: ConsultationNote) -> dict[str, Any]:
    log.take(note)
    return fold(evolve_consultation, log.records)


def new_note() -> ConsultationNote:
    return ConsultationNote.request(
        patient_id=PATIENT,
        requested_by=CARE_MANAGER,
        question="dose?",
        occurred_at=day(0),
        now=NOW,
    )


def test_a_requested_consultation_waits_seven_days_for_the_psychiatrist_draft() -> None:
    """The weekly caseload review sets the draft step's limit."""
    doc = consultation(Log(), new_note())
    (step,) = consultation_steps(doc, on(7))
    assert (step.name, step.actor, step.overdue) == ("draft", Actor.PSYCHIATRIC_CONSULTANT, False)
    (late,) = consultation_steps(doc, on(8))
    assert late.overdue


def test_the_sign_step_is_timed_from_the_first_draft_not_a_redraft() -> None:
    """Rewriting a draft does not move the signature's due day."""
    note, log = new_note(), Log()
    note.draft(author_id=PSYCHIATRIST, content="first", occurred_at=day(1), now=NOW)
    note.draft(author_id=PSYCHIATRIST, content="second", occurred_at=day(2), now=NOW)
    (step,) = consultation_steps(consultation(log, note), on(3))
    assert (step.name, step.due_on, step.overdue) == ("sign", on(3), False)


def test_after_acknowledgement_each_recommendation_has_its_own_step_for_the_pcp() -> None:
    """Respond to each; an accepted one must then be put into practice."""
    note, log = new_note(), Log()
    note.draft(author_id=PSYCHIATRIST, content="note", occurred_at=day(1), now=NOW)
    first = note.add_recommendation(text="raise dose", occurred_at=day(1), now=NOW)
    second = note.add_recommendation(text="add therapy", occurred_at=day(1), now=NOW)
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    (ack,) = consultation_steps(consultation(log, note), on(3))
    assert (ack.name, ack.actor, ack.due_on) == ("acknowledge", Actor.PCP, on(9))
    note.acknowledge(pcp_id=PCP, occurred_at=day(4), now=NOW)
    note.accept_recommendation(
        recommendation_id=first, responded_by=PCP, occurred_at=day(5), now=NOW
    )
    steps = consultation_steps(consultation(log, note), on(5))
    assert {(s.name, s.recommendation_id) for s in steps} == {
        ("implement", first),
        ("respond", second),
    }
    respond = next(s for s in steps if s.name == "respond")
    assert respond.due_on == on(18)


def test_a_withdrawn_request_has_no_open_step() -> None:
    """Withdrawal ends the loop."""
    note, log = new_note(), Log()
    note.withdraw(reason="resolved", occurred_at=day(1), now=NOW)
    assert consultation_steps(consultation(log, note), on(30)) == []


def test_steps_carry_the_rule_and_version_that_timed_them() -> None:
    """Overdue steps are explainable like flags."""
    doc = consultation(Log(), new_note())
    (step,) = consultation_steps(doc, on(0) + timedelta(days=1))
    assert (step.rule_id, step.rule_version) == ("trackers.step_limits", "2024.1")
    assert isinstance(step.due_on, date)


def test_the_panel_counts_recommendations_waiting_for_the_pcp_not_steps() -> None:
    """A signed note with three recommendations has one "acknowledge" step but three
    recommendations waiting; then each answered-and-implemented or declined one stops
    waiting, and an accepted one waits until it is implemented."""
    note, log = new_note(), Log()
    note.draft(author_id=PSYCHIATRIST, content="note", occurred_at=day(1), now=NOW)
    assert recommendations_awaiting(consultation(log, note)) == 0
    first = note.add_recommendation(text="raise dose", occurred_at=day(1), now=NOW)
    second = note.add_recommendation(text="add therapy", occurred_at=day(1), now=NOW)
    third = note.add_recommendation(text="sleep hygiene", occurred_at=day(1), now=NOW)
    assert recommendations_awaiting(consultation(log, note)) == 0  # still with the consultant
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    signed = consultation(log, note)
    assert len(consultation_steps(signed, on(3))) == 1
    assert recommendations_awaiting(signed) == 3
    note.acknowledge(pcp_id=PCP, occurred_at=day(3), now=NOW)
    assert recommendations_awaiting(consultation(log, note)) == 3
    note.accept_recommendation(
        recommendation_id=first, responded_by=PCP, occurred_at=day(4), now=NOW
    )
    note.decline_recommendation(
        recommendation_id=second, responded_by=PCP, reason="tried", occurred_at=day(4), now=NOW
    )
    assert recommendations_awaiting(consultation(log, note)) == 2  # first to implement, third
    note.implement_recommendation(recommendation_id=first, occurred_at=day(5), now=NOW)
    assert recommendations_awaiting(consultation(log, note)) == 1
    note.decline_recommendation(
        recommendation_id=third, responded_by=PCP, reason="no", occurred_at=day(5), now=NOW
    )
    assert recommendations_awaiting(consultation(log, note)) == 0
