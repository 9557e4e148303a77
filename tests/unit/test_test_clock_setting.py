"""The test-only clock setting (CARETEAM_TEST_CLOCK_START): parsed as an aware instant,
refused without an offset and in production; the clock it makes runs on from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.bootstrap import clock_from, system_clock
from services.settings import Settings, SettingsError


def test_the_setting_is_an_aware_instant() -> None:
    settings = Settings.from_env({"CARETEAM_TEST_CLOCK_START": "2026-03-09T06:30:00+00:00"})
    assert settings.test_clock_start == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    assert Settings.from_env({}).test_clock_start is None


@pytest.mark.parametrize("raw", ["2026-03-09T06:30:00", "tomorrow"])
def test_a_naive_or_malformed_instant_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="CARETEAM_TEST_CLOCK_START"):
        Settings.from_env({"CARETEAM_TEST_CLOCK_START": raw})


def test_production_refuses_a_test_clock() -> None:
    with pytest.raises(SettingsError, match="CARETEAM_TEST_CLOCK_START"):
        Settings.from_env(
            {"CARETEAM_ENV": "production", "CARETEAM_TEST_CLOCK_START": "2026-03-09T06:30:00Z"}
        )


def test_the_clock_starts_there_and_runs_on() -> None:
    start = datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    clock = clock_from(start)
    first, second = clock(), clock()
    assert start <= first <= second
    assert (first - start).total_seconds() < 5
    assert clock_from(None) is system_clock
