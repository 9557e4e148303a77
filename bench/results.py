"""What a benchmark row produces: measured series, ratios to baselines, targets, checks.

Pure data with no I/O, so the report code and its tests need no database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from bench import stats

Kind = Literal["performance", "memory", "cpu", "storage"]
Status = Literal["measured", "skipped", "failed"]


@dataclass(frozen=True)
class Target:
    """A goal for one figure: ``value op threshold`` (e.g. ratio >= 3.0, p99 <= 50 ms)."""

    text: str
    op: Literal[">=", "<="]
    threshold: float

    def met(self, value: float) -> bool | None:
        """True or False; None when the value could not be measured."""
        if math.isnan(value):
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def gap(self, value: float) -> str:
        """How far the value is from the target, in words (empty when met)."""
        met = self.met(value)
        if met is None:
            return "not measured"
        if met:
            return ""
        if self.threshold == 0 or math.isinf(value):
            return f"{_fmt(value)} against {_fmt(self.threshold)}"
        against = f"({value:.3g} against {self.threshold:.3g})"
        if self.op == ">=":
            short = (1.0 - value / self.threshold) * 100.0
            return f"short by {_percent(short)} {against}"
        over = (value / self.threshold - 1.0) * 100.0
        return f"over by {_percent(over)} {against}"


@dataclass
class Series:
    """One system measured once per run (e.g. careteam appends with 16 writers, events/s)."""

    key: str
    label: str
    unit: str
    runs: list[float]
    kind: Kind = "performance"
    higher_is_better: bool = True
    baseline: bool = False

    @property
    def median(self) -> float:
        return stats.median(stats.measured(self.runs))


@dataclass
class Comparison:
    """A subject series as a ratio to a baseline series, paired run by run."""

    label: str
    subject: str
    baseline: str
    ratios: list[float]
    target: Target | None = None

    @property
    def median(self) -> float:
        return stats.median(stats.measured(self.ratios))

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.median)

    @classmethod
    def of(
        cls, label: str, subject: Series, baseline: Series, target: Target | None = None
    ) -> Comparison:
        return cls(
            label=label,
            subject=subject.key,
            baseline=baseline.key,
            ratios=stats.paired_ratios(subject.runs, baseline.runs),
            target=target,
        )


@dataclass
class Check:
    """A figure with an absolute target (e.g. events skipped by the tailing reader: 0)."""

    label: str
    value: float
    unit: str
    target: Target | None = None
    detail: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)


@dataclass
class Profile:
    """Where one process spent its sampled CPU time during a measurement (py-spy):
    frames with their share of the samples, in percent."""

    label: str
    samples: int = 0
    own: list[tuple[str, float]] = field(default_factory=list)
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    packages: list[tuple[str, float]] = field(default_factory=list)
    raw_path: str = ""
    error: str = ""


@dataclass
class RowResult:
    """Everything one row measured, or why it did not run."""

    number: int
    slug: str
    title: str
    status: Status = "measured"
    reason: str = ""
    method: str = ""
    series: list[Series] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    placement: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # What limits the row when a target is missed: the row's own analysis, shown with
    # its profile in the report (only when a target is missed).
    limits: str = ""
    profiles: list[Profile] = field(default_factory=list)
    seconds: float = math.nan

    @property
    def missed(self) -> bool:
        """Whether any figure with a target missed it."""
        verdicts = [c.met for c in self.comparisons] + [c.met for c in self.checks]
        return any(v is False for v in verdicts)

    def series_by_key(self, key: str) -> Series:
        for s in self.series:
            if s.key == key:
                return s
        raise KeyError(key)

    def add(self, series: Series) -> Series:
        self.series.append(series)
        return series


@dataclass
class BenchReport:
    """The whole run: its command, machine, placement and every row."""

    command: str
    started_at: str
    finished_at: str
    runs: int
    events: int
    writers: list[int]
    machine: dict[str, Any]
    placement: dict[str, str]
    rows: list[RowResult]
    charts: list[str] = field(default_factory=list)
    charts_note: str = ""


def _percent(value: float) -> str:
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "unbounded" if value > 0 else "-unbounded"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt(value: float) -> str:
    """A number as the report shows it (thousands separators, 2-3 significant digits)."""
    return _fmt(value)
