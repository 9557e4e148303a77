"""Imported historical totals (``Patient.import_measure_total``, ``score_total``): the
instrument's range, the time rules, the episode, and no safety flag or task."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from domain.errors import (
    DuplicateIdError,
    InstrumentNotForAgeError,
    InstrumentWithoutTotalError,
    NaiveDatetimeError,
    OccurredBeforeBirthError,
    OccurredInFutureError,
    TotalOutOfRangeError,
    UnknownInstrumentError,
)
from domain.instruments import Instrument, Severity, score, score_total
from domain.patient import Patient
from tests.unit.domain.domain_support import (
    NOW,
    assert_replays,
    day,
    enrolled_patient,
    names,
    new_patient,
)

# The highest total of each instrument that has one.
MAXIMA = {"phq9": 27, "phq_a": 27, "gad7": 21, "phq2": 6}


@pytest.mark.parametrize(("instrument", "highest"), sorted(MAXIMA.items()))
def test_a_total_is_accepted_from_0_to_the_instruments_maximum(
    instrument: str, highest: int
) -> None:
    """0 and the maximum are totals; -1 and maximum + 1 are refused, naming the total."""
    assert score_total(instrument, 0).total == 0
    assert score_total(instrument, highest).total == highest
    for wrong in (-1, highest + 1):
        with pytest.raises(TotalOutOfRangeError) as refused:
            score_total(instrument, wrong)
        assert (refused.value.code, refused.value.field) == ("TOTAL_OUT_OF_RANGE", "total")


@pytest.mark.parametrize("wrong", [True, 3.0, "3", None])
def test_a_total_that_is_not_an_integer_is_refused(wrong: object) -> None:
    with pytest.raises(TotalOutOfRangeError):
        score_total("phq9", wrong)  # type: ignore[arg-type]


def test_the_asq_has_no_total_and_an_unknown_instrument_is_refused() -> None:
    with pytest.raises(InstrumentWithoutTotalError) as refused:
        score_total("asq", 1)
    assert refused.value.field == "instrument"
    with pytest.raises(UnknownInstrumentError):
        score_total("phq10", 1)


@pytest.mark.parametrize(
    ("instrument", "answers"),
    [
        ("phq9", [3, 3, 3, 3, 2, 2, 2, 2, 0]),
        ("phq9", [1, 1, 1, 1, 0, 0, 0, 0, 0]),
        ("phq9", [3, 3, 3, 3, 3, 3, 2, 0, 0]),
        ("gad7", [3, 3, 3, 3, 3, 0, 0]),
        ("gad7", [1, 1, 1, 1, 0, 0, 0]),
        ("phq2", [1, 1]),
        ("phq2", [2, 1]),
    ],
)
def test_a_total_is_judged_by_the_same_thresholds_as_its_answers(
    instrument: str, answers: list[int]
) -> None:
    """Severity, positivity and follow-up of a total equal those of answers with that sum
    and no safety answer; the total has no answers and no safety alert."""
    scored = score(instrument, answers)
    alone = score_total(instrument, sum(answers))
    assert (alone.total, alone.severity, alone.positive, alone.needs_follow_up) == (
        scored.total,
        scored.severity,
        scored.positive,
        scored.needs_follow_up,
    )
    assert alone.complete and alone.answers == () and alone.safety_alert is False


def test_an_imported_total_is_a_screening_marked_total_only() -> None:
    """One event, the screening's, with no answers and total_only; it belongs to the
    episode it was taken in, and replays to the same state."""
    patient = enrolled_patient()
    patient.collect_events()
    sid = uuid4()
    patient.import_measure_total(
        instrument="phq9", total=14, occurred_at=day(2), now=NOW, screening_id=sid
    )
    (event,) = patient.collect_events()
    assert isinstance(event, Patient.ScreeningRecorded)
    assert (event.total_only, event.answers, event.total, event.severity) == (
        True,
        [],
        14,
        "moderate",
    )
    assert event.episode_number == 1 and event.safety_items == []
    screening = patient.screenings[0]
    assert screening.screening_id == sid and screening.total_only
    assert screening.severity is Severity.MODERATE
    fresh = enrolled_patient()
    fresh.import_measure_total(
        instrument="phq9", total=14, occurred_at=day(2), now=NOW, screening_id=sid
    )
    assert_replays(fresh, fresh.collect_events())


def test_a_scored_screening_is_not_total_only() -> None:
    patient = enrolled_patient()
    patient.record_screening(instrument="gad7", answers=[1] * 7, occurred_at=day(2), now=NOW)
    assert not patient.screenings[0].total_only


@pytest.mark.parametrize(
    ("instrument", "total", "follow_up"),
    [("phq9", 27, True), ("phq9", 20, True), ("phq9", 19, False), ("phq2", 6, True)],
)
def test_an_imported_total_raises_no_safety_flag_and_no_task(
    instrument: str, total: int, follow_up: bool
) -> None:
    """Even the highest PHQ-9 total: item 9 is unknown, the history is not a new
    screening, so no safety flag, no same-day task and no follow-up task; the stored
    judgement of the total still says whether it reaches the follow-up threshold."""
    patient = enrolled_patient()
    patient.collect_events()
    result = patient.import_measure_total(
        instrument=instrument, total=total, occurred_at=day(2), now=NOW
    )
    assert names(patient.collect_events()) == ["patient.screening_recorded"]
    assert patient.active_flags == [] and patient.open_tasks == []
    assert result.safety_alert is False and result.needs_follow_up is follow_up
    assert patient.screenings[0].needs_follow_up is follow_up


def test_an_imported_total_follows_the_time_rules() -> None:
    """Not in the future, not before birth, aware; now itself is accepted."""
    patient = enrolled_patient()
    with pytest.raises(OccurredInFutureError):
        patient.import_measure_total(
            instrument="gad7", total=3, occurred_at=NOW + timedelta(minutes=1), now=NOW
        )
    with pytest.raises(OccurredBeforeBirthError) as refused:
        patient.import_measure_total(
            instrument="gad7", total=3, occurred_at=datetime(1980, 5, 16, tzinfo=UTC), now=NOW
        )
    assert refused.value.field == "occurredAt"
    with pytest.raises(NaiveDatetimeError):
        patient.import_measure_total(
            instrument="gad7", total=3, occurred_at=datetime(2026, 3, 5), now=NOW
        )
    patient.import_measure_total(instrument="gad7", total=3, occurred_at=NOW, now=NOW)
    assert patient.screenings[-1].occurred_at == NOW


def test_a_time_problem_and_a_range_problem_are_reported_together() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    with pytest.raises(OccurredInFutureError) as refused:
        patient.import_measure_total(
            instrument="phq9", total=28, occurred_at=NOW + timedelta(days=1), now=NOW
        )
    assert {p.code for p in refused.value.problems} == {"OCCURRED_IN_FUTURE", "TOTAL_OUT_OF_RANGE"}
    assert patient.collect_events() == []


def test_an_imported_total_belongs_to_the_episode_as_a_screening_does() -> None:
    """Before any episode it is history (no episode); within the intake look-back of the
    enrollment it belongs to the episode; older than that it is history."""
    patient = new_patient()
    patient.import_measure_total(instrument="phq9", total=12, occurred_at=day(0), now=NOW)
    assert patient.screenings[0].episode_number is None
    patient.enroll(occurred_at=day(60), now=NOW)
    patient.import_measure_total(instrument="phq9", total=11, occurred_at=day(31), now=NOW)
    patient.import_measure_total(instrument="phq9", total=10, occurred_at=day(29), now=NOW)
    patient.import_measure_total(instrument="phq9", total=9, occurred_at=day(61), now=NOW)
    by_total = {s.total: s.episode_number for s in patient.screenings}
    assert by_total == {12: None, 11: 1, 10: None, 9: 1}


def test_an_imported_phq_a_total_needs_an_adolescent_on_the_day() -> None:
    with pytest.raises(InstrumentNotForAgeError):
        new_patient().import_measure_total(instrument="phq_a", total=5, occurred_at=day(0), now=NOW)
    teen = new_patient(birth_date=date(2011, 1, 1))
    teen.import_measure_total(instrument=Instrument.PHQ_A, total=5, occurred_at=day(0), now=NOW)
    assert teen.screenings[0].total == 5


def test_an_imported_total_id_must_be_unique() -> None:
    patient = new_patient()
    sid = uuid4()
    patient.import_measure_total(
        instrument="gad7", total=2, occurred_at=day(0), now=NOW, screening_id=sid
    )
    with pytest.raises(DuplicateIdError):
        patient.import_measure_total(
            instrument="gad7", total=2, occurred_at=day(0), now=NOW, screening_id=sid
        )
