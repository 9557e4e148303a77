"""The row memo: a bounded, least-recently-used map of derived rows by their inputs."""

from __future__ import annotations

import pytest

from services.row_memo import RowMemo


def test_a_row_is_found_under_its_inputs_only() -> None:
    memo: RowMemo[str] = RowMemo(capacity=4)
    memo.put(("doc text", "2026-03-31", 30), "row of March")
    assert memo.get(("doc text", "2026-03-31", 30)) == "row of March"
    assert memo.get(("doc text", "2026-04-01", 30)) is None  # another day
    assert memo.get(("doc text", "2026-03-31", 45)) is None  # other minutes
    assert memo.get(("changed text", "2026-03-31", 30)) is None  # another document
    assert (memo.hits, memo.misses) == (1, 3)


def test_the_least_recently_used_row_leaves_first() -> None:
    memo: RowMemo[int] = RowMemo(capacity=2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "b" is now the least recently used
    memo.put("c", 3)
    assert len(memo) == 2
    assert memo.get("b") is None
    assert memo.get("a") == 1
    assert memo.get("c") == 3


def test_capacity_must_hold_a_row() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RowMemo(capacity=0)


def test_a_row_expires_after_its_time_to_live() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    memo: RowMemo[str] = RowMemo(capacity=8, ttl_seconds=600, clock=clock)
    memo.put("kept", "row")
    now[0] = 599.0
    assert memo.get("kept") == "row"
    now[0] = 600.0
    assert memo.get("kept") is None
    assert len(memo) == 0


def test_an_entry_holding_other_rows_expires_with_the_first_of_them() -> None:
    """A page kept with ``expires_at`` (its rows' first expiry) is not served after it, and
    is dropped from memory at the next put even when it is not the least recently used."""
    now = [0.0]
    rows: RowMemo[str] = RowMemo(capacity=8, ttl_seconds=600, clock=lambda: now[0])
    pages: RowMemo[str] = RowMemo(capacity=8, ttl_seconds=600, clock=lambda: now[0])
    first = rows.put("row", "derived")
    now[0] = 599.0
    found = rows.get_expiring("row")
    assert found == ("derived", 600.0) and first == 600.0
    assert pages.put("page", "of rows", expires_at=found[1]) == 600.0  # not 1,199
    assert pages.put("other", "page", expires_at=10_000.0) == 1_199.0  # never past its own
    assert pages.get("page") == "of rows"  # now the most recently used, "other" the least
    now[0] = 600.0
    pages.put("third", "page", expires_at=5_000.0)
    assert len(pages) == 2  # "page" dropped, not only unserved
    assert pages.get("page") is None and pages.get("other") == "page"


def test_a_new_server_start_time_empties_every_memo_and_the_same_one_does_not() -> None:
    from datetime import UTC, datetime

    from services.row_memo import note_server

    memo: RowMemo[str] = RowMemo()
    memo.put("row", "derived")
    started = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    assert note_server("unit-test-pool", started) is False  # first seen
    assert note_server("unit-test-pool", started) is False  # a new connection, same server
    assert note_server("another-pool", started.replace(hour=8)) is False  # its own first
    assert memo.get("row") == "derived"
    assert note_server("unit-test-pool", started.replace(minute=5)) is True  # restarted
    assert memo.get("row") is None and len(memo) == 0


def test_a_taken_row_is_the_takers_alone_until_it_is_put_back() -> None:
    now = [0.0]
    memo: RowMemo[str] = RowMemo(capacity=4, ttl_seconds=120, clock=lambda: now[0])
    memo.put("stream", "aggregate")
    now[0] = 100.0
    assert memo.take("stream") == ("aggregate", 120.0)
    assert memo.take("stream") is None and memo.get("stream") is None
    memo.put("stream", "aggregate, untouched", expires_at=120.0)  # its old expiry kept
    now[0] = 120.0
    assert memo.get("stream") is None
    memo.put("stream", "aggregate, one command on")
    assert memo.get("stream") == "aggregate, one command on"


def test_expired_rows_can_be_dropped_without_waiting_for_the_next_use() -> None:
    now = [0.0]
    memo: RowMemo[str] = RowMemo(capacity=4, ttl_seconds=10, clock=lambda: now[0])
    memo.put("old", "row")
    now[0] = 5.0
    memo.put("young", "row")
    now[0] = 10.0
    assert memo.drop_expired() == 1 and len(memo) == 1
    assert memo.get("young") == "row"


def test_rows_are_discarded_by_what_they_hold() -> None:
    memo: RowMemo[tuple[str, int]] = RowMemo(capacity=4)
    for key, row in {"a": ("ann", 1), "b": ("bob", 2), "c": ("ann", 3)}.items():
        memo.put(key, row)
    assert memo.discard_where(lambda row: row[0] == "ann") == 2
    assert memo.get("a") is None and memo.get("c") is None and memo.get("b") == ("bob", 2)


def test_kept_aggregates_setting_is_a_count_and_zero_turns_keeping_off() -> None:
    from services.settings import Settings, SettingsError

    assert Settings.from_env({}).kept_aggregates == 1024
    assert Settings.from_env({"CARETEAM_KEPT_AGGREGATES": "0"}).kept_aggregates == 0
    with pytest.raises(SettingsError, match="CARETEAM_KEPT_AGGREGATES"):
        Settings.from_env({"CARETEAM_KEPT_AGGREGATES": "-1"})
    with pytest.raises(SettingsError, match="CARETEAM_KEPT_AGGREGATES"):
        Settings.from_env({"CARETEAM_KEPT_AGGREGATES": "many"})
