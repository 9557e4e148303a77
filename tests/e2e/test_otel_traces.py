"""OpenTelemetry traces, as an option: a real ``careteam serve`` exports its spans over
OTLP/HTTP to a collector stand-in run by the test, decoded with OpenTelemetry's own
protobuf classes. The request span continues the caller's trace and is the span the
response's ``traceparent`` names; each command is a child span; nothing else leaves."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.server import ServerProcess

MARKER_GIVEN, MARKER_MRN = "Otelzanthe", "OTEL-MRN-5531"
REGISTER = """mutation($input: RegisterPatientInput!) { registerPatient(input: $input) {
    __typename ... on PatientPayload { patient { id } } } }"""


class Collector:
    """Receives OTLP/HTTP trace exports (protobuf) and keeps the raw bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/traces":
                    collector.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Any]:
        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found

    def service_names(self) -> set[str]:
        names = set()
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for attribute in resource.resource.attributes:
                    if attribute.key == "service.name":
                        names.add(attribute.value.string_value)
        return names

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    try:
        yield running
    finally:
        running.close()


def _attributes(span: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in span.attributes}


def _wait_for(collector: Collector, trace_id: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        spans = [s for s in collector.spans() if s.trace_id.hex() == trace_id]
        if len(spans) >= count:
            return spans
        time.sleep(0.1)
    raise AssertionError(f"{count} spans of the trace not exported in time")


def test_requests_and_commands_are_exported_as_spans_of_the_callers_trace(
    tmp_path: Path, db_dsn: str, collector: Collector
) -> None:
    env = {
        "CARETEAM_DATABASE_URL": db_dsn,
        "CARETEAM_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    server = ServerProcess(data_dir=tmp_path, env=env).start()
    try:
        trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
        response = httpx.post(
            f"{server.url}/graphql",
            json={
                "query": REGISTER,
                "variables": {
                    "input": {
                        "givenName": MARKER_GIVEN,
                        "familyName": "Tracewell",
                        "birthDate": "1979-04-04",
                        "mrn": MARKER_MRN,
                    }
                },
            },
            headers={
                "Authorization": f"Bearer {server.token('care_manager')}",
                "traceparent": f"00-{trace_id}-{parent_id}-01",
            },
            timeout=30,
        )
        assert response.json()["data"]["registerPatient"]["__typename"] == "PatientPayload"
        returned = response.headers["traceparent"].split("-")
        assert returned[1] == trace_id and returned[2] != parent_id

        spans = _wait_for(collector, trace_id, 2)
        [request] = [s for s in spans if s.name == "POST /graphql"]
        assert request.parent_span_id.hex() == parent_id, "the caller's span is the parent"
        assert request.span_id.hex() == returned[2], "the returned traceparent names it"
        assert _attributes(request)["http.response.status_code"] == "200"
        [command] = [s for s in spans if s.name == "command registerPatient"]
        assert command.parent_span_id == request.span_id
        assert _attributes(command) == {
            "careteam.command": "registerPatient",
            "careteam.outcome": "WRITTEN",
        }

        # A request without a traceparent starts a trace of its own; a path that is not
        # careteam's is named "other" (it is whatever the client typed).
        fresh = httpx.get(f"{server.url}/{MARKER_GIVEN}?mrn={MARKER_MRN}", timeout=10)
        fresh_trace = fresh.headers["traceparent"].split("-")[1]
        [stray] = _wait_for(collector, fresh_trace, 1)
        assert stray.name == "GET other" and not stray.parent_span_id
        assert _attributes(stray)["http.response.status_code"] == str(fresh.status_code)
    finally:
        server.stop()
    assert collector.service_names() == {"careteam"}
    exported = b"".join(collector.bodies)
    for needle in (MARKER_GIVEN, MARKER_MRN, "Tracewell", "1979-04-04"):
        assert needle.encode() not in exported, "no input leaves in a span"


def test_an_unknown_traces_exporter_stops_the_start_naming_the_setting(
    tmp_path: Path, db_dsn: str
) -> None:
    env = {"CARETEAM_DATABASE_URL": db_dsn, "CARETEAM_TRACES_EXPORTER": "zipkin"}
    server = ServerProcess(data_dir=tmp_path, env=env)
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start(timeout=30)
    assert "CARETEAM_TRACES_EXPORTER must be none or otlp" in server.log_path.read_text()
    assert server.proc is not None and server.proc.returncode == 2
