"""W3C Trace Context (``traceparent``) for requests and the events they cause.

A request that sends a valid ``traceparent`` continues that trace: careteam keeps its
trace id and flags and names a new span of its own (a fresh parent id), which it returns
in the response's ``traceparent`` header and stores in the metadata of every event the
request writes, so the relay's CloudEvents carry it (the CloudEvents distributed-tracing
extension). A request without one, or with a malformed one, starts a new trace (as the
W3C recommendation says for a header that does not parse). Only hex digits: no patient
data can travel in it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

TRACEPARENT_HEADER = "traceparent"
TRACEPARENT: ContextVar[str | None] = ContextVar("careteam_traceparent", default=None)

# version-traceid-parentid-flags; a version other than 00 may append fields after a dash.
_PARSE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_HEADER_LENGTH = 512


def parse(value: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid ``traceparent``, else None."""
    if value is None or len(value) > MAX_HEADER_LENGTH:
        return None
    found = _PARSE.match(value.strip())
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, flags


def continue_trace(incoming: str | None) -> str:
    """This server's ``traceparent`` for a request: the caller's trace (or a new one),
    a new span id."""
    parsed = parse(incoming)
    trace_id, flags = parsed if parsed else (secrets.token_hex(16), "00")
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-", 2)[1]


def current_traceparent() -> str | None:
    """The ``traceparent`` of the request being served, if any (events' metadata)."""
    return TRACEPARENT.get()
