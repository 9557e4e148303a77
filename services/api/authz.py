"""Authorisation: role x operation x relation, decided by SQL against rm_patient_access.

Relations:
- ``TEAM``: the caller is on the patient's care team (in the patient's organisation);
- ``ORG``: the caller belongs to the patient's organisation;
- ``OWN_ORG``: the operation creates something in the caller's own organisation.

The table below is the whole policy; tests/e2e/test_authorisation.py runs every row of
it against a live server, allowed and denied. Every denial is a typed error and a row in
``access_log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from services.auth import Principal, Role
from services.database import Conn

log = logging.getLogger("careteam.authz")


class Relation(Enum):
    TEAM = "team"
    ORG = "org"
    OWN_ORG = "own_org"


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    relation: Relation


def _g(relation: Relation, *roles: Role) -> Grant:
    return Grant(frozenset(roles), relation)


CM, PCP, PSY = Role.CARE_MANAGER, Role.PCP, Role.PSYCHIATRIST
COMP, ADMIN = Role.COMPLIANCE, Role.ADMIN

# operation -> the grants that allow it (any one suffices).
POLICY: dict[str, tuple[Grant, ...]] = {
    # Care managers and PCPs bring patients into collaborative care; an admin may too.
    "registerPatient": (_g(Relation.OWN_ORG, CM, PCP, ADMIN),),
    # The care manager builds the team; an admin may fix it.
    "assignCareTeam": (_g(Relation.TEAM, CM), _g(Relation.ORG, ADMIN)),
    "enrollPatient": (_g(Relation.TEAM, CM, PCP),),
    "startTreatment": (_g(Relation.TEAM, CM, PCP),),
    "recordScreening": (_g(Relation.TEAM, CM, PCP),),
    "logContact": (_g(Relation.TEAM, CM),),
    # Reading a patient: the care team; compliance and admins across their organisation.
    "patient": (_g(Relation.TEAM, CM, PCP, PSY), _g(Relation.ORG, COMP, ADMIN)),
    # What the team knew at an instant: the same readers as the patient itself.
    "patientAsOf": (_g(Relation.TEAM, CM, PCP, PSY), _g(Relation.ORG, COMP, ADMIN)),
    # The audit trail is compliance's: who did what, who looked.
    "auditTrail": (_g(Relation.ORG, COMP),),
}


def allowed_relations(operation: str, role: Role) -> set[Relation]:
    return {g.relation for g in POLICY[operation] if role in g.roles}


def patient_scope_sql(
    operation: str, principal: Principal, key: str, first: int
) -> tuple[str, list[object]]:
    """A SQL predicate restricting ``key`` (a patient id column) to what the caller may
    reach for ``operation``, and its parameters numbered from ``$first``."""
    relations = allowed_relations(operation, principal.role)
    org, user = f"${first}", f"${first + 1}"
    clauses = []
    if Relation.ORG in relations:
        clauses.append(f"a.organisation_id = {org}")
    if Relation.TEAM in relations:
        clauses.append(
            f"(a.organisation_id = {org} AND {user} IN "
            "(a.care_manager_id, a.pcp_id, a.psychiatric_consultant_id))"
        )
    if not clauses:
        return "FALSE", []
    predicate = (
        f"EXISTS (SELECT 1 FROM rm_patient_access a WHERE a.patient_id = {key} "
        f"AND ({' OR '.join(clauses)}))"
    )
    params: list[object] = [principal.organisation_id]
    if Relation.TEAM in relations:
        params.append(principal.user_id)
    return predicate, params


class Denied(Exception):
    """The caller may not do this; ``not_found`` hides patients of other organisations."""

    def __init__(self, operation: str, reason: str, *, not_found: bool = False) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.not_found = not_found


async def check_patient_operation(
    conn: Conn, principal: Principal, operation: str, patient_id: UUID
) -> None:
    """Raises Denied unless the caller may perform ``operation`` on ``patient_id``."""
    if not allowed_relations(operation, principal.role):
        raise Denied(operation, "ROLE_NOT_PERMITTED")
    predicate, params = patient_scope_sql(operation, principal, "$1", 3)
    row = await conn.fetchrow(
        f"""SELECT {predicate} AS allowed,
                   EXISTS (SELECT 1 FROM rm_patient_access a
                           WHERE a.patient_id = $1 AND a.organisation_id = $2) AS in_org""",
        patient_id,
        principal.organisation_id,
        *params,
    )
    assert row is not None
    if row["allowed"]:
        return
    if not row["in_org"]:
        raise Denied(operation, "PATIENT_NOT_IN_ORGANISATION", not_found=True)
    raise Denied(operation, "NOT_ON_CARE_TEAM")


def check_role(principal: Principal, operation: str) -> None:
    if not allowed_relations(operation, principal.role):
        raise Denied(operation, "ROLE_NOT_PERMITTED")


async def record_access(
    conn: Conn,
    *,
    principal: Principal | None,
    operation: str,
    patient_id: UUID | None,
    outcome: str,
    reason: str | None,
    purpose_of_use: str | None,
    request_id: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO access_log (actor_id, role, organisation_id, patient_id, operation,
                                   outcome, reason, purpose_of_use, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        principal.user_id if principal else None,
        principal.role.value if principal else None,
        principal.organisation_id if principal else None,
        patient_id,
        operation,
        outcome,
        reason,
        purpose_of_use,
        request_id,
    )
