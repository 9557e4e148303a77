"""Integration fixtures: for the Kafka tests an admin client and fresh topics on the broker
of ``kafka_bootstrap`` (tests/conftest.py); for the command tests a careteam runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.bootstrap import Runtime, open_runtime
from services.settings import Secret, Settings

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


@pytest.fixture
async def runtime(db_dsn: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A careteam runtime on a fresh database with default settings (no relay); a test file
    that needs other settings defines its own."""
    settings = Settings(database_url=Secret(db_dsn), data_dir=tmp_path)
    async with open_runtime(settings, run_relay=False) as rt:
        yield rt
