"""Part 2 segments and minimum-necessary masks over HTTP, with every decision audited."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.e2e.journey import CareTeam, command, enrolled_patient
from tests.e2e.server import ServerProcess

READ = """query($id: UUID!) { referral(id: $id) { __typename
  ... on Referral { id service reason } ... on ForbiddenError { code } } }"""
BREAK = """mutation($id: UUID!) { breakTheGlass(patientId: $id, reason: "Overdose in the ED",
  minutes: 30) { __typename } }"""
CONSENT = "... on PatientPayload { createdId }"


def sud_referral(server: ServerProcess, team: CareTeam, reason: str) -> str:
    made = command(
        server,
        "requestReferral",
        {
            "patientId": team.patient_id,
            "service": "SUBSTANCE_USE_TREATMENT",
            "reason": reason,
            "expectedBy": "2999-01-01",
        },
        team.care_manager,
        "... on ReferralPayload { referral { id reason } }",
    )
    referral_id: str = made["referral"]["id"]
    return referral_id


def reason_seen(server: ServerProcess, referral_id: str, token: str) -> Any:
    body = server.graphql(READ, {"id": referral_id}, token=token)
    assert "errors" not in body, body
    result = body["data"]["referral"]
    assert result["__typename"] == "Referral", result
    return result["reason"]


async def decisions(db_dsn: str, patient_id: str) -> list[tuple[str, str, str]]:
    """(reason, purpose, actor role) of the access log rows that record a segment decision."""
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            """SELECT reason, purpose_of_use, role FROM access_log
               WHERE patient_id = $1::uuid AND reason IN
                     ('PART2_WITHHELD', 'PART2_CONSENT', 'PART2_EMERGENCY', 'MASKED')
               ORDER BY id""",
            patient_id,
        )
    finally:
        await conn.close()
    return [(r["reason"], r["purpose_of_use"], r["role"]) for r in rows]


async def test_a_substance_use_referrals_reason_needs_part2_consent_or_the_glass(
    server: ServerProcess, db_dsn: str
) -> None:
    """Withheld without consent, shown with it, withheld after revocation, shown under
    break-the-glass (purpose ETREAT), never to compliance; each decision is in the log."""
    team = enrolled_patient(server)
    reason = "Alcohol use disorder, seeking detox."
    referral_id = sud_referral(server, team, reason)

    assert reason_seen(server, referral_id, team.pcp) is None
    other = command(
        server,
        "requestReferral",
        {
            "patientId": team.patient_id,
            "service": "PSYCHOTHERAPY",
            "reason": "Weekly therapy.",
            "expectedBy": "2999-01-01",
        },
        team.care_manager,
        "... on ReferralPayload { referral { id } }",
    )["referral"]["id"]
    assert reason_seen(server, other, team.pcp) == "Weekly therapy."

    consent = command(
        server,
        "grantConsent",
        {"patientId": team.patient_id, "kind": "PART2", "method": "WRITTEN"},
        team.care_manager,
        CONSENT,
    )["createdId"]
    assert reason_seen(server, referral_id, team.pcp) == reason

    command(
        server,
        "revokeConsent",
        {"patientId": team.patient_id, "consentId": consent},
        team.care_manager,
        CONSENT,
    )
    assert reason_seen(server, referral_id, team.pcp) is None

    outsider = server.token("psychiatrist")
    broke = server.graphql(BREAK, {"id": team.patient_id}, token=outsider)
    assert broke["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload", broke
    assert reason_seen(server, referral_id, outsider) == reason

    assert reason_seen(server, other, server.token("compliance")) is None

    logged = await decisions(db_dsn, team.patient_id)
    assert [(r, role) for r, _, role in logged] == [
        ("PART2_WITHHELD", "care_manager"),  # the request's own payload, before consent
        ("PART2_WITHHELD", "pcp"),
        ("PART2_CONSENT", "pcp"),
        ("PART2_WITHHELD", "pcp"),
        ("PART2_EMERGENCY", "psychiatrist"),
        ("MASKED", "compliance"),
    ]
    emergency = [p for r, p, _ in logged if r == "PART2_EMERGENCY"]
    assert emergency and all(p in ("ETREAT", "EMERGENCY") for p in emergency)


def test_the_audit_trail_shows_compliance_who_changed_a_referral_but_not_its_text(
    server: ServerProcess,
) -> None:
    """Minimum necessary in the trail: the write, its actor and kind, never the reason."""
    team = enrolled_patient(server)
    reason = "Opioid use disorder, buprenorphine induction."
    sud_referral(server, team, reason)
    trail = server.graphql(
        """query($id: UUID!) { auditTrail(patientId: $id, kinds: [WRITE]) {
             ... on AuditTrail { entries { action streamType changes } } } }""",
        {"id": team.patient_id},
        token=server.token("compliance"),
    )
    entries = trail["data"]["auditTrail"]["entries"]
    referral_writes = [e for e in entries if e["streamType"] == "referral"]
    assert referral_writes, entries
    assert all("reason" not in (e["changes"] or {}).get("after", {}) for e in referral_writes)
    assert reason not in str(trail)
