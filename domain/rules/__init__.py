"""Clinical and billing rules of collaborative care, versioned by effective date.

Source: docs/clinical-rules.md (the rules the system enforces). Each rule module
keeps its thresholds as data in a frozen dataclass, one instance per rule version,
and picks the version in force on a date with ``rules_for(on)``. A past result is
re-derived exactly by asking for the version in force then; a rule change is a new
version appended with its effective date, never an edit of an old one.

Modules:
    billing    -- CoCM / BHI codes for one patient-month (99492, 99493, 99494, G2214, 99484)
    care_team_months -- per month: care manager of a patient, caseload, contact, review
    flags      -- registry flags (safety risk, not improving, overdue contact, ...)
    outcomes   -- baseline, response, remission, NCQA DRR-E / DMS-E / DSF-E, CMS159
    treatment  -- the GermanIMPACT treatment decision at a case review

This package holds what the modules share: the rule book (version lookup by date), the
calendar-day normalisation of inputs, a dated PHQ-9 total and the improvement ratio.
Everything here is pure: no I/O and no clock; "now" is always a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from itertools import pairwise
from typing import Generic, Protocol, TypeVar

__all__ = [
    "PHQ9_MAX",
    "DatedScore",
    "NaiveDatetimeError",
    "NoRuleInForceError",
    "RuleBook",
    "RuleBookError",
    "ScoreOutOfRangeError",
    "Versioned",
    "calendar_day",
    "improvement",
]

PHQ9_MAX = 27


class NoRuleInForceError(LookupError):
    """No version of a rule was in force on the date asked for."""

    def __init__(self, rule_id: str, earliest: date) -> None:
        # The earliest effective date is rule data, not patient data: safe in the text.
        super().__init__(f"no version of rule {rule_id!r} is in force before {earliest}")
        self.rule_id = rule_id
        self.earliest = earliest


class RuleBookError(ValueError):
    """A rule book's versions are empty, out of date order or share a version name."""

    def __init__(self, rule_id: str) -> None:
        super().__init__(
            f"rule book {rule_id!r} needs at least one version, unique version names "
            "and strictly increasing effective dates"
        )
        self.rule_id = rule_id


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone was given where a calendar day is derived."""

    def __init__(self) -> None:
        super().__init__("datetimes given to the rules must be timezone-aware")


class ScoreOutOfRangeError(ValueError):
    """A PHQ-9 total or item answer lies outside its scale."""

    def __init__(self, what: str, low: int, high: int) -> None:
        # The offending value is patient data: only the scale goes into the text.
        super().__init__(f"{what} must lie between {low} and {high}")
        self.what = what


class Versioned(Protocol):
    """A rule set with a version name and the first day it is in force."""

    @property
    def version(self) -> str: ...

    @property
    def effective_from(self) -> date: ...


V = TypeVar("V", bound=Versioned)


@dataclass(frozen=True)
class RuleBook(Generic[V]):
    """All versions of one rule, oldest first; ``in_force`` picks the one valid on a day."""

    rule_id: str
    versions: tuple[V, ...]

    def __post_init__(self) -> None:
        dates = [v.effective_from for v in self.versions]
        names = [v.version for v in self.versions]
        ordered = all(a < b for a, b in pairwise(dates))
        if not self.versions or not ordered or len(set(names)) != len(names):
            raise RuleBookError(self.rule_id)

    def in_force(self, on: date) -> V:
        """Return the latest version whose effective date is on or before ``on``."""
        day = calendar_day(on)
        chosen: V | None = None
        for version in self.versions:
            if version.effective_from <= day:
                chosen = version
        if chosen is None:
            raise NoRuleInForceError(self.rule_id, self.versions[0].effective_from)
        return chosen


def calendar_day(value: date) -> date:
    """Return the calendar day of a date or of a timezone-aware datetime.

    A datetime is read in its own time zone: the caller passes times in the clinic's
    zone, because "days since contact" and "this month" are clinic calendar days.
    A naive datetime is refused rather than guessed.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError()
        return value.date()
    return value


@dataclass(frozen=True)
class DatedScore:
    """A complete PHQ-9 total with its effective time (when it was taken).

    An incomplete questionnaire has no total, so it cannot be a ``DatedScore``: the
    caller leaves it out, and no response or remission rule ever sees it
    (docs/clinical-rules.md, partial answers).
    """

    effective: date
    total: int

    def __post_init__(self) -> None:
        calendar_day(self.effective)  # refuses naive datetimes at construction
        if not 0 <= self.total <= PHQ9_MAX:
            raise ScoreOutOfRangeError("PHQ-9 total", 0, PHQ9_MAX)

    @property
    def day(self) -> date:
        """The calendar day on which the score was taken."""
        return calendar_day(self.effective)

    def order_key(self) -> tuple[date, int]:
        """Sort key by effective time: the day, then the time of day when there is one.

        A bare date sorts before any timed score of the same day; equal keys keep the
        caller's order (the recorded order), since Python's sort is stable.
        """
        if isinstance(self.effective, datetime):
            t = self.effective
            micros = ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
            return self.day, micros
        return self.day, -1


def improvement(baseline: int, latest: int) -> Fraction | None:
    """Return the improvement from baseline, ``(baseline - latest) / baseline``, exactly.

    Positive is better: 1/2 means the score halved. A baseline of 0 gives ``None``:
    there were no symptoms to improve, so a ratio means nothing and every rule that
    needs one treats it as undefined (documented where each rule uses it). A Fraction,
    not a float, so that exactly 50% is exactly 1/2 at the boundary.
    """
    if baseline == 0:
        return None
    return Fraction(baseline - latest, baseline)
