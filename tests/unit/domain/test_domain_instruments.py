"""Scoring rules of the instruments: every band edge, safety item, follow-up and bad input."""

from typing import Any

import pytest

from domain.errors import (
    AnswerNotIntegerError,
    AnswerOutOfRangeError,
    UnknownInstrumentError,
    ValidationError,
    WrongAnswerCountError,
)
from domain.instruments import (
    RULES_VERSION,
    SPECS,
    Instrument,
    Severity,
    score,
)


def answers_for_total(total: int, items: int, *, last_zero: bool = True) -> list[int | None]:
    """Answers summing to ``total``, filled from the first item; item 9 kept 0 if asked."""
    out: list[int | None] = [0] * items
    remaining = total
    usable = items - 1 if last_zero and items == 9 else items
    for i in range(usable):
        take = min(3, remaining)
        out[i] = take
        remaining -= take
    assert remaining == 0, "total too high for the items available"
    return out


@pytest.mark.parametrize(
    ("total", "severity"),
    [
        (0, Severity.MINIMAL),
        (4, Severity.MINIMAL),
        (5, Severity.MILD),
        (9, Severity.MILD),
        (10, Severity.MODERATE),
        (14, Severity.MODERATE),
        (15, Severity.MODERATELY_SEVERE),
        (19, Severity.MODERATELY_SEVERE),
        (20, Severity.SEVERE),
        (24, Severity.SEVERE),
    ],
)
def test_phq9_total_falls_in_the_published_band(total: int, severity: Severity) -> None:
    """Each PHQ-9 band edge (4/5, 9/10, 14/15, 19/20) maps to the published severity."""
    result = score(Instrument.PHQ9, answers_for_total(total, 9))
    assert result.total == total
    assert result.severity is severity
    assert result.complete


def test_phq9_maximum_total_is_severe() -> None:
    """All nines answered 3 gives 27, severe, with a safety alert from item 9."""
    result = score("phq9", [3] * 9)
    assert (result.total, result.severity, result.safety_alert) == (27, Severity.SEVERE, True)


@pytest.mark.parametrize(
    ("total", "severity"),
    [
        (0, Severity.MINIMAL),
        (4, Severity.MINIMAL),
        (5, Severity.MILD),
        (9, Severity.MILD),
        (10, Severity.MODERATE),
        (14, Severity.MODERATE),
        (15, Severity.SEVERE),
        (21, Severity.SEVERE),
    ],
)
def test_gad7_total_falls_in_the_published_band(total: int, severity: Severity) -> None:
    """Each GAD-7 band edge (4/5, 9/10, 14/15) maps to the published severity."""
    result = score(Instrument.GAD7, answers_for_total(total, 7))
    assert (result.total, result.severity) == (total, severity)
    assert not result.safety_alert
    assert result.loinc_panel == "69737-5"
    assert result.loinc_total == "70274-6"


@pytest.mark.parametrize(("item9", "alert"), [(0, False), (1, True), (2, True), (3, True)])
def test_phq9_item9_above_zero_is_a_safety_alert(item9: int, alert: bool) -> None:
    """Item 9 at 0 raises nothing; any value above 0 is a safety alert."""
    result = score(Instrument.PHQ9, [0, 0, 0, 0, 0, 0, 0, 0, item9])
    assert result.safety_alert is alert
    assert result.safety_items == ((9,) if alert else ())


def test_phq9_item9_alert_holds_whatever_the_total() -> None:
    """A minimal total with item 9 at 1 still raises the safety alert."""
    result = score(Instrument.PHQ9, [0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert result.severity is Severity.MINIMAL
    assert result.safety_alert


def test_phq9_item9_alert_holds_on_an_incomplete_form() -> None:
    """A missing item does not hide a positive item 9."""
    result = score(Instrument.PHQ9, [None, 0, 0, 0, 0, 0, 0, 0, 2])
    assert not result.complete
    assert result.safety_alert


@pytest.mark.parametrize(("total", "follow_up"), [(19, False), (20, True), (27, True)])
def test_phq9_total_of_20_or_more_needs_follow_up(total: int, follow_up: bool) -> None:
    """The follow-up task threshold is exactly 20."""
    answers = [3] * 9 if total == 27 else answers_for_total(total, 9)
    assert score(Instrument.PHQ9, answers).needs_follow_up is follow_up


@pytest.mark.parametrize("missing", range(9))
def test_phq9_with_a_missing_item_is_incomplete_without_total(missing: int) -> None:
    """Any missing PHQ-9 item gives no total, no severity and no follow-up."""
    answers: list[int | None] = [3] * 9
    answers[missing] = None
    result = score(Instrument.PHQ9, answers)
    assert not result.complete
    assert result.total is None
    assert result.severity is None
    assert not result.needs_follow_up


@pytest.mark.parametrize("bad", [-1, 4, 10])
@pytest.mark.parametrize("instrument", [Instrument.PHQ9, Instrument.GAD7, Instrument.PHQ2])
def test_answer_outside_zero_to_three_is_rejected(instrument: Instrument, bad: int) -> None:
    """Answers below 0 or above 3 raise ANSWER_OUT_OF_RANGE."""
    answers: list[int | None] = [0] * SPECS[instrument].item_count
    answers[0] = bad
    with pytest.raises(AnswerOutOfRangeError) as info:
        score(instrument, answers)
    assert info.value.code == "ANSWER_OUT_OF_RANGE"
    assert info.value.field == "answers"


@pytest.mark.parametrize("bad", [1.0, "1", True, [1], 1.5])
def test_non_integer_answer_is_rejected(bad: Any) -> None:
    """Floats, strings, booleans and lists are not answers."""
    answers: list[Any] = [0] * 9
    answers[3] = bad
    with pytest.raises(AnswerNotIntegerError):
        score(Instrument.PHQ9, answers)


@pytest.mark.parametrize(
    ("instrument", "count"),
    [
        (Instrument.PHQ9, 8),
        (Instrument.PHQ9, 10),
        (Instrument.PHQ9, 0),
        (Instrument.GAD7, 9),
        (Instrument.PHQ2, 3),
        (Instrument.PHQ_A, 9),
        (Instrument.ASQ, 4),
    ],
)
def test_wrong_number_of_answers_is_rejected(instrument: Instrument, count: int) -> None:
    """The answer list must have exactly one entry per item."""
    with pytest.raises(WrongAnswerCountError):
        score(instrument, [0] * count)


def test_answers_given_as_a_string_are_rejected() -> None:
    """A string is a sequence but not a list of answers."""
    with pytest.raises(WrongAnswerCountError):
        score(Instrument.PHQ2, "00")  # type: ignore[arg-type]


def test_unknown_instrument_is_rejected() -> None:
    """Only the instruments in the rules can be scored."""
    with pytest.raises(UnknownInstrumentError) as info:
        score("beck", [0])
    assert isinstance(info.value, ValidationError)


def test_phq9_result_carries_loinc_codes_and_rules_version() -> None:
    """The result names the PHQ-9 panel and total LOINC codes and the rules version."""
    result = score(Instrument.PHQ9, [1] * 8 + [0])
    assert (result.loinc_panel, result.loinc_total) == ("44249-1", "44261-6")
    assert SPECS[Instrument.PHQ9].loinc_items[9] == "44260-8"
    assert result.rules_version == RULES_VERSION


@pytest.mark.parametrize(
    ("answers", "total", "positive"),
    [([0, 0], 0, False), ([1, 1], 2, False), ([2, 1], 3, True), ([3, 3], 6, True)],
)
def test_phq2_is_positive_at_three_or_more(answers: list[int], total: int, positive: bool) -> None:
    """PHQ-2 totals 0-6; 2 is negative, 3 is positive and needs a full PHQ-9."""
    result = score(Instrument.PHQ2, answers)
    assert (result.total, result.positive, result.needs_follow_up) == (total, positive, positive)
    assert result.severity is (Severity.POSITIVE if positive else Severity.NEGATIVE)
    assert result.loinc_total == "55758-7"


def test_phq_a_is_scored_as_phq9_on_its_first_nine_items() -> None:
    """The PHQ-A total is the sum of items 1-9; supplementary answers do not count."""
    result = score(Instrument.PHQ_A, [2] * 8 + [0] + [1, 3, 0, 0])
    assert (result.total, result.severity) == (16, Severity.MODERATELY_SEVERE)
    assert not result.safety_alert
    assert result.loinc_total == "89204-2"


def test_phq_a_missing_supplementary_answers_keep_it_complete() -> None:
    """Policy: the unscored PHQ-A questions may be left out."""
    result = score(Instrument.PHQ_A, [1] * 8 + [0] + [None] * 4)
    assert result.complete
    assert result.total == 8


@pytest.mark.parametrize("item", [12, 13])
def test_phq_a_yes_to_a_suicide_question_is_a_safety_alert(item: int) -> None:
    """A yes to past-month suicidal thoughts or a past attempt raises the safety alert."""
    answers: list[int | None] = [0] * 13
    answers[item - 1] = 1
    result = score(Instrument.PHQ_A, answers)
    assert result.safety_alert
    assert result.safety_items == (item,)


def test_phq_a_yes_no_question_rejects_two() -> None:
    """Yes/no questions accept only 0 and 1."""
    answers: list[int | None] = [0] * 13
    answers[9] = 2
    with pytest.raises(AnswerOutOfRangeError):
        score(Instrument.PHQ_A, answers)


@pytest.mark.parametrize(
    ("answers", "severity", "complete", "alert"),
    [
        ([0, 0, 0, 0, None], Severity.NEGATIVE, True, False),
        ([1, 0, 0, 0, 0], Severity.NON_ACUTE_POSITIVE, True, True),
        ([0, 0, 0, 1, 1], Severity.ACUTE_POSITIVE, True, True),
        ([0, 1, 0, 0, None], None, False, True),
        ([0, None, 0, 0, None], None, False, False),
    ],
)
def test_asq_screens_positive_on_any_yes(
    answers: list[int | None], severity: Severity | None, complete: bool, alert: bool
) -> None:
    """ASQ: all no is negative; a yes is positive (acute when question 5 is yes)."""
    result = score(Instrument.ASQ, answers)
    assert (result.severity, result.complete, result.safety_alert) == (severity, complete, alert)
    assert result.total is None


def test_score_result_payload_holds_only_plain_values() -> None:
    """The payload stored in the event is str/int/bool/None/list only."""
    payload = score(Instrument.PHQ9, [1, 2, 3, 0, None, 1, 2, 3, 1]).to_payload()
    allowed = (str, int, bool, type(None), list)
    assert all(isinstance(v, allowed) for v in payload.values())
    assert payload["answers"] == [1, 2, 3, 0, None, 1, 2, 3, 1]
    assert payload["severity"] is None
