"""The published partner contract over plain HTTP, without authentication.

- ``GET /schemas/partners/`` lists the public event types and their schema URLs;
- ``GET /schemas/partners/<name>.v<N>.json`` is one type's JSON Schema, the URL its
  messages name in ``dataschema`` (``$id`` is that URL);
- ``GET /schemas/internal/event.v1.json`` is the schema of the internal topic's records;
- ``GET /asyncapi.json`` is the AsyncAPI 3 document of all channels.

Everything here is public by design (no patient data, no configuration beyond the
deployment's public base URL), cacheable, and the same for every caller.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.partners import asyncapi
from services.partners.contract import BY_KEY, CATALOGUE, SCHEMA_PATH, Publisher
from services.settings import Settings

SCHEMA_MEDIA_TYPE = "application/schema+json"
_CACHE = {"Cache-Control": "public, max-age=300"}


@cache
def _internal_schema() -> dict[str, Any]:
    text = (
        resources.files("services.partners")
        .joinpath("schemas", "internal", "event.v1.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _json(value: Any, media_type: str = "application/json") -> Response:
    body = json.dumps(value, indent=2, sort_keys=True).encode()
    return Response(body, media_type=media_type, headers=_CACHE)


def contract_routes(settings: Settings) -> list[Route]:
    """The routes of the published contract for this deployment."""
    publisher = Publisher(settings.public_url)
    document = asyncapi.document(publisher, settings.kafka_topic)

    async def index(_request: Request) -> Response:
        return _json(
            {
                "event_types": [
                    {
                        "key": t.key,
                        "type": t.cloudevent_type,
                        "description": t.description,
                        "schema": publisher.schema_url(t.key),
                    }
                    for t in CATALOGUE
                ],
                "internal": publisher.base_url + asyncapi.INTERNAL_SCHEMA_PATH,
                "asyncapi": publisher.base_url + "/asyncapi.json",
            }
        )

    async def schema(request: Request) -> Response:
        key = request.path_params["key"]
        if key not in BY_KEY:
            return JSONResponse({"error": "no such event type"}, status_code=404)
        return _json(publisher.published_schema(key), SCHEMA_MEDIA_TYPE)

    async def internal(_request: Request) -> Response:
        published = {
            **_internal_schema(),
            "$id": publisher.base_url + asyncapi.INTERNAL_SCHEMA_PATH,
        }
        return _json(published, SCHEMA_MEDIA_TYPE)

    async def asyncapi_document(_request: Request) -> Response:
        return _json(document)

    return [
        Route(f"{SCHEMA_PATH}/", index, methods=["GET"]),
        Route(SCHEMA_PATH + "/{key:str}.json", schema, methods=["GET"]),
        Route(asyncapi.INTERNAL_SCHEMA_PATH, internal, methods=["GET"]),
        Route("/asyncapi.json", asyncapi_document, methods=["GET"]),
    ]
