"""Keyset cursors: opaque, bound to their ordering, refused when tampered with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from projections import caseload
from projections.keyset import (
    InvalidCursorError,
    SortKey,
    after_clause,
    decode_cursor,
    encode_cursor,
    order_by,
)

KEYS = [
    SortKey("flagged", True, "boolean", "false"),
    SortKey("enrolled_at", False, "timestamptz", "'infinity'"),
    SortKey("key", False, "uuid", "'00000000-0000-0000-0000-000000000000'"),
]


def test_a_cursor_round_trips_its_values_as_text_for_sql_casts() -> None:
    """Booleans, instants, UUIDs and NULLs survive the trip."""
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    key = UUID("00000000-0000-4000-8000-000000000001")
    cursor = encode_cursor("caseload", [True, at, key])
    assert decode_cursor("caseload", cursor, 3) == ["true", at.isoformat(), str(key)]
    assert decode_cursor("caseload", encode_cursor("caseload", [None, None, key]), 3)[0] is None


def test_a_cursor_of_another_ordering_or_garbage_is_refused() -> None:
    """A cursor is only valid for the ordering that made it."""
    cursor = encode_cursor("caseload:plain", [1])
    with pytest.raises(InvalidCursorError):
        decode_cursor("caseload:flagged", cursor, 1)
    with pytest.raises(InvalidCursorError):
        decode_cursor("caseload:plain", "not-a-cursor!!", 1)
    with pytest.raises(InvalidCursorError):
        decode_cursor("caseload:plain", cursor, 2)


def test_the_after_clause_compares_each_key_in_its_own_direction() -> None:
    """Descending keys continue with "<", ascending ones with ">", NULLs via their fill."""
    clause = after_clause(KEYS, 4)
    assert "COALESCE(flagged, false::boolean) < COALESCE($4::text::boolean" in clause
    assert "COALESCE(enrolled_at, 'infinity'::timestamptz) > COALESCE($5::text" in clause
    assert clause.count(" OR ") == 2
    assert order_by(KEYS).startswith("COALESCE(flagged, false::boolean) DESC")


@pytest.mark.parametrize("first", [1, 150, 200])
def test_a_page_of_one_to_two_hundred_rows_is_accepted(first: int) -> None:
    """A whole caseload of 150 fits in one page; 200 is the largest page."""
    assert caseload.check_page_size(first) == first


@pytest.mark.parametrize("first", [0, -1, 201])
def test_a_page_outside_one_to_two_hundred_rows_is_refused(first: int) -> None:
    with pytest.raises(caseload.PageSizeError, match="between 1 and 200"):
        caseload.check_page_size(first)


def test_a_remembered_cursor_is_never_one_made_for_an_equal_value_of_another_text() -> None:
    """True == 1 and one instant in two zones compare equal; their cursors still differ,
    each the same text whether it was made afresh or remembered."""
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    elsewhere = at.astimezone(timezone(timedelta(hours=-5)))
    assert at == elsewhere
    for _ in range(2):  # the second round answers from what the first remembered
        assert decode_cursor("o", encode_cursor("o", [True, at]), 2) == ["true", at.isoformat()]
        assert decode_cursor("o", encode_cursor("o", [1, at]), 2) == ["1", at.isoformat()]
        assert decode_cursor("o", encode_cursor("o", [1, elsewhere]), 2) == [
            "1",
            "2026-03-02T07:00:00-05:00",
        ]


def test_the_two_instants_of_a_daylight_saving_fold_keep_their_own_cursors() -> None:
    """01:30 on 1 November 2026 happens twice in New York (fold 0 is EDT, fold 1 EST);
    the two datetimes compare and hash alike, but are an hour apart."""
    from zoneinfo import ZoneInfo

    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first.utcoffset() != second.utcoffset()
    for _ in range(2):
        assert decode_cursor("o", encode_cursor("o", [first]), 1) == ["2026-11-01T01:30:00-04:00"]
        assert decode_cursor("o", encode_cursor("o", [second]), 1) == ["2026-11-01T01:30:00-05:00"]


def test_a_cursor_holding_text_is_never_remembered() -> None:
    """A sort by family name puts the name in the cursor: such cursors are made afresh,
    so no name stays in the process's memory after its patient is forgotten."""
    from projections import keyset

    name = "Synthetic-Familyname-Memo"
    encode_cursor("by-name", [name, UUID(int=7)])
    assert not any(name in map(str, key) for key in keyset._MADE), "a name was kept"
    assert not any(name in str(part) for key in keyset._MADE for part in key)
