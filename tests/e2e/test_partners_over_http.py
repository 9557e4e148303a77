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

import pytest

from tests.e2e.server import ServerProcess
from tests.integration.test_partners_feeds import Receiver, eventually, schema_errors

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
    accounting = await call(
        server,
        compliance,
        """query ($id: UUID!) { disclosures(patientId: $id) { ... on DisclosurePage {
             disclosures { recipientName recipientOrganisationId purpose channel } } } }""",
        id=patient_id,
    )
    assert accounting["disclosures"]["disclosures"] == [
        {
            "recipientName": "Community partner",
            "recipientOrganisationId": PARTNER_ORG,
            "purpose": "care coordination",
            "channel": "WEBHOOK",
        }
    ]
