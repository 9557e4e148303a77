"""One disclosure as it goes out: a CloudEvent for Kafka (binary mode) or a webhook (structured).

Attributes (the same on both channels):

- ``id``: a pseudonym of the internal event id and public type, stable across re-sends,
  so partners drop duplicates by it; not careteam's event id
- ``source``: ``<CARETEAM_PUBLIC_BASE_URL>/organisations/<owner organisation id>/partner-feed``:
  the deployment and the organisation whose patients the feed discloses
- ``type``: ``org.careteam.partner.<name>.v<N>`` (see contract.py)
- ``subject``: the patient's pseudonym for this partner
- ``time``: when careteam recorded the event (RFC 3339, UTC)
- ``sequence``: the log position, zero-padded so that it sorts as text; it is the value
  an administrator passes to ``replayPartnerFeed(fromPosition:)``
- ``dataschema``: ``<CARETEAM_PUBLIC_BASE_URL>/schemas/partners/<name>.v<N>.json``, served
  without authentication
- ``confidentiality``: ``42-CFR-Part-2`` on Part 2 data (the notice itself is in the data)
- ``traceparent``: the W3C trace context of the request that wrote the event (the
  CloudEvents distributed-tracing extension), when one did; hex digits only. The
  request's own id is not disclosed to partners (a client chooses it).

Kafka records are keyed by the patient's pseudonym (one patient's events stay in one
partition and in order); the value is the data as JSON. Webhook bodies are the whole
CloudEvent as JSON (``application/cloudevents+json``). Both encodings are deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.eventstore import RecordedEvent
from services.partners.contract import Pseudonyms, PublicEventType, Publisher, rfc3339
from services.partners.rules import PART2_CONFIDENTIALITY_CODE
from services.relay.messages import KafkaMessage, sequence_of

SPEC_VERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


def _json(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


@dataclass(frozen=True)
class PartnerMessage:
    """One event projected for one partner, ready to encode for any channel."""

    event: RecordedEvent
    public: PublicEventType
    id: str
    subject: str
    data: dict[str, Any]
    part2: bool
    consent_ids: tuple[UUID, ...]
    source: str
    dataschema: str

    @classmethod
    def build(
        cls,
        event: RecordedEvent,
        public: PublicEventType,
        pseudonyms: Pseudonyms,
        *,
        part2: bool,
        consent_ids: tuple[UUID, ...],
        publisher: Publisher,
        organisation_id: UUID,
    ) -> PartnerMessage:
        return cls(
            event=event,
            public=public,
            id=pseudonyms.of(f"event.{public.key}", event.event_id),
            subject=pseudonyms.patient(event.patient_id),
            data=public.data(event, pseudonyms, part2=part2),
            part2=part2,
            consent_ids=consent_ids,
            source=publisher.source(organisation_id),
            dataschema=publisher.schema_url(public.key),
        )

    def attributes(self) -> dict[str, str]:
        """The CloudEvents context attributes (and extensions) of this message."""
        attrs = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.public.cloudevent_type,
            "subject": self.subject,
            "time": rfc3339(self.event.recorded_at),
            "sequence": sequence_of(self.event.log_position),
            "dataschema": self.dataschema,
        }
        if self.part2:
            attrs["confidentiality"] = PART2_CONFIDENTIALITY_CODE
        metadata = self.event.metadata
        if isinstance(metadata, dict) and (traceparent := metadata.get("traceparent")):
            attrs["traceparent"] = str(traceparent)
        return attrs

    def kafka_record(self) -> KafkaMessage:
        """Binary mode: ``ce_`` headers, the data as the value, the pseudonym as the key."""
        headers = [(f"ce_{name}", value.encode()) for name, value in self.attributes().items()]
        headers.append(("content-type", self.public.media_type.encode()))
        return KafkaMessage(key=self.subject.encode(), value=_json(self.data), headers=headers)

    def webhook_body(self) -> bytes:
        """Structured mode: the whole CloudEvent as one JSON document."""
        content_type = self.public.media_type  # application/fhir+json for a FHIR payload
        return _json({**self.attributes(), "datacontenttype": content_type, "data": self.data})
