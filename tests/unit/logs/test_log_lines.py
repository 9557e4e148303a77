"""Log lines: one key=value line, no exception message, no library arguments, own frames."""

from __future__ import annotations

import logging
import sys

from services.eventstore import LogPosition
from services.logs import REQUEST_ID, KeyValueFormatter

SECRET = "ZqSecretGivenName4711"


def _record(name: str, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        name, logging.ERROR, __file__, 1, msg, args, sys.exc_info() if exc else None
    )


def test_an_exception_is_logged_by_type_and_own_frames_never_by_its_message() -> None:
    """An exception whose message and locals hold patient data logs only type and frames."""
    try:
        try:
            LogPosition.decode(SECRET)  # int() quotes its input in its message
        except ValueError as inner:
            raise RuntimeError(str(inner)) from inner
    except RuntimeError:
        line = KeyValueFormatter().format(_record("careteam.api", "failed", exc=True))
    assert SECRET not in line
    assert "\n" not in line
    assert "error_type=RuntimeError caused_by=ValueError" in line
    assert "services/eventstore.py:" in line
    assert "in decode" in line
    assert "_pytest" not in line


def test_a_library_message_keeps_its_template_and_drops_its_arguments() -> None:
    """A third-party logger's arguments and anything after a quote or bracket are dropped."""
    line = KeyValueFormatter().format(_record("strawberry.execution", "Error %s", SECRET))
    assert SECRET not in line
    assert 'msg="Error %s"' in line
    repr_line = KeyValueFormatter().format(
        _record("asyncio", f"Exception in callback <Handle f('{SECRET}')>")
    )
    assert SECRET not in repr_line
    assert 'msg="Exception in callback"' in repr_line


def test_a_careteam_message_becomes_fields_with_the_request_id() -> None:
    """careteam's trailing key=value words become fields; the request id is added."""
    token = REQUEST_ID.set("req-12345678")
    try:
        line = KeyValueFormatter().format(
            _record("careteam.relay", "relay lease taken name=%s topic=%s", "main", "t.v1")
        )
    finally:
        REQUEST_ID.reset(token)
    assert line.split(" ", 1)[1] == (
        "level=ERROR logger=careteam.relay request_id=req-12345678 "
        'msg="relay lease taken" name=main topic=t.v1'
    )
