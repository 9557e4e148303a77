"""How careteam reaches Kafka: the client options every producer, consumer and admin
client gets (TLS and SASL from settings), and the topics careteam creates or checks at
start (partitions, replication factor, ``min.insync.replicas``).

A misconfiguration is a ``StartupError`` naming the setting, never its value: a TLS file
that is missing or does not load, a topic whose partition count, replication factor or
``min.insync.replicas`` differs from configuration.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.settings import Settings, StartupError

log = logging.getLogger("careteam.kafka")

# Kafka protocol error codes create_topics answers with.
_TOPIC_ALREADY_EXISTS = 36


class KafkaTopicError(StartupError):
    """A topic differs from configuration, or could not be created."""


def _load_ssl(settings: Settings) -> ssl.SSLContext:
    from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]

    for name, path in (
        ("CARETEAM_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
        ("CARETEAM_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
        ("CARETEAM_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
    ):
        if path is not None and not Path(path).is_file():
            raise StartupError(f"{name}: no such file")
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=str(settings.kafka_ssl_cafile))
    except (ssl.SSLError, OSError):
        raise StartupError("CARETEAM_KAFKA_SSL_CAFILE: not a PEM certificate file") from None
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_key_password
        try:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password.reveal() if password else None,
            )
        except (ssl.SSLError, OSError):
            raise StartupError(
                "CARETEAM_KAFKA_SSL_CERTFILE / CARETEAM_KAFKA_SSL_KEYFILE: the client "
                "certificate and key do not load (or CARETEAM_KAFKA_SSL_KEY_PASSWORD is wrong)"
            ) from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client: the
    bootstrap servers and the security settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _load_ssl(settings)
    if settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.reveal() if password else None
    return options


@dataclass(frozen=True)
class TopicSpec:
    """What a topic careteam writes must look like; a None is not checked (and a new
    topic gets 1 partition, 1 replica and the broker's ``min.insync.replicas``)."""

    name: str
    partitions: int | None
    replication_factor: int | None
    min_insync_replicas: int | None


def internal_topic(settings: Settings) -> TopicSpec:
    return TopicSpec(
        settings.kafka_topic,
        settings.kafka_topic_partitions,
        settings.kafka_topic_replication_factor,
        settings.kafka_topic_min_insync_replicas,
    )


async def ensure_topic(
    options: dict[str, Any],
    spec: TopicSpec,
    *,
    timeout_seconds: float = 30.0,
    check_existing: bool = True,
) -> bool:
    """Creates the topic as ``spec`` says, or checks the one there (unless
    ``check_existing`` is False: a partner's own topic is the partner's to size); True
    when created.

    Creates first, then describes: asking a broker that auto-creates topics about a
    missing one would create it with the broker's defaults."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
    from aiokafka.admin.config_resource import (  # type: ignore[import-untyped]
        ConfigResource,
        ConfigResourceType,
    )

    admin = AIOKafkaAdminClient(client_id="careteam-admin", **options)
    async with asyncio.timeout(timeout_seconds):
        await admin.start()
        try:
            answer = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions or 1,
                        spec.replication_factor or 1,
                        topic_configs=(
                            {"min.insync.replicas": str(spec.min_insync_replicas)}
                            if spec.min_insync_replicas is not None
                            else {}
                        ),
                    )
                ]
            )
            (error,) = answer.to_object()["topic_errors"]
            created = bool(error["error_code"] == 0)
            if not created and error["error_code"] != _TOPIC_ALREADY_EXISTS:
                raise KafkaTopicError(
                    f"Kafka topic {spec.name} could not be created (Kafka error code "
                    f"{error['error_code']}); check CARETEAM_KAFKA_TOPIC_PARTITIONS, "
                    "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR and "
                    "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS against the cluster"
                )
            if not check_existing and not created:
                return False
            # A topic just made may not be in every broker's metadata yet.
            while True:
                (topic,) = await admin.describe_topics([spec.name])
                if topic["error_code"] == 0 and topic["partitions"]:
                    break
                await asyncio.sleep(0.1)
            # Nor its configuration: on a cluster, the broker asked may answer without
            # the entry for a moment after another process created the topic.
            while True:
                configs = await admin.describe_configs(
                    [
                        ConfigResource(
                            ConfigResourceType.TOPIC, spec.name, {"min.insync.replicas": None}
                        )
                    ]
                )
                entries = [
                    e
                    for r in configs
                    for res in r.to_object()["resources"]
                    for e in res["config_entries"]
                ]
                if entries:
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
    partitions = topic["partitions"]
    _compare(
        spec, "CARETEAM_KAFKA_TOPIC_PARTITIONS", "partitions", len(partitions), spec.partitions
    )
    replicas = min((len(p["replicas"]) for p in partitions), default=0)
    _compare(
        spec,
        "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR",
        "replicas per partition",
        replicas,
        spec.replication_factor,
    )
    found = next((e["config_value"] for e in entries), None)
    _compare(
        spec,
        "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
        "min.insync.replicas",
        int(found) if found is not None else None,
        spec.min_insync_replicas,
    )
    log.info(
        "kafka topic %s topic=%s partitions=%s replicas=%s",
        "created" if created else "checked",
        spec.name,
        len(partitions),
        replicas,
    )
    return created


def _compare(
    spec: TopicSpec, setting: str, what: str, found: int | None, wanted: int | None
) -> None:
    if wanted is not None and found != wanted:
        raise KafkaTopicError(
            f"Kafka topic {spec.name} has {found} {what}, {setting} says {wanted}: change the "
            "topic (kafka-topics.sh --alter / kafka-configs.sh) or the setting"
        )


async def prepare_kafka(settings: Settings, *, relay: bool) -> dict[str, Any] | None:
    """At a process's start: the client options (a TLS file that is missing or does not
    load stops the start), and, in a process running the relay, the internal topic
    created or checked. A broker that does not answer within ``START_CHECK_SECONDS`` is
    not waited for (the relay retries on its own): the topic is then checked at the next
    start. None without Kafka."""
    if not settings.kafka_bootstrap_servers:
        return None
    options = client_options(settings)
    if relay:
        from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

        try:
            await ensure_topic(
                options, internal_topic(settings), timeout_seconds=START_CHECK_SECONDS
            )
        except KafkaTopicError:
            raise
        except (KafkaError, OSError) as exc:  # TimeoutError is an OSError
            log.warning(
                "kafka unreachable at start; topic not checked topic=%s error_type=%s",
                settings.kafka_topic,
                type(exc).__name__,
            )
    return options


START_CHECK_SECONDS = 15.0


TopicMaker = Callable[[str], Awaitable[bool]]


def partner_topic_maker(settings: Settings, options: dict[str, Any]) -> TopicMaker:
    """What a partner feed calls before its first record: creates the partner's topic
    with the internal topic's sizes when it is missing; an existing one is left as it is."""

    async def make(topic: str) -> bool:
        spec = TopicSpec(
            topic,
            settings.kafka_topic_partitions,
            settings.kafka_topic_replication_factor,
            settings.kafka_topic_min_insync_replicas,
        )
        return await ensure_topic(options, spec, check_existing=False)

    return make
