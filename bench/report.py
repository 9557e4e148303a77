"""Writes the benchmark report: ``report.json``, ``report.md`` and PNG charts.

Charts need matplotlib; without it the report says that charts were skipped and
everything else is written as usual.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.results import (
    BenchReport,
    Check,
    Comparison,
    Profile,
    RowResult,
    Series,
    Target,
    fmt,
)

CHARTS_MISSING = (
    "Charts skipped: matplotlib is not installed (add it to the bench dependency group to "
    "get PNG charts)."
)


# --- JSON ----------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null; tuples and sets become lists."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


def _target(t: Target | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"text": t.text, "op": t.op, "threshold": t.threshold}


def _series(s: Series) -> dict[str, Any]:
    return {
        "key": s.key,
        "label": s.label,
        "unit": s.unit,
        "kind": s.kind,
        "baseline": s.baseline,
        "higher_is_better": s.higher_is_better,
        "median": s.median,
        "runs": s.runs,
    }


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "label": c.label,
        "subject": c.subject,
        "baseline": c.baseline,
        "median_ratio": c.median,
        "ratios_per_run": c.ratios,
        "target": _target(c.target),
        "met": c.met,
        "gap": c.target.gap(c.median) if c.target else "",
    }


def _check(c: Check) -> dict[str, Any]:
    return {
        "label": c.label,
        "value": c.value,
        "unit": c.unit,
        "target": _target(c.target),
        "met": c.met,
        "gap": c.target.gap(c.value) if c.target else "",
        "detail": c.detail,
    }


def _row(r: RowResult) -> dict[str, Any]:
    return {
        "number": r.number,
        "slug": r.slug,
        "title": r.title,
        "status": r.status,
        "reason": r.reason,
        "seconds": r.seconds,
        "method": r.method.strip(),
        "placement": r.placement,
        "series": [_series(s) for s in r.series],
        "comparisons": [_comparison(c) for c in r.comparisons],
        "checks": [_check(c) for c in r.checks],
        "notes": r.notes,
        "limits": r.limits if r.missed else "",
        "profiles": [
            {
                "label": p.label,
                "samples": p.samples,
                "own": [[name, share] for name, share in p.own],
                "inclusive": [[name, share] for name, share in p.inclusive],
                "packages": [[name, share] for name, share in p.packages],
                "raw": p.raw_path,
                "error": p.error,
            }
            for p in r.profiles
        ],
    }


def to_json(report: BenchReport) -> dict[str, Any]:
    data = {
        "suite": "python -m bench",
        "format": 1,
        "command": report.command,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "runs": report.runs,
        "medians_over_runs": report.runs,
        "events": report.events,
        "writers": report.writers,
        "machine": report.machine,
        "placement": report.placement,
        "rows": [_row(r) for r in report.rows],
        "targets": [_target_line(r, t) for r in report.rows for t in _targets(r)],
        "charts": report.charts,
        "charts_note": report.charts_note,
    }
    cleaned: dict[str, Any] = _clean(data)
    return cleaned


# --- Markdown ------------------------------------------------------------------------


def _targets(row: RowResult) -> list[Comparison | Check]:
    out: list[Comparison | Check] = []
    out.extend(c for c in row.comparisons if c.target is not None)
    out.extend(c for c in row.checks if c.target is not None)
    return out


def _target_value(item: Comparison | Check) -> float:
    return item.median if isinstance(item, Comparison) else item.value


def _target_line(row: RowResult, item: Comparison | Check) -> dict[str, Any]:
    value = _target_value(item)
    assert item.target is not None
    return {
        "row": row.number,
        "figure": item.label,
        "value": value,
        "unit": "x" if isinstance(item, Comparison) else item.unit,
        "target": item.target.text,
        "met": item.met,
        "gap": item.target.gap(value),
    }


def target_lines(row: RowResult) -> list[dict[str, Any]]:
    """Every figure of a row that has a target: value, target, verdict and gap."""
    return [_target_line(row, t) for t in _targets(row)]


def verdict(met: bool | None) -> str:
    return _verdict(met)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[met]


def _ratio(value: float) -> str:
    """A ratio with its x, unless it is unbounded or was not measured."""
    return f"{fmt(value)}x" if math.isfinite(value) else fmt(value)


def _verdict_text(target: Target | None, value: float) -> str:
    if target is None:
        return ""
    met = target.met(value)
    gap = target.gap(value)
    return _verdict(met) + (f": {gap}" if met is False else "")


def _table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
    return [*lines, ""]


def _value(value: float, unit: str) -> str:
    if unit == "bytes":
        return _bytes(value)
    if unit == "cores":
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return fmt(value)


def _bytes(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _runs(values: list[float], unit: str) -> str:
    return ", ".join(_value(v, unit) for v in values)


def _series_table(series: list[Series]) -> list[str]:
    return _table(
        ["system", "median", "unit", "runs"],
        (
            [
                ("baseline: " if s.baseline else "") + s.label,
                _value(s.median, s.unit),
                s.unit,
                _runs(s.runs, s.unit),
            ]
            for s in series
        ),
    )


def _row_markdown(row: RowResult, charts: list[str]) -> list[str]:
    lines = [f"## Row {row.number}: {row.title}", ""]
    if row.status != "measured":
        lines += [f"**{row.status}**: {row.reason}", ""]
        return lines
    if not math.isnan(row.seconds):
        lines += [f"Took {row.seconds:.0f} s.", ""]
    method = " ".join(row.method.split())
    if method:
        lines += ["**Method.** " + _unwrap(row.method), ""]
    if row.placement:
        lines += ["**Placement.**", ""]
        lines += _table(["process", "cores"], ([k, v] for k, v in row.placement.items()))
    perf = [s for s in row.series if s.kind == "performance"]
    if perf:
        lines += ["**Performance** (median over runs; each run listed)", ""]
        lines += _series_table(perf)
    if row.comparisons:
        lines += ["**Ratios** (median of the per-run ratios)", ""]
        lines += _table(
            ["figure", "ratio", "per run", "target", "verdict"],
            (
                [
                    c.label,
                    _ratio(c.median),
                    ", ".join(_ratio(r) for r in c.ratios),
                    c.target.text if c.target else "none (reported only)",
                    _verdict_text(c.target, c.median),
                ]
                for c in row.comparisons
            ),
        )
    if row.checks:
        lines += ["**Checks**", ""]
        lines += _table(
            ["figure", "value", "target", "verdict", "detail"],
            (
                [
                    c.label,
                    f"{fmt(c.value)} {c.unit}",
                    c.target.text if c.target else "",
                    _verdict_text(c.target, c.value),
                    c.detail,
                ]
                for c in row.checks
            ),
        )
    for kind, title in (
        ("memory", "Memory"),
        ("cpu", "CPU during the measurement (1.00 = one core busy)"),
        ("storage", "Storage"),
    ):
        chosen = [s for s in row.series if s.kind == kind]
        if chosen:
            lines += [f"**{title}**", ""]
            lines += _series_table(chosen)
    for chart in charts:
        lines += [f"![row {row.number} chart]({chart})", ""]
    if row.notes:
        lines += ["**Notes.**", ""] + [f"- {n}" for n in row.notes] + [""]
    if row.limits and row.missed:
        lines += ["**What limits it.** " + _unwrap(row.limits), ""]
    for profile in row.profiles:
        lines += _profile_markdown(profile)
    return lines


def _profile_markdown(profile: Profile) -> list[str]:
    lines = [f"**Profile: {profile.label}**", ""]
    if profile.error:
        return [*lines, f"Not profiled: {profile.error}", ""]
    lines += [
        f"py-spy, {profile.samples:,} samples of Python on the CPU; collapsed stacks in "
        f"`{profile.raw_path}` (any flame-graph tool reads them).",
        "",
    ]
    if profile.packages:
        lines += [
            "Own time by package: "
            + ", ".join(f"{name} {share:.0f}%" for name, share in profile.packages[:10])
            + ".",
            "",
        ]
    width = max(len(profile.own), len(profile.inclusive))
    rows = []
    for i in range(width):
        own = profile.own[i] if i < len(profile.own) else ("", math.nan)
        inc = profile.inclusive[i] if i < len(profile.inclusive) else ("", math.nan)
        rows.append(
            [
                f"`{own[0]}`" if own[0] else "",
                f"{own[1]:.1f}%" if own[0] else "",
                f"`{inc[0]}`" if inc[0] else "",
                f"{inc[1]:.1f}%" if inc[0] else "",
            ]
        )
    return lines + _table(
        ["own time: function", "share", "inclusive (careteam code): function", "share"], rows
    )


def _unwrap(text: str) -> str:
    """A docstring's paragraphs as Markdown paragraphs (its line breaks removed)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    out: list[str] = []
    for p in paragraphs:
        out.append(re.sub(r" - \*\*", "\n- **", p))
    return "\n\n".join(out)


def to_markdown(report: BenchReport) -> str:
    lines = [
        "# python -m benchmark report",
        "",
        f"Command: `{report.command}`",
        "",
        f"Started {report.started_at}, finished {report.finished_at}. Medians over "
        f"**{report.runs} run(s)**; every figure is also given as a ratio to a baseline "
        "measured in the same run on the same server (ratios are medians of the per-run "
        "ratios). Benchmarks are not tests: nothing here fails on a duration.",
        "",
        "## Machine",
        "",
    ]
    machine = dict(report.machine)
    packages = machine.pop("packages", {})
    postgres = machine.pop("postgresql", {})
    lines += _table(["what", "value"], ([k, _text(v)] for k, v in machine.items()))
    if postgres:
        lines += ["PostgreSQL:", ""]
        lines += _table(["setting", "value"], ([k, str(v)] for k, v in postgres.items()))
    if packages:
        lines += ["Packages:", ""]
        lines += _table(["package", "version"], ([k, str(v)] for k, v in packages.items()))
    lines += ["## Process placement", ""]
    lines += _table(["process", "cores"], ([k, v] for k, v in report.placement.items()))
    lines += ["## Targets", ""]
    target_rows = [_target_line(r, t) for r in report.rows for t in _targets(r)]
    if target_rows:
        lines += _table(
            ["row", "figure", "value", "target", "verdict"],
            (
                [
                    str(t["row"]),
                    t["figure"],
                    _ratio(t["value"]) if t["unit"] == "x" else f"{fmt(t['value'])} {t['unit']}",
                    t["target"],
                    _verdict(t["met"]) + (f": {t['gap']}" if t["gap"] else ""),
                ]
                for t in target_rows
            ),
        )
    else:
        lines += ["No row with a target was measured.", ""]
    skipped = [r for r in report.rows if r.status != "measured"]
    if skipped:
        lines += _table(
            ["row", "title", "status", "why"],
            ([str(r.number), r.title, r.status, r.reason] for r in skipped),
        )
    if report.charts_note:
        lines += [report.charts_note, ""]
    for row in report.rows:
        charts = [c for c in report.charts if Path(c).name.startswith(f"row{row.number}-")]
        lines += _row_markdown(row, charts)
    return "\n".join(lines).rstrip() + "\n"


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- charts --------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_charts(report: BenchReport, out: Path) -> tuple[list[str], str]:
    """One PNG per row and unit of its performance figures; (relative paths, note)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return [], CHARTS_MISSING
    folder = out / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for row in report.rows:
        perf = [s for s in row.series if s.kind == "performance"]
        units = list(dict.fromkeys(s.unit for s in perf))
        for unit in units:
            chosen = [s for s in perf if s.unit == unit]
            height = 1.2 + 0.45 * len(chosen)
            fig, ax = plt.subplots(figsize=(9, height))
            labels = [s.label for s in chosen]
            # An unmeasured or unbounded figure gets no bar; its label says why.
            medians = [s.median if math.isfinite(s.median) else 0.0 for s in chosen]
            labels = [
                label if math.isfinite(s.median) else f"{label} ({fmt(s.median)})"
                for label, s in zip(labels, chosen, strict=True)
            ]
            colors = ["#9aa5b1" if s.baseline else "#2b6cb0" for s in chosen]
            ypos = list(range(len(chosen)))
            ax.barh(ypos, medians, color=colors)
            for y, s in zip(ypos, chosen, strict=True):
                runs = [v for v in s.runs if math.isfinite(v)]
                ax.plot(runs, [y] * len(runs), "k.", markersize=4)
            ax.set_yticks(ypos)
            ax.set_yticklabels([_shorten(label, 80) for label in labels], fontsize=8)
            ax.invert_yaxis()
            better = "higher is better" if chosen[0].higher_is_better else "lower is better"
            ax.set_xlabel(f"{unit} (median bar, dots are runs; {better})")
            ax.set_title(f"Row {row.number}: {row.title}", fontsize=10)
            fig.tight_layout()
            name = f"row{row.number}-{row.slug}-{_slug(unit)}.png"
            fig.savefig(folder / name, dpi=110)
            plt.close(fig)
            written.append(f"charts/{name}")
    return written, ""


def _shorten(label: str, width: int = 70) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def write_report(report: BenchReport, out: Path, *, charts: bool = True) -> dict[str, Path]:
    """Writes report.json, report.md and charts/ under ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    if charts:
        report.charts, report.charts_note = write_charts(report, out)
    else:
        report.charts, report.charts_note = [], "Charts not requested (--no-charts)."
    json_path = out / "report.json"
    md_path = out / "report.md"
    json_path.write_text(json.dumps(to_json(report), indent=2, allow_nan=False) + "\n")
    md_path.write_text(to_markdown(report))
    return {"json": json_path, "markdown": md_path}
