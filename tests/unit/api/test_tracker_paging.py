"""Tracker pages (issue 13): page-size bounds and cursors, refused as typed errors naming
the argument at fault."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from graphql import GraphQLError

from projections.keyset import InvalidCursorError, encode_cursor
from projections.trackers import (
    TRACKER_MAX_PAGE,
    TrackerPageSizeError,
    check_tracker_page,
    tracker_cursor,
)
from services.api.errors import ValidationError
from services.api.patient.emergency import _grant_after, _grant_cursor
from services.api.registry.queries import _page_error, _page_refused

REQUESTED = "2026-03-01T09:30:00+00:00"


@pytest.mark.parametrize("first", [0, -1, TRACKER_MAX_PAGE + 1])
def test_a_page_size_out_of_range_is_refused_naming_first(first: int) -> None:
    with pytest.raises(TrackerPageSizeError) as refused:
        check_tracker_page(first, None)
    answer = _page_refused(refused.value)
    assert isinstance(answer, ValidationError)
    assert (answer.code, answer.field) == ("PAGE_SIZE", "first")
    assert [(p.code, p.field) for p in answer.problems()] == [("PAGE_SIZE", "first")]
    # The panel's lists answer in `errors`, as the panel's patientPage does.
    error = _page_error(refused.value)
    assert isinstance(error, GraphQLError)
    assert error.extensions == {"code": "PAGE_SIZE", "field": "first"}


@pytest.mark.parametrize("first", [1, TRACKER_MAX_PAGE])
def test_the_page_size_bounds_are_accepted(first: int) -> None:
    assert check_tracker_page(first, None) is None


def test_a_cursor_resumes_after_its_loop() -> None:
    key = uuid4()
    cursor = tracker_cursor({"requested_at": REQUESTED, "id": str(key)})
    assert check_tracker_page(10, cursor) == (REQUESTED, key)


@pytest.mark.parametrize(
    "after",
    [
        "",
        "not base64!",
        encode_cursor("caseload", [REQUESTED, str(uuid4())]),
        encode_cursor("tracker:requested_at,key", [REQUESTED]),
        encode_cursor("tracker:requested_at,key", [REQUESTED, "not-a-uuid"]),
        encode_cursor("tracker:requested_at,key", [None, str(UUID(int=1))]),
    ],
)
def test_a_forged_cursor_or_one_of_another_list_is_refused_naming_after(after: str) -> None:
    with pytest.raises(InvalidCursorError) as refused:
        check_tracker_page(10, after)
    answer = _page_refused(refused.value)
    assert (answer.code, answer.field) == ("INVALID_CURSOR", "after")


def test_an_emergency_grant_cursor_resumes_after_its_grant_and_refuses_a_forged_one() -> None:
    grant = uuid4()
    cursor = _grant_cursor({"granted_at": REQUESTED, "grant_id": grant})
    assert _grant_after(cursor) == (REQUESTED, grant)
    assert _grant_after(None) is None
    for forged in ("", "eA", tracker_cursor({"requested_at": REQUESTED, "id": str(grant)})):
        with pytest.raises(InvalidCursorError):
            _grant_after(forged)
    with pytest.raises(InvalidCursorError):
        _grant_after(encode_cursor("emergency:granted_at,grant_id", ["yesterday", str(grant)]))
