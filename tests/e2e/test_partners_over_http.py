"""A partner's webhook feed and the accounting of disclosures against a running server.

An administrator registers a webhook partner over HTTP, a care manager registers a
patient, records their data-sharing consent and a PHQ-9, and the partner's receiver (a
real HTTP server in this test, verifying every signature) gets the signed,
minimum-necessary event; compliance then finds the delivery in the patient's accounting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from jsonschema import Draft202012Validator

from services.partners.contract import CATALOGUE
from tests.e2e.server import ServerProcess
from tests.integration.test_partners_feeds import Receiver, eventually, schema_errors
from tests.unit.partners.test_partners_contract import asyncapi_errors

PARTNER_ORG = "00000000-0000-4000-8000-0000000000b1"


@pytest.fixture
def partner_server(db_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """careteam serve with partner feeds tuned to poll and retry in milliseconds."""
    env = {
        "CARETEAM_DATABASE_URL": db_dsn,
        "CARETEAM_PARTNERS_POLL_SECONDS": "0.05",
        "CARETEAM_PARTNERS_REFRESH_SECONDS": "0.1",
        "CARETEAM_PARTNERS_WEBHOOK_INITIAL_DELAY_SECONDS": "0.05",
    }
    proc = ServerProcess(data_dir=tmp_path, env=env)
    proc.env["CARETEAM_PUBLIC_BASE_URL"] = proc.url
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def call(server: ServerProcess, token: str, query: str, **variables: Any) -> Any:
    """One GraphQL request, off the event loop (the receiver shares it)."""
    body = await asyncio.to_thread(partial(server.graphql, query, variables, token=token))
    assert "errors" not in body, body
    return body["data"]


async def test_a_webhook_partner_receives_a_consented_screening_and_it_is_accounted(
    partner_server: ServerProcess,
) -> None:
    """Registration, consent, delivery with a valid signature, and the accounting, over HTTP."""
    server = partner_server
    admin = server.token("admin")
    care_manager = server.token("care_manager", user=uuid4())
    compliance = server.token("compliance")
    receiver = Receiver()
    await receiver.start()
    try:
        registered = await call(
            server,
            admin,
            """mutation ($input: RegisterPartnerInput!) { registerPartner(input: $input) {
                 ... on PartnerRegistration { webhookSecret partner { id } } } }""",
            input={
                "organisationId": PARTNER_ORG,
                "name": "Community partner",
                "purpose": "care coordination",
                "allowedEventTypes": ["patient.screening_recorded.v1"],
                "delivery": "WEBHOOK",
                "webhookUrl": receiver.url,
            },
        )
        receiver.secret = registered["registerPartner"]["webhookSecret"]
        patient = await call(
            server,
            care_manager,
            """mutation { registerPatient(input: {givenName: "Zebulon", familyName: "Quixworth",
                 birthDate: "1980-05-17", mrn: "MRN-7734119"}) {
                 ... on PatientPayload { patient { id } } } }""",
        )
        patient_id = patient["registerPatient"]["patient"]["id"]
        await call(
            server,
            care_manager,
            """mutation ($id: UUID!, $org: UUID!) { grantConsent(input: {patientId: $id,
                 kind: DATA_SHARING, partnerOrganisationId: $org}) { __typename } }""",
            id=patient_id,
            org=PARTNER_ORG,
        )
        await call(
            server,
            care_manager,
            """mutation ($id: UUID!) { recordScreening(input: {patientId: $id, instrument: PHQ9,
                 answers: [1, 1, 1, 1, 1, 1, 1, 0, 0]}) { __typename } }""",
            id=patient_id,
        )
        await eventually(lambda: len(receiver.accepted) == 1)
    finally:
        await receiver.stop()
    (event,) = receiver.accepted
    assert receiver.rejected == []
    assert event["type"] == "org.careteam.partner.patient.screening_recorded.v1"
    assert event["data"]["total"] == 7
    assert schema_errors(event["type"], event["data"]) == []
    text = json.dumps(event)
    assert patient_id not in text and "Zebulon" not in text and "MRN-7734119" not in text
    assert event["source"].startswith(server.url + "/organisations/")
    assert (
        event["dataschema"] == f"{server.url}/schemas/partners/patient.screening_recorded.v1.json"
    )
    published = await asyncio.to_thread(httpx.get, event["dataschema"])
    assert published.status_code == 200
    assert published.json()["$id"] == event["dataschema"]
    assert list(Draft202012Validator(published.json()).iter_errors(event["data"])) == []
    accounting = await call(
        server,
        compliance,
        """query ($id: UUID!) { disclosures(patientId: $id) { ... on DisclosurePage {
             disclosures { recipientName recipientOrganisationId purpose channel }
             edges { cursor node { recipientName recipientOrganisationId purpose channel } }
           } } }""",
        id=patient_id,
    )
    edges = accounting["disclosures"]["edges"]
    assert [e["node"] for e in edges] == accounting["disclosures"]["disclosures"]
    assert all(e["cursor"] for e in edges)
    assert accounting["disclosures"]["disclosures"] == [
        {
            "recipientName": "Community partner",
            "recipientOrganisationId": PARTNER_ORG,
            "purpose": "care coordination",
            "channel": "WEBHOOK",
        }
    ]


async def test_the_contract_is_served_without_authentication_at_the_urls_messages_name(
    partner_server: ServerProcess,
) -> None:
    """Every schema URL in the index answers 200 without a token; the AsyncAPI document
    served is valid AsyncAPI 3 and names the same URLs; an unknown type is 404."""
    server = partner_server

    def get(path: str) -> httpx.Response:
        return httpx.get(path if path.startswith("http") else server.url + path, timeout=10)

    index = await asyncio.to_thread(get, "/schemas/partners/")
    assert index.status_code == 200
    types = index.json()["event_types"]
    assert len(types) == len(CATALOGUE)
    for entry in types:
        schema = await asyncio.to_thread(get, entry["schema"])
        assert schema.status_code == 200
        assert schema.headers["content-type"].startswith("application/schema+json")
        assert schema.json()["$id"] == entry["schema"]
        Draft202012Validator.check_schema(schema.json())
    internal = await asyncio.to_thread(get, index.json()["internal"])
    assert internal.status_code == 200
    document = await asyncio.to_thread(get, "/asyncapi.json")
    assert document.status_code == 200
    assert asyncapi_errors(document.json()) == []
    refs = json.dumps(document.json())
    assert all(entry["schema"] in refs for entry in types)
    missing = await asyncio.to_thread(get, "/schemas/partners/patient.registered.v1.json")
    assert missing.status_code == 404
