"""Unexpected errors are masked with an id their log line carries; every way a database
request fails under a restart (asyncpg's client-side state error on a connection
killed while idle, too many connections, a read audit that could not commit) is the
typed retryable SERVICE_UNAVAILABLE instead."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from graphql import GraphQLError

from services.api.schema import MaskUnexpectedErrors, build_schema
from services.audit.reads import AuditUnavailableError


def test_a_masked_error_carries_the_id_of_its_log_line(caplog: pytest.LogCaptureFixture) -> None:
    error = GraphQLError("boom", original_error=RuntimeError("a detail not for clients"))
    with caplog.at_level(logging.ERROR, logger="careteam.api"):
        build_schema().process_errors([error])
    masked = MaskUnexpectedErrors().anonymise_error(error)
    assert masked.message == "Unexpected error."
    assert "detail" not in str(masked.formatted)
    (line,) = [r for r in caplog.records if r.getMessage() == "graphql unexpected error"]
    error_id = masked.extensions["errorId"]  # type: ignore[index]
    assert len(error_id) == 16 and line.fields["error_id"] == error_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "original",
    [
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        AuditUnavailableError("ConnectionDoesNotExistError"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lost_database_is_the_typed_retryable_error(original: Exception) -> None:
    masked = MaskUnexpectedErrors().anonymise_error(GraphQLError("x", original_error=original))
    assert masked.extensions == {
        "code": "SERVICE_UNAVAILABLE",
        "retryable": True,
        "retryAfterSeconds": masked.extensions["retryAfterSeconds"],  # type: ignore[index]
    }
    assert "errorId" not in masked.extensions  # type: ignore[operator]
