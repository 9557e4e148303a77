"""Role x operation x relation: every row of the policy, allowed and denied, over HTTP."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import httpx

from services.api.authz import POLICY, Relation
from services.auth import Role
from tests.e2e.server import DEFAULT_ORG, ServerProcess

OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000ff")

RESULT = """__typename ... on ForbiddenError { code } ... on NotFoundError { code }"""

DOCUMENTS = {
    "registerPatient": (
        'mutation { registerPatient(input: {givenName: "A", familyName: "B", '
        f'birthDate: "1990-01-01", mrn: "M-1"}}) {{ {RESULT} }} }}'
    ),
    # Re-assigns the same PCP, so the team never changes under the table.
    "assignCareTeam": (
        "mutation($id: UUID!, $pcp: UUID) { assignCareTeam(input: {patientId: $id, "
        f"pcpId: $pcp}}) {{ {RESULT} }} }}"
    ),
    "enrollPatient": (
        f"mutation($id: UUID!) {{ enrollPatient(input: {{patientId: $id}}) {{ {RESULT} }} }}"
    ),
    "startTreatment": (
        f"mutation($id: UUID!) {{ startTreatment(input: {{patientId: $id}}) {{ {RESULT} }} }}"
    ),
    "recordScreening": (
        "mutation($id: UUID!) { recordScreening(input: {patientId: $id, instrument: GAD7, "
        f"answers: [0,0,0,0,0,0,0]}}) {{ {RESULT} }} }}"
    ),
    "logContact": (
        'mutation($id: UUID!) { logContact(input: {patientId: $id, activity: "contact", '
        f'modality: "phone", minutes: 5}}) {{ {RESULT} }} }}'
    ),
    "patient": f"query($id: UUID!) {{ patient(id: $id) {{ {RESULT} }} }}",
}


def expected(operation: str, role: Role, relation: str) -> bool:
    """What the policy says for a caller of ``role`` standing in ``relation`` to the patient."""
    for grant in POLICY[operation]:
        if role not in grant.roles:
            continue
        if grant.relation is Relation.OWN_ORG:
            return True
        if grant.relation is Relation.ORG and relation in ("team", "org"):
            return True
        if grant.relation is Relation.TEAM and relation == "team":
            return True
    return False


def outcome(server: ServerProcess, operation: str, token: str, patient_id: str, pcp: UUID) -> bool:
    """True when the call got past authorisation (success or a domain error)."""
    variables = {"id": patient_id}
    if operation == "assignCareTeam":
        variables["pcp"] = str(pcp)
    body = server.graphql(DOCUMENTS[operation], variables, token=token)
    assert "errors" not in body, body
    data = body["data"][operation]
    return data["__typename"] not in ("ForbiddenError", "NotFoundError")


async def test_every_role_operation_and_relation_is_allowed_or_denied_as_the_policy_says(
    server: ServerProcess, db_dsn: str
) -> None:
    """The care team acts; same-organisation outsiders and other organisations are refused."""
    team = {Role.CARE_MANAGER: uuid4(), Role.PCP: uuid4(), Role.PSYCHIATRIST: uuid4()}
    cm = server.token("care_manager", user=team[Role.CARE_MANAGER])
    created = server.graphql(
        'mutation { registerPatient(input: {givenName: "A", familyName: "B", '
        'birthDate: "1990-01-01", mrn: "M-0"}) { ... on PatientPayload { patient { id } } } }',
        token=cm,
    )
    patient_id = created["data"]["registerPatient"]["patient"]["id"]
    assign = server.graphql(
        "mutation($id: UUID!, $pcp: UUID!, $psy: UUID!) { assignCareTeam(input: {patientId: $id,"
        " pcpId: $pcp, psychiatricConsultantId: $psy}) { __typename } }",
        {"id": patient_id, "pcp": str(team[Role.PCP]), "psy": str(team[Role.PSYCHIATRIST])},
        token=cm,
    )
    assert assign["data"]["assignCareTeam"]["__typename"] == "PatientPayload"
    server.graphql(DOCUMENTS["enrollPatient"], {"id": patient_id}, token=cm)

    mismatches = []
    denied: dict[str, int] = {}
    for operation in DOCUMENTS:
        for role in Role:
            for relation in ("team", "org", "other"):
                user = team.get(role, uuid4()) if relation == "team" else uuid4()
                org = OTHER_ORG if relation == "other" else DEFAULT_ORG
                token = server.token(role.value, user=user, org=org)
                want = expected(operation, role, relation)
                got = outcome(server, operation, token, patient_id, team[Role.PCP])
                denied[operation] = denied.get(operation, 0) + (not got)
                if got != want:
                    mismatches.append(
                        f"{operation} {role.value} {relation}: got {got}, want {want}"
                    )
    assert mismatches == []

    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT operation, count(*) AS n FROM access_log WHERE outcome = 'denied' "
            "GROUP BY operation"
        )
    finally:
        await conn.close()
    assert {r["operation"]: r["n"] for r in rows} == {k: v for k, v in denied.items() if v}


def test_requests_without_a_valid_token_get_401_and_a_typed_error(server: ServerProcess) -> None:
    """No token, a garbage token, and a token from a stranger's key are all refused."""
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        response = httpx.post(
            f"{server.url}/graphql", json={"query": "{ __typename }"}, headers=headers
        )
        assert response.status_code == 401
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
