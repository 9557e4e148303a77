"""The organisation and its people over HTTP: names for ids, roles checked on care teams."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.e2e.journey import command
from tests.e2e.server import ServerProcess

OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000ff")

PUT = """mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) {
    __typename
    ... on StaffMember { userId displayName credentials roles active }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
} }"""

SET_ORG = """mutation($i: SetOrganisationInput!) { setOrganisation(input: $i) {
    __typename
    ... on Organisation { id name timeZone }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
} }"""

STAFF = """query($role: StaffRole, $prefix: String, $first: Int!, $after: String) {
  staff(role: $role, namePrefix: $prefix, first: $first, after: $after) {
    __typename
    ... on StaffConnection {
      totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { userId displayName roles } }
    }
    ... on ValidationError { code field }
    ... on ForbiddenError { code }
  }
}"""


def put(server: ServerProcess, admin: str, user: UUID, name: str, *roles: str) -> Any:
    body = server.graphql(
        PUT,
        {"i": {"userId": str(user), "displayName": name, "roles": list(roles)}},
        token=admin,
    )
    assert "errors" not in body, body
    return body["data"]["putStaffMember"]


def staff(server: ServerProcess, token: str, **variables: Any) -> Any:
    body = server.graphql(STAFF, {"first": 50, **variables}, token=token)
    assert "errors" not in body, body
    return body["data"]["staff"]


async def changes(db_dsn: str) -> int:
    conn = await asyncpg.connect(db_dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM directory_changes")
        return count
    finally:
        await conn.close()


async def test_an_admin_keeps_the_directory_and_everyone_reads_names_for_ids(
    server: ServerProcess, db_dsn: str
) -> None:
    """Organisation and staff are set by an admin; `me` and `staff` show names and roles."""
    admin = server.token("admin")
    saved = server.graphql(
        SET_ORG, {"i": {"name": "Riverside Clinic", "timeZone": "America/Los_Angeles"}}, token=admin
    )["data"]["setOrganisation"]
    assert saved["__typename"] == "Organisation" and saved["timeZone"] == "America/Los_Angeles"

    ana, ben, cy = uuid4(), uuid4(), uuid4()
    assert put(server, admin, ana, "Ana Ruiz", "PCP")["roles"] == ["PCP"]
    put(server, admin, ben, "Ben Okafor", "CARE_MANAGER")
    put(server, admin, cy, "Cy Álvarez", "PSYCHIATRIST", "PCP")
    assert await changes(db_dsn) == 4

    me = server.graphql(
        "{ me { userId role staff { displayName } organisation { name timeZone } } }",
        token=server.token("care_manager", user=ben),
    )["data"]["me"]
    assert me == {
        "userId": str(ben),
        "role": "CARE_MANAGER",
        "staff": {"displayName": "Ben Okafor"},
        "organisation": {"name": "Riverside Clinic", "timeZone": "America/Los_Angeles"},
    }

    reader = server.token("care_manager", user=ben)
    pcps = staff(server, reader, role="PCP")
    assert [e["node"]["displayName"] for e in pcps["edges"]] == ["Ana Ruiz", "Cy Álvarez"]
    assert staff(server, reader, prefix="an")["totalCount"] == 1
    first = staff(server, reader, first=2)
    assert first["pageInfo"]["hasNextPage"] and first["totalCount"] == 3
    rest = staff(server, reader, first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["displayName"] for e in rest["edges"]] == ["Cy Álvarez"]
    assert not rest["pageInfo"]["hasNextPage"]

    elsewhere = staff(server, server.token("admin", org=OTHER_ORG))
    assert elsewhere["totalCount"] == 0
    assert staff(server, server.token("partner")) == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }


async def test_bad_directory_input_names_the_field_and_writes_nothing(
    server: ServerProcess, db_dsn: str
) -> None:
    """A zone that is not IANA, an empty name, no roles, a partner role, a non-admin."""
    admin = server.token("admin")
    for data, field in (
        ({"name": "Clinic", "timeZone": "Pacific Time"}, "timeZone"),
        ({"name": "Clinic", "timeZone": "UTC+3"}, "timeZone"),
        ({"name": "  ", "timeZone": "UTC"}, "name"),
    ):
        refused = server.graphql(SET_ORG, {"i": data}, token=admin)["data"]["setOrganisation"]
        assert refused["__typename"] == "ValidationError" and refused["field"] == field, data
    assert put(server, admin, uuid4(), "Dee", *[])["field"] == "roles"
    assert put(server, admin, uuid4(), "Dee", "PARTNER")["field"] == "roles"
    assert put(server, admin, uuid4(), "", "PCP")["field"] == "displayName"
    assert put(server, server.token("care_manager"), uuid4(), "Dee", "PCP") == {
        "__typename": "ForbiddenError",
        "code": "ROLE_NOT_PERMITTED",
    }
    assert staff(server, admin, first=0)["field"] == "first"
    assert staff(server, admin, after="not-a-cursor")["field"] == "after"
    assert await changes(db_dsn) == 0


def test_a_care_team_role_goes_only_to_listed_staff_holding_it(server: ServerProcess) -> None:
    """Once the organisation lists its staff, a PCP slot takes only a listed, active PCP."""
    admin = server.token("admin")
    cm, pcp, not_pcp = uuid4(), uuid4(), uuid4()
    put(server, admin, cm, "Ben Okafor", "CARE_MANAGER")
    put(server, admin, pcp, "Ana Ruiz", "PCP")
    put(server, admin, not_pcp, "Eve Stone", "CARE_MANAGER")
    care_manager = server.token("care_manager", user=cm)
    patient = command(
        server,
        "registerPatient",
        {"givenName": "Test", "familyName": "Person", "birthDate": "1980-05-05", "mrn": "D-1"},
        care_manager,
        "... on PatientPayload { patient { id } }",
    )["patient"]["id"]
    payload = "... on PatientPayload { patient { careTeam { pcpId } } }"
    for wrong in (not_pcp, uuid4()):
        refused = command(
            server,
            "assignCareTeam",
            {"patientId": patient, "pcpId": str(wrong)},
            care_manager,
            payload,
        )
        assert refused == {
            "__typename": "ValidationError",
            "code": "NOT_IN_ROLE",
            "field": "pcpId",
        }
    # A caller the policy refuses learns nothing from the directory: the refusal, not
    # whether the person named holds the role (one statement decides both).
    outsider = uuid4()
    put(server, admin, outsider, "Sam Lee", "CARE_MANAGER")
    for named in (not_pcp, pcp):
        refused = command(
            server,
            "assignCareTeam",
            {"patientId": patient, "pcpId": str(named)},
            server.token("care_manager", user=outsider),
            payload,
        )
        assert (refused["__typename"], refused["code"]) == ("ForbiddenError", "NOT_ON_CARE_TEAM")
    done = command(
        server, "assignCareTeam", {"patientId": patient, "pcpId": str(pcp)}, care_manager, payload
    )
    assert done["patient"]["careTeam"]["pcpId"] == str(pcp)
    # The patient view carries the team's display names from the directory (issue 13), so
    # a portal need not look each colleague up; one not in the directory reads as null.
    names = server.graphql(
        """query($id: UUID!) { patient(id: $id) { ... on Patient { careTeam {
             careManagerName pcpName psychiatricConsultantName } } } }""",
        {"id": patient},
        token=care_manager,
    )["data"]["patient"]["careTeam"]
    assert names == {
        "careManagerName": "Ben Okafor",
        "pcpName": "Ana Ruiz",
        "psychiatricConsultantName": None,
    }
    enrolled = command(server, "enrollPatient", {"patientId": patient}, care_manager, "")
    assert enrolled["__typename"] == "PatientPayload", enrolled
    rows = server.graphql(
        "{ caseload { edges { node { patientId careManagerName pcpName } } } }",
        token=care_manager,
    )["data"]["caseload"]["edges"]
    assert [r["node"] for r in rows] == [
        {"patientId": patient, "careManagerName": "Ben Okafor", "pcpName": "Ana Ruiz"}
    ]
