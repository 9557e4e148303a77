"""W3C Trace Context (``traceparent``) for requests and the events they cause.

A request that sends a valid ``traceparent`` continues that trace: careteam keeps its
trace id and flags and names a new span of its own (a fresh parent id), which it returns
in the response's ``traceparent`` header and stores in the metadata of every event the
request writes, so the relay's CloudEvents carry it (the CloudEvents distributed-tracing
extension). A request without one, or with a malformed one, starts a new trace (as the
W3C recommendation says for a header that does not parse). Only hex digits: no patient
data can travel in it.

**OpenTelemetry, as an option.** With ``CARETEAM_TRACES_EXPORTER=otlp`` (``configure``,
called when the API starts) each request is an OpenTelemetry server span and each
command a child span, exported over OTLP/HTTP to the collector the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) names, with the standard
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER`` and batch settings. The span ids are the
ones careteam returns and stores: the response's ``traceparent`` names the request's
span. Spans carry names and codes only (method, careteam's own path or ``other``,
status, the command's operation name and its outcome code), never ids, query strings
or input.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

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


# The tracer when spans are exported (set by ``configure`` at start, never at import).
_tracer: Any = None


def configure(exporter: str) -> Callable[[], None] | None:
    """Starts exporting spans when ``exporter`` is ``otlp``; returns the function that
    flushes and stops the exporter (None when nothing is exported)."""
    global _tracer
    if exporter != "otlp":
        _tracer = None
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "careteam"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("careteam")

    def shutdown() -> None:
        global _tracer
        _tracer = None
        provider.shutdown()

    return shutdown


@contextmanager
def request_span(name: str, incoming: str | None) -> Iterator[tuple[str, Any]]:
    """This server's ``traceparent`` for a request and, when spans are exported, the
    request's server span (current while the request is served), continuing the
    caller's trace when ``incoming`` is a valid ``traceparent``."""
    if _tracer is None:
        yield continue_trace(incoming), None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {TRACEPARENT_HEADER: incoming} if incoming and parse(incoming) else {}
    parent = TraceContextTextMapPropagator().extract(carrier)
    # Exceptions are not recorded: their messages may hold data (the status says error).
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        ids = span.get_span_context()
        with _error_status(span):
            yield f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}", span


@contextmanager
def span(name: str, **attributes: str) -> Iterator[Callable[[str, str], None]]:
    """A child span of the current one when spans are exported (else nothing); yields a
    function that sets one more attribute."""
    if _tracer is None:
        yield lambda _key, _value: None
        return
    with _tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        with _error_status(current):
            yield current.set_attribute


@contextmanager
def _error_status(span: Any) -> Iterator[None]:
    """An exception marks the span as an error with no description: the SDK's own
    handling would export the exception's message, which may hold data."""
    try:
        yield
    except BaseException:
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR)
        raise
