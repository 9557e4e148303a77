"""Finding patients and the intake queue, over HTTP against a real server.

Names here are synthetic; every search is checked in ``access_log``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.e2e.journey import command, enrolled_patient
from tests.e2e.server import ServerProcess

OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000ee")

SEARCH = """query($mrn: String, $birthDate: Date, $name: String, $first: Int!, $after: String) {
  searchPatients(mrn: $mrn, birthDate: $birthDate, name: $name, first: $first, after: $after) {
    __typename
    ... on PatientMatchConnection {
      edges { cursor node { patientId displayName birthDate mrn } }
      pageInfo { hasNextPage endCursor }
    }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
  } }"""
INTAKE = """query($first: Int!, $after: String) { intakeQueue(first: $first, after: $after) {
    __typename
    ... on PatientMatchConnection {
      edges { cursor node { patientId episodeStatus registeredAt } }
      pageInfo { hasNextPage endCursor }
    }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
  } }"""
FORGET = """mutation($id: UUID!, $reason: String!) { forgetPatient(patientId: $id,
    reason: $reason) { __typename } }"""


def register(server: ServerProcess, token: str, given: str, family: str, mrn: str) -> str:
    made = command(
        server,
        "registerPatient",
        {"givenName": given, "familyName": family, "birthDate": "1981-02-03", "mrn": mrn},
        token,
        "... on PatientPayload { patient { id } }",
    )
    assert made["__typename"] == "PatientPayload", made
    patient_id: str = made["patient"]["id"]
    return patient_id


def search(server: ServerProcess, token: str, **criteria: Any) -> dict[str, Any]:
    variables = {"first": 20, **criteria}
    body = server.graphql(SEARCH, variables, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["searchPatients"]
    return result


def found(result: dict[str, Any]) -> list[str]:
    assert result["__typename"] == "PatientMatchConnection", result
    return [e["node"]["patientId"] for e in result["edges"]]


async def fetch(db_dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_care_manager_finds_their_patient_and_others_find_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    """MRN and name prefix (accents and case ignored) find the patient for the care team and
    compliance; a clinician of another organisation and one not on the team find nothing;
    each search is audited; once forgotten, nothing finds the patient and its rows are gone."""
    cm = server.token("care_manager", user=uuid4())
    pid = register(server, cm, "Zoë", "Éxampleton-Synthetic", "SRCH-001")
    other = register(server, cm, "Someone", "Otherfixture", "SRCH-002")

    by_mrn = search(server, cm, mrn=" srch-001 ")
    assert found(by_mrn) == [pid]
    node = by_mrn["edges"][0]["node"]
    assert node == {
        "patientId": pid,
        "displayName": "Éxampleton-Synthetic, Zoë",
        "birthDate": "1981-02-03",
        "mrn": "SRCH-001",
    }
    assert found(search(server, cm, name="exa")) == [pid]
    assert found(search(server, cm, name="ZOE")) == [pid]
    assert found(search(server, cm, name="zo synth")) == [pid]
    assert found(search(server, cm, name="zo", birthDate="1981-02-03")) == [pid]
    assert found(search(server, cm, name="zo", birthDate="1981-02-04")) == []
    assert found(search(server, cm, name="xampleton")) == []  # prefixes only
    assert sorted(found(search(server, cm, birthDate="1981-02-03"))) == sorted([pid, other])

    compliance = server.token("compliance")
    assert found(search(server, compliance, name="exa")) == [pid]
    elsewhere = server.token("care_manager", org=OTHER_ORG)
    assert found(search(server, elsewhere, mrn="SRCH-001")) == []
    assert found(search(server, elsewhere, name="exa")) == []
    not_on_team = server.token("pcp")
    assert found(search(server, not_on_team, mrn="SRCH-001")) == []
    assert found(search(server, not_on_team, name="exa")) == []
    partner = server.token("partner")
    assert search(server, partner, name="exa") == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }

    reads = await fetch(
        db_dsn,
        """SELECT patient_id, outcome, reason FROM access_log_entries
           WHERE operation = 'searchPatients' ORDER BY at""",
    )
    # Seven searches returned the patient (one of them the other patient too).
    assert sum(1 for r in reads if r["patient_id"] == UUID(pid)) == 7
    assert sum(1 for r in reads if r["patient_id"] == UUID(other)) == 1
    misses = [r for r in reads if r["patient_id"] is None and r["outcome"] == "allowed"]
    assert len(misses) == 6 and {r["reason"] for r in misses} == {"NO_MATCH"}
    assert [r["reason"] for r in reads if r["outcome"] == "denied"] == ["ROLE_NOT_PERMITTED"]

    admin = server.token("admin")
    forgot = server.graphql(FORGET, {"id": pid, "reason": "synthetic test erasure"}, token=admin)
    assert forgot["data"]["forgetPatient"]["__typename"] == "ForgetPatientPayload", forgot
    assert found(search(server, cm, mrn="SRCH-001")) == []
    assert found(search(server, admin, name="exa")) == []
    assert found(search(server, admin, birthDate="1981-02-03")) == [other]
    rows = await fetch(db_dsn, "SELECT 1 FROM patient_search_index WHERE patient_id = $1", pid)
    assert rows == []
    assert await fetch(db_dsn, "SELECT 1 FROM patient_search_index WHERE patient_id = $1", other)


async def test_bad_searches_are_refused_by_field_audited_and_write_nothing_else(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager")
    register(server, cm, "Zoë", "Éxampleton-Synthetic", "SRCH-010")
    events_before = await fetch(db_dsn, "SELECT count(*) FROM events")
    index_before = await fetch(db_dsn, "SELECT count(*) FROM patient_search_index")
    cases = [
        ({}, "NO_CRITERIA", "mrn, birthDate, name"),
        ({"name": "Z"}, "NAME_TOO_SHORT", "name"),
        ({"birthDate": "2999-01-01"}, "BIRTH_DATE_IN_FUTURE", "birthDate"),
        ({"name": "zo", "first": 0}, "INVALID_PAGE_SIZE", "first"),
        ({"name": "zo", "first": 101}, "INVALID_PAGE_SIZE", "first"),
        ({"name": "zo", "after": "garbage"}, "INVALID_CURSOR", "after"),
    ]
    for criteria, code, field in cases:
        assert search(server, cm, **criteria) == {
            "__typename": "ValidationError",
            "code": code,
            "field": field,
        }, criteria
    assert await fetch(db_dsn, "SELECT count(*) FROM events") == events_before
    assert await fetch(db_dsn, "SELECT count(*) FROM patient_search_index") == index_before
    refusals = await fetch(
        db_dsn,
        """SELECT reason FROM access_log WHERE operation = 'searchPatients'
           AND outcome = 'denied' AND patient_id IS NULL ORDER BY at""",
    )
    assert [r["reason"] for r in refusals] == [code for _, code, _ in cases]


async def test_the_intake_queue_lists_registered_not_enrolled_patients_oldest_first(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager")
    first = register(server, cm, "Alpha", "Intakefixture", "SRCH-020")
    second = register(server, cm, "Beta", "Intakefixture", "SRCH-021")
    enrolled = enrolled_patient(server, mrn="SRCH-022").patient_id

    another_cm = server.token("care_manager")  # not on any of these teams: the queue is org-wide
    page = server.graphql(INTAKE, {"first": 1}, token=another_cm)["data"]["intakeQueue"]
    assert page["__typename"] == "PatientMatchConnection", page
    assert [e["node"]["patientId"] for e in page["edges"]] == [first]
    assert page["edges"][0]["node"]["episodeStatus"] is None
    assert page["pageInfo"]["hasNextPage"] is True
    rest = server.graphql(
        INTAKE, {"first": 10, "after": page["pageInfo"]["endCursor"]}, token=another_cm
    )["data"]["intakeQueue"]
    assert [e["node"]["patientId"] for e in rest["edges"]] == [second]
    assert rest["pageInfo"]["hasNextPage"] is False
    admin_view = server.graphql(INTAKE, {"first": 10}, token=server.token("admin"))
    listed = [e["node"]["patientId"] for e in admin_view["data"]["intakeQueue"]["edges"]]
    assert listed == [first, second] and enrolled not in listed

    for role in ("pcp", "psychiatrist", "compliance", "partner"):
        refused = server.graphql(INTAKE, {"first": 10}, token=server.token(role))
        assert refused["data"]["intakeQueue"] == {
            "__typename": "ForbiddenError",
            "code": "ROLE_NOT_PERMITTED",
        }, role
    bad = server.graphql(INTAKE, {"first": 0}, token=cm)["data"]["intakeQueue"]
    assert bad == {"__typename": "ValidationError", "code": "INVALID_PAGE_SIZE", "field": "first"}

    rows = await fetch(
        db_dsn,
        "SELECT patient_id, outcome FROM access_log_entries WHERE operation = 'intakeQueue'",
    )
    allowed = [r["patient_id"] for r in rows if r["outcome"] == "allowed"]
    assert sorted(allowed) == sorted([UUID(first), UUID(second), UUID(first), UUID(second)])
    assert sum(1 for r in rows if r["outcome"] == "denied") == 5


BREAK = """mutation($id: UUID!, $reason: String!, $minutes: Int!) {
  breakTheGlass(patientId: $id, reason: $reason, minutes: $minutes) { __typename } }"""


async def test_a_clinician_off_the_team_finds_the_patient_only_under_break_the_glass(
    server: ServerProcess, db_dsn: str
) -> None:
    """The search follows the ``patient`` policy exactly: an emergency grant makes the
    patient findable by its holder, and that search is tagged for compliance's review."""
    cm = server.token("care_manager")
    pid = register(server, cm, "Glassfixture", "Synthetic", "SRCH-030")
    outsider_id = uuid4()
    outsider = server.token("psychiatrist", user=outsider_id)
    assert found(search(server, outsider, mrn="SRCH-030")) == []
    opened = server.graphql(
        BREAK, {"id": pid, "reason": "synthetic emergency", "minutes": 30}, token=outsider
    )
    assert opened["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload", opened
    assert found(search(server, outsider, mrn="SRCH-030")) == [pid]
    assert found(search(server, server.token("psychiatrist"), mrn="SRCH-030")) == []
    rows = await fetch(
        db_dsn,
        """SELECT reason FROM access_log WHERE operation = 'searchPatients'
           AND patient_id = $1 AND actor_id = $2""",
        UUID(pid),
        outsider_id,
    )
    assert [r["reason"] for r in rows] == ["BREAK_THE_GLASS"]
