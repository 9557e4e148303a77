"""Row 3's verdicts: the caseload's throughput against the raw endpoint's, and its p99
against the raw endpoint's (the issue's two halves), each judged on the median of the
per-run ratios. Synthetic samples: nothing is timed."""

from __future__ import annotations

from bench.results import RowResult
from bench.row3_caseload import P99_TARGET, TARGET, ReadSample, _summarise


def _sample(latencies_ms: list[float], seconds: float) -> ReadSample:
    return ReadSample(latencies=[ms / 1000.0 for ms in latencies_ms], seconds=seconds)


def _result(careteam_p99_ms: float) -> RowResult:
    result = RowResult(number=3, slug="caseload", title="caseload")
    # 100 requests each: the p99 is the largest but one; throughput 100 and 160 per second.
    careteam = _sample([10.0] * 98 + [careteam_p99_ms] * 2, 1.0)
    raw = _sample([10.0] * 98 + [50.0] * 2, 0.625)
    _summarise(result, {"careteam": [careteam], "raw": [raw]}, [True])
    return result


def test_row_3_judges_its_p99_against_the_raw_endpoints_as_well_as_its_throughput() -> None:
    within = _result(careteam_p99_ms=99.0)
    throughput, p99 = within.comparisons
    assert throughput.target is TARGET and throughput.met is True
    assert p99.target is P99_TARGET and round(p99.median, 2) == 1.98 and p99.met is True
    over = _result(careteam_p99_ms=101.0)
    assert over.comparisons[1].met is False
