"""Events leave PostgreSQL for Kafka here: the internal topic, as CloudEvents."""

from services.relay.messages import KafkaMessage, to_kafka_message
from services.relay.relay import (
    DEFAULT_NAME,
    Relay,
    RelayLag,
    RelayOptions,
    RelayStatus,
    relay_lag,
    run_relay,
)

__all__ = [
    "DEFAULT_NAME",
    "KafkaMessage",
    "Relay",
    "RelayLag",
    "RelayOptions",
    "RelayStatus",
    "relay_lag",
    "run_relay",
    "to_kafka_message",
]
