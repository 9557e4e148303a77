"""The internal topic created or checked at start, against the real broker: created with
the configured partitions, replication factor and min.insync.replicas; an existing topic
that differs is refused naming the setting."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.kafka import (
    KafkaTopicError,
    TopicSpec,
    client_options,
    ensure_topic,
    partner_topic_maker,
)
from services.partners.delivery import KafkaSink, PartnerOptions
from services.settings import Settings
from tests.unit.test_request_tracing import _partner_message


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def name(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A topic name no one used; the topic is deleted afterwards if it was made."""
    topic = f"test.topics.{uuid4().hex}"
    yield topic
    if topic in await admin.list_topics():
        await admin.delete_topics([topic])


async def test_a_missing_topic_is_created_as_configured_then_only_checked(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, name: str
) -> None:
    options = {"bootstrap_servers": kafka_bootstrap}
    spec = TopicSpec(name, partitions=3, replication_factor=1, min_insync_replicas=1)
    assert await ensure_topic(options, spec) is True
    (topic,) = await admin.describe_topics([name])
    assert len(topic["partitions"]) == 3
    assert {len(p["replicas"]) for p in topic["partitions"]} == {1}
    (configs,) = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None})]
    )
    entries = configs.to_object()["resources"][0]["config_entries"]
    assert [e["config_value"] for e in entries] == ["1"]
    # A second process starting finds it as configured.
    assert await ensure_topic(options, spec) is False


@pytest.mark.parametrize(
    ("spec_of", "setting"),
    [
        (lambda n: TopicSpec(n, 2, 1, 1), "CARETEAM_KAFKA_TOPIC_PARTITIONS says 2"),
        (lambda n: TopicSpec(n, 3, 2, 1), "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR says 2"),
        (lambda n: TopicSpec(n, 3, 1, 2), "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS says 2"),
    ],
)
async def test_an_existing_topic_that_differs_is_refused_naming_the_setting(
    kafka_bootstrap: str, name: str, spec_of: object, setting: str
) -> None:
    options = {"bootstrap_servers": kafka_bootstrap}
    await ensure_topic(options, TopicSpec(name, 3, 1, 1))
    with pytest.raises(KafkaTopicError, match=setting) as refused:
        await ensure_topic(options, spec_of(name))  # type: ignore[operator]
    assert name in str(refused.value)


async def test_unset_sizes_accept_an_existing_topic_as_it_is(
    kafka_bootstrap: str, name: str
) -> None:
    options = {"bootstrap_servers": kafka_bootstrap}
    await ensure_topic(options, TopicSpec(name, 3, 1, 1))
    assert await ensure_topic(options, TopicSpec(name, None, None, None)) is False


async def test_a_replication_factor_the_cluster_cannot_give_is_a_named_error(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, name: str
) -> None:
    brokers = len((await admin.describe_cluster())["brokers"])
    spec = TopicSpec(name, 1, brokers + 1, 1)
    with pytest.raises(KafkaTopicError, match=r"could not be created.*REPLICATION_FACTOR"):
        await ensure_topic({"bootstrap_servers": kafka_bootstrap}, spec)


async def test_a_partner_topic_is_made_before_the_first_record_and_never_resized(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, name: str
) -> None:
    """A partner feed's sink creates its missing topic with the configured sizes, then
    publishes; an existing partner topic is the partner's and is left as it is."""
    env = {
        "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CARETEAM_KAFKA_TOPIC_PARTITIONS": "2",
        "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR": "1",
        "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "1",
    }
    settings = Settings.from_env(env)
    options = client_options(settings)
    sink = KafkaSink(
        kafka_bootstrap,
        name,
        PartnerOptions(),
        client_id="careteam-test",
        client_options=options,
        make_topic=partner_topic_maker(settings, options),
    )
    try:
        assert await sink.publish([_partner_message({})], asyncio.Event()) is True
    finally:
        await sink.close()
    (topic,) = await admin.describe_topics([name])
    assert len(topic["partitions"]) == 2
    resized = Settings.from_env({**env, "CARETEAM_KAFKA_TOPIC_PARTITIONS": "4"})
    assert await partner_topic_maker(resized, options)(name) is False
    (topic,) = await admin.describe_topics([name])
    assert len(topic["partitions"]) == 2


async def test_a_broker_that_does_not_answer_at_start_is_not_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The relay retries on its own; the start goes on and says the topic was not checked."""
    from services.kafka import prepare_kafka

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    settings = Settings.from_env(
        {
            "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "CARETEAM_KAFKA_TOPIC_PARTITIONS": "3",
        }
    )
    options = await prepare_kafka(settings, relay=True)
    assert options is not None and options["bootstrap_servers"] == f"127.0.0.1:{port}"
    assert "kafka unreachable at start; topic not checked" in caplog.text
