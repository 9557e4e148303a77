"""CloudEvents conformance, read the way a consumer would: the internal topic and a partner
topic through the ``cloudevents`` SDK's Kafka binding (binary mode), and a webhook body
through its JSON format (structured mode), each payload checked against its published
JSON Schema. Real PostgreSQL, the real Kafka broker and a real local HTTP receiver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft202012Validator, FormatChecker

from services.database import create_pool
from services.eventstore import EventStore
from services.partners.contract import Publisher, public_type
from services.partners.registry import DeliveryKind, PartnerSpec, register
from services.relay import Relay, RelayOptions
from services.settings import Settings
from tests.integration.test_partners_feeds import (
    ADMIN,
    ORG,
    PARTNER_ORG,
    Clinic,
    Receiver,
    caught_up,
    consume,
    eventually,
    running_feeds,
    webhook_partner,
)

PUBLISHER = Publisher("https://care.example.org")
INTERNAL_SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "services"
        / "partners"
        / "schemas"
        / "internal"
        / "event.v1.json"
    ).read_text()
)


def schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [e.message for e in validator.iter_errors(data)]


def as_cloudevent(record: Any) -> BaseCloudEvent:
    """A consumed record through the SDK's Kafka binding (binary content mode)."""
    headers = {name: value for name, value in record.headers}
    return from_binary_event(KafkaMessage(headers=headers, key=record.key, value=record.value))


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[EventStore]:
    """An event store on a fresh test database."""
    pool = await create_pool(db_dsn, Settings(db_pool_min=1, db_pool_max=8))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    """A fresh internal topic and a fresh partner topic, deleted afterwards."""
    names = (f"test.internal.{uuid4().hex}", f"test.partner.{uuid4().hex}")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=n, num_partitions=3, replication_factor=1) for n in names]
        )
        yield names
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


@pytest.mark.kafka
async def test_internal_and_partner_records_and_webhook_bodies_are_conformant_cloudevents(
    store: EventStore, db_dsn: str, kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    """Required attributes, subject, time and dataschema as the SDK reads them; every
    payload valid against the schema the contract publishes for it."""
    internal_topic, partner_topic = topics
    async with store.pool.acquire() as conn:
        kafka_partner = await register(
            conn,
            PartnerSpec(
                organisation_id=PARTNER_ORG,
                name="Health plan",
                purpose="care coordination",
                allowed_event_types=("patient.screening_recorded.v1", "referral.requested.v1"),
                delivery=DeliveryKind.KAFKA,
                kafka_topic=partner_topic,
            ),
            owner=ORG,
            actor=ADMIN,
            now=datetime.now(UTC),
        )
    receiver = Receiver()
    await receiver.start()
    try:
        hook_id = await webhook_partner(store, receiver)
        clinic = Clinic(store)
        patient = await clinic.patient()
        await clinic.grant(patient)
        await clinic.screening(patient, 6)
        await clinic.referral(patient, "psychotherapy")
        relay = Relay(
            store,
            bootstrap_servers=kafka_bootstrap,
            topic=internal_topic,
            options=RelayOptions(poll_seconds=0.05),
        )
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run(stop))
        try:
            async with running_feeds(store, db_dsn, kafka=kafka_bootstrap, publisher=PUBLISHER):
                partner_records = await consume(kafka_bootstrap, partner_topic, 2)
                await eventually(lambda: len(receiver.accepted) == 1)
                await eventually(lambda: caught_up(store, kafka_partner.partner.partner_id))
                await eventually(lambda: caught_up(store, hook_id))
            internal_records = await consume(kafka_bootstrap, internal_topic, 5)
        finally:
            stop.set()
            await asyncio.wait_for(relay_task, 30)
    finally:
        await receiver.stop()

    log = await store.read_log(limit=100)
    assert len(internal_records) == len(log)
    for record in internal_records:
        event = as_cloudevent(record)
        assert event.get_specversion() == "1.0"
        assert event.get_subject() == str(patient) == record.key.decode()
        assert event.get_source().startswith("/careteam/")
        assert event.get_type().startswith("org.careteam.")
        assert event.get_time() is not None and event.get_time().tzinfo is not None
        assert event.get_datacontenttype() == "application/json"
        data = event.get_data()
        assert isinstance(data, dict)
        assert schema_errors(INTERNAL_SCHEMA, data) == []
        assert event.get_id() == data["event_id"]

    assert len(partner_records) == 2
    source = f"https://care.example.org/organisations/{ORG}/partner-feed"
    for record in partner_records:
        event = as_cloudevent(record)
        key = event.get_type().removeprefix("org.careteam.partner.")
        assert event.get_specversion() == "1.0"
        assert event.get_source() == source
        assert event.get_dataschema() == PUBLISHER.schema_url(key)
        assert event.get_subject() == record.key.decode()
        assert event.get_time() is not None
        data = event.get_data()
        assert isinstance(data, dict)
        assert data["patient"] == event.get_subject()
        assert schema_errors(PUBLISHER.published_schema(key), data) == []
        assert str(patient) not in json.dumps(data)

    [(_headers, body)] = [r for r in receiver.requests if r[1]]
    event = JSONFormat().read(None, body)
    key = event.get_type().removeprefix("org.careteam.partner.")
    assert event.get_source() == source
    assert event.get_dataschema() == PUBLISHER.schema_url(key)
    assert event.get_subject() is not None and len(event.get_subject() or "") == 32
    assert schema_errors(public_type(key).schema(), event.get_data()) == []


def test_the_internal_schema_is_a_valid_json_schema() -> None:
    """The schema of internal records is itself valid JSON Schema 2020-12."""
    Draft202012Validator.check_schema(INTERNAL_SCHEMA)
