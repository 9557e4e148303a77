"""The care-team measures per month as CSV and as a line chart (issue #19 item 3;
docs/outcomes.md, "Care-team measures per month"). Pure text out of a
``CareTeamResult``; served by services/api/registry/outcomes_page.py.

Small cells: ``suppressBelow=k`` blanks every count from 1 to k-1 in the CSV, and every
share or median computed from a blanked count (primary suppression only: a blanked cell
can sometimes be recovered from the others of its row, e.g. ``not_met`` from
``eligible``, ``met`` and ``open``, all blanked alike when small).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from xml.sax.saxutils import escape

from projections.care_team_series import CareTeamMonth
from projections.outcomes import MeasureSummary
from services.api.registry.care_team import CareTeamResult, share

MAX_SUPPRESS_BELOW = 100

_WINDOWS = (("phq9_12_weeks", "twelve_weeks"), ("phq9_6_months", "six_months"), ("drr_e", "drr_e"))
# Added after the first columns, at the end of a row, so a reader by position keeps working.
_GAD7_WINDOWS = (("gad7_12_weeks", "gad7_twelve_weeks"), ("gad7_6_months", "gad7_six_months"))
_WINDOW_COUNTS = ("episodes", "final", "follow_up", "response", "remission")

CSV_COLUMNS = (
    "as_of",
    "by",
    "care_manager_id",
    "month",
    "caseload",
    "contacted",
    "contacted_share",
    "enrolled",
    "reviewed",
    "median_days_to_psychiatric_review",
    *(f"{prefix}_{count}" for prefix, _ in _WINDOWS for count in _WINDOW_COUNTS),
    "dms_e_eligible",
    "dms_e_met",
    "dms_e_open",
    "dsf_e_eligible",
    "dsf_e_met",
    "dsf_e_open",
    *(f"{prefix}_{count}" for prefix, _ in _GAD7_WINDOWS for count in _WINDOW_COUNTS),
)


def care_team_csv_text(result: CareTeamResult, suppress_below: int = 0) -> str:
    """One row per group and month (RFC 4180 line ends); counts 1 to ``suppress_below``-1
    blanked, with the shares and medians computed from them."""

    def small(n: int) -> bool:
        return 0 < n < suppress_below

    def cell(n: int) -> str:
        return "" if small(n) else str(n)

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for series in result.series:
        for m in series.months:
            contacted_share = share(m.contacted, m.caseload)
            windows: list[str] = []
            for _, attr in _WINDOWS:
                summary: MeasureSummary = getattr(m, attr)
                windows.extend(cell(getattr(summary, c)) for c in _WINDOW_COUNTS)
            anxiety: list[str] = []
            for _, attr in _GAD7_WINDOWS:
                summary = getattr(m, attr)
                anxiety.extend(cell(getattr(summary, c)) for c in _WINDOW_COUNTS)
            writer.writerow(
                (
                    result.as_of.isoformat(),
                    result.by.value,
                    "" if series.care_manager_id is None else str(series.care_manager_id),
                    f"{m.year:04d}-{m.month:02d}",
                    cell(m.caseload),
                    cell(m.contacted),
                    ""
                    if contacted_share is None or small(m.caseload) or small(m.contacted)
                    else f"{contacted_share:.3f}",
                    cell(m.enrolled),
                    cell(m.reviewed),
                    ""
                    if m.median_days_to_review is None or small(m.reviewed)
                    else f"{m.median_days_to_review:g}",
                    *windows,
                    cell(m.dms_e.eligible),
                    cell(m.dms_e.met),
                    cell(m.dms_e.open),
                    cell(m.dsf_e.eligible),
                    cell(m.dsf_e.met),
                    cell(m.dsf_e.open),
                    *anxiety,
                )
            )
    return out.getvalue()


Measure = Callable[[CareTeamMonth], float | None]

# measure -> (title, value of a month, whether it is a share from 0 to 1).
CHART_MEASURES: dict[str, tuple[str, Measure, bool]] = {
    "caseload": ("Caseload size", lambda m: float(m.caseload), False),
    "contacted_share": (
        "Share of the caseload contacted in the month",
        lambda m: share(m.contacted, m.caseload),
        True,
    ),
    "median_days_to_psychiatric_review": (
        "Median days from enrollment to first psychiatric review",
        lambda m: m.median_days_to_review,
        False,
    ),
    "phq9_response_12_weeks": (
        "PHQ-9 response at 12 weeks (share of closed windows)",
        lambda m: share(m.twelve_weeks.response, m.twelve_weeks.final),
        True,
    ),
    "phq9_remission_12_weeks": (
        "PHQ-9 remission at 12 weeks (share of closed windows)",
        lambda m: share(m.twelve_weeks.remission, m.twelve_weeks.final),
        True,
    ),
    "phq9_response_6_months": (
        "PHQ-9 response at 6 months (share of closed windows)",
        lambda m: share(m.six_months.response, m.six_months.final),
        True,
    ),
    "phq9_remission_6_months": (
        "PHQ-9 remission at 6 months (share of closed windows)",
        lambda m: share(m.six_months.remission, m.six_months.final),
        True,
    ),
    "gad7_response_12_weeks": (
        "GAD-7 response at 12 weeks (share of closed windows)",
        lambda m: share(m.gad7_twelve_weeks.response, m.gad7_twelve_weeks.final),
        True,
    ),
    "gad7_remission_12_weeks": (
        "GAD-7 remission at 12 weeks (share of closed windows)",
        lambda m: share(m.gad7_twelve_weeks.remission, m.gad7_twelve_weeks.final),
        True,
    ),
    "gad7_response_6_months": (
        "GAD-7 response at 6 months (share of closed windows)",
        lambda m: share(m.gad7_six_months.response, m.gad7_six_months.final),
        True,
    ),
    "gad7_remission_6_months": (
        "GAD-7 remission at 6 months (share of closed windows)",
        lambda m: share(m.gad7_six_months.remission, m.gad7_six_months.final),
        True,
    ),
    "drr_e_remission": (
        "NCQA DRR-E remission (share of closed windows)",
        lambda m: share(m.drr_e.remission, m.drr_e.final),
        True,
    ),
    "dms_e": (
        "NCQA DMS-E: PHQ-9 in the period of a contact",
        lambda m: share(m.dms_e.met, m.dms_e.eligible),
        True,
    ),
    "dsf_e": (
        "NCQA DSF-E: positive PHQ-2 followed up in 30 days",
        lambda m: share(m.dsf_e.met, m.dsf_e.eligible),
        True,
    ),
}

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#57606a")


def care_team_svg(result: CareTeamResult, measure: str) -> str:
    """A line chart of one measure: one line per group (organisation or care manager),
    one point per month with a value; a month without a value breaks the line."""
    title, value_of, is_share = CHART_MEASURES[measure]
    width, height, left, bottom, top = 720, 360, 60, 50, 50
    plot_h, plot_w = height - top - bottom, width - left - 30
    months = result.series[0].months if result.series else []
    values = [v for s in result.series for m in s.months if (v := value_of(m)) is not None]
    peak = 1.0 if is_share else (max(values, default=0.0) or 1.0)
    step = plot_w / max(len(months) - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)} (as of {result.as_of.isoformat()})</title>",
        f'<text x="{left}" y="22" font-family="sans-serif" font-size="15">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-family="sans-serif" '
        f'font-size="11">{"100%" if is_share else f"{peak:g}"}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-family="sans-serif" '
        'font-size="11">0</text>',
    ]
    if not values:
        parts.append(
            f'<text x="{left + 10}" y="{top + plot_h / 2}" font-family="sans-serif" '
            'font-size="13">No values for these months yet.</text>'
        )
    for i, m in enumerate(months):
        if len(months) <= 12 or i % 3 == 0:
            parts.append(
                f'<text x="{left + i * step:.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
                f'font-family="sans-serif" font-size="11">{m.year:04d}-{m.month:02d}</text>'
            )
    for n, series in enumerate(result.series):
        colour = PALETTE[n % len(PALETTE)]
        name = "organisation" if result.by.value == "organisation" else "unassigned"
        name = name if series.care_manager_id is None else str(series.care_manager_id)
        # The legend shows the directory name when the care manager is listed.
        shown = (
            result.names.get(series.care_manager_id) if series.care_manager_id else None
        ) or name
        parts.append(
            f'<text class="legend" x="{left + 10}" y="{top + 14 + 14 * n}" '
            f'font-family="sans-serif" font-size="11" fill="{colour}">{escape(shown)}</text>'
        )
        points: list[tuple[float, float]] = []
        for i, m in enumerate(series.months):
            value = value_of(m)
            if value is None:
                _line(parts, points, colour)
                points = []
                continue
            x, y = left + i * step, top + plot_h - plot_h * value / peak
            points.append((x, y))
            label = f"{m.year:04d}-{m.month:02d}"
            parts.append(
                f'<circle class="point" data-series="{escape(name)}" data-month="{label}" '
                f'data-value="{value:.3f}" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(shown)} {label}: {value:.3g}</title></circle>"
            )
        _line(parts, points, colour)
    parts.append("</svg>")
    return "\n".join(parts)


def _line(parts: list[str], points: list[tuple[float, float]], colour: str) -> None:
    if len(points) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
