"""The real Kafka broker does what the relay relies on.

These tests talk to the broker at CARETEAM_KAFKA_BOOTSTRAP_SERVERS, or to the one that
deploy/kafka/kafka.sh starts on 127.0.0.1:9092. They never skip: a missing broker is a
broken test setup, so it fails with the command that fixes it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

pytestmark = pytest.mark.kafka

PARTITIONS = 3
TIMEOUT_S = 30.0


@pytest.fixture
async def idempotent_producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer that waits for all in-sync replicas, as the relay uses."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `expected` records from the start of `topic` as a new consumer group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test.kafka-broker.{uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(records) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


async def test_the_broker_answers_a_metadata_request_with_one_live_node(
    admin: AIOKafkaAdminClient,
) -> None:
    """The cluster description lists exactly one broker, which is also the controller."""
    cluster = await admin.describe_cluster()

    assert len(cluster["brokers"]) == 1
    assert cluster["controller_id"] == cluster["brokers"][0]["node_id"]


async def test_an_idempotent_producer_delivers_keyed_messages_with_headers_in_order_per_key(
    kafka_bootstrap: str,
    fresh_topic: str,
    idempotent_producer: AIOKafkaProducer,
) -> None:
    """Messages under one key come back in send order, with their headers, from one partition."""
    keys = [f"patient-{i}".encode() for i in range(6)]
    per_key = 20
    sent: list[tuple[bytes, int]] = []
    futures = []
    for seq in range(per_key):
        for key in keys:
            headers = [
                ("ce_id", f"{key.decode()}-{seq}".encode()),
                ("ce_type", b"careteam.test.v1"),
                ("content-type", b"application/json"),
            ]
            value = f'{{"seq": {seq}}}'.encode()
            futures.append(
                await idempotent_producer.send(fresh_topic, value=value, key=key, headers=headers)
            )
            sent.append((key, seq))
    metadata = await asyncio.gather(*futures)

    records = await _consume(kafka_bootstrap, fresh_topic, expected=len(sent))

    assert len(records) == len(sent)
    by_key: dict[bytes, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
    for record in records:
        assert record.key is not None
        by_key[record.key].append(record)
    assert set(by_key) == set(keys)
    for key, key_records in by_key.items():
        assert [r.value for r in key_records] == [
            f'{{"seq": {seq}}}'.encode() for seq in range(per_key)
        ]
        assert len({r.partition for r in key_records}) == 1
        for seq, record in enumerate(key_records):
            assert dict(record.headers) == {
                "ce_id": f"{key.decode()}-{seq}".encode(),
                "ce_type": b"careteam.test.v1",
                "content-type": b"application/json",
            }
    # Several keys over several partitions: ordering was checked on more than one.
    assert len({m.partition for m in metadata}) > 1


async def test_publishing_to_a_topic_that_does_not_exist_creates_it(
    kafka_bootstrap: str,
    admin: AIOKafkaAdminClient,
    idempotent_producer: AIOKafkaProducer,
) -> None:
    """The broker creates an unknown topic on first publish, as the relay expects."""
    topic = f"test.kafka-broker.auto.{uuid4().hex}"
    try:
        await idempotent_producer.send_and_wait(topic, value=b"hello", key=b"patient-1")

        records = await _consume(kafka_bootstrap, topic, expected=1)

        assert [(r.key, r.value) for r in records] == [(b"patient-1", b"hello")]
        assert topic in await admin.list_topics()
    finally:
        await admin.delete_topics([topic])
