"""Kafka at ``careteam serve``'s start, against the real broker: the internal topic is
created with the configured partitions; a topic that differs, or a missing TLS file,
stops the start with exit code 2 naming the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.e2e.server import ServerProcess

SIZES = {
    "CARETEAM_KAFKA_TOPIC_PARTITIONS": "3",
    "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR": "1",
    "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "1",
}


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A fresh topic name; the topic is deleted afterwards if anything made it."""
    name = f"test.start.{uuid4().hex}"
    yield name
    if name in await admin.list_topics():
        await admin.delete_topics([name])


def _server(tmp_path: Path, db_dsn: str, kafka_bootstrap: str, **env: str) -> ServerProcess:
    return ServerProcess(
        data_dir=tmp_path,
        env={
            "CARETEAM_DATABASE_URL": db_dsn,
            "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            **env,
        },
    )


def _refused(server: ServerProcess) -> str:
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start()
    assert server.proc is not None and server.proc.returncode == 2
    return server.log_path.read_text()


async def test_serve_creates_the_internal_topic_as_configured(
    tmp_path: Path, db_dsn: str, kafka_bootstrap: str, admin: AIOKafkaAdminClient, topic: str
) -> None:
    server = _server(tmp_path, db_dsn, kafka_bootstrap, CARETEAM_KAFKA_TOPIC=topic, **SIZES)
    try:
        server.start()
        (described,) = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 3
        assert f'kafka topic created" topic={topic} partitions=3' in server.log_path.read_text()
    finally:
        server.stop()


async def test_a_topic_with_other_partitions_stops_the_start_naming_the_setting(
    tmp_path: Path, db_dsn: str, kafka_bootstrap: str, admin: AIOKafkaAdminClient, topic: str
) -> None:
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    server = _server(tmp_path, db_dsn, kafka_bootstrap, CARETEAM_KAFKA_TOPIC=topic, **SIZES)
    try:
        printed = _refused(server)
    finally:
        server.stop()
    assert "cannot start" in printed
    assert f"{topic} has 2 partitions, CARETEAM_KAFKA_TOPIC_PARTITIONS says 3" in printed


def test_a_missing_tls_file_stops_the_start_naming_the_setting(
    tmp_path: Path, db_dsn: str, kafka_bootstrap: str
) -> None:
    server = _server(
        tmp_path,
        db_dsn,
        kafka_bootstrap,
        CARETEAM_KAFKA_SECURITY_PROTOCOL="SSL",
        CARETEAM_KAFKA_SSL_CAFILE=str(tmp_path / "no-such-ca.pem"),
    )
    try:
        printed = _refused(server)
    finally:
        server.stop()
    assert "cannot start: CARETEAM_KAFKA_SSL_CAFILE: no such file" in printed
    assert "no-such-ca.pem" not in printed
