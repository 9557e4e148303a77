"""Integration fixtures shared by the Kafka tests: an admin client and fresh topics on the
broker of ``kafka_bootstrap`` (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PARTITIONS = 3


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client connected to the broker."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def fresh_topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A new topic with several partitions, deleted afterwards."""
    name = f"test.{uuid4().hex}"
    await admin.create_topics(
        [NewTopic(name=name, num_partitions=PARTITIONS, replication_factor=1)]
    )
    try:
        yield name
    finally:
        await admin.delete_topics([name])
