"""Every field problem of an input at once, over HTTP (issue 13): one request with three bad
fields answers one ValidationError listing the three, as camelCase input paths, and writes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg

from tests.e2e.journey import enrolled_patient, event_count
from tests.e2e.server import ServerProcess

PROBLEMS = """... on ValidationError { code field message problems { field code message } }"""


def mutate(server: ServerProcess, operation: str, input: dict[str, Any], token: str) -> Any:
    input_type = operation[0].upper() + operation[1:] + "Input"
    document = (
        f"mutation($i: {input_type}!) {{ {operation}(input: $i) {{ __typename {PROBLEMS} }} }}"
    )
    body = server.graphql(document, {"i": input}, token=token)
    assert "errors" not in body, body
    return body["data"][operation]


async def all_events(db_dsn: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await conn.close()


async def directory_rows(db_dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM directory_changes"),
            await conn.fetchval("SELECT count(*) FROM staff"),
            await conn.fetchval("SELECT count(*) FROM organisations"),
        )
    finally:
        await conn.close()


def fields(result: Any) -> list[tuple[str, str]]:
    return [(p["field"], p["code"]) for p in result["problems"]]


async def test_register_patient_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    cm = server.token("care_manager")
    before = await all_events(db_dsn)
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    result = mutate(
        server,
        "registerPatient",
        {"givenName": "  ", "familyName": "Person", "birthDate": tomorrow, "mrn": ""},
        cm,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("givenName", "BLANK_VALUE"),
        ("mrn", "BLANK_VALUE"),
        ("birthDate", "INVALID_BIRTH_DATE"),
    ]
    # The first problem stays on top, as before (compatible with clients reading `field`).
    assert (result["field"], result["code"]) == ("givenName", "BLANK_VALUE")
    assert await all_events(db_dsn) == before


async def test_log_contact_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-1")
    before = await event_count(db_dsn, team.patient_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = mutate(
        server,
        "logContact",
        {
            "patientId": team.patient_id,
            "activityKind": "CONTACT",
            "minutes": 0,
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("occurredAt", "OCCURRED_IN_FUTURE"),
        ("modality", "MODALITY_REQUIRED"),
        ("minutes", "INVALID_MINUTES"),
    ]
    assert await event_count(db_dsn, team.patient_id) == before
    # One bad field is still one problem, the same as `code`/`field`.
    single = mutate(
        server,
        "logContact",
        {"patientId": team.patient_id, "activityKind": "CASE_REVIEW", "minutes": 0},
        team.care_manager,
    )
    assert fields(single) == [("minutes", "INVALID_MINUTES")]
    assert await event_count(db_dsn, team.patient_id) == before


async def test_record_screening_reports_time_and_answers_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    team = enrolled_patient(server, mrn="FP-2")
    before = await event_count(db_dsn, team.patient_id)
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = mutate(
        server,
        "recordScreening",
        {
            "patientId": team.patient_id,
            "instrument": "PHQ9",
            "answers": [0, 1, 2],
            "occurredAt": future,
        },
        team.care_manager,
    )
    assert result["__typename"] == "ValidationError", result
    assert [p["field"] for p in result["problems"]] == ["occurredAt", "answers"]
    assert await event_count(db_dsn, team.patient_id) == before


async def test_put_staff_member_reports_three_bad_fields_at_once(
    server: ServerProcess, db_dsn: str
) -> None:
    admin = server.token("admin")
    before = await directory_rows(db_dsn)
    result = mutate(
        server,
        "putStaffMember",
        {"userId": str(uuid4()), "displayName": " ", "credentials": "x" * 101, "roles": []},
        admin,
    )
    assert result["__typename"] == "ValidationError", result
    assert fields(result) == [
        ("displayName", "INVALID_TEXT"),
        ("credentials", "INVALID_TEXT"),
        ("roles", "INVALID_ROLES"),
    ]
    org = mutate(server, "setOrganisation", {"name": "", "timeZone": "Mars/Olympus"}, admin)
    assert fields(org) == [("name", "INVALID_TEXT"), ("timeZone", "UNKNOWN_TIME_ZONE")]
    assert await directory_rows(db_dsn) == before
