"""Trace context and request ids: parsing traceparent, carrying it from a request's
context into event metadata, the relay's CloudEvent headers, partner CloudEvents and
JSON log lines."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx
import pytest

from services.api.web.requestlog import request_id_from
from services.eventstore import EventMetadata, RecordedEvent
from services.logs import REQUEST_ID, JsonFormatter, KeyValueFormatter
from services.partners.contract import CATALOGUE, Pseudonyms
from services.partners.messages import PartnerMessage
from services.relay.messages import to_kafka_message
from services.settings import Settings, SettingsError
from services.tracing import TRACEPARENT, continue_trace, parse
from tests.unit.partners.test_partners_rules import KEY, OWNER, PUBLISHER, _every_public_event

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_traceparent_is_continued_with_a_new_span() -> None:
    assert parse(VALID) == ("0af7651916cd43dd8448eb211c80319c", "01")
    ours = continue_trace(VALID)
    assert ours.startswith("00-0af7651916cd43dd8448eb211c80319c-") and ours.endswith("-01")
    assert ours.split("-")[2] != "b7ad6b7169203331"
    # A later version may append fields; its first four are read.
    assert parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-more") is not None


@pytest.mark.parametrize(
    "bad",
    [None, "", "garbage", VALID.upper(), VALID + "-x", "ff" + VALID[2:], "0" + VALID, VALID * 20],
)
def test_anything_else_starts_a_new_sampled_off_trace(bad: str | None) -> None:
    assert parse(bad) is None
    ours = continue_trace(bad)
    assert parse(ours) is not None and ours.endswith("-00")
    assert "0af7651916cd43dd8448eb211c80319c" not in ours


def test_event_metadata_takes_the_request_s_traceparent_and_omits_it_outside_requests() -> None:
    assert "traceparent" not in EventMetadata(actor_id="a", role="r").as_json()
    token = TRACEPARENT.set(VALID)
    try:
        metadata = EventMetadata(actor_id="a", role="r", request_id="req-12345678")
    finally:
        TRACEPARENT.reset(token)
    assert metadata.as_json()["traceparent"] == VALID


def _event(metadata: dict[str, str]) -> RecordedEvent:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return RecordedEvent(
        position=1,
        tx_id=1,
        event_id=uuid4(),
        stream_id=uuid4(),
        stream_type="patient",
        stream_version=1,
        patient_id=uuid4(),
        event_type="patient.contact_logged",
        event_version=1,
        payload={},
        metadata=metadata,
        occurred_at=at,
        recorded_at=at,
    )


def test_the_relay_s_cloudevent_carries_traceparent_and_requestid_extensions() -> None:
    headers = dict(
        to_kafka_message(_event({"traceparent": VALID, "request_id": "req-12345678"})).headers
    )
    assert headers["ce_traceparent"] == VALID.encode()
    assert headers["ce_requestid"] == b"req-12345678"
    bare = dict(to_kafka_message(_event({"actor_id": "a"})).headers)
    assert "ce_traceparent" not in bare and "ce_requestid" not in bare


def _partner_message(extra_metadata: dict[str, str]) -> PartnerMessage:
    record = next(
        r for r in _every_public_event().records if any(p.source == r.event_type for p in CATALOGUE)
    )
    public = next(p for p in CATALOGUE if p.source == record.event_type)
    traced = replace(record, metadata={**record.metadata, **extra_metadata})
    return PartnerMessage.build(
        traced,
        public,
        Pseudonyms(KEY),
        part2=False,
        consent_ids=(),
        publisher=PUBLISHER,
        organisation_id=OWNER,
    )


def test_a_partner_cloudevent_carries_the_traceparent_but_not_the_request_id() -> None:
    message = _partner_message({"traceparent": VALID, "request_id": "r"})
    assert json.loads(message.webhook_body())["traceparent"] == VALID
    headers = dict(message.kafka_record().headers)
    assert headers["ce_traceparent"] == VALID.encode()
    assert not any(name.startswith("ce_request") for name in headers)
    assert "requestid" not in message.attributes()


async def test_a_webhook_carries_the_traceparent_as_an_http_header_too() -> None:
    from services.partners.delivery import PartnerOptions, WebhookSink
    from services.partners.registry import PartnerKeys
    from services.partners.signing import new_secret
    from services.settings import Secret

    message = _partner_message({"traceparent": VALID})
    seen: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
        sink = WebhookSink(
            "https://partner.example/events",
            PartnerKeys(pseudonym_key=KEY, webhook_secret=Secret(new_secret())),
            PartnerOptions(),
            client,
            clock=lambda: datetime.now(UTC),
        )
        await sink.attempt(message, 1)
        await sink.attempt(_partner_message({}), 1)
    assert seen[0].headers["traceparent"] == VALID
    assert json.loads(seen[0].content)["traceparent"] == VALID
    assert "traceparent" not in seen[1].headers


def test_a_json_log_line_is_one_object_with_the_request_and_trace_ids() -> None:
    record = logging.LogRecord(
        "careteam.http", logging.INFO, __file__, 1, "request status=200", (), None
    )
    record.fields = {"duration_ms": 1.5}
    tokens = (REQUEST_ID.set("req-12345678"), TRACEPARENT.set(VALID))
    try:
        line = JsonFormatter().format(record)
        text = KeyValueFormatter().format(record)
    finally:
        REQUEST_ID.reset(tokens[0])
        TRACEPARENT.reset(tokens[1])
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["request_id"] == "req-12345678"
    assert parsed["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (parsed["msg"], parsed["status"], parsed["duration_ms"]) == ("request", "200", 1.5)
    assert "request_id=req-12345678 trace_id=0af7651916cd43dd8448eb211c80319c" in text


def test_the_log_format_setting_is_text_or_json() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"CARETEAM_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="CARETEAM_LOG_FORMAT"):
        Settings.from_env({"CARETEAM_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    "sent",
    ["abcdefgh\n", "abcdefgh\nforged", "short", "x" * 65, "has space1", "naïve-ident"],
)
def test_a_malformed_request_id_is_replaced_not_kept(sent: str) -> None:
    chosen = request_id_from([(b"x-request-id", sent.encode())])
    assert chosen != sent and UUID(chosen)


def test_a_well_formed_request_id_is_kept() -> None:
    assert request_id_from([(b"x-request-id", b"portal-1234.abc_DEF")]) == "portal-1234.abc_DEF"
