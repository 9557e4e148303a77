"""The patient command result: the payload, its union, and the view it carries.

Kept apart from schema.py so that every module of patient mutations can use them
without importing the schema (which imports those modules).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import strawberry

from services.api.authz import patient_scope_sql
from services.api.context import CareteamContext
from services.api.errors import (
    CommandError,
    result_union,
)
from services.api.types import Patient


@strawberry.type(description="The patient after a successful command, already reflecting it.")
class PatientPayload:
    patient: Patient = strawberry.field(description="The patient's view including this change.")
    log_position: str = strawberry.field(description="Log position of the command's last event.")
    created_id: UUID | None = strawberry.field(
        default=None,
        description="The id of what the command created inside the patient record (a "
        "consent, flag, task, case review or relapse prevention plan); null when it "
        "created none.",
    )


PatientResult = Annotated[
    PatientPayload | CommandError,
    result_union("PatientResult", "A patient command's outcome."),
]


async def load_patient_view(ctx: CareteamContext, patient_id: UUID) -> tuple[Patient | None, bool]:
    """The patient's view if the caller may read it (the restriction is in the SQL), and
    whether the caller is on the patient's CoCM care team, from the same statement (the
    read audit's ``on_team``: a clinician reading off the team is break-the-glass)."""
    principal = ctx.require_principal()
    predicate, params = patient_scope_sql("patient", principal, "v.key", 3)
    async with ctx.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"""SELECT v.doc, EXISTS (SELECT 1 FROM rm_patient_access t
                                       WHERE t.patient_id = v.key AND $2 IN
                                       (t.care_manager_id, t.pcp_id, t.psychiatric_consultant_id))
                       AS on_team
                FROM rm_patient_view v WHERE v.key = $1 AND {predicate}""",
            patient_id,
            principal.user_id,
            *params,
        )
    if row is None:
        return None, False
    return Patient.from_doc(row["doc"]), bool(row["on_team"])
