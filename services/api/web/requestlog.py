"""Request ids, trace context and the access line: one log line per HTTP request or
WebSocket, no data.

A client may send ``X-Request-Id`` (8 to 64 letters, digits, ``.``, ``_`` or ``-``; it
is logged and stored in the audit trail, so it must be opaque); otherwise, or when it is
malformed, the server makes one (a UUID). Either way it is returned in the
``X-Request-Id`` response header, set for every line logged while the request is served,
and recorded with every event and audit row the request writes.

A W3C ``traceparent`` is continued (services/tracing.py): the response carries this
server's ``traceparent`` (same trace id, its own span id), log lines carry the trace id,
and the events the request writes carry the ``traceparent`` into the relay's CloudEvents.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from uuid import uuid4

from services.logs import REQUEST_ID, log_fields
from services.tracing import TRACEPARENT, TRACEPARENT_HEADER, request_span

log = logging.getLogger("careteam.http")

REQUEST_ID_HEADER = "x-request-id"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Paths are logged only when they are ours: any other path is whatever a client typed.
KNOWN_PATHS = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})


def _header(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.encode()
    for key, value in headers:
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-Id when well-formed, else a new UUID."""
    text = _header(headers, REQUEST_ID_HEADER)
    if text is not None and _WELL_FORMED.fullmatch(text):
        return text
    return str(uuid4())


class RequestIds:
    """Gives each HTTP request and WebSocket a request id (``scope["state"]["request_id"]``
    and the logging context), returns it in ``X-Request-Id`` and logs one line when done:
    method, known path or ``other``, status, purpose of use and duration; never a query
    string or body."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        request_id = request_id_from(headers)
        method = scope.get("method", "WS")
        path = scope.get("path", "")
        label = path if path in KNOWN_PATHS else "other"
        with request_span(f"{method} {label}", _header(headers, TRACEPARENT_HEADER)) as (
            traceparent,
            server_span,
        ):
            status = await self._serve(scope, receive, send, request_id, traceparent)
            if server_span is not None:
                server_span.set_attribute("http.request.method", method)
                server_span.set_attribute("url.path", label)
                server_span.set_attribute("http.response.status_code", str(status))
                if isinstance(status, int) and status >= 500:
                    from opentelemetry.trace import StatusCode

                    server_span.set_status(StatusCode.ERROR)

    async def _serve(
        self, scope: Any, receive: Any, send: Any, request_id: str, traceparent: str
    ) -> int | str:
        scope.setdefault("state", {})["request_id"] = request_id
        added = [
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            (TRACEPARENT_HEADER.encode(), traceparent.encode()),
        ]
        status: int | str = "none"

        async def send_with_id(message: Any) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                if kind == "http.response.start":
                    status = message["status"]
                else:
                    status = "accepted"
                message = {**message, "headers": [*message.get("headers", []), *added]}
            elif kind == "websocket.close":
                status = f"closed_{message.get('code', 1000)}"
            await send(message)

        token = REQUEST_ID.set(request_id)
        trace_token = TRACEPARENT.set(traceparent)
        started = time.perf_counter()
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            log.info(
                "request" if scope["type"] == "http" else "websocket",
                extra=log_fields(
                    method=scope.get("method", "WS"),
                    path=path if path in KNOWN_PATHS else "other",
                    status=status,
                    purpose=scope.get("state", {}).get("purpose_of_use") or "none",
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                ),
            )
            REQUEST_ID.reset(token)
            TRACEPARENT.reset(trace_token)
        return status
