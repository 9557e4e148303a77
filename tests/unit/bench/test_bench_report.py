"""The benchmark's arithmetic and report: medians, paired ratios, targets, JSON, Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import stats
from bench.report import CHARTS_MISSING, target_lines, to_json, to_markdown, write_report
from bench.results import (
    BenchReport,
    Check,
    Comparison,
    RowResult,
    Series,
    Target,
)


def test_median_and_percentile_match_the_usual_definitions() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert math.isnan(stats.median([]))
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile([7.0], 99) == 7.0
    assert math.isnan(stats.percentile([], 99))
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_ratios_pair_runs_and_ignore_missing_baselines() -> None:
    assert stats.paired_ratios([10.0, 20.0, 30.0], [5.0, 0.0])[0] == 2.0
    ratios = stats.paired_ratios([10.0, 20.0, 30.0], [5.0, 0.0])
    assert math.isnan(ratios[1]) and math.isnan(ratios[2])
    assert math.isnan(stats.throughput(10, 0.0))
    assert stats.throughput(10, 2.0) == 5.0


def test_a_comparison_is_the_median_of_per_run_ratios_not_the_ratio_of_medians() -> None:
    ours = Series("ours", "ours", "events/s", [100.0, 300.0, 200.0])
    base = Series("base", "base", "events/s", [50.0, 100.0, 100.0], baseline=True)
    c = Comparison.of("ours / base", ours, base, Target("at least 2.5x", ">=", 2.5))
    assert c.ratios == [2.0, 3.0, 2.0]
    assert c.median == 2.0
    assert c.met is False
    assert c.target is not None and c.target.gap(c.median) == "short by 20% (2 against 2.5)"


def test_targets_say_met_missed_or_not_measured_and_by_how_much() -> None:
    at_most = Target("p99 at most 50 ms", "<=", 50.0)
    assert at_most.met(50.0) is True
    assert at_most.met(75.0) is False
    assert at_most.gap(75.0) == "over by 50% (75 against 50)"
    assert at_most.met(math.nan) is None
    assert at_most.gap(math.nan) == "not measured"
    zero = Target("zero", "<=", 0.0)
    assert zero.met(0.0) is True
    assert zero.gap(3.0) == "3.00 against 0"
    assert Check("skipped", 0.0, "events", zero).met is True
    assert Check("no target", 5.0, "events").met is None


def _report() -> BenchReport:
    measured = RowResult(number=1, slug="appends", title="Appends", method="How.\n\nMore.")
    ours = measured.add(Series("ours_w16", "careteam, 16 writers", "events/s", [300.0, math.nan]))
    base = measured.add(
        Series("lib_w16", "library, 16 writers", "events/s", [100.0, 100.0], baseline=True)
    )
    measured.add(Series("rss", "peak RSS", "bytes", [2.0 * 1024**2], kind="memory"))
    measured.add(Series("cpu", "CPU", "cores", [0.5], kind="cpu"))
    measured.add(Series("bpe", "bytes per event", "bytes/event", [512.0], kind="storage"))
    measured.comparisons.append(
        Comparison.of("16 writers: ours / library", ours, base, Target("3x", ">=", 3.0))
    )
    measured.checks.append(Check("skipped", 0.0, "events", Target("zero", "<=", 0.0), "detail"))
    measured.placement = {"bench process": "core 0"}
    skipped = RowResult(3, "caseload", "Caseload", status="skipped", reason="not built yet")
    return BenchReport(
        command="python -m bench --rows 1,3",
        started_at="2026-11-22T10:00:00+00:00",
        finished_at="2026-11-22T10:05:00+00:00",
        runs=2,
        events=100,
        writers=[16],
        machine={"cores": 2, "packages": {"asyncpg": "0.32.0"}, "postgresql": {"fsync": "on"}},
        placement={"bench process": "core 0", "PostgreSQL server": "core 1"},
        rows=[measured, skipped],
    )


def test_the_json_report_is_strict_json_with_medians_verdicts_and_nan_as_null() -> None:
    data = to_json(_report())
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    row = data["rows"][0]
    assert row["series"][0]["runs"] == [300.0, None]
    assert row["series"][0]["median"] == 300.0
    assert row["comparisons"][0]["median_ratio"] == 3.0
    assert row["comparisons"][0]["met"] is True
    assert data["rows"][1]["status"] == "skipped"
    assert data["medians_over_runs"] == 2
    assert {t["figure"] for t in data["targets"]} == {"16 writers: ours / library", "skipped"}


def test_the_markdown_report_names_the_command_runs_placement_and_every_verdict() -> None:
    text = to_markdown(_report())
    assert "`python -m bench --rows 1,3`" in text
    assert "**2 run(s)**" in text
    assert "| PostgreSQL server | core 1 |" in text
    assert "| 1 | 16 writers: ours / library | 3.00x | 3x | met |" in text
    assert "| 3 | Caseload | skipped | not built yet |" in text
    assert "2.0 MiB" in text
    assert "baseline: library, 16 writers" in text
    assert "**Method.** How.\n\nMore." in text


def test_target_lines_list_only_figures_with_a_target() -> None:
    row = _report().rows[0]
    row.comparisons.append(Comparison("no target", "a", "b", [1.0]))
    assert [line["figure"] for line in target_lines(row)] == [
        "16 writers: ours / library",
        "skipped",
    ]


def test_write_report_writes_json_markdown_and_charts_or_says_why_not(tmp_path: Path) -> None:
    report = _report()
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["command"] == report.command
    assert paths["markdown"].read_text().startswith("# python -m benchmark report")
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        assert report.charts == []
        assert report.charts_note == CHARTS_MISSING
        assert CHARTS_MISSING in paths["markdown"].read_text()
    else:
        assert report.charts == ["charts/row1-appends-events-s.png"]
        assert (tmp_path / "out" / report.charts[0]).read_bytes().startswith(b"\x89PNG")
    without = write_report(_report(), tmp_path / "plain", charts=False)
    assert "--no-charts" in without["markdown"].read_text()


def test_a_request_that_never_answered_makes_the_percentiles_above_it_unbounded() -> None:
    assert stats.percentile([1.0, 2.0, math.inf], 50) == 2.0
    assert stats.percentile([1.0, 2.0, math.inf], 99) == math.inf
    lag = Series("p99", "p99", "ms", [10.0, math.inf, 30.0], higher_is_better=False)
    assert lag.median == 30.0
    target = Target("at most 50 ms", "<=", 50.0)
    assert target.met(math.inf) is False
    assert target.gap(math.inf) == "unbounded against 50.0"
    assert json.dumps(to_json(_report()), allow_nan=False)


def test_what_limits_a_row_is_shown_only_when_one_of_its_targets_is_missed() -> None:
    report = _report()
    row = report.rows[0]
    row.limits = "The writers' own Python."
    assert not row.missed
    assert "What limits it" not in to_markdown(report)
    assert to_json(report)["rows"][0]["limits"] == ""
    row.checks.append(Check("failed", 2.0, "requests", Target("zero", "<=", 0.0)))
    assert row.missed
    assert "**What limits it.** The writers' own Python." in to_markdown(report)
    assert to_json(report)["rows"][0]["limits"] == "The writers' own Python."
