"""The field-problem collector (issue 13): every validation problem of an input at once,
the first on top, nothing written; state rules still stop at once."""

from datetime import date, timedelta
from uuid import uuid4

import pytest

from domain.care_plan import CarePlan
from domain.common import Modality, Problems, require_enum, require_text
from domain.consultation import ConsultationNote
from domain.errors import (
    BlankValueError,
    CarePlanClosedError,
    ContactAfterDischargeError,
    InterventionNotFoundError,
    InvalidEnumValueError,
    InvalidTransitionError,
    NoteNotAcknowledgedError,
    ValidationError,
    ValueTooLongError,
)
from domain.referral import Referral
from tests.unit.domain.domain_support import NOW, day, enrolled_patient, new_patient


def test_no_problem_returns_the_checked_values_and_raises_nothing() -> None:
    problems = Problems()
    assert problems.check(require_text, "  Ada ", "given_name") == "Ada"
    assert problems.check(require_enum, Modality, "phone", "modality") is Modality.PHONE
    assert not problems
    problems.raise_any()  # nothing to raise


def test_every_problem_is_kept_in_order_and_the_first_is_raised() -> None:
    problems = Problems()
    assert problems.check(require_text, " ", "given_name") is None
    assert problems.check(require_text, "x" * 11, "mrn", max_length=10) is None
    assert problems.check(require_enum, Modality, "pigeon", "modality") is None
    with pytest.raises(BlankValueError) as caught:
        problems.raise_any()
    assert [(type(p), p.field) for p in caught.value.problems] == [
        (BlankValueError, "given_name"),
        (ValueTooLongError, "mrn"),
        (InvalidEnumValueError, "modality"),
    ]
    assert caught.value.problems[0] is caught.value


def test_a_single_problem_lists_itself() -> None:
    problems = Problems()
    problems.check(require_text, "", "mrn")
    with pytest.raises(ValidationError) as caught:
        problems.raise_any()
    assert caught.value.problems == (caught.value,)


def test_an_error_carrying_problems_adds_all_of_them() -> None:
    inner = Problems()
    inner.check(require_text, "", "a")
    inner.check(require_text, "", "b")
    outer = Problems()
    outer.check(inner.raise_any)
    outer.check(require_text, "", "c")
    with pytest.raises(ValidationError) as caught:
        outer.raise_any()
    assert [p.field for p in caught.value.problems] == ["a", "b", "c"]


def test_only_validation_problems_are_collected() -> None:
    def state_rule() -> None:
        raise InvalidTransitionError("no")

    with pytest.raises(InvalidTransitionError):
        Problems().check(state_rule)


def test_register_reports_every_bad_field_and_creates_nothing() -> None:
    with pytest.raises(ValidationError) as caught:
        new_patient(given_name=" ", mrn="", birth_date=NOW.date() + timedelta(days=1))
    assert [(p.code, p.field) for p in caught.value.problems] == [
        ("BLANK_VALUE", "given_name"),
        ("BLANK_VALUE", "mrn"),
        ("INVALID_BIRTH_DATE", "birth_date"),
    ]


def test_register_with_one_bad_field_is_unchanged() -> None:
    with pytest.raises(BlankValueError) as caught:
        new_patient(family_name="")
    assert caught.value.field == "family_name"
    assert [p.field for p in caught.value.problems] == ["family_name"]
    assert new_patient(birth_date=date(1980, 1, 1)).given_name == "Test"


def test_log_contact_reports_every_bad_field_and_writes_nothing() -> None:
    patient = enrolled_patient()
    pending = len(patient.collect_events())
    assert pending > 0
    with pytest.raises(ValidationError) as caught:
        patient.log_contact(
            activity="contact", minutes=0, occurred_at=NOW + timedelta(hours=1), now=NOW
        )
    assert [(p.code, p.field) for p in caught.value.problems] == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("MODALITY_REQUIRED", "modality"),
        ("INVALID_MINUTES", "minutes"),
    ]
    assert patient.collect_events() == []


def test_log_contact_with_a_bad_modality_is_one_problem_not_two() -> None:
    patient = enrolled_patient()
    with pytest.raises(InvalidEnumValueError) as caught:
        patient.log_contact(
            activity="contact", modality="pigeon", minutes=5, occurred_at=day(2), now=NOW
        )
    assert [p.field for p in caught.value.problems] == ["modality"]


def test_state_rules_still_come_after_a_valid_input() -> None:
    patient = enrolled_patient()
    patient.discharge(reason="completed", occurred_at=day(3), now=NOW)
    with pytest.raises(ContactAfterDischargeError):
        patient.log_contact(activity="case_review", minutes=5, occurred_at=day(4), now=NOW)


def test_record_screening_reports_time_and_answers_at_once() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    with pytest.raises(ValidationError) as caught:
        patient.record_screening(
            instrument="phq9", answers=[0, 1], occurred_at=NOW + timedelta(hours=1), now=NOW
        )
    assert [p.field for p in caught.value.problems] == ["occurred_at", "answers"]
    assert patient.collect_events() == []


# --- care plans, referrals, consultation notes, tasks and flags --------------------------

LATER = NOW + timedelta(hours=1)


def _problems(caught: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str | None]]:
    return [(p.code, p.field) for p in caught.value.problems]


def _plan() -> CarePlan:
    plan = CarePlan.create(patient_id=uuid4(), episode_number=1, occurred_at=day(1), now=NOW)
    plan.collect_events()
    return plan


def test_a_care_plan_review_reports_time_and_both_totals_and_writes_nothing() -> None:
    plan = _plan()
    with pytest.raises(ValidationError) as caught:
        plan.review(
            decision="change", baseline_total=28, latest_total=-1, occurred_at=LATER, now=NOW
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("INVALID_TARGET", "baseline_total"),
        ("INVALID_TARGET", "latest_total"),
    ]
    assert plan.collect_events() == []


def test_an_intervention_reports_each_missing_or_wrong_detail() -> None:
    plan = _plan()
    with pytest.raises(ValidationError) as caught:
        plan.start_intervention(
            kind="medication", name="", modality="other", occurred_at=LATER, now=NOW
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("INTERVENTION_DETAILS", "name"),
        ("INTERVENTION_DETAILS", "dose"),
        ("INTERVENTION_DETAILS", "modality"),
    ]
    # A dose with a control character is one problem (not also "needs a dose").
    with pytest.raises(ValidationError) as caught:
        plan.start_intervention(
            kind="medication", name="Sertraline", dose="50\x00mg", occurred_at=day(2), now=NOW
        )
    assert _problems(caught) == [("CONTROL_CHARACTER", "dose")]
    assert plan.collect_events() == []


def test_a_target_and_a_dropped_goal_report_every_field() -> None:
    plan = _plan()
    with pytest.raises(ValidationError) as caught:
        plan.set_target(
            instrument="phq9", kind="reduction_percent", value=0, occurred_at=LATER, now=NOW
        )
    assert _problems(caught) == [("OCCURRED_IN_FUTURE", "occurred_at"), ("INVALID_TARGET", "value")]
    goal = plan.add_goal(description="Walk daily.", occurred_at=day(2), now=NOW)
    with pytest.raises(ValidationError) as caught:
        plan.close_goal(goal_id=goal, status="dropped", reason=" ", occurred_at=LATER, now=NOW)
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("REASON_REQUIRED", "reason"),
    ]


def test_state_rules_of_a_plan_come_after_a_valid_input() -> None:
    plan = _plan()
    with pytest.raises(InterventionNotFoundError):
        plan.change_intervention(intervention_id=uuid4(), name="New", occurred_at=day(2), now=NOW)
    with pytest.raises(ValidationError) as caught:  # the input first, then the lookup
        plan.change_intervention(intervention_id=uuid4(), reason="\x00", occurred_at=LATER, now=NOW)
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("CONTROL_CHARACTER", "reason"),
    ]
    plan.close(occurred_at=day(3), now=NOW)
    with pytest.raises(CarePlanClosedError):
        plan.add_goal(description="", occurred_at=day(4), now=NOW)


def test_a_referral_request_reports_time_reason_and_expected_by() -> None:
    with pytest.raises(ValidationError) as caught:
        Referral.request(
            patient_id=uuid4(),
            service="psychotherapy",
            reason="",
            expected_by=date(2000, 1, 1),
            occurred_at=LATER,
            now=NOW,
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("BLANK_VALUE", "reason"),
        ("INVALID_EXPECTED_BY", "expected_by"),
    ]


def test_completing_a_referral_reports_the_time_and_the_missing_report_back() -> None:
    referral = Referral.request(
        patient_id=uuid4(),
        service="psychotherapy",
        reason="Weekly therapy.",
        expected_by=date(2027, 6, 1),
        occurred_at=day(1),
        now=NOW,
    )
    referral.send(occurred_at=day(2), now=NOW)
    referral.accept(occurred_at=day(3), now=NOW)
    referral.schedule(appointment_at=day(10), occurred_at=day(4), now=NOW)
    referral.collect_events()
    with pytest.raises(ValidationError) as caught:
        referral.complete(report_back_summary=" ", occurred_at=day(5), now=NOW)
    assert _problems(caught) == [
        ("COMPLETED_BEFORE_APPOINTMENT", "occurredAt"),
        ("REPORT_BACK_REQUIRED", "report_back_summary"),
    ]
    assert referral.collect_events() == []


def test_a_consultation_request_and_a_declined_answer_report_every_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ConsultationNote.request(
            patient_id=uuid4(), requested_by=uuid4(), question=" ", occurred_at=LATER, now=NOW
        )
    assert _problems(caught) == [("OCCURRED_IN_FUTURE", "occurred_at"), ("BLANK_VALUE", "question")]
    note = ConsultationNote.request(
        patient_id=uuid4(), requested_by=uuid4(), question="Dose?", occurred_at=day(1), now=NOW
    )
    note.draft(author_id=uuid4(), content="Partial response.", occurred_at=day(2), now=NOW)
    rec = note.add_recommendation(text="Increase the dose.", occurred_at=day(2), now=NOW)
    note.sign(signed_by=uuid4(), occurred_at=day(3), now=NOW)
    note.collect_events()
    with pytest.raises(ValidationError) as caught:  # the text is checked before the state
        note.respond_to_recommendation(
            recommendation_id=rec,
            response="declined",
            responded_by=uuid4(),
            text="",
            occurred_at=LATER,
            now=NOW,
        )
    assert _problems(caught) == [("OCCURRED_IN_FUTURE", "occurred_at"), ("REASON_REQUIRED", "text")]
    with pytest.raises(NoteNotAcknowledgedError):  # a valid input meets the state rule
        note.respond_to_recommendation(
            recommendation_id=rec,
            response="declined",
            responded_by=uuid4(),
            text="Not now.",
            occurred_at=day(4),
            now=NOW,
        )
    assert note.collect_events() == []


def test_a_task_and_a_flag_report_every_field_and_write_nothing() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    with pytest.raises(ValidationError) as caught:
        patient.create_task(kind="outreach", due_on="tomorrow", occurred_at=LATER, now=NOW)  # type: ignore[arg-type]
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("INVALID_PAYLOAD_VALUE", "due_on"),
    ]
    with pytest.raises(ValidationError) as caught:
        patient.raise_flag(
            kind="team_member",
            rule_id=" ",
            rule_version="1",
            inputs={"note": "a\x00b"},
            occurred_at=LATER,
            now=NOW,
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("BLANK_VALUE", "rule_id"),
        ("CONTROL_CHARACTER", "inputs.note"),
    ]
    assert patient.collect_events() == []


def test_patient_commands_report_every_problem_before_their_state_rules() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    with pytest.raises(ValidationError) as caught:
        patient.grant_consent(kind="data_sharing", expires_on="soon", occurred_at=LATER, now=NOW)  # type: ignore[arg-type]
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("PARTNER_ORGANISATION_REQUIRED", "partner_organisation_id"),
        ("INVALID_PAYLOAD_VALUE", "expires_on"),
    ]
    with pytest.raises(ValidationError) as caught:
        patient.grant_emergency_access(
            user_id=uuid4(), role="pcp", reason=" ", minutes=0, occurred_at=LATER, now=NOW
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("BLANK_VALUE", "reason"),
        ("INVALID_EMERGENCY_WINDOW", "minutes"),
    ]
    with pytest.raises(ValidationError) as caught:
        patient.record_utilisation(
            kind="emergency_visit",
            source="pigeon",
            effective_on=NOW.date() + timedelta(days=3),
            occurred_at=LATER,
            now=NOW,
        )
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("INVALID_ENUM_VALUE", "source"),
        ("OCCURRED_IN_FUTURE", "effectiveOn"),
    ]
    with pytest.raises(ValidationError) as caught:
        patient.write_relapse_prevention_plan(
            warning_signs=[], strategies=["Walk", ""], occurred_at=day(5), now=NOW
        )
    assert _problems(caught) == [
        ("INVALID_PAYLOAD_VALUE", "warning_signs"),
        ("BLANK_VALUE", "strategies[1]"),
    ]
    # The input of a brief visit before who may record it (nobody here is a BHC).
    with pytest.raises(ValidationError) as caught:
        patient.record_brief_visit(bhc_id=uuid4(), minutes=14, occurred_at=LATER, now=NOW)
    assert _problems(caught) == [
        ("OCCURRED_IN_FUTURE", "occurred_at"),
        ("BRIEF_VISIT_DURATION", "minutes"),
    ]
    assert patient.collect_events() == []
