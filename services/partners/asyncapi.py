"""The AsyncAPI 3 document of careteam's event channels, built from the contract.

Three channels: the internal topic (every event, binary-mode CloudEvents keyed by
patient id), a partner's own Kafka topic and a partner's webhook (one message per public
event type each, their data described by the JSON Schemas served under
``/schemas/partners/``). A deployment serves the document for its own base URL at
``/asyncapi.json``; ``services/partners/asyncapi.json`` is the same document for the
default base URL, kept in the repository and checked against this builder by a test:

    uv run python -m services.partners.asyncapi > services/partners/asyncapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from services.partners.contract import CATALOGUE, PublicEventType, Publisher
from services.partners.signing import DEFAULT_TOLERANCE_SECONDS

ASYNCAPI_VERSION = "3.0.0"
# The contract's own version: patch for a correction of the document, minor for additions,
# major for a breaking change.
CONTRACT_VERSION = "2.1.1"
INTERNAL_SCHEMA_PATH = "/schemas/internal/event.v1.json"
DEFAULT_TOPIC = "careteam.events.v1"


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _ce_headers(
    ce_type: dict[str, Any],
    subject: str,
    *,
    partner: bool,
    media_type: str = "application/json",
) -> dict[str, Any]:
    """The Kafka headers of a binary-mode CloudEvent (UTF-8 strings); ``media_type`` is
    the data's (``application/fhir+json`` for a FHIR payload)."""
    properties: dict[str, Any] = {
        "ce_specversion": _string("CloudEvents version.", const="1.0"),
        "ce_id": _string("Stable across re-sends: drop duplicates by it."),
        "ce_source": _string("Where the event comes from."),
        "ce_type": ce_type,
        "ce_subject": _string(subject),
        "ce_time": _string("When careteam recorded the event (RFC 3339, UTC).", format="date-time"),
        "ce_sequence": _string(
            "The log position, zero-padded so that it sorts as text (sequence extension).",
            pattern="^[0-9]{20}\\.[0-9]{20}$",
        ),
        "content-type": _string("The data's media type.", const=media_type),
    }
    required = [*properties]
    properties["ce_traceparent"] = _string(
        "W3C trace context of the request that wrote the event (distributed-tracing "
        "extension); absent when no request did.",
        pattern="^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
    )
    if not partner:
        properties["ce_requestid"] = _string(
            "X-Request-Id of the request that wrote the event; absent when no request did."
        )
    if partner:
        properties["ce_dataschema"] = _string("The URL of the data's JSON Schema.", format="uri")
        properties["ce_confidentiality"] = _string(
            "42-CFR-Part-2 on 42 CFR Part 2 data (the notice is in the data).",
            const="42-CFR-Part-2",
        )
        required.append("ce_dataschema")
    return {"type": "object", "required": required, "properties": properties}


def _webhook_body(public: PublicEventType, publisher: Publisher) -> dict[str, Any]:
    """A webhook body: the whole CloudEvent in structured mode."""
    return {
        "type": "object",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "sequence",
            "dataschema",
            "datacontenttype",
            "data",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": _string("The webhook-id header too; drop duplicates by it."),
            "source": _string("This deployment and the organisation disclosing.", format="uri"),
            "type": {"const": public.cloudevent_type},
            "subject": _string("The patient's pseudonym for this partner."),
            "time": _string("When careteam recorded the event.", format="date-time"),
            "sequence": _string("The log position; pass it to replayPartnerFeed."),
            "dataschema": {"const": publisher.schema_url(public.key)},
            "datacontenttype": {"const": public.media_type},
            "confidentiality": {"const": "42-CFR-Part-2"},
            "traceparent": _string(
                "W3C trace context of the request that wrote the event, when one did."
            ),
            "data": {"$ref": publisher.schema_url(public.key)},
        },
    }


_WEBHOOK_HEADERS = {
    "type": "object",
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "properties": {
        "webhook-id": _string("The message id (the CloudEvent id); the same on every retry."),
        "webhook-timestamp": _string(
            "Unix seconds when this attempt was signed; refuse it more than "
            f"{DEFAULT_TOLERANCE_SECONDS} s from your clock."
        ),
        "webhook-signature": _string(
            "Standard Webhooks: v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>; two, "
            "space-separated, during a secret rotation's overlap."
        ),
        "X-Careteam-Delivery-Attempt": _string("1 for the first attempt, then 2, 3, ..."),
        "traceparent": _string(
            "W3C trace context of the request that wrote the event, when one did (the "
            "CloudEvent's traceparent attribute)."
        ),
    },
}


def document(
    publisher: Publisher | None = None, internal_topic: str = DEFAULT_TOPIC
) -> dict[str, Any]:
    """The AsyncAPI 3 document for a deployment published at ``publisher.base_url``."""
    publisher = publisher or Publisher()
    base = publisher.base_url
    messages: dict[str, Any] = {
        "internalEvent": {
            "name": "internalEvent",
            "title": "A stored event",
            "summary": "One event of the log, keyed by patient id (binary-mode CloudEvent).",
            "contentType": "application/json",
            "headers": _ce_headers(
                _string("org.careteam.<event_type>.v<version>", pattern="^org\\.careteam\\."),
                "The patient id (the record key too).",
                partner=False,
            ),
            "payload": {"$ref": base + INTERNAL_SCHEMA_PATH},
            "bindings": {"kafka": {"key": _string("The patient id.", format="uuid")}},
        }
    }
    kafka_refs: dict[str, Any] = {}
    webhook_refs: dict[str, Any] = {}
    for public in CATALOGUE:
        name = public.key.replace(".", "_")
        messages[f"{name}_kafka"] = {
            "name": public.key,
            "title": public.cloudevent_type,
            "summary": public.description,
            "contentType": public.media_type,
            "headers": _ce_headers(
                {"const": public.cloudevent_type},
                "The patient's pseudonym for this partner (the record key too).",
                partner=True,
                media_type=public.media_type,
            ),
            "payload": {"$ref": publisher.schema_url(public.key)},
            "bindings": {"kafka": {"key": _string("The patient's pseudonym for this partner.")}},
        }
        messages[f"{name}_webhook"] = {
            "name": public.key,
            "title": public.cloudevent_type,
            "summary": public.description,
            "contentType": "application/cloudevents+json",
            "headers": _WEBHOOK_HEADERS,
            "payload": _webhook_body(public, publisher),
        }
        kafka_refs[name] = {"$ref": f"#/components/messages/{name}_kafka"}
        webhook_refs[name] = {"$ref": f"#/components/messages/{name}_webhook"}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:careteam:event-channels",
        "info": {
            "title": "careteam event channels",
            "version": CONTRACT_VERSION,
            "description": (
                "Events out of careteam: the internal topic, and the consented, "
                "minimum-necessary feeds of partner organisations (their own Kafka topic or a "
                "signed webhook). Every message is a CloudEvent 1.0; partners drop duplicates "
                "by its id. JSON Schemas of the data are served without authentication under "
                f"{base}/schemas/partners/."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "careteam's Kafka cluster.",
                "variables": {
                    "bootstrap": {
                        "default": "127.0.0.1:9092",
                        "description": "CARETEAM_KAFKA_BOOTSTRAP_SERVERS of the deployment.",
                    }
                },
            },
            "partnerEndpoint": {
                "host": "{host}",
                "protocol": "https",
                "description": "A partner's webhook endpoint (its registered URL).",
                "variables": {"host": {"description": "The host of the registered URL."}},
            },
        },
        "channels": {
            "internalEvents": {
                "address": internal_topic,
                "title": "Internal events",
                "description": "Every event of the log (CARETEAM_KAFKA_TOPIC), in each "
                "patient's order within a partition.",
                "servers": [{"$ref": "#/servers/kafka"}],
                "messages": {"internalEvent": {"$ref": "#/components/messages/internalEvent"}},
            },
            "partnerTopic": {
                "address": "{topic}",
                "title": "A partner's Kafka topic",
                "description": "The partner's consented feed, keyed by patient pseudonym.",
                "servers": [{"$ref": "#/servers/kafka"}],
                "parameters": {"topic": {"description": "The topic registered for the partner."}},
                "messages": kafka_refs,
            },
            "partnerWebhook": {
                "address": "{path}",
                "title": "A partner's webhook",
                "description": (
                    "One signed POST per message (Standard Webhooks). Each patient's messages "
                    "arrive in log order; a failing message is retried with backoff and holds "
                    "back only that patient's later messages."
                ),
                "servers": [{"$ref": "#/servers/partnerEndpoint"}],
                "parameters": {"path": {"description": "The path of the registered URL."}},
                "messages": webhook_refs,
                "bindings": {"http": {"method": "POST"}},
            },
        },
        "operations": {
            "publishInternalEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/internalEvents"},
                "summary": "The relay publishes every event once acknowledged by the log.",
            },
            "sendPartnerTopic": {
                "action": "send",
                "channel": {"$ref": "#/channels/partnerTopic"},
                "summary": "A partner feed publishes to the partner's topic.",
            },
            "sendPartnerWebhook": {
                "action": "send",
                "channel": {"$ref": "#/channels/partnerWebhook"},
                "summary": "A partner feed POSTs to the partner's endpoint.",
            },
        },
        "components": {"messages": messages},
    }


def render(publisher: Publisher | None = None, internal_topic: str = DEFAULT_TOPIC) -> str:
    """The document as the committed file holds it (sorted keys, two-space indent)."""
    return json.dumps(document(publisher, internal_topic), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
