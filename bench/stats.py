"""Small, pure statistics for the benchmark report: medians, percentiles, paired ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly between ranks like numpy's
    default; NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0 and 100, not {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    if math.isinf(ordered[high]):
        return math.inf  # a value that never came (a failed request) bounds nothing
    weight = rank - low
    return ordered[low] * (1.0 - weight) + ordered[high] * weight


def paired_ratios(subject: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """``subject[i] / baseline[i]`` for each run measured together; NaN where the baseline is
    zero or missing. Pairing by run cancels drift that affects both alike."""
    out: list[float] = []
    for i, value in enumerate(subject):
        base = baseline[i] if i < len(baseline) else math.nan
        if base == 0 or math.isnan(base) or math.isnan(value):
            out.append(math.nan)
        else:
            out.append(value / base)
    return out


def measured(values: Sequence[float]) -> list[float]:
    """The values that were measured (NaN marks one that was not; infinity stays)."""
    return [v for v in values if not math.isnan(v)]


def throughput(count: int, seconds: float) -> float:
    """Items per second; NaN when no time passed."""
    return count / seconds if seconds > 0 else math.nan
