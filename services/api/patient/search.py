"""Finding patients (``searchPatients``) and the intake queue (``intakeQueue``).

Search: by MRN (exact, normalised as ``services/mrn_index.py``), birth date (exact) and
name (each token of the query a prefix of at least two characters of the given or family
name, case- and accent-insensitive), all criteria together. Identity is stored only
encrypted, so the criteria are turned into keyed digests (``services/patient_search.py``,
``services/mrn_index.py``) and matched in SQL; the results come from the patient view,
restricted in the same SQL to the patients the caller may read (the ``patient`` row of the
policy: the care team, compliance and admins of the organisation, break-the-glass). A
caller therefore finds exactly the patients ``patient(id:)`` would show them.

Audit: every patient returned is recorded as a read under ``searchPatients``; a search
that finds nothing is recorded once, without a patient (reason ``NO_MATCH``); a refused
search (bad input, a role that reads no patient) is recorded as denied with its code, and
writes nothing else. The criteria themselves are never recorded or logged.

Results are ordered by patient id (stable, and a cursor that carries no identity).

The intake queue: the organisation's patients registered or referred but not enrolled
(no episode started, or a new one referred), oldest registration first, for care managers
and admins (the ``intakeQueue`` row of the policy); each patient listed is audited.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from services.api.authz import Denied, allowed_relations, patient_scope_sql, record_access
from services.api.commanding import deny, record_reads, selected_fields
from services.api.context import CareteamContext
from services.api.enums import EpisodeStatus, member
from services.api.errors import ForbiddenError, ValidationError, result_union
from services.api.registry.types import RegistryPageInfo
from services.mrn_index import normalise_mrn
from services.patient_search import MIN_PREFIX, name_tokens

SEARCH = "searchPatients"
INTAKE = "intakeQueue"
# Search results are what the caller may read of each patient.
READ_AS = "patient"
MAX_PAGE = 100
MAX_NAME = 200
MAX_MRN = 64
NOT_FORGOTTEN = "NOT coalesce((v.doc->>'forgotten')::boolean, false)"


@strawberry.type(description="A patient found by a search or listed for intake.")
class PatientMatch:
    patient_id: UUID = strawberry.field(description="The patient.")
    display_name: str | None = strawberry.field(
        description="'Family, Given' as registered; null once forgotten."
    )
    given_name: str | None = strawberry.field(description="Given name.")
    family_name: str | None = strawberry.field(description="Family name.")
    birth_date: date | None = strawberry.field(description="Date of birth.")
    mrn: str | None = strawberry.field(description="Medical record number.")
    episode_status: EpisodeStatus | None = strawberry.field(
        description="Where the patient's episode stands; null when registered only."
    )
    registered_at: datetime | None = strawberry.field(description="When they were registered.")


@strawberry.type(description="One patient and its cursor.")
class PatientMatchEdge:
    cursor: str = strawberry.field(description="Opaque position of this row.")
    node: PatientMatch = strawberry.field(description="The patient.")


@strawberry.type(description="A page of patients.")
class PatientMatchConnection:
    edges: list[PatientMatchEdge] = strawberry.field(description="The patients on this page.")
    page_info: RegistryPageInfo = strawberry.field(description="Paging state.")


PatientSearchResult = Annotated[
    PatientMatchConnection | ValidationError | ForbiddenError,
    result_union("PatientSearchResult", "The patients found, or why the search was refused."),
]
IntakeQueueResult = Annotated[
    PatientMatchConnection | ValidationError | ForbiddenError,
    result_union("IntakeQueueResult", "A page of the intake queue, or why not."),
]


def _match(doc: dict[str, Any]) -> PatientMatch:
    given, family = doc.get("given_name"), doc.get("family_name")
    birth = doc.get("birth_date")
    registered = doc.get("registered_at")
    return PatientMatch(
        patient_id=UUID(doc["id"]),
        display_name=f"{family}, {given}" if given is not None and family is not None else None,
        given_name=given,
        family_name=family,
        birth_date=date.fromisoformat(birth) if birth else None,
        mrn=doc.get("mrn"),
        episode_status=member(EpisodeStatus, doc.get("status")),
        registered_at=datetime.fromisoformat(registered) if registered else None,
    )


def encode_cursor(parts: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def decode_cursor(cursor: str, kind: str, size: int) -> list[str] | None:
    """The cursor's parts after its kind, or None when it is not one of ours."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(parts, list) or len(parts) != size + 1 or parts[0] != kind:
        return None
    if not all(isinstance(p, str) for p in parts):
        return None
    return parts[1:]


async def _refuse(
    ctx: CareteamContext, operation: str, problem: ValidationError
) -> ValidationError:
    """Audits a refused request (its code only) and returns the typed error."""
    async with ctx.runtime.pool.acquire() as conn:
        await record_access(
            conn,
            principal=ctx.principal,
            operation=operation,
            patient_id=None,
            outcome="denied",
            reason=problem.code,
            purpose_of_use=ctx.purpose_of_use,
            request_id=ctx.request_id,
        )
    return problem


def _invalid(code: str, message: str, field: str | None) -> ValidationError:
    return ValidationError(code=code, message=message, field=field)


def _page_problem(first: int, after: str | None, kind: str, size: int) -> ValidationError | None:
    if not 1 <= first <= MAX_PAGE:
        return _invalid("INVALID_PAGE_SIZE", f"first must be 1 to {MAX_PAGE}", "first")
    if after is not None and decode_cursor(after, kind, size) is None:
        return _invalid("INVALID_CURSOR", "after is not a cursor of this query", "after")
    return None


def search_problem(
    mrn: str | None, birth_date: date | None, name: str | None, today: date
) -> ValidationError | None:
    """The first thing wrong with the criteria (never quoting them), or None."""
    if mrn is None and birth_date is None and name is None:
        return _invalid(
            "NO_CRITERIA", "give at least one of mrn, birthDate and name", "mrn, birthDate, name"
        )
    if mrn is not None and (not normalise_mrn(mrn) or len(mrn) > MAX_MRN):
        return _invalid("INVALID_MRN", f"mrn must be 1 to {MAX_MRN} characters", "mrn")
    if birth_date is not None and birth_date > today:
        return _invalid("BIRTH_DATE_IN_FUTURE", "birthDate is in the future", "birthDate")
    if name is not None:
        if len(name) > MAX_NAME:
            return _invalid("INVALID_NAME", f"name must be at most {MAX_NAME} characters", "name")
        tokens = name_tokens(name)
        if not tokens:
            return _invalid("INVALID_NAME", "name has no letters or digits", "name")
        if any(len(t) < MIN_PREFIX for t in tokens):
            return _invalid(
                "NAME_TOO_SHORT",
                f"each word of name needs at least {MIN_PREFIX} characters",
                "name",
            )
    return None


def _connection(docs: list[dict[str, Any]], first: int, cursor_of: Any) -> PatientMatchConnection:
    more = len(docs) > first
    edges = [PatientMatchEdge(cursor=cursor_of(d), node=_match(d)) for d in docs[:first]]
    return PatientMatchConnection(
        edges=edges,
        page_info=RegistryPageInfo(
            has_next_page=more, end_cursor=edges[-1].cursor if edges else None
        ),
    )


async def _audit(
    info: Info[CareteamContext, None], operation: str, connection: PatientMatchConnection
) -> None:
    ctx = info.context
    ids = [e.node.patient_id for e in connection.edges]
    if ids:
        await record_reads(ctx, operation, ids, selected_fields(info))
        return
    async with ctx.runtime.pool.acquire() as conn:
        await record_access(
            conn,
            principal=ctx.principal,
            operation=operation,
            patient_id=None,
            outcome="allowed",
            reason="NO_MATCH",
            purpose_of_use=ctx.purpose_of_use,
            request_id=ctx.request_id,
        )


@strawberry.type(description="Find patients, and the intake queue.")
class SearchQuery:
    @strawberry.field(
        description="Patients of your organisation you may read matching every criterion "
        "given: mrn exactly (spaces and case ignored), birthDate exactly, name as the start "
        "(2 characters or more) of a given or family name, each word of it, case and "
        "accents ignored. Each patient found is audited as a read; refusals are audited."
    )
    async def search_patients(
        self,
        info: Info[CareteamContext, None],
        mrn: str | None = None,
        birth_date: date | None = None,
        name: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> PatientSearchResult:
        ctx = info.context
        principal = ctx.require_principal()
        if not allowed_relations(READ_AS, principal.role):
            return await deny(ctx, Denied(SEARCH, "ROLE_NOT_PERMITTED"), None)
        problem = _page_problem(first, after, "s", 1) or search_problem(
            mrn, birth_date, name, ctx.runtime.clock().date()
        )
        if problem is not None:
            return await _refuse(ctx, SEARCH, problem)
        app = ctx.runtime.app
        if app.search_index is None or app.mrn_index is None:
            return _invalid("SEARCH_UNAVAILABLE", "search needs the server's keyring", None)
        org = principal.organisation_id
        params: list[Any] = [org]
        where = ["v.organisation_id = $1", NOT_FORGOTTEN]
        digests: list[bytes] = []
        if name is not None:
            digests += [app.search_index.name_digest(org, t) for t in name_tokens(name)]
        if birth_date is not None:
            digests.append(app.search_index.birth_date_digest(org, birth_date))
        for digest in dict.fromkeys(digests):
            params.append(digest)
            where.append(
                "v.key IN (SELECT patient_id FROM patient_search_index "
                f"WHERE organisation_id = $1 AND digest = ${len(params)})"
            )
        if mrn is not None:
            params.append(app.mrn_index.digest(org, mrn))
            where.append(
                "v.key IN (SELECT patient_id FROM patient_mrn_index "
                f"WHERE organisation_id = $1 AND mrn_digest = ${len(params)})"
            )
        if after is not None:
            position = decode_cursor(after, "s", 1)
            assert position is not None
            try:
                params.append(UUID(position[0]))
            except ValueError:
                return await _refuse(
                    ctx, SEARCH, _invalid("INVALID_CURSOR", "after is not a cursor", "after")
                )
            where.append(f"v.key > ${len(params)}")
        predicate, scope = patient_scope_sql(READ_AS, principal, "v.key", len(params) + 1)
        where.append(predicate)
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT v.doc FROM rm_patient_view v WHERE {" AND ".join(where)}
                    ORDER BY v.key LIMIT {first + 1}""",
                *params,
                *scope,
            )
        connection = _connection(
            [r["doc"] for r in rows], first, lambda d: encode_cursor(["s", d["id"]])
        )
        await _audit(info, SEARCH, connection)
        return connection

    @strawberry.field(
        description="Patients of your organisation registered or referred but not enrolled, "
        "oldest registration first (care managers and admins). Each patient listed is audited."
    )
    async def intake_queue(
        self,
        info: Info[CareteamContext, None],
        first: int = 20,
        after: str | None = None,
    ) -> IntakeQueueResult:
        ctx = info.context
        principal = ctx.require_principal()
        if not allowed_relations(INTAKE, principal.role):
            return await deny(ctx, Denied(INTAKE, "ROLE_NOT_PERMITTED"), None)
        if problem := _page_problem(first, after, "i", 2):
            return await _refuse(ctx, INTAKE, problem)
        registered = "(v.doc->>'registered_at')::timestamptz"
        params: list[Any] = [principal.organisation_id]
        where = [
            "v.organisation_id = $1",
            NOT_FORGOTTEN,
            "(v.doc->>'status' IS NULL OR v.doc->>'status' = 'referred')",
        ]
        if after is not None:
            position = decode_cursor(after, "i", 2)
            assert position is not None
            try:
                params += [datetime.fromisoformat(position[0]), UUID(position[1])]
            except ValueError:
                return await _refuse(
                    ctx, INTAKE, _invalid("INVALID_CURSOR", "after is not a cursor", "after")
                )
            where.append(f"({registered}, v.key) > (${len(params) - 1}, ${len(params)})")
        predicate, scope = patient_scope_sql(INTAKE, principal, "v.key", len(params) + 1)
        where.append(predicate)
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT v.doc FROM rm_patient_view v WHERE {" AND ".join(where)}
                    ORDER BY {registered}, v.key LIMIT {first + 1}""",
                *params,
                *scope,
            )
        connection = _connection(
            [r["doc"] for r in rows],
            first,
            lambda d: encode_cursor(["i", d["registered_at"], d["id"]]),
        )
        await _audit(info, INTAKE, connection)
        return connection
