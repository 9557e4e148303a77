"""Patient-reported measures over HTTP: a care manager issues a single-use link, the
patient answers a PHQ-9 through it, and the care team sees it at once."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import websockets

from tests.e2e.journey import ERRORS, command, enrolled_patient, event_count
from tests.e2e.server import ServerProcess
from tests.e2e.test_worklist import worklist

ISSUE = f"""mutation($input: IssuePatientLinkInput!) {{ issuePatientLink(input: $input) {{
  __typename ... on PatientLinkPayload {{ linkId token instrument reporter expiresAt }} {ERRORS}
}} }}"""
SUBSCRIBE = """subscription { careEvents { patientId eventType streamVersion position } }"""
PHQ9_ITEM9_POSITIVE = [1, 1, 1, 1, 0, 0, 0, 0, 2]


def issue(server: ServerProcess, token: str, **input: Any) -> dict[str, Any]:
    body = server.graphql(ISSUE, {"input": input}, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["issuePatientLink"]
    return result


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    """A request from the patient's device: no bearer token, the link token only."""
    return httpx.post(f"{server.url}/patient-reported/{path}", json=body, timeout=30.0)


async def _recv_events(socket: Any, wait: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(wait):
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "next":
                    events.append(message["payload"]["data"]["careEvents"])
    except TimeoutError:
        pass
    return events


async def test_a_patient_answers_a_phq9_with_item_9_and_the_care_team_knows_within_a_second(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server)
    link = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ9")
    assert link["__typename"] == "PatientLinkPayload", link
    assert link["instrument"] == "PHQ9" and link["reporter"] == "PATIENT"

    # The patient sees which questionnaire, and nothing about anybody.
    opened = post(server, "questionnaire", {"token": link["token"]})
    assert opened.status_code == 200
    assert opened.json()["instrument"] == "phq9" and opened.json()["itemCount"] == 9
    assert team.patient_id not in opened.text

    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/graphql", subprotocols=["graphql-transport-ws"]
    )
    try:
        await socket.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {team.care_manager}"},
                }
            )
        )
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        )
        await asyncio.sleep(0.3)
        # Events so far (registration, team, enrollment) may replay first; drain them.
        await _recv_events(socket, 0.5)

        started = time.monotonic()
        submitting = asyncio.create_task(
            asyncio.to_thread(
                post, server, "submit", {"token": link["token"], "answers": PHQ9_ITEM9_POSITIVE}
            )
        )
        arrived: float | None = None
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(5.0):
            while arrived is None:
                message = json.loads(await socket.recv())
                if message["type"] != "next":
                    continue
                event = message["payload"]["data"]["careEvents"]
                events.append(event)
                if event["eventType"] == "patient.screening_recorded":
                    arrived = time.monotonic() - started
        answered = await submitting
        events += await _recv_events(socket, 0.5)
    finally:
        await socket.close()
    assert answered.status_code == 201, answered.text
    assert "988" in answered.json()["message"]
    kinds = [e["eventType"] for e in events if e["patientId"] == team.patient_id]
    assert "patient.screening_recorded" in kinds, events
    assert "patient.flag_raised" in kinds and "patient.task_created" in kinds

    # The worklist shows the safety alert and the same-day suicide risk assessment task.
    page = worklist(server, team.care_manager)
    nodes = [e["node"] for e in page["edges"] if e["node"]["patientId"] == team.patient_id]
    today = datetime.now(UTC).date().isoformat()
    (alert,) = [n for n in nodes if n["kind"] == "SAFETY_ALERT"]
    # Raised by the screening's answer, not by days passing: no due day to show (the
    # patient's flags say when), never the stored "always" (0001-01-01).
    assert alert["dueOn"] is None, alert
    assert any(
        n["kind"] == "TASK" and n["taskKind"] == "suicide_risk_assessment" and n["dueOn"] == today
        for n in nodes
    ), nodes

    # The events carry the patient-reported channel.
    conn = await asyncpg.connect(db_dsn)
    try:
        channels = await conn.fetch(
            """SELECT DISTINCT metadata->>'channel' AS channel, metadata->>'actor_id' AS actor
               FROM events WHERE stream_id = $1 AND event_type = 'patient.screening_recorded'""",
            UUID(team.patient_id),
        )
        stored = await conn.fetchrow(
            "SELECT token_hash, used_at, screening_id FROM patient_links WHERE link_id = $1",
            UUID(link["linkId"]),
        )
    finally:
        await conn.close()
    assert [r["channel"] for r in channels] == ["patient_reported"]
    assert channels[0]["actor"] == f"patient-link:{link['linkId']}"
    assert stored is not None
    assert stored["used_at"] is not None and stored["screening_id"] is not None
    assert link["token"].encode() not in bytes(stored["token_hash"])

    # The link does not work twice, and says what to do without revealing anything.
    again = post(server, "submit", {"token": link["token"], "answers": [0] * 9})
    unknown = post(server, "submit", {"token": "x" * 43, "answers": [0] * 9})
    assert again.status_code == unknown.status_code == 410
    assert again.json() == unknown.json()
    assert again.json()["error"]["code"] == "LINK_NOT_USABLE"
    assert "contact your clinic" in again.json()["error"]["message"]
    assert post(server, "questionnaire", {"token": link["token"]}).status_code == 410


async def test_bad_answers_write_nothing_and_leave_the_link_usable(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server)
    other = enrolled_patient(server, mrn="E2E-2")
    link = issue(server, team.care_manager, patientId=team.patient_id, instrument="GAD7")

    async def screenings() -> int:
        conn = await asyncpg.connect(db_dsn)
        try:
            count: int = await conn.fetchval(
                """SELECT count(*) FROM events
                   WHERE event_type = 'patient.screening_recorded'
                     AND stream_id = ANY($1::uuid[])""",
                [UUID(team.patient_id), UUID(other.patient_id)],
            )
        finally:
            await conn.close()
        return count

    out_of_range = post(server, "submit", {"token": link["token"], "answers": [0] * 6 + [4]})
    assert out_of_range.status_code == 422
    assert out_of_range.json()["error"]["code"] == "ANSWER_OUT_OF_RANGE"
    assert out_of_range.json()["error"]["field"] == "answers"
    too_few = post(server, "submit", {"token": link["token"], "answers": [0] * 9})
    assert too_few.json()["error"]["code"] == "WRONG_ANSWER_COUNT"
    for_another = post(
        server,
        "submit",
        {"token": link["token"], "patientId": other.patient_id, "answers": [0] * 7},
    )
    assert for_another.status_code == 422
    assert for_another.json()["error"] == {
        "code": "WRONG_PATIENT",
        "message": "this link is for another patient",
        "field": "patientId",
    }
    wrong_form = post(
        server, "submit", {"token": link["token"], "instrument": "phq9", "answers": [0] * 7}
    )
    assert wrong_form.json()["error"]["field"] == "instrument"
    assert await screenings() == 0

    # Still usable after refused answers.
    ok = post(server, "submit", {"token": link["token"], "answers": [0] * 7})
    assert ok.status_code == 201, ok.text
    assert await screenings() == 1


def test_only_the_care_team_issues_links_and_every_issue_is_audited(
    server: ServerProcess,
) -> None:
    team = enrolled_patient(server)
    stranger = server.token("care_manager", user=uuid4())
    refused = issue(server, stranger, patientId=team.patient_id, instrument="PHQ9")
    assert refused["__typename"] == "ForbiddenError", refused
    bad_hours = issue(
        server, team.care_manager, patientId=team.patient_id, instrument="PHQ9", validHours=0
    )
    assert bad_hours["code"] == "VALID_HOURS_OUT_OF_RANGE"
    assert bad_hours["field"] == "validHours"
    # The adult patient is outside PHQ-A's validated ages (11-17).
    too_old = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ_A")
    assert too_old["code"] == "INSTRUMENT_NOT_FOR_AGE" and too_old["field"] == "instrument"
    issued = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ9")
    trail = server.graphql(
        """query($id: UUID!) { auditTrail(patientId: $id) {
             ... on AuditTrail { entries { action actorId } } } }""",
        {"id": team.patient_id},
        token=server.token("compliance"),
    )
    assert "errors" not in trail, trail
    actions = [e["action"] for e in trail["data"]["auditTrail"]["entries"]]
    assert "issuePatientLink" in actions, actions
    assert issued["__typename"] == "PatientLinkPayload"


def _minor(server: ServerProcess, token: str, age: int = 15) -> str:
    today = datetime.now(UTC).date()
    born = today.replace(year=today.year - age) - timedelta(days=30)
    registered = command(
        server,
        "registerPatient",
        {"givenName": "Young", "familyName": "Person", "birthDate": born.isoformat(),
         "mrn": f"MINOR-{uuid4().hex[:8]}"},
        token,
        "... on PatientPayload { patient { id } }",
    )  # fmt: skip
    patient_id: str = registered["patient"]["id"]
    assert (
        command(server, "enrollPatient", {"patientId": patient_id}, token, "")["__typename"]
        == "PatientPayload"
    )
    return patient_id


async def test_a_minors_consent_comes_from_a_guardian_and_phq_a_and_asq_raise_the_safety_task(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager", user=uuid4())
    patient_id = _minor(server, cm)
    share = {"patientId": patient_id, "kind": "DATA_SHARING", "partnerOrganisationId": str(uuid4())}
    before = await event_count(db_dsn, patient_id)
    refused = command(server, "grantConsentGivenBy", share | {"givenBy": "PATIENT"}, cm, "")
    assert refused == {"__typename": "NotAllowedError", "code": "GUARDIAN_CONSENT_REQUIRED"}
    # The plain grantConsent, which does not say who gave it, is refused for a minor too.
    plain = command(server, "grantConsent", share, cm, "")
    assert plain == {"__typename": "NotAllowedError", "code": "GUARDIAN_CONSENT_REQUIRED"}
    no_details = command(server, "grantConsentGivenBy", share | {"givenBy": "GUARDIAN"}, cm, "")
    assert no_details["code"] == "GUARDIAN_DETAILS_REQUIRED"
    assert no_details["field"] == "relationship"
    assert await event_count(db_dsn, patient_id) == before
    given = command(
        server,
        "grantConsentGivenBy",
        share | {"givenBy": "GUARDIAN", "relationship": "PARENT", "giverName": "A Parent"},
        cm,
        "... on PatientPayload { createdId }",
    )
    assert given["__typename"] == "PatientPayload" and given["createdId"]
    assert await event_count(db_dsn, patient_id) == before + 2

    # PHQ-A answered by the adolescent: a yes to the past-month suicidal thoughts question
    # (item 12) is a safety alert even with item 9 at 0.
    phq_a = issue(server, cm, patientId=patient_id, instrument="PHQ_A")
    answered = post(server, "submit", {"token": phq_a["token"], "answers": [0] * 9 + [0, 0, 1, 0]})
    assert answered.status_code == 201, answered.text
    # ASQ through a link the guardian opens: a yes raises the same-day assessment too.
    asq = issue(server, cm, patientId=patient_id, instrument="ASQ", reporter="GUARDIAN")
    assert asq["reporter"] == "GUARDIAN"
    assert (
        post(server, "submit", {"token": asq["token"], "answers": [0, 1, 0, 0, 0]}).status_code
        == 201
    )
    # PHQ-A is for 11-17: out-of-range answers to its yes/no items are typed errors.
    again = issue(server, cm, patientId=patient_id, instrument="PHQ_A")
    bad = post(server, "submit", {"token": again["token"], "answers": [0] * 9 + [2, 0, 0, 0]})
    assert bad.json()["error"]["code"] == "ANSWER_OUT_OF_RANGE"

    page = worklist(server, cm)
    tasks = [
        e["node"]
        for e in page["edges"]
        if e["node"]["patientId"] == patient_id and e["node"]["kind"] == "TASK"
    ]
    assert [t["taskKind"] for t in tasks] == ["suicide_risk_assessment"] * 2, tasks
    assert {t["dueOn"] for t in tasks} == {datetime.now(UTC).date().isoformat()}
    conn = await asyncpg.connect(db_dsn)
    try:
        roles = await conn.fetch(
            """SELECT metadata->>'role' AS role FROM events
               WHERE stream_id = $1 AND event_type = 'patient.screening_recorded'
               ORDER BY stream_version""",
            UUID(patient_id),
        )
    finally:
        await conn.close()
    assert [r["role"] for r in roles] == ["patient", "guardian"]


async def test_a_measurement_reminder_is_emitted_when_due_and_refused_when_not(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server)
    created = "... on PatientPayload { createdId }"
    due = command(
        server,
        "remindMeasurement",
        {"patientId": team.patient_id, "instrument": "PHQ9"},
        team.care_manager,
        created,
    )
    assert due["__typename"] == "PatientPayload" and due["createdId"], due
    link = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ9")
    assert post(server, "submit", {"token": link["token"], "answers": [0] * 9}).status_code == 201
    before = await event_count(db_dsn, team.patient_id)
    not_due = command(
        server,
        "remindMeasurement",
        {"patientId": team.patient_id, "instrument": "PHQ9"},
        team.care_manager,
        created,
    )
    assert not_due == {"__typename": "NotAllowedError", "code": "MEASUREMENT_NOT_DUE"}
    assert await event_count(db_dsn, team.patient_id) == before
    conn = await asyncpg.connect(db_dsn)
    try:
        reminders = await conn.fetchval(
            """SELECT count(*) FROM events
               WHERE stream_id = $1 AND event_type = 'patient.measurement_reminder_due'""",
            UUID(team.patient_id),
        )
    finally:
        await conn.close()
    assert reminders == 1


ISSUE_SDQ = f"""mutation($input: IssueSdqLinkInput!) {{ issueSdqLink(input: $input) {{
  __typename ... on SdqLinkPayload {{ linkId token informant reporter }} {ERRORS}
}} }}"""


def issue_sdq(server: ServerProcess, token: str, **input: Any) -> dict[str, Any]:
    body = server.graphql(ISSUE_SDQ, {"input": input}, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["issueSdqLink"]
    return result


async def test_a_caregiver_answers_the_sdq_parent_form_and_wrong_form_items_are_refused(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager", user=uuid4())
    child = _minor(server, cm, age=8)
    # The self-report form is for 11-17; the parent form is answered by a caregiver.
    too_young = issue_sdq(server, cm, patientId=child, informant="SELF", reporter="PATIENT")
    assert too_young["code"] == "INSTRUMENT_NOT_FOR_AGE" and too_young["field"] == "informant"
    wrong_reporter = issue_sdq(server, cm, patientId=child, informant="PARENT", reporter="PATIENT")
    assert wrong_reporter["field"] == "reporter"
    link = issue_sdq(server, cm, patientId=child, informant="PARENT", reporter="CAREGIVER")
    assert link["__typename"] == "SdqLinkPayload", link
    opened = post(server, "questionnaire", {"token": link["token"]}).json()
    assert opened["itemCount"] == 25 and "home_life" in opened["impactItems"]

    before = await event_count(db_dsn, child)
    wrong_form = post(
        server,
        "submit",
        {"token": link["token"], "answers": [1] * 25, "impact": {"peer_relationships": 1}},
    )
    assert wrong_form.status_code == 422
    assert wrong_form.json()["error"]["code"] == "SDQ_ITEM_NOT_ON_FORM"
    assert wrong_form.json()["error"]["field"] == "answers.impact.peerRelationships"
    out_of_range = post(server, "submit", {"token": link["token"], "answers": [3] + [1] * 24})
    assert out_of_range.json()["error"]["code"] == "ANSWER_OUT_OF_RANGE"
    assert await event_count(db_dsn, child) == before
    answered = post(
        server, "submit", {"token": link["token"], "answers": [1] * 25, "impact": {"overall": 0}}
    )
    assert answered.status_code == 201, answered.text
    conn = await asyncpg.connect(db_dsn)
    try:
        row = await conn.fetchrow(
            """SELECT metadata->>'role' AS role, metadata->>'channel' AS channel FROM events
               WHERE stream_id = $1 AND event_type = 'patient.sdq_recorded'""",
            UUID(child),
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["role"], row["channel"]) == ("caregiver", "patient_reported")
    assert post(server, "submit", {"token": link["token"], "answers": [1] * 25}).status_code == 410

    # The registry row shows the latest SDQ: every item "somewhat true" is a total
    # difficulties of 20, "very high" (parent four bands: 20-40) and "abnormal" (three
    # bands: 17-40).
    query = """query($id: UUID!) { registryRow(patientId: $id) {
      latestSdq { informant totalDifficulties band category takenAt } } }"""
    deadline = time.monotonic() + 10
    while True:
        body = server.graphql(query, {"id": child}, token=cm)
        assert "errors" not in body, body
        sdq = body["data"]["registryRow"]["latestSdq"]
        if sdq is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sdq is not None
    assert {k: sdq[k] for k in ("informant", "totalDifficulties", "band", "category")} == {
        "informant": "PARENT",
        "totalDifficulties": 20,
        "band": "VERY_HIGH",
        "category": "ABNORMAL",
    }


async def test_an_expired_link_answers_like_a_used_one_and_writes_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server)
    link = issue(server, team.care_manager, patientId=team.patient_id, instrument="GAD7",
                 validHours=1)  # fmt: skip
    conn = await asyncpg.connect(db_dsn)
    try:
        # An hour and a second later (moved in the database: the server's clock is real).
        await conn.execute(
            """UPDATE patient_links SET issued_at = issued_at - interval '1 hour 1 second',
                                        expires_at = expires_at - interval '1 hour 1 second'
               WHERE link_id = $1""",
            UUID(link["linkId"]),
        )
    finally:
        await conn.close()
    before = await event_count(db_dsn, team.patient_id)
    expired = post(server, "submit", {"token": link["token"], "answers": [0] * 7})
    assert expired.status_code == 410
    assert expired.json()["error"] == {
        "code": "LINK_NOT_USABLE",
        "message": "This link can no longer be used. Please contact your clinic or care team "
        "for a new one.",
        "field": "token",
    }
    assert await event_count(db_dsn, team.patient_id) == before


FORGET = """mutation($id: UUID!) { forgetPatient(patientId: $id, reason: "erasure request") {
  __typename } }"""


async def _links_of(db_dsn: str, patient_id: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM patient_links WHERE patient_id = $1", UUID(patient_id)
        )
    finally:
        await conn.close()
    return count


async def test_an_erased_patients_links_stop_working_and_their_details_go(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn=f"LINK-ERASE-{uuid4().hex[:8]}")
    unused = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ9")
    used = issue(server, team.care_manager, patientId=team.patient_id, instrument="GAD7")
    answered = post(server, "submit", {"token": used["token"], "answers": [1] * 7})
    assert answered.status_code == 201, answered.text
    assert await _links_of(db_dsn, team.patient_id) == 2

    admin = server.token("admin")
    forgotten = server.graphql(FORGET, {"id": team.patient_id}, token=admin)
    assert forgotten["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", forgotten
    # No row keeps the patient, the questionnaire or who issued it.
    assert await _links_of(db_dsn, team.patient_id) == 0
    before = await event_count(db_dsn, team.patient_id)

    # The unused link now reads exactly as one never issued: what to do next, nothing else.
    never = post(server, "submit", {"token": "x" * 43, "answers": [0] * 9})
    for path, body in (
        ("questionnaire", {"token": unused["token"]}),
        ("submit", {"token": unused["token"], "answers": PHQ9_ITEM9_POSITIVE}),
        ("submit", {"token": used["token"], "answers": [0] * 7}),
    ):
        reply = post(server, path, body)
        assert reply.status_code == 410, (path, reply.text)
        assert reply.json() == never.json()
        assert reply.json()["error"]["code"] == "LINK_NOT_USABLE"
        assert "contact your clinic" in reply.json()["error"]["message"]
        assert team.patient_id not in reply.text
    assert await event_count(db_dsn, team.patient_id) == before

    # And no new link is issued for the forgotten patient.
    refused = issue(server, team.care_manager, patientId=team.patient_id, instrument="PHQ9")
    assert refused == {"__typename": "NotAllowedError", "code": "PATIENT_FORGOTTEN"}
    assert await _links_of(db_dsn, team.patient_id) == 0
