"""Request ids and trace context over HTTP: a request's X-Request-Id and traceparent come
back on the response, appear in its JSON log lines and in the CloudEvent its command
caused on the real Kafka topic; malformed ones are replaced, never echoed."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ServerProcess

REGISTER = """
mutation($input: RegisterPatientInput!) {
  registerPatient(input: $input) { __typename ... on PatientPayload { patient { id } } }
}"""
MRN = "TRACE-0001"
PATIENT = {"givenName": "Tracy", "familyName": "Synthetic", "birthDate": "1980-01-01", "mrn": MRN}
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    name = f"test.tracing.{uuid4().hex}"
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
def server(
    db_dsn: str, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        data_dir=tmp_path,
        env={
            "CARETEAM_DATABASE_URL": db_dsn,
            "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CARETEAM_KAFKA_TOPIC": topic,
            "CARETEAM_LOG_FORMAT": "json",
        },
    )
    proc.start()
    proc.use(proc.token("care_manager"))
    try:
        yield proc
    finally:
        proc.stop()


def _post(server: ServerProcess, headers: dict[str, str], mrn: str = MRN) -> httpx.Response:
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": REGISTER, "variables": {"input": {**PATIENT, "mrn": mrn}}},
        headers={"Authorization": f"Bearer {server.default_token}", **headers},
        timeout=30.0,
    )


def _relay_lag(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value: float = families["careteam_relay_events_behind"].samples[0].value
    return value


async def _record_of(bootstrap: str, topic: str, request_id: str) -> Any:
    """The first record on ``topic`` whose ``ce_requestid`` is ``request_id``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for record in (r for batch in batches.values() for r in batch):
                    if dict(record.headers).get("ce_requestid") == request_id.encode():
                        return record
    finally:
        await consumer.stop()


async def test_one_request_s_id_is_in_its_response_its_json_logs_and_its_cloudevent(
    server: ServerProcess, kafka_bootstrap: str, topic: str
) -> None:
    request_id = f"client-{uuid4().hex}"
    trace_id, caller_span = uuid4().hex, uuid4().hex[:16]
    response = _post(
        server, {"X-Request-Id": request_id, "traceparent": f"00-{trace_id}-{caller_span}-01"}
    )
    assert response.json()["data"]["registerPatient"]["__typename"] == "PatientPayload"
    patient_id = response.json()["data"]["registerPatient"]["patient"]["id"]
    assert response.headers["x-request-id"] == request_id
    returned = TRACEPARENT.match(response.headers["traceparent"])
    assert returned is not None
    # The same trace and flags, careteam's own span.
    assert returned.group(1) == trace_id and returned.group(3) == "01"
    assert returned.group(2) != caller_span

    record = await _record_of(kafka_bootstrap, topic, request_id)
    headers = dict(record.headers)
    assert headers["ce_traceparent"] == response.headers["traceparent"].encode()
    assert headers["ce_subject"] == str(UUID(patient_id)).encode()
    value = json.loads(record.value)
    assert value["metadata"]["request_id"] == request_id
    assert value["metadata"]["traceparent"] == response.headers["traceparent"]

    # The relay has published it: its lag gauge comes down to nothing behind.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        if _relay_lag(server) == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, "relay lag never reached 0"
        await asyncio.sleep(0.2)

    server.stop()
    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert any(line.get("msg") == "request" and line.get("status") == 200 for line in mine)
    assert all(line["trace_id"] == trace_id for line in mine)
    assert all({"ts", "level", "logger"} <= line.keys() for line in lines)
    assert "Tracy" not in text and "Synthetic" not in text and MRN not in text


MALFORMED_REQUEST_IDS = ["has spaces in it", "short", "x" * 65, "semi;colon-id"]
MALFORMED_TRACEPARENTS = [
    "00-" + "0" * 32 + "-b7ad6b7169203331-01",  # an all-zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",  # an all-zero span id
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # a forbidden version
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 with more
    "not a traceparent",
]


def test_malformed_ids_are_replaced_not_echoed(server: ServerProcess) -> None:
    for sent in MALFORMED_REQUEST_IDS:
        returned = httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": sent})
        assert returned.headers["x-request-id"] != sent
        assert UUID(returned.headers["x-request-id"])
    for sent in MALFORMED_TRACEPARENTS:
        response = httpx.get(f"{server.url}/readyz", headers={"traceparent": sent})
        returned_tp = TRACEPARENT.match(response.headers["traceparent"])
        assert returned_tp is not None, sent
        assert returned_tp.group(1) not in sent.lower(), sent


def test_every_response_carries_a_request_id_and_a_traceparent(server: ServerProcess) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/no-such-path"):
        response = httpx.get(f"{server.url}{path}")
        assert UUID(response.headers["x-request-id"])
        assert TRACEPARENT.match(response.headers["traceparent"])
    refused = _post(server, {"Authorization": "Bearer not-a-token"}, mrn="TRACE-0002")
    assert UUID(refused.headers["x-request-id"])
