"""The published contract: the AsyncAPI 3 document is valid and current, and names every
public event type's schema at the URL its messages give in ``dataschema``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator

from services.partners import asyncapi
from services.partners.contract import CATALOGUE, Publisher

ROOT = Path(__file__).resolve().parents[3]
ASYNCAPI_SCHEMA = json.loads(
    (ROOT / "tests" / "contract" / "asyncapi-3.0.0.schema.json").read_text()
)
COMMITTED = ROOT / "services" / "partners" / "asyncapi.json"


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    """The AsyncAPI 3.0.0 JSON Schema's verdict on ``document``."""
    return [e.message for e in Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document)]


def test_the_committed_asyncapi_document_is_the_builders_output() -> None:
    """Regenerate with `uv run python -m services.partners.asyncapi` when this fails."""
    assert COMMITTED.read_text() == asyncapi.render()


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    """The vendored AsyncAPI 3.0.0 JSON Schema accepts the document of any deployment."""
    assert asyncapi_errors(json.loads(COMMITTED.read_text())) == []
    other = asyncapi.document(Publisher("https://care.example.org"), "events.prod")
    assert asyncapi_errors(other) == []


def test_a_document_breaking_asyncapi_3_is_refused_by_the_same_check() -> None:
    """The check is not vacuous: a missing title or an unknown channel field fails it."""
    broken = copy.deepcopy(asyncapi.document())
    del broken["info"]["title"]
    assert asyncapi_errors(broken) != []
    broken = copy.deepcopy(asyncapi.document())
    broken["channels"]["partnerTopic"]["publish"] = {}
    assert asyncapi_errors(broken) != []


def test_every_public_type_has_a_kafka_and_a_webhook_message_naming_its_schema_url() -> None:
    """Both partner channels carry every type; payloads reference the served schema."""
    publisher = Publisher("https://care.example.org")
    document = asyncapi.document(publisher)
    messages = document["components"]["messages"]
    for public in CATALOGUE:
        name = public.key.replace(".", "_")
        url = publisher.schema_url(public.key)
        assert url == f"https://care.example.org/schemas/partners/{public.key}.json"
        assert messages[f"{name}_kafka"]["payload"] == {"$ref": url}
        webhook = messages[f"{name}_webhook"]["payload"]["properties"]
        assert webhook["data"] == {"$ref": url}
        assert webhook["dataschema"] == {"const": url}
        assert name in document["channels"]["partnerTopic"]["messages"]
        assert name in document["channels"]["partnerWebhook"]["messages"]
    internal = messages["internalEvent"]["payload"]["$ref"]
    assert internal == "https://care.example.org/schemas/internal/event.v1.json"


def test_each_message_declares_the_media_type_its_data_is_sent_with() -> None:
    """A FHIR payload is application/fhir+json on both channels (the Kafka record's
    content-type header and the webhook's datacontenttype), careteam JSON the rest."""
    messages = asyncapi.document()["components"]["messages"]
    kinds = set()
    for public in CATALOGUE:
        name = public.key.replace(".", "_")
        kafka = messages[f"{name}_kafka"]
        assert kafka["contentType"] == public.media_type
        assert kafka["headers"]["properties"]["content-type"]["const"] == public.media_type
        webhook = messages[f"{name}_webhook"]["payload"]["properties"]
        assert webhook["datacontenttype"] == {"const": public.media_type}
        kinds.add((public.key.startswith("fhir."), public.media_type))
    assert kinds == {(True, "application/fhir+json"), (False, "application/json")}


def test_published_schemas_are_valid_json_schemas_whose_id_is_their_url() -> None:
    """What /schemas/partners/<key>.json serves is a 2020-12 schema identified by its URL."""
    publisher = Publisher("https://care.example.org")
    for public in CATALOGUE:
        published = publisher.published_schema(public.key)
        Draft202012Validator.check_schema(published)
        assert published["$id"] == publisher.schema_url(public.key)
        assert published["additionalProperties"] is False
