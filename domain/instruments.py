"""Scoring rules for the validated instruments used in collaborative care.

Rule set version ``RULES_VERSION`` (effective from ``RULES_EFFECTIVE_FROM``). Sources:

- PHQ-9: Kroenke, Spitzer, Williams 2001 (J Gen Intern Med 16:606). Nine items 0-3,
  total 0-27; bands 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe,
  20-27 severe. LOINC panel 44249-1, total 44261-6, item 9 44260-8.
- PHQ-A (PHQ-9 Modified for Teens, ages 11-17): the nine PHQ-9 items scored as PHQ-9
  plus four supplementary questions (past-year depressed mood, functional difficulty,
  past-month serious suicidal thoughts, lifetime suicide attempt). LOINC panel 89206-7,
  total 89204-2 (regenstrief LOINC: "total score is the sum of the first 9 items").
- PHQ-2: first two PHQ-9 items, total 0-6, positive at 3 or more (Kroenke 2003).
  LOINC panel 55757-9, total 55758-7.
- GAD-7: Spitzer et al. 2006 (Arch Intern Med 166:1092). Seven items 0-3, total 0-21;
  bands 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe. LOINC panel 69737-5,
  total 70274-6.
- ASQ (NIMH Ask Suicide-Screening Questions): four yes/no questions; any yes is a
  positive screen; the fifth (acuity) question, asked only after a yes, makes it an
  acute positive. No total.

Answers are integers, one per item in the instrument's order; ``None`` marks an item
that was not answered. Yes/no questions are 0 (no) and 1 (yes).

Policy choices (ours, docs/clinical-rules.md):

- A missing scored item makes the questionnaire incomplete: no total, no severity,
  never used for response or remission. The PHQ-A supplementary questions are not part
  of the total, so leaving them out does not make a PHQ-A incomplete.
- Safety alerts are read from whatever was answered, complete or not: PHQ-9 / PHQ-A
  item 9 above 0 is a safety alert whatever the total (docs/clinical-rules.md), as is a yes to
  either PHQ-A suicide question or any ASQ yes.
- A PHQ-9 / PHQ-A total of 20 or more needs a follow-up task; a positive PHQ-2 needs a
  follow-up (a full PHQ-9 within 30 days, NCQA DSF-E).
- A total known without its answers (a registry's history, ``score_total``) gets its
  severity, positivity and follow-up from the same thresholds as a scored one; having no
  answers, it has no safety alert (item 9 is unknown, not 0).

Everything here is pure: no I/O, no clock.
"""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from domain.errors import (
    AnswerNotIntegerError,
    AnswerOutOfRangeError,
    InstrumentWithoutTotalError,
    TotalOutOfRangeError,
    UnknownInstrumentError,
    WrongAnswerCountError,
)

RULES_VERSION: Final = "instruments-2026.1"
RULES_EFFECTIVE_FROM: Final = date(2026, 1, 1)

# A PHQ-9 total at or above this raises a follow-up task (docs/clinical-rules.md).
SEVERE_FOLLOW_UP_TOTAL: Final = 20
# The PHQ-9 item (1-based) about thoughts of self-harm.
PHQ9_SAFETY_ITEM: Final = 9


class Instrument(enum.StrEnum):
    """Instrument codes, as stored in events."""

    PHQ9 = "phq9"
    PHQ_A = "phq_a"
    PHQ2 = "phq2"
    GAD7 = "gad7"
    ASQ = "asq"


class Severity(enum.StrEnum):
    """Severity band (scaled instruments) or screen result (screeners)."""

    MINIMAL = "minimal"
    MILD = "mild"
    MODERATE = "moderate"
    MODERATELY_SEVERE = "moderately_severe"
    SEVERE = "severe"
    NEGATIVE = "negative"
    POSITIVE = "positive"
    NON_ACUTE_POSITIVE = "non_acute_positive"
    ACUTE_POSITIVE = "acute_positive"


@dataclass(frozen=True)
class Band:
    """An inclusive range of totals and the severity it means."""

    low: int
    high: int
    severity: Severity


@dataclass(frozen=True)
class InstrumentSpec:
    """What the rules know about one instrument."""

    instrument: Instrument
    title: str
    # Highest allowed answer per item, in order; every item's lowest is 0.
    item_max: tuple[int, ...]
    # The first ``scored_items`` items make up the total and must all be answered.
    scored_items: int
    bands: tuple[Band, ...]
    loinc_panel: str | None
    loinc_total: str | None
    # 1-based item numbers whose answer above 0 is a safety alert.
    safety_items: tuple[int, ...] = ()
    follow_up_at: int | None = None
    positive_at: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    loinc_items: Mapping[int, str] = field(default_factory=dict)

    @property
    def item_count(self) -> int:
        """Number of questions on the form."""
        return len(self.item_max)

    @property
    def max_total(self) -> int:
        """Highest possible total."""
        return sum(self.item_max[: self.scored_items])

    def allows_age(self, age: int) -> bool:
        """Whether the instrument is validated for a patient of ``age`` years."""
        if self.min_age is not None and age < self.min_age:
            return False
        return not (self.max_age is not None and age > self.max_age)


_PHQ9_BANDS: Final = (
    Band(0, 4, Severity.MINIMAL),
    Band(5, 9, Severity.MILD),
    Band(10, 14, Severity.MODERATE),
    Band(15, 19, Severity.MODERATELY_SEVERE),
    Band(20, 27, Severity.SEVERE),
)

_GAD7_BANDS: Final = (
    Band(0, 4, Severity.MINIMAL),
    Band(5, 9, Severity.MILD),
    Band(10, 14, Severity.MODERATE),
    Band(15, 21, Severity.SEVERE),
)

_PHQ2_BANDS: Final = (
    Band(0, 2, Severity.NEGATIVE),
    Band(3, 6, Severity.POSITIVE),
)

SPECS: Final[Mapping[Instrument, InstrumentSpec]] = {
    Instrument.PHQ9: InstrumentSpec(
        instrument=Instrument.PHQ9,
        title="PHQ-9",
        item_max=(3,) * 9,
        scored_items=9,
        bands=_PHQ9_BANDS,
        loinc_panel="44249-1",
        loinc_total="44261-6",
        safety_items=(PHQ9_SAFETY_ITEM,),
        follow_up_at=SEVERE_FOLLOW_UP_TOTAL,
        loinc_items={9: "44260-8"},
    ),
    Instrument.PHQ_A: InstrumentSpec(
        instrument=Instrument.PHQ_A,
        title="PHQ-A (PHQ-9 Modified for Teens)",
        # Items 1-9 as PHQ-9; 10 past-year depressed mood (yes/no); 11 functional
        # difficulty (0-3); 12 serious suicidal thoughts in the past month (yes/no);
        # 13 suicide attempt ever (yes/no).
        item_max=(3,) * 9 + (1, 3, 1, 1),
        scored_items=9,
        bands=_PHQ9_BANDS,
        loinc_panel="89206-7",
        loinc_total="89204-2",
        safety_items=(PHQ9_SAFETY_ITEM, 12, 13),
        follow_up_at=SEVERE_FOLLOW_UP_TOTAL,
        min_age=11,
        max_age=17,
    ),
    Instrument.PHQ2: InstrumentSpec(
        instrument=Instrument.PHQ2,
        title="PHQ-2",
        item_max=(3, 3),
        scored_items=2,
        bands=_PHQ2_BANDS,
        loinc_panel="55757-9",
        loinc_total="55758-7",
        positive_at=3,
        follow_up_at=3,
    ),
    Instrument.GAD7: InstrumentSpec(
        instrument=Instrument.GAD7,
        title="GAD-7",
        item_max=(3,) * 7,
        scored_items=7,
        bands=_GAD7_BANDS,
        loinc_panel="69737-5",
        loinc_total="70274-6",
    ),
    Instrument.ASQ: InstrumentSpec(
        instrument=Instrument.ASQ,
        title="ASQ (Ask Suicide-Screening Questions)",
        # Questions 1-4 screen; question 5 (thoughts right now) is asked after a yes.
        item_max=(1, 1, 1, 1, 1),
        scored_items=0,
        bands=(),
        loinc_panel=None,
        loinc_total=None,
        safety_items=(1, 2, 3, 4, 5),
        min_age=10,
    ),
}


@dataclass(frozen=True)
class ScoreResult:
    """The scored questionnaire. Stored in the screening event so readers need not rescore."""

    instrument: Instrument
    rules_version: str
    answers: tuple[int | None, ...]
    complete: bool
    total: int | None
    severity: Severity | None
    positive: bool | None
    safety_alert: bool
    needs_follow_up: bool
    loinc_panel: str | None
    loinc_total: str | None
    # 1-based items that raised the safety alert (empty when there is none).
    safety_items: tuple[int, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """The result as event payload values (str, int, bool, None and lists)."""
        return {
            "instrument": self.instrument.value,
            "rules_version": self.rules_version,
            "answers": list(self.answers),
            "complete": self.complete,
            "total": self.total,
            "severity": self.severity.value if self.severity is not None else None,
            "positive": self.positive,
            "safety_alert": self.safety_alert,
            "needs_follow_up": self.needs_follow_up,
            "loinc_panel": self.loinc_panel,
            "loinc_total": self.loinc_total,
            "safety_items": list(self.safety_items),
        }


def spec_for(instrument: Instrument | str) -> InstrumentSpec:
    """The spec of an instrument given as member or code."""
    try:
        return SPECS[Instrument(instrument)]
    except ValueError:
        raise UnknownInstrumentError("unknown instrument code", field="instrument") from None


def validate_answers(spec: InstrumentSpec, answers: Sequence[int | None]) -> tuple[int | None, ...]:
    """Check count, type and range of every answer; return them as a tuple."""
    if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
        raise WrongAnswerCountError(f"{spec.title} answers must be a list", field="answers")
    if len(answers) != spec.item_count:
        raise WrongAnswerCountError(
            f"{spec.title} needs {spec.item_count} answers, got {len(answers)}",
            field="answers",
        )
    for number, (answer, high) in enumerate(zip(answers, spec.item_max, strict=True), start=1):
        if answer is None:
            continue
        # bool is an int subclass; a True answer is a client bug, not a 1.
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise AnswerNotIntegerError(
                f"{spec.title} item {number} must be an integer or null", field="answers"
            )
        if not 0 <= answer <= high:
            raise AnswerOutOfRangeError(
                f"{spec.title} item {number} must be between 0 and {high}", field="answers"
            )
    return tuple(answers)


def _band(spec: InstrumentSpec, total: int) -> Severity:
    for band in spec.bands:
        if band.low <= total <= band.high:
            return band.severity
    raise AssertionError("bands cover every total")  # pragma: no cover


def score(instrument: Instrument | str, answers: Sequence[int | None]) -> ScoreResult:
    """Score one questionnaire under the current rules (pure)."""
    spec = spec_for(instrument)
    checked = validate_answers(spec, answers)
    if spec.instrument is Instrument.ASQ:
        return _score_asq(spec, checked)

    safety = tuple(n for n in spec.safety_items if (checked[n - 1] or 0) > 0)
    scored = checked[: spec.scored_items]
    complete = all(a is not None for a in scored)
    total: int | None = None
    severity: Severity | None = None
    positive: bool | None = None
    needs_follow_up = False
    if complete:
        total = sum(a for a in scored if a is not None)
        severity, positive, needs_follow_up = _judge_total(spec, total)
    return ScoreResult(
        instrument=spec.instrument,
        rules_version=RULES_VERSION,
        answers=checked,
        complete=complete,
        total=total,
        severity=severity,
        positive=positive,
        safety_alert=bool(safety),
        needs_follow_up=needs_follow_up,
        loinc_panel=spec.loinc_panel,
        loinc_total=spec.loinc_total,
        safety_items=safety,
    )


def _judge_total(spec: InstrumentSpec, total: int) -> tuple[Severity, bool | None, bool]:
    """Severity band, positivity and follow-up of a total: the one place the thresholds
    are applied, for a scored questionnaire and a total alike."""
    positive = total >= spec.positive_at if spec.positive_at is not None else None
    needs_follow_up = spec.follow_up_at is not None and total >= spec.follow_up_at
    return _band(spec, total), positive, needs_follow_up


def score_total(instrument: Instrument | str, total: int) -> ScoreResult:
    """A total known without its item answers (a registry's history), judged by the
    instrument's thresholds: complete, with its band, positivity and follow-up; no
    answers, so no safety alert (the safety items are unknown, not 0). Pure.

    Refused: an instrument without a total (the ASQ), a total that is not an integer or
    outside 0..the instrument's maximum (PHQ-9 and PHQ-A 27, GAD-7 21, PHQ-2 6)."""
    spec = spec_for(instrument)
    if spec.scored_items == 0 or not spec.bands:
        raise InstrumentWithoutTotalError(f"{spec.title} has no total", field="instrument")
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= spec.max_total:
        raise TotalOutOfRangeError(
            f"{spec.title} total must be an integer between 0 and {spec.max_total}",
            field="total",
        )
    severity, positive, needs_follow_up = _judge_total(spec, total)
    return ScoreResult(
        instrument=spec.instrument,
        rules_version=RULES_VERSION,
        answers=(),
        complete=True,
        total=total,
        severity=severity,
        positive=positive,
        safety_alert=False,
        needs_follow_up=needs_follow_up,
        loinc_panel=spec.loinc_panel,
        loinc_total=spec.loinc_total,
    )


def _score_asq(spec: InstrumentSpec, answers: tuple[int | None, ...]) -> ScoreResult:
    """ASQ: any yes to 1-4 is positive; question 5 decides acute versus non-acute.

    Complete when 1-4 are all answered and, after a yes, question 5 too. A yes is a
    safety alert even on an incomplete form.
    """
    screen = answers[:4]
    acuity = answers[4]
    yes = tuple(n for n, a in enumerate(answers, start=1) if a == 1)
    any_screen_yes = any(a == 1 for a in screen)
    screen_answered = all(a is not None for a in screen)
    severity: Severity | None
    positive: bool | None
    if any_screen_yes:
        positive = True
        complete = screen_answered and acuity is not None
        if acuity is None:
            severity = None
        else:
            severity = Severity.ACUTE_POSITIVE if acuity == 1 else Severity.NON_ACUTE_POSITIVE
    elif screen_answered:
        positive, complete, severity = False, True, Severity.NEGATIVE
    else:
        positive, complete, severity = None, False, None
    return ScoreResult(
        instrument=spec.instrument,
        rules_version=RULES_VERSION,
        answers=answers,
        complete=complete,
        total=None,
        severity=severity,
        positive=positive,
        safety_alert=bool(yes),
        # A positive ASQ is a safety alert; its follow-up is the risk assessment task.
        needs_follow_up=False,
        loinc_panel=spec.loinc_panel,
        loinc_total=spec.loinc_total,
        safety_items=yes,
    )


# --- SDQ (Strengths and Difficulties Questionnaire) ------------------------------------
#
# Sources: Goodman R. (1997) J Child Psychol Psychiatry 38:581-586; Goodman R. (2001)
# J Am Acad Child Adolesc Psychiatry 40:1337-1345; the official scoring instructions
# for the SDQ for 4-17 year olds (sdqinfo.org, "Scoring the SDQ"), whose four-band
# categorisation is used here. The SDQ is copyrighted: careteam stores item positions
# and answer values only, never item text.
#
# 25 items, each 0 (not true), 1 (somewhat true), 2 (certainly true), in the form's
# order. Five subscales of five items; five items are reverse-scored (2-answer). Total
# difficulties = emotional + conduct + hyperactivity + peer (0-40; prosocial is not part
# of it). The impact supplement follows the 25 items; its answers are kept as given
# (0-3) and scored per the official key (see ``_SDQ_IMPACT``).


class SdqInformant(enum.StrEnum):
    """Whose form: the parent (or caregiver) and teacher forms cover ages 4-17, the
    self-report form ages 11-17."""

    PARENT = "parent"
    TEACHER = "teacher"
    SELF = "self"


class SdqScale(enum.StrEnum):
    """The SDQ subscales, total difficulties and the impact score."""

    EMOTIONAL = "emotional"
    CONDUCT = "conduct"
    HYPERACTIVITY = "hyperactivity"
    PEER = "peer"
    PROSOCIAL = "prosocial"
    TOTAL_DIFFICULTIES = "total_difficulties"
    IMPACT = "impact"


class SdqBand(enum.StrEnum):
    """The four bands of the official scoring instructions. Prosocial is a strength:
    its low bands are "slightly lowered", "low" and "very low"."""

    CLOSE_TO_AVERAGE = "close_to_average"
    SLIGHTLY_RAISED = "slightly_raised"
    HIGH = "high"
    VERY_HIGH = "very_high"
    SLIGHTLY_LOWERED = "slightly_lowered"
    LOW = "low"
    VERY_LOW = "very_low"


SDQ_ITEM_COUNT: Final = 25

# 1-based item numbers of each subscale, per the official scoring key.
SDQ_SUBSCALE_ITEMS: Final[Mapping[SdqScale, tuple[int, ...]]] = {
    SdqScale.EMOTIONAL: (3, 8, 13, 16, 24),
    SdqScale.CONDUCT: (5, 7, 12, 18, 22),
    SdqScale.HYPERACTIVITY: (2, 10, 15, 21, 25),
    SdqScale.PEER: (6, 11, 14, 19, 23),
    SdqScale.PROSOCIAL: (1, 4, 9, 17, 20),
}
# Reverse-scored items (official key): scored 2 - answer.
SDQ_REVERSED_ITEMS: Final = frozenset({7, 11, 14, 21, 25})
_SDQ_PROBLEM_SCALES: Final = (
    SdqScale.EMOTIONAL,
    SdqScale.CONDUCT,
    SdqScale.HYPERACTIVITY,
    SdqScale.PEER,
)

# Impact supplement item codes per informant, in form order (after item 25). Every
# answer is 0-3. ``overall`` is "does the child have difficulties" (0 no, 1-3 yes: minor,
# definite, severe); ``chronicity`` and ``burden`` are asked but not scored; the others
# ("not at all", "only a little", "quite a lot", "a great deal") score 0, 0, 1, 2.
SDQ_IMPACT_ITEMS: Final[Mapping[SdqInformant, tuple[str, ...]]] = {
    SdqInformant.PARENT: (
        "overall",
        "chronicity",
        "distress",
        "home_life",
        "friendships",
        "classroom_learning",
        "leisure_activities",
        "burden",
    ),
    SdqInformant.TEACHER: (
        "overall",
        "chronicity",
        "distress",
        "peer_relationships",
        "classroom_learning",
        "burden",
    ),
    SdqInformant.SELF: (
        "overall",
        "chronicity",
        "distress",
        "home_life",
        "friendships",
        "classroom_learning",
        "leisure_activities",
        "burden",
    ),
}
_SDQ_IMPACT_UNSCORED: Final = frozenset({"overall", "chronicity", "burden"})
# "not at all" 0, "only a little" 0, "quite a lot" 1, "a great deal" 2.
_SDQ_IMPACT_POINTS: Final = (0, 0, 1, 2)

SDQ_AGES: Final[Mapping[SdqInformant, tuple[int, int]]] = {
    SdqInformant.PARENT: (4, 17),
    SdqInformant.TEACHER: (4, 17),
    SdqInformant.SELF: (11, 17),
}


@dataclass(frozen=True)
class SdqCut:
    """Upper bounds of the first three bands (inclusive); the fourth runs to the top.
    For prosocial the bands run downward: lower bounds of the first three."""

    first: int
    second: int
    third: int


# Four-band cut-offs of the official scoring instructions (sdqinfo, 4-17 year olds).
SDQ_CUTS: Final[Mapping[SdqInformant, Mapping[SdqScale, SdqCut]]] = {
    SdqInformant.PARENT: {
        SdqScale.TOTAL_DIFFICULTIES: SdqCut(13, 16, 19),
        SdqScale.EMOTIONAL: SdqCut(3, 4, 6),
        SdqScale.CONDUCT: SdqCut(2, 3, 5),
        SdqScale.HYPERACTIVITY: SdqCut(5, 7, 8),
        SdqScale.PEER: SdqCut(2, 3, 4),
        SdqScale.PROSOCIAL: SdqCut(8, 7, 6),
        SdqScale.IMPACT: SdqCut(0, 1, 2),
    },
    SdqInformant.TEACHER: {
        SdqScale.TOTAL_DIFFICULTIES: SdqCut(11, 15, 18),
        SdqScale.EMOTIONAL: SdqCut(3, 4, 5),
        SdqScale.CONDUCT: SdqCut(2, 3, 4),
        SdqScale.HYPERACTIVITY: SdqCut(5, 7, 8),
        SdqScale.PEER: SdqCut(2, 4, 5),
        SdqScale.PROSOCIAL: SdqCut(6, 5, 4),
        SdqScale.IMPACT: SdqCut(0, 1, 2),
    },
    SdqInformant.SELF: {
        SdqScale.TOTAL_DIFFICULTIES: SdqCut(14, 17, 19),
        SdqScale.EMOTIONAL: SdqCut(4, 5, 6),
        SdqScale.CONDUCT: SdqCut(2, 3, 4),
        SdqScale.HYPERACTIVITY: SdqCut(5, 6, 7),
        SdqScale.PEER: SdqCut(2, 3, 4),
        SdqScale.PROSOCIAL: SdqCut(7, 6, 5),
        SdqScale.IMPACT: SdqCut(0, 1, 2),
    },
}


class SdqCategory(enum.StrEnum):
    """The original three bands of the official scoring instructions (for prosocial,
    "abnormal" is a low score)."""

    NORMAL = "normal"
    BORDERLINE = "borderline"
    ABNORMAL = "abnormal"


@dataclass(frozen=True)
class SdqThreeBandCut:
    """The last score of the normal and of the borderline band (inclusive); abnormal runs
    to the top. For prosocial the bands run downward: their lowest scores."""

    normal: int
    borderline: int


# Original three-band cut-offs of the official scoring instructions (sdqinfo, 4-17 year
# olds), kept beside the four bands because most published studies and many services
# still report "normal / borderline / abnormal".
SDQ_THREE_BAND_CUTS: Final[Mapping[SdqInformant, Mapping[SdqScale, SdqThreeBandCut]]] = {
    SdqInformant.PARENT: {
        SdqScale.TOTAL_DIFFICULTIES: SdqThreeBandCut(13, 16),
        SdqScale.EMOTIONAL: SdqThreeBandCut(3, 4),
        SdqScale.CONDUCT: SdqThreeBandCut(2, 3),
        SdqScale.HYPERACTIVITY: SdqThreeBandCut(5, 6),
        SdqScale.PEER: SdqThreeBandCut(2, 3),
        SdqScale.PROSOCIAL: SdqThreeBandCut(6, 5),
        SdqScale.IMPACT: SdqThreeBandCut(0, 1),
    },
    SdqInformant.TEACHER: {
        SdqScale.TOTAL_DIFFICULTIES: SdqThreeBandCut(11, 15),
        SdqScale.EMOTIONAL: SdqThreeBandCut(4, 5),
        SdqScale.CONDUCT: SdqThreeBandCut(2, 3),
        SdqScale.HYPERACTIVITY: SdqThreeBandCut(5, 6),
        SdqScale.PEER: SdqThreeBandCut(3, 4),
        SdqScale.PROSOCIAL: SdqThreeBandCut(6, 5),
        SdqScale.IMPACT: SdqThreeBandCut(0, 1),
    },
    SdqInformant.SELF: {
        SdqScale.TOTAL_DIFFICULTIES: SdqThreeBandCut(15, 19),
        SdqScale.EMOTIONAL: SdqThreeBandCut(5, 6),
        SdqScale.CONDUCT: SdqThreeBandCut(3, 4),
        SdqScale.HYPERACTIVITY: SdqThreeBandCut(5, 6),
        SdqScale.PEER: SdqThreeBandCut(3, 5),
        SdqScale.PROSOCIAL: SdqThreeBandCut(6, 5),
        SdqScale.IMPACT: SdqThreeBandCut(0, 1),
    },
}


def sdq_category(informant: SdqInformant, scale: SdqScale, value: int) -> SdqCategory:
    """The band of one scale's score in the original three-band scheme."""
    cut = SDQ_THREE_BAND_CUTS[informant][scale]
    if scale is SdqScale.PROSOCIAL:
        if value >= cut.normal:
            return SdqCategory.NORMAL
        return SdqCategory.BORDERLINE if value >= cut.borderline else SdqCategory.ABNORMAL
    if value <= cut.normal:
        return SdqCategory.NORMAL
    return SdqCategory.BORDERLINE if value <= cut.borderline else SdqCategory.ABNORMAL


class WrongInformantItemError(AnswerOutOfRangeError):
    """An SDQ answer names an item that is not on the informant's form."""

    code = "SDQ_ITEM_NOT_ON_FORM"


@dataclass(frozen=True)
class SdqScore:
    """A scored SDQ: each scale's score and band (None when an item of it is missing)."""

    informant: SdqInformant
    items: tuple[int | None, ...]
    impact_answers: Mapping[str, int]
    scores: Mapping[SdqScale, int | None]
    bands: Mapping[SdqScale, SdqBand | None]

    @property
    def total_difficulties(self) -> int | None:
        """Emotional + conduct + hyperactivity + peer problems (0-40)."""
        return self.scores[SdqScale.TOTAL_DIFFICULTIES]

    @property
    def categories(self) -> Mapping[SdqScale, SdqCategory | None]:
        """Each scale's band in the original three-band scheme (None when unscored)."""
        return {
            scale: None if value is None else sdq_category(self.informant, scale, value)
            for scale, value in self.scores.items()
        }


def sdq_band(informant: SdqInformant, scale: SdqScale, value: int) -> SdqBand:
    """The band of one scale's score for one informant (official four-band scheme)."""
    cut = SDQ_CUTS[informant][scale]
    if scale is SdqScale.PROSOCIAL:
        if value >= cut.first:
            return SdqBand.CLOSE_TO_AVERAGE
        if value >= cut.second:
            return SdqBand.SLIGHTLY_LOWERED
        if value >= cut.third:
            return SdqBand.LOW
        return SdqBand.VERY_LOW
    if value <= cut.first:
        return SdqBand.CLOSE_TO_AVERAGE
    if value <= cut.second:
        return SdqBand.SLIGHTLY_RAISED
    if value <= cut.third:
        return SdqBand.HIGH
    return SdqBand.VERY_HIGH


def sdq_informant(value: SdqInformant | str) -> SdqInformant:
    """The informant given as member or code; a typed error naming ``informant``."""
    try:
        return SdqInformant(value)
    except ValueError:
        raise UnknownInstrumentError("unknown SDQ informant", field="informant") from None


def score_sdq(
    informant: SdqInformant | str,
    items: Sequence[int | None],
    impact: Mapping[str, int | None] | None = None,
) -> SdqScore:
    """Score an SDQ form (pure).

    ``items``: the 25 answers 0-2 in form order (None for a missing one). ``impact``: the
    impact supplement answers 0-3 by item code (``SDQ_IMPACT_ITEMS``); a code from
    another informant's form is a typed error (``WrongInformantItemError``) naming
    ``answers.impact.<code>``.

    A scale with a missing item has no score (our choice: the official key prorates a
    subscale with three or four answers; careteam does not guess, docs/clinical-rules.md).
    Impact: "no difficulties" (overall 0) scores 0; otherwise the sum of the scored
    impact items, or None when one is missing or ``overall`` was not answered.
    """
    who = sdq_informant(informant)
    spec = InstrumentSpec(
        instrument=Instrument.PHQ9,  # unused: validate_answers reads title and maxima only
        title=f"SDQ ({who.value})",
        item_max=(2,) * SDQ_ITEM_COUNT,
        scored_items=SDQ_ITEM_COUNT,
        bands=(),
        loinc_panel=None,
        loinc_total=None,
    )
    checked = validate_answers(spec, items)
    allowed = SDQ_IMPACT_ITEMS[who]
    given: dict[str, int] = {}
    for code, answer in (impact or {}).items():
        if code not in allowed:
            raise WrongInformantItemError(
                f"SDQ impact item {code} is not on the {who.value} form",
                field=f"answers.impact.{code}",
            )
        if answer is None:
            continue
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise AnswerNotIntegerError(
                f"SDQ impact item {code} must be an integer or null",
                field=f"answers.impact.{code}",
            )
        if not 0 <= answer <= 3:
            raise AnswerOutOfRangeError(
                f"SDQ impact item {code} must be between 0 and 3",
                field=f"answers.impact.{code}",
            )
        given[code] = answer

    scores: dict[SdqScale, int | None] = {}
    for scale, numbers in SDQ_SUBSCALE_ITEMS.items():
        values = [checked[n - 1] for n in numbers]
        if any(v is None for v in values):
            scores[scale] = None
            continue
        scores[scale] = sum(
            (2 - v) if n in SDQ_REVERSED_ITEMS else v
            for n, v in zip(numbers, values, strict=True)
            if v is not None
        )
    problems = [scores[s] for s in _SDQ_PROBLEM_SCALES]
    scores[SdqScale.TOTAL_DIFFICULTIES] = (
        None if any(p is None for p in problems) else sum(p for p in problems if p is not None)
    )
    scores[SdqScale.IMPACT] = _sdq_impact(allowed, given)
    bands = {
        scale: (None if value is None else sdq_band(who, scale, value))
        for scale, value in scores.items()
    }
    return SdqScore(informant=who, items=checked, impact_answers=given, scores=scores, bands=bands)


def _sdq_impact(allowed: tuple[str, ...], given: Mapping[str, int]) -> int | None:
    overall = given.get("overall")
    if overall is None:
        return None
    if overall == 0:
        return 0
    scored = [code for code in allowed if code not in _SDQ_IMPACT_UNSCORED]
    if any(code not in given for code in scored):
        return None
    return sum(_SDQ_IMPACT_POINTS[given[code]] for code in scored)
