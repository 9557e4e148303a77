"""caseloadAsOf pages by cursor, over HTTP against a real server (issue #19 item 4).

Patients are seeded in bulk SQL (copies of one patient registered and enrolled over
HTTP, with synthetic identifying fields in clear), because 20,000 registrations through
the API would take longer than the test is worth; the query itself goes over HTTP.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.api.compliance.queries import caseload_as_of
from services.eventstore import row_to_event
from tests.e2e.server import DEFAULT_ORG, ServerProcess

REGISTER = """mutation { registerPatient(input: {givenName: "A", familyName: "B",
  birthDate: "1990-01-01", mrn: "T-0"}) { ... on PatientPayload { patient { id } } } }"""
ENROLL = "mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"
PAGE = """query($at: DateTime!, $first: Int!, $after: String, $cm: UUID) {
  caseloadAsOf(at: $at, first: $first, after: $after, careManagerId: $cm) { __typename
    ... on CaseloadAsOf { rows { patientId status careManagerId }
                          pageInfo { hasNextPage endCursor } }
    ... on ValidationError { code field } } }"""

_EVENT_COLUMNS = """position, tx_id::text::bigint AS tx_id, event_id, stream_id, stream_type,
    stream_version, patient_id, event_type, event_version, payload, metadata, occurred_at,
    recorded_at"""


async def _seed(db_dsn: str, template: UUID, count: int, managers: list[UUID]) -> list[UUID]:
    """``count`` copies of the template patient's stream in one transaction, each with its
    own id, synthetic identity in clear, and a care manager taken in turn from ``managers``
    (the copies' care team events and access rows name it)."""
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT * FROM events WHERE stream_id = $1 ORDER BY stream_version", template
        )
        ids = [uuid4() for _ in range(count)]
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "event_id stream_id stream_version patient_id event_type event_version "
                "payload metadata occurred_at"
            ).split()
        }
        for n, pid in enumerate(ids):
            manager = managers[n % len(managers)]
            for r in rows:
                payload = json.loads(r["payload"])
                if r["event_type"] == "patient.registered":
                    payload.update(
                        given_name="A", family_name="B", birth_date="1990-01-01", mrn=f"S-{n}"
                    )
                if "care_manager_id" in payload and payload["care_manager_id"] is not None:
                    payload["care_manager_id"] = str(manager)
                for key, value in (
                    ("event_id", uuid4()),
                    ("stream_id", pid),
                    ("stream_version", r["stream_version"]),
                    ("patient_id", pid),
                    ("event_type", r["event_type"]),
                    ("event_version", r["event_version"]),
                    ("payload", json.dumps(payload)),
                    ("metadata", r["metadata"]),
                    ("occurred_at", r["occurred_at"]),
                ):
                    cols[key].append(value)
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO streams (stream_id, stream_type, patient_id)
                   SELECT u, 'patient', u FROM unnest($1::uuid[]) u""",
                ids,
            )
            await conn.execute(
                """INSERT INTO rm_patient_access (patient_id, organisation_id, care_manager_id)
                   SELECT u.p, $2, u.m FROM unnest($1::uuid[], $3::uuid[]) AS u(p, m)""",
                ids,
                DEFAULT_ORG,
                [managers[n % len(managers)] for n in range(count)],
            )
            await conn.execute(
                """INSERT INTO events (event_id, stream_id, stream_type, stream_version,
                       patient_id, event_type, event_version, payload, metadata, occurred_at)
                   SELECT u.a, u.b, 'patient', u.c, u.d, u.e, u.f, u.g, u.h, u.i
                   FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::uuid[], $5::text[],
                               $6::int[], $7::jsonb[], $8::jsonb[], $9::timestamptz[])
                        AS u(a, b, c, d, e, f, g, h, i)""",
                *cols.values(),
            )
        return ids
    finally:
        await conn.close()


def _template(server: ServerProcess, token: str) -> UUID:
    pid = server.graphql(REGISTER, token=token)["data"]["registerPatient"]["patient"]["id"]
    assert server.graphql(ENROLL, {"id": pid}, token=token)["data"]["enrollPatient"]
    return UUID(pid)


def _page_through(
    server: ServerProcess, token: str, at: str, first: int, cm: UUID | None = None
) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    after = None
    for pages in range(1, 10_000):
        page = server.graphql(
            PAGE,
            {"at": at, "first": first, "after": after, "cm": cm and str(cm)},
            token=token,
        )["data"]["caseloadAsOf"]
        assert page["__typename"] == "CaseloadAsOf", page
        assert len(page["rows"]) <= first
        rows.extend(page["rows"])
        if not page["pageInfo"]["hasNextPage"]:
            return rows, pages
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("paging did not end")


async def _old_replay(db_dsn: str, at: datetime, cm: UUID | None, skip: UUID) -> list[str]:
    """The answer of the former whole-organisation replay (every patient event recorded by
    ``at``, in log order, through the same pure ``caseload_as_of``), in patient id order.
    The seeded identities are in clear, so no decryption is needed; ``skip`` (the template,
    whose identity is encrypted) is left out."""
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            f"""SELECT {_EVENT_COLUMNS} FROM events
                WHERE stream_type = 'patient' AND recorded_at <= $1 AND patient_id <> $2
                ORDER BY tx_id, position""",
            at,
            skip,
        )
    finally:
        await conn.close()
    records = []
    for r in rows:
        record = dict(r)
        record["payload"] = json.loads(record["payload"])
        record["metadata"] = json.loads(record["metadata"])
        records.append(row_to_event(record))  # type: ignore[arg-type]
    return sorted(str(r.patient_id) for r in caseload_as_of(records, at, cm))


async def test_small_pages_equal_the_old_whole_organisation_replay(
    server: ServerProcess, db_dsn: str
) -> None:
    cm_token = server.token("care_manager")
    template = _template(server, cm_token)
    managers = [uuid4(), uuid4(), uuid4()]
    seeded = await _seed(db_dsn, template, 40, managers)
    at = datetime.now(UTC)
    compliance = server.token("compliance")
    rows, pages = _page_through(server, compliance, at.isoformat(), 7)
    ids = [r["patientId"] for r in rows]
    assert ids == sorted(ids)
    # The template's events are encrypted, so the old replay is computed over the seeded
    # copies only; the template is the one row more over HTTP.
    assert [i for i in ids if i != str(template)] == await _old_replay(db_dsn, at, None, template)
    assert set(ids) == {str(p) for p in seeded} | {str(template)}
    assert pages == 6  # 41 rows, 7 a page
    one_manager, _ = _page_through(server, compliance, at.isoformat(), 4, managers[1])
    old = await _old_replay(db_dsn, at, managers[1], template)
    assert [r["patientId"] for r in one_manager] == old
    assert {r["careManagerId"] for r in one_manager} == {str(managers[1])}
    assert len(one_manager) == 13  # seeded copies 1, 4, ..., 37


async def test_pages_through_twenty_thousand_patients(server: ServerProcess, db_dsn: str) -> None:
    cm_token = server.token("care_manager")
    template = _template(server, cm_token)
    seeded = await _seed(db_dsn, template, 20_000, [uuid4()])
    at = datetime.now(UTC).isoformat()
    rows, pages = _page_through(server, server.token("compliance"), at, 500)
    assert len(rows) == 20_001
    assert pages == 41
    assert {r["patientId"] for r in rows} == {str(p) for p in seeded} | {str(template)}


def test_a_bad_page_size_or_cursor_is_a_typed_error(server: ServerProcess) -> None:
    token = server.token("compliance")
    at = datetime.now(UTC).isoformat()

    def cursor(when: str, after: object) -> str:
        return base64.urlsafe_b64encode(json.dumps({"at": when, "after": after}).encode()).decode()

    cases = (
        (0, None, "first"),
        (501, None, "first"),
        (5, "nope", "after"),
        (5, cursor(at, 5), "after"),
        (5, cursor("2020-01-01T00:00:00+00:00", str(uuid4())), "after"),
    )
    for first, after, field in cases:
        got = server.graphql(PAGE, {"at": at, "first": first, "after": after}, token=token)
        assert "errors" not in got, got
        assert got["data"]["caseloadAsOf"]["__typename"] == "ValidationError"
        assert got["data"]["caseloadAsOf"]["field"] == field
