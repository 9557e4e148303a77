"""SDQ scoring: subscales, reverse-scored items, total difficulties, impact and the
four bands and original three bands of the official scoring instructions (sdqinfo),
exact at every boundary. The four-band teacher values are also printed, citing sdqinfo,
in PMC4830858 (table 1)."""

from __future__ import annotations

import pytest

from domain.errors import AnswerOutOfRangeError, WrongAnswerCountError
from domain.instruments import (
    SDQ_IMPACT_ITEMS,
    SDQ_REVERSED_ITEMS,
    SDQ_SUBSCALE_ITEMS,
    SdqBand,
    SdqCategory,
    SdqInformant,
    SdqScale,
    WrongInformantItemError,
    score_sdq,
    sdq_category,
)

PARENT, TEACHER, SELF = SdqInformant.PARENT, SdqInformant.TEACHER, SdqInformant.SELF
AVG, RAISED, HIGH, VHIGH = (
    SdqBand.CLOSE_TO_AVERAGE,
    SdqBand.SLIGHTLY_RAISED,
    SdqBand.HIGH,
    SdqBand.VERY_HIGH,
)
LOWERED, LOW, VLOW = SdqBand.SLIGHTLY_LOWERED, SdqBand.LOW, SdqBand.VERY_LOW


def form(**wanted: int) -> list[int | None]:
    """25 answers giving each named subscale the wanted score (others 0, prosocial 10
    unless named), answering reverse-scored items the reverse way."""
    scores = {SdqScale.PROSOCIAL: 10} | {SdqScale(k): v for k, v in wanted.items()}
    answers: list[int | None] = [None] * 25
    for scale, numbers in SDQ_SUBSCALE_ITEMS.items():
        left = scores.get(scale, 0)
        for n in numbers:
            points = min(2, left)
            left -= points
            answers[n - 1] = 2 - points if n in SDQ_REVERSED_ITEMS else points
    return answers


def test_the_reverse_scored_items_are_those_of_the_official_key() -> None:
    assert frozenset({7, 11, 14, 21, 25}) == SDQ_REVERSED_ITEMS
    # Answering "not true" (0) to every item scores the reversed ones 2 each.
    all_zero = score_sdq(PARENT, [0] * 25)
    assert all_zero.scores[SdqScale.EMOTIONAL] == 0
    assert all_zero.scores[SdqScale.CONDUCT] == 2  # item 7
    assert all_zero.scores[SdqScale.HYPERACTIVITY] == 4  # items 21, 25
    assert all_zero.scores[SdqScale.PEER] == 4  # items 11, 14
    assert all_zero.scores[SdqScale.PROSOCIAL] == 0
    assert all_zero.total_difficulties == 10


def test_a_worked_parent_example() -> None:
    """Every item "somewhat true" (1): each subscale 5, total difficulties 20."""
    result = score_sdq(
        PARENT,
        [1] * 25,
        {
            "overall": 2,
            "distress": 2,
            "home_life": 3,
            "friendships": 0,
            "classroom_learning": 1,
            "leisure_activities": 2,
            "chronicity": 3,
        },
    )
    assert result.scores == {
        SdqScale.EMOTIONAL: 5,
        SdqScale.CONDUCT: 5,
        SdqScale.HYPERACTIVITY: 5,
        SdqScale.PEER: 5,
        SdqScale.PROSOCIAL: 5,
        SdqScale.TOTAL_DIFFICULTIES: 20,
        SdqScale.IMPACT: 1 + 2 + 0 + 0 + 1,
    }
    assert result.bands[SdqScale.TOTAL_DIFFICULTIES] is VHIGH
    assert result.bands[SdqScale.EMOTIONAL] is HIGH
    assert result.bands[SdqScale.PROSOCIAL] is VLOW
    assert result.bands[SdqScale.IMPACT] is VHIGH


# (informant, total difficulties, band): both sides of every boundary.
TOTAL_BOUNDARIES = [
    (PARENT, 0, AVG), (PARENT, 13, AVG), (PARENT, 14, RAISED), (PARENT, 16, RAISED),
    (PARENT, 17, HIGH), (PARENT, 19, HIGH), (PARENT, 20, VHIGH), (PARENT, 40, VHIGH),
    (TEACHER, 11, AVG), (TEACHER, 12, RAISED), (TEACHER, 15, RAISED), (TEACHER, 16, HIGH),
    (TEACHER, 18, HIGH), (TEACHER, 19, VHIGH), (TEACHER, 40, VHIGH),
    (SELF, 14, AVG), (SELF, 15, RAISED), (SELF, 17, RAISED), (SELF, 18, HIGH),
    (SELF, 19, HIGH), (SELF, 20, VHIGH), (SELF, 40, VHIGH),
]  # fmt: skip


@pytest.mark.parametrize(("informant", "total", "band"), TOTAL_BOUNDARIES)
def test_total_difficulties_bands(informant: SdqInformant, total: int, band: SdqBand) -> None:
    split = {"emotional": min(10, total)}
    rest = total - split["emotional"]
    for name in ("conduct", "hyperactivity", "peer"):
        split[name] = min(10, rest)
        rest -= split[name]
    result = score_sdq(informant, form(**split))
    assert result.total_difficulties == total
    assert result.bands[SdqScale.TOTAL_DIFFICULTIES] is band


# (informant, scale, last score of each of the first three bands) from the official key.
SUBSCALE_CUTS = [
    (PARENT, "emotional", (3, 4, 6)), (PARENT, "conduct", (2, 3, 5)),
    (PARENT, "hyperactivity", (5, 7, 8)), (PARENT, "peer", (2, 3, 4)),
    (TEACHER, "emotional", (3, 4, 5)), (TEACHER, "conduct", (2, 3, 4)),
    (TEACHER, "hyperactivity", (5, 7, 8)), (TEACHER, "peer", (2, 4, 5)),
    (SELF, "emotional", (4, 5, 6)), (SELF, "conduct", (2, 3, 4)),
    (SELF, "hyperactivity", (5, 6, 7)), (SELF, "peer", (2, 3, 4)),
]  # fmt: skip


@pytest.mark.parametrize(("informant", "scale", "cuts"), SUBSCALE_CUTS)
def test_problem_subscale_bands_at_every_boundary(
    informant: SdqInformant, scale: str, cuts: tuple[int, int, int]
) -> None:
    first, second, third = cuts
    expected = {0: AVG, first: AVG, first + 1: RAISED, second: RAISED, second + 1: HIGH,
                third: HIGH, third + 1: VHIGH, 10: VHIGH}  # fmt: skip
    for value, band in expected.items():
        result = score_sdq(informant, form(**{scale: value}))
        assert result.scores[SdqScale(scale)] == value
        assert result.bands[SdqScale(scale)] is band, (informant, scale, value)


@pytest.mark.parametrize(
    ("informant", "cuts"), [(PARENT, (8, 7, 6)), (TEACHER, (6, 5, 4)), (SELF, (7, 6, 5))]
)
def test_prosocial_bands_run_downward(informant: SdqInformant, cuts: tuple[int, int, int]) -> None:
    first, second, third = cuts
    expected = {10: AVG, first: AVG, first - 1: LOWERED, second: LOWERED, second - 1: LOW,
                third: LOW, third - 1: VLOW, 0: VLOW}  # fmt: skip
    for value, band in expected.items():
        result = score_sdq(informant, form(prosocial=value))
        assert result.scores[SdqScale.PROSOCIAL] == value
        assert result.bands[SdqScale.PROSOCIAL] is band, (informant, value)


@pytest.mark.parametrize("informant", [PARENT, TEACHER, SELF])
def test_impact_bands_and_no_difficulties_scores_zero(informant: SdqInformant) -> None:
    items = [0] * 25
    assert score_sdq(informant, items, {"overall": 0}).scores[SdqScale.IMPACT] == 0
    assert score_sdq(informant, items).scores[SdqScale.IMPACT] is None
    scored = [c for c in ("distress", "home_life", "friendships", "classroom_learning",
                          "leisure_activities", "peer_relationships")
              if c in SDQ_IMPACT_ITEMS[informant]]  # fmt: skip
    # "quite a lot" (2) scores 1; "a great deal" (3) scores 2; "only a little" (1) 0.
    for points, band in ((0, AVG), (1, RAISED), (2, HIGH), (3, VHIGH)):
        answers = {"overall": 1} | dict.fromkeys(scored, 1)
        for code in scored[:points]:
            answers[code] = 2
        result = score_sdq(informant, items, answers)
        assert result.scores[SdqScale.IMPACT] == points
        assert result.bands[SdqScale.IMPACT] is band
    top = score_sdq(informant, items, {"overall": 3} | dict.fromkeys(scored, 3))
    assert top.scores[SdqScale.IMPACT] == 2 * len(scored)


def test_a_missing_item_leaves_its_subscale_and_the_total_unscored() -> None:
    answers = form()
    answers[2] = None  # item 3, emotional
    result = score_sdq(PARENT, answers)
    assert result.scores[SdqScale.EMOTIONAL] is None
    assert result.total_difficulties is None
    assert result.scores[SdqScale.PROSOCIAL] == 10


def test_an_item_from_the_wrong_informants_form_is_a_typed_error() -> None:
    with pytest.raises(WrongInformantItemError) as wrong:
        score_sdq(TEACHER, [0] * 25, {"overall": 1, "home_life": 2})
    assert wrong.value.field == "answers.impact.home_life"
    with pytest.raises(WrongInformantItemError):
        score_sdq(PARENT, [0] * 25, {"peer_relationships": 0})


def test_answers_out_of_range_or_miscounted_are_typed_errors() -> None:
    with pytest.raises(AnswerOutOfRangeError):
        score_sdq(PARENT, [0] * 24 + [3])
    with pytest.raises(AnswerOutOfRangeError):
        score_sdq(PARENT, [0] * 25, {"overall": 4})
    with pytest.raises(WrongAnswerCountError):
        score_sdq(SELF, [0] * 24)


def test_an_sdq_is_recorded_with_its_scores_and_the_forms_ages_are_enforced() -> None:
    from datetime import date

    from domain.errors import InstrumentNotForAgeError
    from domain.patient import Patient
    from tests.unit.domain.domain_support import NOW, T0, new_patient

    child = new_patient(birth_date=date(2018, 1, 1))  # 8 on T0
    child.collect_events()
    child.record_sdq(informant="parent", items=[1] * 25, impact={"overall": 0}, occurred_at=T0,
                     now=NOW)  # fmt: skip
    (event,) = child.collect_events()
    assert isinstance(event, Patient.SdqRecorded)
    assert event.informant == "parent" and event.scores["total_difficulties"] == 20
    assert event.bands["total_difficulties"] == "very_high" and event.scores["impact"] == 0
    # The self-report form is for 11-17.
    with pytest.raises(InstrumentNotForAgeError):
        child.record_sdq(informant="self", items=[1] * 25, occurred_at=T0, now=NOW)
    with pytest.raises(WrongInformantItemError):
        child.record_sdq(informant="teacher", items=[1] * 25, impact={"home_life": 1},
                         occurred_at=T0, now=NOW)  # fmt: skip
    assert child.collect_events() == []


# --- the original three bands (normal, borderline, abnormal) ------------------------------
# Source: the official scoring instructions for 4-17 year olds (sdqinfo, "Scoring the
# SDQ"); the parent values are also those a Norwegian study (BMC Pediatrics 2023,
# s12887-023-03837-1, table 2) lists as the UK 4-17 cut-offs. (scale, last normal score,
# last borderline score; prosocial: the lowest normal and lowest borderline scores.)
NORMAL, BORDERLINE, ABNORMAL = SdqCategory.NORMAL, SdqCategory.BORDERLINE, SdqCategory.ABNORMAL
THREE_BAND_CUTS = [
    (PARENT, "total_difficulties", 13, 16), (PARENT, "emotional", 3, 4),
    (PARENT, "conduct", 2, 3), (PARENT, "hyperactivity", 5, 6), (PARENT, "peer", 2, 3),
    (PARENT, "impact", 0, 1),
    (TEACHER, "total_difficulties", 11, 15), (TEACHER, "emotional", 4, 5),
    (TEACHER, "conduct", 2, 3), (TEACHER, "hyperactivity", 5, 6), (TEACHER, "peer", 3, 4),
    (TEACHER, "impact", 0, 1),
    (SELF, "total_difficulties", 15, 19), (SELF, "emotional", 5, 6),
    (SELF, "conduct", 3, 4), (SELF, "hyperactivity", 5, 6), (SELF, "peer", 3, 5),
    (SELF, "impact", 0, 1),
]  # fmt: skip


@pytest.mark.parametrize(("informant", "scale", "normal", "borderline"), THREE_BAND_CUTS)
def test_three_bands_at_every_boundary(
    informant: SdqInformant, scale: str, normal: int, borderline: int
) -> None:
    top = {"total_difficulties": 40, "impact": 10 if informant is not TEACHER else 6}
    expected = {0: NORMAL, normal: NORMAL, normal + 1: BORDERLINE, borderline: BORDERLINE,
                borderline + 1: ABNORMAL, top.get(scale, 10): ABNORMAL}  # fmt: skip
    for value, band in expected.items():
        assert sdq_category(informant, SdqScale(scale), value) is band, (informant, scale, value)


@pytest.mark.parametrize("informant", [PARENT, TEACHER, SELF])
def test_prosocial_three_bands_run_downward(informant: SdqInformant) -> None:
    expected = {10: NORMAL, 6: NORMAL, 5: BORDERLINE, 4: ABNORMAL, 0: ABNORMAL}
    for value, band in expected.items():
        result = score_sdq(informant, form(prosocial=value))
        assert result.categories[SdqScale.PROSOCIAL] is band, (informant, value)


def test_a_scored_form_carries_both_band_schemes() -> None:
    """Parent form, every item "somewhat true": total 20 is very high (four bands) and
    abnormal (three bands); emotional 5 is high and abnormal; a teacher's emotional 5 is
    high but only borderline."""
    parent = score_sdq(PARENT, [1] * 25)
    assert parent.categories[SdqScale.TOTAL_DIFFICULTIES] is ABNORMAL
    assert parent.categories[SdqScale.EMOTIONAL] is ABNORMAL
    assert parent.categories[SdqScale.IMPACT] is None  # impact not answered
    teacher = score_sdq(TEACHER, [1] * 25)
    assert teacher.bands[SdqScale.EMOTIONAL] is HIGH
    assert teacher.categories[SdqScale.EMOTIONAL] is BORDERLINE
