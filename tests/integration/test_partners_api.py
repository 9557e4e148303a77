"""The partner GraphQL groups, executed in process against a real runtime (PostgreSQL,
projector, audit) with the callers' principals; the webhook receiver is a real local server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import strawberry

from domain.patient import Patient
from services.api.context import CareteamContext
from services.api.partners.api import PartnerMutation, PartnerQuery, PartnerSubscription
from services.auth import Principal, Role
from services.bootstrap import Runtime, open_runtime
from services.eventstore import EventMetadata
from services.settings import Secret, Settings
from tests.integration.graphql_support import execute_as
from tests.integration.test_partners_feeds import (
    FAST,
    GIVEN,
    ORG,
    OTHER_ORG,
    PARTNER_ORG,
    Receiver,
    eventually,
    phq9,
    running_feeds,
    schema_errors,
)

SCHEMA = strawberry.Schema(
    query=PartnerQuery, mutation=PartnerMutation, subscription=PartnerSubscription
)
ADMIN = Principal(uuid4(), Role.ADMIN, ORG)
COMPLIANCE = Principal(uuid4(), Role.COMPLIANCE, ORG)
CARE_MANAGER = Principal(uuid4(), Role.CARE_MANAGER, ORG)

REGISTER = """
mutation ($input: RegisterPartnerInput!) {
  registerPartner(input: $input) {
    __typename
    ... on PartnerRegistration {
      webhookSecret
      partner { id name delivery allowedEventTypes active version feed { position epoch } }
    }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
  }
}"""
DISCLOSURES = """
query ($patientId: UUID!, $after: String) {
  disclosures(patientId: $patientId, first: 2, after: $after) {
    __typename
    ... on DisclosurePage {
      disclosures { disclosedAt recipientName recipientOrganisationId description purpose
                    channel publicEventType part2 consentIds recipientAddress
                    eventOccurredAt }
      pageInfo { hasNextPage endCursor }
    }
    ... on ForbiddenError { code }
    ... on NotFoundError { code }
  }
}"""


@pytest.fixture
async def runtime(db_dsn: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A careteam runtime on a fresh database: pool, store, projector, audit writer."""
    settings = Settings(database_url=Secret(db_dsn), data_dir=tmp_path, db_pool_max=8)
    async with open_runtime(settings, run_relay=False) as rt:
        yield rt


async def run(
    runtime: Runtime, principal: Principal, query: str, **variables: Any
) -> dict[str, Any]:
    """Executes one operation as ``principal``; fails on unexpected GraphQL errors."""
    return await execute_as(SCHEMA, runtime, principal, query, **variables)


def webhook_input(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "organisationId": str(PARTNER_ORG),
        "name": "Community partner",
        "purpose": "care coordination",
        "allowedEventTypes": ["patient.screening_recorded.v1"],
        "delivery": "WEBHOOK",
        "webhookUrl": url,
        **overrides,
    }


async def consented_patient(runtime: Runtime, *, screenings: int, org: UUID = PARTNER_ORG) -> UUID:
    """A patient of ORG who consents to share with ``org`` and is screened ``screenings`` times."""
    meta = EventMetadata(actor_id=str(CARE_MANAGER.user_id), role="care_manager")
    now = datetime.now(UTC)
    patient = Patient.register(
        given_name=GIVEN,
        family_name="Quixworth",
        birth_date=date(1980, 5, 17),
        # One organisation, one patient per MRN: each call makes a fresh one.
        mrn=f"MRN-{uuid4().hex[:10]}",
        organisation_id=ORG,
        occurred_at=now,
        now=now,
    )
    patient.grant_consent(
        kind="data_sharing", partner_organisation_id=org, occurred_at=now, now=now
    )
    for total in range(1, screenings + 1):
        patient.record_screening(instrument="phq9", answers=phq9(total), occurred_at=now, now=now)
    result = await runtime.app.create(patient, metadata=meta, now=now)
    assert result.position is not None
    await runtime.projector.wait_for(result.position, 10.0)
    return patient.id


async def _accounted(runtime: Runtime, patient_id: UUID, count: int) -> bool:
    async with runtime.pool.acquire() as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM disclosures WHERE patient_id = $1", patient_id
        )
    return bool(found == count)


async def access_rows(runtime: Runtime, operation: str) -> list[dict[str, Any]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM access_log WHERE operation = $1 ORDER BY id", operation
        )
    return [dict(r) for r in rows]


# --- the registry ----------------------------------------------------------------------


async def test_an_admin_registers_a_webhook_partner_and_sees_its_secret_only_once(
    runtime: Runtime,
) -> None:
    """The secret is in the registration's answer and nowhere else; changes are audited."""
    data = await run(runtime, ADMIN, REGISTER, input=webhook_input("https://partner.example/hook"))
    registered = data["registerPartner"]
    assert registered["__typename"] == "PartnerRegistration"
    secret = registered["webhookSecret"]
    assert secret.startswith("whsec_")
    partner_id = registered["partner"]["id"]
    shown = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) { partner(id: $id) { ... on Partner {
             name webhookUrl history { change version actorId details } } } }""",
        id=partner_id,
    )
    assert secret not in json.dumps(shown)
    assert [h["change"] for h in shown["partner"]["history"]] == ["registered"]
    assert shown["partner"]["history"][0]["actorId"] == str(ADMIN.user_id)
    rotated = await run(
        runtime,
        ADMIN,
        """mutation ($id: UUID!) { updatePartner(input: {partnerId: $id,
             rotateWebhookSecret: true, name: "Renamed partner"}) {
             ... on PartnerRegistration { webhookSecret partner { name version } } } }""",
        id=partner_id,
    )
    assert rotated["updatePartner"]["webhookSecret"] not in (None, secret)
    assert rotated["updatePartner"]["partner"] == {"name": "Renamed partner", "version": 2}
    history = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) { partner(id: $id) { ... on Partner { history { change } } } }""",
        id=partner_id,
    )
    assert [h["change"] for h in history["partner"]["history"]] == [
        "registered",
        "updated",
        "secret_rotated",
    ]
    assert [r["outcome"] for r in await access_rows(runtime, "registerPartner")] == ["allowed"]
    again = await run(
        runtime,
        ADMIN,
        """mutation ($id: UUID!) { updatePartner(input: {partnerId: $id,
             rotateWebhookSecret: true}) { __typename
             ... on ValidationError { code field } } }""",
        id=partner_id,
    )
    assert again["updatePartner"] == {
        "__typename": "ValidationError",
        "code": "ROTATION_IN_PROGRESS",
        "field": "rotateWebhookSecret",
    }
    unchanged = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) { partner(id: $id) { ... on Partner { version } } }""",
        id=partner_id,
    )
    assert unchanged["partner"]["version"] == 2


async def test_other_roles_are_refused_partner_administration_and_the_refusal_is_audited(
    runtime: Runtime,
) -> None:
    """Only administrators manage partners; a refusal leaves a denial in access_log."""
    data = await run(
        runtime, CARE_MANAGER, REGISTER, input=webhook_input("https://partner.example/hook")
    )
    assert data["registerPartner"] == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
    denials = await access_rows(runtime, "registerPartner")
    assert [(r["outcome"], r["actor_id"]) for r in denials] == [("denied", CARE_MANAGER.user_id)]
    other_admin = Principal(uuid4(), Role.ADMIN, OTHER_ORG)
    mine = await run(runtime, ADMIN, REGISTER, input=webhook_input("https://partner.example/h"))
    partner_id = mine["registerPartner"]["partner"]["id"]
    theirs = await run(
        runtime,
        other_admin,
        """query ($id: UUID!) { partner(id: $id) { __typename ... on NotFoundError { code } } }""",
        id=partner_id,
    )
    assert theirs["partner"] == {"__typename": "NotFoundError", "code": "PARTNER_NOT_FOUND"}


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        (
            {"allowedEventTypes": ["patient.registered.v1"]},
            "UNKNOWN_EVENT_TYPE",
            "allowedEventTypes",
        ),
        ({"allowedEventTypes": []}, "NO_EVENT_TYPES", "allowedEventTypes"),
        ({"webhookUrl": "http://partner.example/hook"}, "WEBHOOK_URL_NOT_HTTPS", "webhookUrl"),
        ({"delivery": "KAFKA"}, "KAFKA_TOPIC_INVALID", "kafkaTopic"),
        ({"name": "  "}, "BLANK_VALUE", "name"),
    ],
)
async def test_a_registration_breaking_a_rule_is_refused_with_its_code(
    runtime: Runtime, overrides: dict[str, Any], code: str, field: str
) -> None:
    """Identity data types, plain HTTP, missing topics and blank names never register."""
    data = await run(
        runtime, ADMIN, REGISTER, input=webhook_input("https://partner.example/hook", **overrides)
    )
    assert data["registerPartner"]["__typename"] == "ValidationError"
    assert data["registerPartner"]["code"] == code
    assert data["registerPartner"]["field"] == field


async def test_a_replay_needs_exactly_one_starting_point_and_then_moves_the_feed(
    runtime: Runtime,
) -> None:
    """afterPosition or fromTime; each replay bumps the feed's epoch."""
    data = await run(runtime, ADMIN, REGISTER, input=webhook_input("https://partner.example/h"))
    partner_id = data["registerPartner"]["partner"]["id"]
    replay = """mutation ($input: ReplayPartnerFeedInput!) { replayPartnerFeed(input: $input) {
        __typename ... on PartnerReplay { afterPosition } ... on ValidationError { code } } }"""
    none = await run(runtime, ADMIN, replay, input={"partnerId": partner_id})
    assert none["replayPartnerFeed"]["code"] == "ONE_START_REQUIRED"
    bad = await run(runtime, ADMIN, replay, input={"partnerId": partner_id, "afterPosition": "x"})
    assert bad["replayPartnerFeed"]["code"] == "INVALID_POSITION"
    moved = await run(
        runtime, ADMIN, replay, input={"partnerId": partner_id, "afterPosition": "0.0"}
    )
    assert moved["replayPartnerFeed"] == {"__typename": "PartnerReplay", "afterPosition": "0.0"}
    by_time = await run(
        runtime,
        ADMIN,
        replay,
        input={"partnerId": partner_id, "fromTime": datetime.now(UTC).isoformat()},
    )
    assert by_time["replayPartnerFeed"]["__typename"] == "PartnerReplay"
    feed = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) { partner(id: $id) { ... on Partner { feed { epoch } } } }""",
        id=partner_id,
    )
    assert feed["partner"]["feed"]["epoch"] == 2


REPLAY = """mutation ($input: ReplayPartnerFeedInput!) { replayPartnerFeed(input: $input) {
    __typename ... on PartnerReplay { afterPosition } ... on ValidationError { code field } } }"""


async def _epoch(runtime: Runtime, partner_id: str) -> int:
    feed = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) { partner(id: $id) { ... on Partner { feed { epoch } } } }""",
        id=partner_id,
    )
    epoch: int = feed["partner"]["feed"]["epoch"]
    return epoch


async def test_a_replay_beyond_the_head_or_off_the_log_is_refused_and_the_feed_keeps_delivering(
    runtime: Runtime,
) -> None:
    """Each refusal names afterPosition and moves nothing; the next event still arrives."""
    receiver = Receiver()
    await receiver.start()
    try:
        data = await run(runtime, ADMIN, REGISTER, input=webhook_input(receiver.url))
        receiver.secret = data["registerPartner"]["webhookSecret"]
        partner_id = data["registerPartner"]["partner"]["id"]
        patient_id = await consented_patient(runtime, screenings=1)
        await eventually(lambda: len(receiver.accepted) == 1)
        sequence = receiver.accepted[0]["sequence"]
        tx, _, pos = sequence.partition(".")
        refused = {
            "99999999.1": "POSITION_BEYOND_HEAD",
            f"{int(tx) + 1}.0": "POSITION_BEYOND_HEAD",
            f"1.{int(pos)}": "POSITION_NOT_IN_LOG",
            "12.x": "INVALID_POSITION",
            "-1.5": "INVALID_POSITION",
            f"{2**64}.1": "INVALID_POSITION",
        }
        for position, code in refused.items():
            answer = await run(
                runtime, ADMIN, REPLAY, input={"partnerId": partner_id, "afterPosition": position}
            )
            assert answer["replayPartnerFeed"] == {
                "__typename": "ValidationError",
                "code": code,
                "field": "afterPosition",
            }, position
        assert await _epoch(runtime, partner_id) == 0
        async with runtime.pool.acquire() as conn:
            changes = await conn.fetchval(
                """SELECT count(*) FROM partner_changes
                   WHERE partner_id = $1 AND change = 'replayed'""",
                UUID(partner_id),
            )
        assert changes == 0
        meta = EventMetadata(actor_id=str(CARE_MANAGER.user_id), role="care_manager")
        now = datetime.now(UTC)
        await runtime.app.execute(
            Patient,
            patient_id,
            lambda p: p.record_screening(
                instrument="phq9", answers=phq9(7), occurred_at=now, now=now
            ),
            metadata=meta,
            now=now,
        )
        await eventually(lambda: len(receiver.accepted) == 2)
        assert [e["data"]["total"] for e in receiver.accepted] == [1, 7]
        accepted = await run(
            runtime, ADMIN, REPLAY, input={"partnerId": partner_id, "afterPosition": sequence}
        )
        assert accepted["replayPartnerFeed"]["__typename"] == "PartnerReplay"
        await eventually(lambda: len(receiver.accepted) == 3)
        assert receiver.accepted[2]["id"] == receiver.accepted[1]["id"]
    finally:
        await receiver.stop()


async def test_a_replay_by_time_resolves_to_the_start_or_a_position_of_the_log(
    runtime: Runtime,
) -> None:
    """fromTime becomes afterPosition 0.0 or the place of an event that exists."""
    data = await run(runtime, ADMIN, REGISTER, input=webhook_input("https://partner.example/h"))
    partner_id = data["registerPartner"]["partner"]["id"]
    before = datetime.now(UTC)
    await consented_patient(runtime, screenings=2)
    for moment in (before, datetime.now(UTC), datetime(2000, 1, 1, tzinfo=UTC)):
        answer = await run(
            runtime,
            ADMIN,
            REPLAY,
            input={"partnerId": partner_id, "fromTime": moment.isoformat()},
        )
        position = answer["replayPartnerFeed"]["afterPosition"]
        tx, _, pos = position.partition(".")
        async with runtime.pool.acquire() as conn:
            exists = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM events
                   WHERE tx_id = $1::text::xid8 AND position = $2)""",
                tx,
                int(pos),
            )
        assert position == "0.0" or exists, position


# --- the accounting of disclosures ----------------------------------------------------


async def test_compliance_pages_through_a_patients_disclosures_oldest_first(
    runtime: Runtime,
) -> None:
    """Every delivery is accounted (date, recipient, description, purpose), in pages."""
    receiver = Receiver()
    await receiver.start()
    try:
        data = await run(runtime, ADMIN, REGISTER, input=webhook_input(receiver.url))
        receiver.secret = data["registerPartner"]["webhookSecret"]
        patient_id = await consented_patient(runtime, screenings=3)
        async with running_feeds(runtime.store, runtime.dsn, options=FAST):
            await eventually(lambda: _accounted(runtime, patient_id, 3))
    finally:
        await receiver.stop()
    first = (await run(runtime, COMPLIANCE, DISCLOSURES, patientId=str(patient_id)))["disclosures"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (
        await run(
            runtime,
            COMPLIANCE,
            DISCLOSURES,
            patientId=str(patient_id),
            after=first["pageInfo"]["endCursor"],
        )
    )["disclosures"]
    assert second["pageInfo"]["hasNextPage"] is False
    entries = first["disclosures"] + second["disclosures"]
    assert len(entries) == 3
    assert [e["disclosedAt"] for e in entries] == sorted(e["disclosedAt"] for e in entries)
    assert {
        (e["recipientName"], e["recipientOrganisationId"], e["purpose"], e["channel"])
        for e in entries
    } == {("Community partner", str(PARTNER_ORG), "care coordination", "WEBHOOK")}
    assert all(e["description"].startswith("questionnaire result") for e in entries)
    # The consent relied on, where it went and the event's own date (45 CFR 164.528(b)).
    assert {e["recipientAddress"] for e in entries} == {receiver.url}
    assert all(len(e["consentIds"]) == 1 for e in entries)
    assert all(e["eventOccurredAt"] and e["eventOccurredAt"] <= e["disclosedAt"] for e in entries)
    reads = await access_rows(runtime, "disclosures")
    assert [(r["outcome"], r["patient_id"]) for r in reads][-1] == ("allowed", patient_id)


@pytest.fixture
async def slow_retry_runtime(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    """A runtime whose partner feeds wait an hour before a webhook retry."""
    monkeypatch.setenv("CARETEAM_PARTNERS_WEBHOOK_INITIAL_DELAY_SECONDS", "3600")
    settings = Settings(database_url=Secret(db_dsn), data_dir=tmp_path, db_pool_max=8)
    async with open_runtime(settings, run_relay=False) as rt:
        yield rt


async def test_a_webhook_attempt_that_sent_data_but_failed_is_in_the_accounting_and_waiting(
    slow_retry_runtime: Runtime,
) -> None:
    """Compliance sees the failed attempt with its outcome and number; the admin sees the
    message waiting in the feed and its stored attempt count."""
    runtime = slow_retry_runtime
    receiver = Receiver()
    receiver.failures_left = 10**6
    await receiver.start()
    try:
        data = await run(runtime, ADMIN, REGISTER, input=webhook_input(receiver.url))
        receiver.secret = data["registerPartner"]["webhookSecret"]
        partner_id = data["registerPartner"]["partner"]["id"]
        patient_id = await consented_patient(runtime, screenings=1)
        await eventually(lambda: _accounted(runtime, patient_id, 1))
    finally:
        await receiver.stop()
    accounting = await run(
        runtime,
        COMPLIANCE,
        """query ($id: UUID!) { disclosures(patientId: $id) { ... on DisclosurePage {
             disclosures { recipientName channel outcome attempt } } } }""",
        id=str(patient_id),
    )
    assert accounting["disclosures"]["disclosures"] == [
        {
            "recipientName": "Community partner",
            "channel": "WEBHOOK",
            "outcome": "failed",
            "attempt": 1,
        }
    ]
    admin_view = await run(
        runtime,
        ADMIN,
        """query ($id: UUID!) {
             partner(id: $id) { ... on Partner { feed { waiting deadLetters } } }
             partnerDeadLetters(partnerId: $id) { ... on PartnerDeadLetterPage {
               deadLetters { status attempts lastError } } } }""",
        id=partner_id,
    )
    assert admin_view["partner"]["feed"] == {"waiting": 1, "deadLetters": 0}
    assert admin_view["partnerDeadLetters"]["deadLetters"] == [
        {"status": "RETRYING", "attempts": 1, "lastError": "HTTP_503"}
    ]
    assert receiver.attempts == [1]


async def test_care_teams_and_other_organisations_cannot_read_the_accounting(
    runtime: Runtime,
) -> None:
    """Compliance of the patient's organisation only; others see a refusal or nothing."""
    patient_id = await consented_patient(runtime, screenings=0)
    as_team = await run(runtime, CARE_MANAGER, DISCLOSURES, patientId=str(patient_id))
    assert as_team["disclosures"] == {"__typename": "ForbiddenError", "code": "ROLE_NOT_PERMITTED"}
    elsewhere = Principal(uuid4(), Role.COMPLIANCE, OTHER_ORG)
    as_other = await run(runtime, elsewhere, DISCLOSURES, patientId=str(patient_id))
    assert as_other["disclosures"]["__typename"] == "NotFoundError"


# --- the GraphQL channel --------------------------------------------------------------


async def test_a_graphql_partner_receives_its_consented_feed_and_each_event_is_accounted(
    runtime: Runtime,
) -> None:
    """partnerEvents streams schema-valid data under pseudonyms to the partner's own token."""
    data = await run(
        runtime,
        ADMIN,
        REGISTER,
        input=webhook_input("", delivery="GRAPHQL", webhookUrl=None),
    )
    assert data["registerPartner"]["webhookSecret"] is None
    patient_id = await consented_patient(runtime, screenings=2)
    await consented_patient(runtime, screenings=1, org=OTHER_ORG)  # not for this partner
    partner = Principal(uuid4(), Role.PARTNER, PARTNER_ORG)
    ctx = CareteamContext(runtime=runtime, request=None, principal=partner)
    stream = await SCHEMA.subscribe(
        """subscription { partnerEvents(after: "0.0") {
             id type subject sequence confidentiality data } }""",
        context_value=ctx,
    )
    received = []
    async with asyncio.timeout(20):
        async for result in stream:
            assert result.errors is None, result.errors
            assert result.data is not None
            received.append(result.data["partnerEvents"])
            if len(received) == 2:
                break
    await stream.aclose()
    assert [e["data"]["total"] for e in received] == [1, 2]
    for event in received:
        assert schema_errors(event["type"], event["data"]) == []
        assert str(patient_id) not in json.dumps(event) and GIVEN not in json.dumps(event)
    async with runtime.pool.acquire() as conn:
        channels = await conn.fetch(
            "SELECT channel FROM disclosures WHERE patient_id = $1", patient_id
        )
    assert [r["channel"] for r in channels] == ["graphql", "graphql"]
    stranger = CareteamContext(
        runtime=runtime, request=None, principal=Principal(uuid4(), Role.PARTNER, OTHER_ORG)
    )
    refused = await SCHEMA.subscribe(
        "subscription { partnerEvents { id } }", context_value=stranger
    )
    async for result in refused:
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "PARTNER_NOT_FOUND"}
        break
    beyond = await SCHEMA.subscribe(
        'subscription { partnerEvents(after: "99999999.1") { id } }', context_value=ctx
    )
    async for result in beyond:
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "POSITION_BEYOND_HEAD", "field": "after"}
        break


async def test_the_public_event_types_name_the_urls_their_schemas_are_served_at(
    runtime: Runtime,
) -> None:
    """partnerEventTypes gives each type's schema URL, which is also the schema's $id."""
    data = await run(runtime, CARE_MANAGER, "{ partnerEventTypes { key schemaUrl jsonSchema } }")
    types = data["partnerEventTypes"]
    assert types
    base = runtime.settings.public_url
    for t in types:
        assert t["schemaUrl"] == f"{base}/schemas/partners/{t['key']}.json"
        assert t["jsonSchema"]["$id"] == t["schemaUrl"]
