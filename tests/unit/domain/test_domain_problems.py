"""The field-problem collector (issue 13): every validation problem of an input at once,
the first on top, nothing written; state rules still stop at once."""

from datetime import date, timedelta

import pytest

from domain.common import Modality, Problems, require_enum, require_text
from domain.errors import (
    BlankValueError,
    ContactAfterDischargeError,
    InvalidEnumValueError,
    InvalidTransitionError,
    ValidationError,
    ValueTooLongError,
)
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
