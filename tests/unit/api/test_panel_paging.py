"""The panel's page cursor: a position in the panel's order, refused when forged."""

from __future__ import annotations

import base64

import pytest
from graphql import GraphQLError

from services.api.registry.queries import PANEL_MAX_PAGE, _panel_cursor, _panel_start


def test_a_cursor_resumes_after_its_row() -> None:
    assert _panel_start(10, None) == 0
    assert _panel_start(10, _panel_cursor(0)) == 1
    assert _panel_start(10, _panel_cursor(41)) == 42


@pytest.mark.parametrize("first", [0, -1, PANEL_MAX_PAGE + 1])
def test_a_page_size_out_of_range_names_first(first: int) -> None:
    with pytest.raises(GraphQLError) as refused:
        _panel_start(first, None)
    assert refused.value.extensions == {"code": "PAGE_SIZE", "field": "first"}


@pytest.mark.parametrize("first", [1, PANEL_MAX_PAGE])
def test_the_page_size_bounds_are_accepted(first: int) -> None:
    assert _panel_start(first, None) == 0


@pytest.mark.parametrize(
    "after",
    [
        "",
        "not base64!",
        base64.urlsafe_b64encode(b"caseload:3").decode(),
        base64.urlsafe_b64encode(b"panel:-2").decode(),
        base64.urlsafe_b64encode(b"panel:x").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_of_another_list_or_forged_is_refused(after: str) -> None:
    with pytest.raises(GraphQLError) as refused:
        _panel_start(10, after)
    assert refused.value.extensions == {"code": "INVALID_CURSOR", "field": "after"}
