"""Helpers for end-to-end journeys: a patient with a full care team, and command calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.e2e.server import ServerProcess

ERRORS = """
    ... on ValidationError { code field }
    ... on InvalidTransitionError { code }
    ... on NotFoundError { code }
    ... on NotAllowedError { code }
    ... on ConflictError { code }
    ... on ForbiddenError { code }
"""


@dataclass(frozen=True)
class CareTeam:
    """A registered, enrolled patient and the tokens of the three people on their team."""

    patient_id: str
    care_manager_id: UUID
    pcp_id: UUID
    psychiatrist_id: UUID
    care_manager: str
    pcp: str
    psychiatrist: str


def command(
    server: ServerProcess, operation: str, input: dict[str, Any], token: str, payload: str
) -> dict[str, Any]:
    """Runs ``operation`` with ``input`` (its input type is ``<Operation>Input``); returns
    the result, with ``payload`` selected on success and the code of any typed error."""
    input_type = operation[0].upper() + operation[1:] + "Input"
    document = (
        f"mutation($input: {input_type}!) {{ {operation}(input: $input) "
        f"{{ __typename {payload} {ERRORS} }} }}"
    )
    body = server.graphql(document, {"input": input}, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][operation]
    return result


def enrolled_patient(server: ServerProcess, *, mrn: str = "E2E-1") -> CareTeam:
    """A care manager registers a patient, completes the team and enrolls them."""
    cm_id, pcp_id, psy_id = uuid4(), uuid4(), uuid4()
    cm = server.token("care_manager", user=cm_id)
    registered = command(
        server,
        "registerPatient",
        {"givenName": "Test", "familyName": "Person", "birthDate": "1980-05-05", "mrn": mrn},
        cm,
        "... on PatientPayload { patient { id } }",
    )
    patient_id = registered["patient"]["id"]
    team = command(
        server,
        "assignCareTeam",
        {"patientId": patient_id, "pcpId": str(pcp_id), "psychiatricConsultantId": str(psy_id)},
        cm,
        "",
    )
    assert team["__typename"] == "PatientPayload", team
    enrolled = command(server, "enrollPatient", {"patientId": patient_id}, cm, "")
    assert enrolled["__typename"] == "PatientPayload", enrolled
    return CareTeam(
        patient_id=patient_id,
        care_manager_id=cm_id,
        pcp_id=pcp_id,
        psychiatrist_id=psy_id,
        care_manager=cm,
        pcp=server.token("pcp", user=pcp_id),
        psychiatrist=server.token("psychiatrist", user=psy_id),
    )


async def event_count(db_dsn: str, stream_id: str) -> int:
    """How many events the record has in the log."""
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1", UUID(stream_id)
        )
    finally:
        await conn.close()
    return count
