"""assignCareTeam's directory check, decided in the policy's own statement (a ``Rider``,
services/api/access.py): in the load's statement without an Idempotency-Key, in the
authorise statement with one. Either way a person not listed in the slot's role is a
typed NOT_IN_ROLE that writes nothing and is not an access refusal, and a caller the
policy refuses is refused (audited) without learning anything from the directory."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

from services.api.context import CareteamContext
from services.api.schema import build_schema
from services.auth import Principal, Role
from services.bootstrap import Runtime

ORG = uuid4()
ADMIN = Principal(uuid4(), Role.ADMIN, ORG)
OUTSIDER = Principal(uuid4(), Role.CARE_MANAGER, ORG)
SCHEMA = build_schema()

REGISTER = """mutation ($mrn: String!) { registerPatient(input: {givenName: "Ann",
  familyName: "Example", birthDate: "1980-01-02", mrn: $mrn}) {
  __typename ... on PatientPayload { patient { id } } } }"""
ASSIGN = """mutation ($id: UUID!, $pcp: UUID, $cm: UUID) {
  assignCareTeam(input: {patientId: $id, pcpId: $pcp, careManagerId: $cm}) {
    __typename
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
    ... on PatientPayload { patient { careTeam { pcpId careManagerId } } } } }"""


async def assign(
    runtime: Runtime, principal: Principal, key: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {} if key is None else {"idempotency-key": key}
    context = CareteamContext(
        runtime=runtime, request=SimpleNamespace(headers=headers), principal=principal
    )
    result = await SCHEMA.execute(ASSIGN, variable_values=variables, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    answer: dict[str, Any] = result.data["assignCareTeam"]
    return answer


async def list_staff(runtime: Runtime, user_id: UUID, *roles: str, active: bool = True) -> None:
    async with runtime.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO staff (user_id, organisation_id, display_name, roles, active)
               VALUES ($1, $2, 'Someone', $3, $4)""",
            user_id,
            ORG,
            list(roles),
            active,
        )


async def state(runtime: Runtime, patient_id: UUID) -> tuple[int, int]:
    """The patient's events, and the access refusals recorded for assignCareTeam."""
    async with runtime.pool.acquire() as conn:
        events = await conn.fetchval(
            "SELECT count(*) FROM events WHERE patient_id = $1", patient_id
        )
        denied = await conn.fetchval(
            """SELECT count(*) FROM access_log
               WHERE operation = 'assignCareTeam' AND outcome = 'denied'"""
        )
    return int(events), int(denied)


async def test_the_directory_check_rides_in_the_policy_statement(runtime: Runtime) -> None:
    context = CareteamContext(runtime=runtime, request=None, principal=ADMIN)
    registered = await SCHEMA.execute(
        REGISTER, variable_values={"mrn": "MRN-R1"}, context_value=context
    )
    assert registered.data is not None, registered.errors
    patient = UUID(registered.data["registerPatient"]["patient"]["id"])
    pcp, not_pcp, inactive = uuid4(), uuid4(), uuid4()

    # Nobody listed yet: anyone may be named.
    anyone = await assign(runtime, ADMIN, id=str(patient), pcp=str(uuid4()))
    assert anyone["__typename"] == "PatientPayload", anyone

    await list_staff(runtime, pcp, "pcp")
    await list_staff(runtime, not_pcp, "care_manager")
    await list_staff(runtime, inactive, "pcp", active=False)
    before = await state(runtime, patient)
    for key in (None, "key-1", "key-2", "key-3"):  # the load's statement; the authorise one
        for wrong in (not_pcp, inactive, uuid4()):
            refused = await assign(runtime, ADMIN, key, id=str(patient), pcp=str(wrong))
            assert refused == {
                "__typename": "ValidationError",
                "code": "NOT_IN_ROLE",
                "field": "pcpId",
            }
        # The first slot in the input's order that fails is named.
        both = await assign(runtime, ADMIN, key, id=str(patient), pcp=str(pcp), cm=str(pcp))
        assert both == {
            "__typename": "ValidationError",
            "code": "NOT_IN_ROLE",
            "field": "careManagerId",
        }
    assert await state(runtime, patient) == before  # nothing written, no access refusal

    # A caller the policy refuses is refused (and audited), whatever the directory says.
    events, denied = before
    for named in (not_pcp, pcp):
        for key in (None, f"outsider-{named}"):
            refused = await assign(runtime, OUTSIDER, key, id=str(patient), pcp=str(named))
            assert refused == {"__typename": "ForbiddenError", "code": "NOT_ON_CARE_TEAM"}
    assert await state(runtime, patient) == (events, denied + 4)

    other_pcp = uuid4()
    await list_staff(runtime, other_pcp, "pcp", "psychiatrist")
    for key, named in ((None, pcp), ("key-ok", other_pcp)):
        done = await assign(runtime, ADMIN, key, id=str(patient), pcp=str(named), cm=str(not_pcp))
        assert done["__typename"] == "PatientPayload", done
        assert done["patient"]["careTeam"] == {"pcpId": str(named), "careManagerId": str(not_pcp)}
