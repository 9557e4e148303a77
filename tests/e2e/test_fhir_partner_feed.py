"""A partner registered for FHIR payloads receives R4 Observations, for consented patients
only, and HAPI FHIR's validator finds no error in them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from uuid import uuid4

from tests.e2e.fhir_validator import FhirValidator
from tests.e2e.server import ServerProcess
from tests.e2e.test_fhir_export import fhir_validator  # noqa: F401 (a fixture)
from tests.e2e.test_partners_over_http import PARTNER_ORG, call, partner_server  # noqa: F401
from tests.integration.test_partners_feeds import Receiver, eventually, schema_errors

REGISTER = """mutation ($input: RegisterPatientInput!) { registerPatient(input: $input) {
  ... on PatientPayload { patient { id } } } }"""
SCREEN = """mutation ($id: UUID!, $answers: [Int]!) { recordScreening(input: {patientId: $id,
  instrument: PHQ9, answers: $answers}) { __typename } }"""


async def test_a_fhir_partner_receives_valid_observations_of_consented_patients_only(
    partner_server: ServerProcess,  # noqa: F811 (the fixture)
    fhir_validator: FhirValidator,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    server = partner_server
    admin = server.token("admin")
    care_manager = server.token("care_manager", user=uuid4())
    receiver = Receiver()
    await receiver.start()
    try:
        registered = await call(
            server,
            admin,
            """mutation ($input: RegisterPartnerInput!) { registerPartner(input: $input) {
                 ... on PartnerRegistration { webhookSecret } } }""",
            input={
                "organisationId": PARTNER_ORG,
                "name": "FHIR partner",
                "purpose": "care coordination",
                "allowedEventTypes": ["fhir.observation.v1"],
                "delivery": "WEBHOOK",
                "webhookUrl": receiver.url,
            },
        )
        receiver.secret = registered["registerPartner"]["webhookSecret"]
        ids = []
        for n in (1, 2):
            patient = await call(
                server,
                care_manager,
                REGISTER,
                input={
                    "givenName": "Test",
                    "familyName": f"Feed{n}",
                    "birthDate": "1980-05-17",
                    "mrn": f"E2E-FEED-{n}",
                },
            )
            ids.append(patient["registerPatient"]["patient"]["id"])
        consented, other = ids
        await call(
            server,
            care_manager,
            """mutation ($id: UUID!, $org: UUID!) { grantConsent(input: {patientId: $id,
                 kind: DATA_SHARING, partnerOrganisationId: $org}) { __typename } }""",
            id=consented,
            org=PARTNER_ORG,
        )
        for patient_id, answers in (
            (other, [2, 2, 2, 2, 2, 2, 2, 0, 0]),
            (consented, [1, 1, 1, 1, 1, 1, 1, 0, 0]),
            (consented, [1, None, 1, 0, 0, 0, 0, 0, 0]),
        ):
            await call(server, care_manager, SCREEN, id=patient_id, answers=answers)
        await eventually(lambda: len(receiver.accepted) == 2)
        await asyncio.sleep(0.5)  # nothing else arrives (the other patient never consented)
    finally:
        await receiver.stop()
    assert receiver.rejected == []
    assert len(receiver.accepted) == 2
    complete, incomplete = receiver.accepted
    assert {e["type"] for e in receiver.accepted} == {"org.careteam.partner.fhir.observation.v1"}
    assert {e["datacontenttype"] for e in receiver.accepted} == {"application/fhir+json"}
    assert complete["data"]["valueInteger"] == 7
    assert complete["data"]["code"]["coding"] == [{"system": "http://loinc.org", "code": "44261-6"}]
    assert "valueInteger" not in incomplete["data"]
    assert complete["data"]["subject"] == incomplete["data"]["subject"]
    text = json.dumps(receiver.accepted)
    assert consented not in text and other not in text and "Feed1" not in text
    for i, event in enumerate(receiver.accepted):
        assert schema_errors(event["type"], event["data"]) == []
        path = tmp_path / f"feed-{i}.json"
        path.write_text(json.dumps(event["data"]))
        result = fhir_validator.validate(path)
        assert result["errors"] == 0, result["issues"]
