"""Round trips to PostgreSQL per command, counted and pinned as an upper bound.

Every statement a command's request sends (authorisation, load, append, idempotency,
reading the answer, the read audit's team look-up) is counted with asyncpg's query
logger, on every pooled connection, for the statements sent from the request's own task
(a ContextVar marks it: asyncpg calls the logger with the caller's context). The
projector's page and the read audit's group-commit COPY run in their own tasks, shared
by concurrent requests, and are not counted. Nor is asyncpg's own type introspection
(``typeinfo_tree``), which a connection sends once the first time it meets a type, like the
statement preparation the warm-up command pays for. The numbers are in
docs/architecture.md.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.api.schema import build_schema
from services.auth import Principal, Role
from services.bootstrap import Runtime, open_runtime
from services.settings import Secret, Settings
from tests.integration.graphql_support import execute_as

ORG = uuid4()
CARE_MANAGER = Principal(uuid4(), Role.CARE_MANAGER, ORG)
SCHEMA = build_schema()

# The upper bounds pinned here (docs/architecture.md, 'Round trips per command').
MAX_RECORD_SCREENING = 3
MAX_LOG_CONTACT = 3
# The command's three: the directory's check rides in the load's statement with the
# policy's (services/api/access.py Rider).
MAX_ASSIGN_CARE_TEAM = 3

_IN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)

REGISTER = """mutation ($mrn: String!) { registerPatient(input: {givenName: "Ann",
  familyName: "Example", birthDate: "1980-01-02", mrn: $mrn}) {
  __typename ... on PatientPayload { patient { id } } } }"""
ENROLL = """mutation ($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }"""
SCREENING = """mutation ($id: UUID!) { recordScreening(input: {patientId: $id,
  instrument: PHQ9, answers: [1, 1, 1, 1, 1, 1, 1, 1, 0]}) {
  __typename ... on PatientPayload { logPosition patient { id } } } }"""
CONTACT = """mutation ($id: UUID!) { logContact(input: {patientId: $id,
  activityKind: CONTACT, modalityKind: PHONE, minutes: 20}) {
  __typename ... on PatientPayload { logPosition patient { id } } } }"""
ASSIGN = """mutation ($id: UUID!, $pcp: UUID!) { assignCareTeam(input: {patientId: $id,
  pcpId: $pcp}) { __typename ... on PatientPayload { logPosition patient { id } } } }"""


@pytest.fixture
async def runtime(db_dsn: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    # Every connection opened up front, so the logger is on each one the request may use.
    settings = Settings(
        database_url=Secret(db_dsn), data_dir=tmp_path, db_pool_min=6, db_pool_max=6
    )
    async with open_runtime(settings, run_relay=False) as rt:
        yield rt


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: Any) -> None:
        if _IN_REQUEST.get() and "typeinfo_tree" not in record.query:
            self.statements.append(record.query)


def install(runtime: Runtime, counter: Counter) -> None:
    holders = runtime.pool._holders
    connections = [h._con for h in holders if h._con is not None]
    assert len(connections) == len(holders)
    for conn in connections:
        conn.add_query_logger(counter)


async def execute(runtime: Runtime, query: str, **variables: Any) -> dict[str, Any]:
    return await execute_as(SCHEMA, runtime, CARE_MANAGER, query, **variables)


async def counted(runtime: Runtime, counter: Counter, query: str, **variables: Any) -> int:
    counter.statements.clear()
    token = _IN_REQUEST.set(True)
    try:
        data = await execute(runtime, query, **variables)
    finally:
        _IN_REQUEST.reset(token)
    assert next(iter(data.values()))["__typename"] == "PatientPayload", data
    return len(counter.statements)


async def test_a_command_takes_a_bounded_number_of_round_trips(runtime: Runtime) -> None:
    registered = await execute(runtime, REGISTER, mrn=f"MRN-{uuid4().hex[:8]}")
    patient_id = UUID(registered["registerPatient"]["patient"]["id"])
    await execute(runtime, ENROLL, id=str(patient_id))
    counter = Counter()
    install(runtime, counter)
    # A first screening warms caches (statement preparation); the second is counted.
    await counted(runtime, counter, SCREENING, id=str(patient_id))
    screening = await counted(runtime, counter, SCREENING, id=str(patient_id))
    contact = await counted(runtime, counter, CONTACT, id=str(patient_id))
    await counted(runtime, counter, ASSIGN, id=str(patient_id), pcp=str(uuid4()))
    assign = await counted(runtime, counter, ASSIGN, id=str(patient_id), pcp=str(uuid4()))
    print(f"round trips: recordScreening={screening} logContact={contact} assignCareTeam={assign}")
    print("\n".join(counter.statements))
    assert 0 < screening <= MAX_RECORD_SCREENING
    assert 0 < contact <= MAX_LOG_CONTACT
    assert 0 < assign <= MAX_ASSIGN_CARE_TEAM
