"""Idempotency keys over HTTP: a retried command writes once; a reused key is a conflict."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.journey import CareTeam, enrolled_patient, event_count
from tests.e2e.server import ServerProcess

LOG_CONTACT = """mutation($input: LogContactInput!) { logContact(input: $input) {
    __typename
    ... on PatientPayload { logPosition patient { contactCount minutesTotal } }
    ... on ValidationError { code field }
    ... on ConflictError { code }
} }"""


def log_contact(
    server: ServerProcess, team: CareTeam, minutes: int, key: str | None, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token or team.care_manager}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    variables = {
        "input": {
            "patientId": team.patient_id,
            "activity": "contact",
            "modality": "phone",
            "minutes": minutes,
        }
    }
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": LOG_CONTACT, "variables": variables},
        headers=headers,
        timeout=30,
    )
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["logContact"]
    return result


async def test_the_same_log_contact_sent_twice_with_one_key_counts_its_minutes_once(
    server: ServerProcess, db_dsn: str
) -> None:
    """The repeat answers with the first result (same log position) and writes nothing."""
    team = enrolled_patient(server)
    before = await event_count(db_dsn, team.patient_id)
    first = log_contact(server, team, 25, "retry-7f3a")
    again = log_contact(server, team, 25, "retry-7f3a")
    assert first["__typename"] == again["__typename"] == "PatientPayload"
    assert again["logPosition"] == first["logPosition"]
    assert again["patient"]["minutesTotal"] == first["patient"]["minutesTotal"] == 25
    assert again["patient"]["contactCount"] == 1
    assert await event_count(db_dsn, team.patient_id) == before + 1

    other = log_contact(server, team, 10, "retry-8b1c")
    assert other["patient"]["minutesTotal"] == 35
    assert await event_count(db_dsn, team.patient_id) == before + 2


async def test_a_key_reused_with_another_input_is_a_conflict_and_writes_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    """Same key, different minutes: a typed conflict, never a silent replay."""
    team = enrolled_patient(server)
    log_contact(server, team, 25, "visit-1")
    before = await event_count(db_dsn, team.patient_id)
    reused = log_contact(server, team, 30, "visit-1")
    assert reused == {"__typename": "ConflictError", "code": "IDEMPOTENCY_KEY_REUSED"}
    assert await event_count(db_dsn, team.patient_id) == before


def create_task(server: ServerProcess, team: CareTeam, key: str) -> dict[str, Any]:
    """The PCP creates an outreach task, sending ``key`` as the idempotency key."""
    body: dict[str, Any] = httpx.post(
        f"{server.url}/graphql",
        json={
            "query": "mutation($i: CreateTaskInput!) { createTask(input: $i) { __typename } }",
            "variables": {
                "i": {"patientId": team.patient_id, "kind": "OUTREACH", "dueOn": "2999-01-01"}
            },
        },
        headers={"Authorization": f"Bearer {team.pcp}", "Idempotency-Key": "shared-key"},
        timeout=30,
    ).json()
    return body


async def test_keys_belong_to_one_caller_and_malformed_keys_are_refused(
    server: ServerProcess, db_dsn: str
) -> None:
    """Another user's identical key is another key; an empty or over-long key names the
    header in a validation error and nothing is written."""
    team = enrolled_patient(server)
    log_contact(server, team, 5, "shared-key")
    task = create_task(server, team, "shared-key")
    assert task["data"]["createTask"]["__typename"] == "PatientPayload", task
    before = await event_count(db_dsn, team.patient_id)
    for bad in ("x" * 256, "has space"):
        refused = log_contact(server, team, 5, bad)
        assert refused == {
            "__typename": "ValidationError",
            "code": "IDEMPOTENCY_KEY_INVALID",
            "field": "Idempotency-Key",
        }
    assert await event_count(db_dsn, team.patient_id) == before


async def test_concurrent_repeats_with_one_key_write_exactly_once(
    server: ServerProcess, db_dsn: str
) -> None:
    """Eight copies of one request sent at once: one command in the log, one answer for all."""
    team = enrolled_patient(server)
    before = await event_count(db_dsn, team.patient_id)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: log_contact(server, team, 15, "burst-1"), range(8)))
    assert {r["__typename"] for r in results} == {"PatientPayload"}
    assert len({r["logPosition"] for r in results}) == 1
    assert await event_count(db_dsn, team.patient_id) == before + 1
