"""Integration fixtures shared by the Kafka tests: the real broker and fresh topics.

The tests talk to the broker at CARETEAM_KAFKA_BOOTSTRAP_SERVERS, or to the one that
deploy/kafka/kafka.sh starts on 127.0.0.1:9092. They never skip: a missing broker is a
broken test setup, so they fail with the command that fixes it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ENV_VAR = "CARETEAM_KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
PARTITIONS = 3


def _listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the broker under test; fails the test when there is none."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return configured
    host, port = DEFAULT_BOOTSTRAP.rsplit(":", 1)
    if not _listening(host, int(port)):
        pytest.fail(
            f"No Kafka broker: {ENV_VAR} is unset and nothing listens on {DEFAULT_BOOTSTRAP}. "
            "Start one with `bash deploy/kafka/kafka.sh start`, or set "
            f"{ENV_VAR} to an existing cluster.",
            pytrace=False,
        )
    return DEFAULT_BOOTSTRAP


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
