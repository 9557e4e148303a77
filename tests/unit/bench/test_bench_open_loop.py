"""Row 4's open-loop load: commands go out on schedule, failures count, runs stay bounded."""

from __future__ import annotations

import asyncio
import math

import pytest

from bench import row4_lag


async def test_every_command_after_the_warmup_is_counted_with_its_outcome() -> None:
    async def call(i: int) -> str:
        await asyncio.sleep(0)
        return {0: "ok", 1: "stale"}.get(i % 5, "ok") if i % 7 else "error"

    sample = await row4_lag.open_loop(2000.0, 60, 10, call)
    assert sample.sent == 50
    assert len(sample.lags) + sample.stale + sample.errors == 50
    assert sample.errors == sum(1 for i in range(10, 60) if i % 7 == 0)
    assert all(lag >= 0 for lag in sample.lags)
    assert math.isinf(sample.ms(99))  # more than 1% never became visible
    assert sample.dropped == 0


async def test_a_server_that_never_answers_ends_the_run_and_counts_as_unbounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(row4_lag, "REQUEST_TIMEOUT", 0.05)
    monkeypatch.setattr(row4_lag, "MAX_IN_FLIGHT", 3)

    async def hangs(_i: int) -> str:
        await asyncio.sleep(3600)
        return "ok"

    sample = await asyncio.wait_for(row4_lag.open_loop(1000.0, 20, 0, hangs), 5.0)
    assert sample.errors == 20
    assert sample.dropped > 0
    assert sample.first_error.startswith("TimeoutError")
    assert math.isinf(sample.ms(50))
    assert sample.achieved_rate == 0.0
