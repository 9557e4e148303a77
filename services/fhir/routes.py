"""The FHIR R4 HTTP surface under ``/fhir``: thin routes over careteam's records.

What it reads: the patient view (Patient, CareTeam, EpisodeOfCare, QuestionnaireResponse,
Observation, Consent), the referral tracker (ServiceRequest), care plan aggregates
(CarePlan, Goal; as the GraphQL API, which has no care plan read model either), the event
log's metadata (Provenance) and the access log (AuditEvent, compliance only). The mapping
to resources is services.fhir.mapping (pure); this module authorises, loads and answers.

Another face of the same read models as the GraphQL API, not a side door: the same
bearer tokens (the app's TokenVerifier), the same policy rows (``patient``, and
``auditTrail`` for AuditEvent, in POLICY, enforced in SQL), the same denial records
(``record_access``) and the same read audit (``record_reads``: a response is sent only
after the read of every patient in it is recorded). Errors are OperationOutcomes: 400 for
an unsupported or malformed parameter, 401 without a valid token, 403 for a role that may
not read these records or a clinician of the organisation who is not on the patient's
team, 404 for an unknown id and for a patient of another organisation. No message carries
patient data.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final
from uuid import UUID, uuid4

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from domain.care_plan import CarePlan
from services.api import segments
from services.api.authz import (
    Denied,
    check_patient_operation,
    check_role,
    patient_scope_sql,
    record_access,
)
from services.api.commanding import Written, record_reads, run
from services.api.context import CareteamContext
from services.api.errors import (
    ConflictError,
    ForbiddenError,
    InvalidTransitionError,
    NotAllowedError,
    NotFoundError,
    ValidationError,
)
from services.auth import AuthenticationError, Principal, TokenVerifier, bearer_token
from services.bootstrap import Runtime
from services.commands.commands import RecordScreening
from services.crypto import KeyRing
from services.eventstore import EventMetadata
from services.fhir import import_job, importing, inbound, jobs, mapping
from services.fhir.capability import (
    FORMAT_PARAMETERS,
    JSON_FORMATS,
    SEARCH_PARAMETERS,
    capability_statement,
)

log = logging.getLogger("careteam.fhir")

MEDIA_TYPE = "application/fhir+json"
# The policy row every FHIR read is authorised under: reading a patient; the access log
# (AuditEvent) is compliance's, under the audit trail's row.
READ_OPERATION = "patient"
AUDIT_OPERATION = "auditTrail"


def _operation_for(resource_type: str) -> str:
    return AUDIT_OPERATION if resource_type == "AuditEvent" else READ_OPERATION


# A parameter name is echoed in an error only this long (it is caller input).
MAX_ECHO = 64

# Bulk Data $export: the resource types an export holds (AuditEvent is compliance's own
# and Provenance is read per patient) and the output formats accepted. Jobs are kept in
# PostgreSQL (services/fhir/jobs.py).
EXPORT_TYPES: Final = (
    "Patient",
    "CareTeam",
    "EpisodeOfCare",
    "QuestionnaireResponse",
    "Observation",
    "Consent",
    "CarePlan",
    "Goal",
    "ServiceRequest",
)
NDJSON_FORMATS: Final = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
# Patients whose export lines are stored per transaction.
EXPORT_BATCH: Final = 20


class FhirResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class FhirContext(CareteamContext):
    """The request context; events written through FHIR say so in their metadata."""

    def metadata(self, *, purpose_of_use: str | None = None) -> EventMetadata:
        return replace(super().metadata(purpose_of_use=purpose_of_use), channel="fhir")


# The largest request body accepted (a QuestionnaireResponse is a few KiB).
MAX_BODY_BYTES: Final = 64 * 1024
JSON_TYPES: Final = frozenset({"application/fhir+json", "application/json"})


def _keyring(ctx: CareteamContext) -> KeyRing:
    """The keys that seal export lines; a process without them cannot export (every
    server careteam starts has one)."""
    keyring = ctx.runtime.store.keyring
    if keyring is None:
        raise Refusal(500, "exception", "this server has no keyring, so it cannot export")
    return keyring


class Refusal(Exception):
    """Stops a request with an OperationOutcome (``status``, issue ``code``, message)."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression
        self.headers = dict(headers or {})

    def response(self) -> FhirResponse:
        headers = dict(self.headers)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return FhirResponse(
            mapping.operation_outcome(self.code, self.diagnostics, expression=self.expression),
            status_code=self.status,
            headers=headers,
        )


def _echo(name: str) -> str:
    return name if len(name) <= MAX_ECHO else name[:MAX_ECHO] + "..."


def _parameters(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The request's parameters, each allowed at most once; a 400 names any other."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in FORMAT_PARAMETERS:
            if value not in JSON_FORMATS:
                raise Refusal(
                    400, "not-supported", "_format: only JSON is supported", expression=name
                )
            continue
        if name not in allowed:
            raise Refusal(
                400,
                "not-supported",
                f"unsupported search parameter: {_echo(name)}",
                expression=_echo(name),
            )
        if name in found:
            raise Refusal(400, "invalid", f"{name}: give it once", expression=name)
        found[name] = value
    return found


def _patient_reference(name: str, value: str) -> UUID:
    """``Patient/<id>`` or ``<id>`` as a patient id; a 400 naming ``name`` otherwise."""
    raw = value.removeprefix("Patient/")
    try:
        return UUID(raw)
    except ValueError:
        raise Refusal(
            400, "value", f"{name}: expected Patient/<id> or <id> with a UUID id", expression=name
        ) from None


def _instant(name: str, value: str) -> datetime:
    """A FHIR instant (a date-time with seconds and its offset); a 400 naming ``name``."""
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None or len(value) < 20:
        raise Refusal(400, "value", f"{name}: expected an instant with its offset", expression=name)
    return found


def _uuid_id(value: str) -> UUID | None:
    """A logical id that is a UUID, or None (such an id names nothing here)."""
    try:
        return UUID(value)
    except ValueError:
        return None


class FhirApi:
    """The handlers; ``runtime`` returns the running process's resources (None while
    starting)."""

    def __init__(self, runtime: Callable[[], Runtime | None], verifier: TokenVerifier) -> None:
        self._runtime = runtime
        self._verifier = verifier
        self._started = datetime.now(UTC).isoformat(timespec="seconds")
        # This process's running jobs (their state is in PostgreSQL; the tasks are held
        # here so that they are not collected, and so that DELETE can cancel one).
        self._tasks: dict[str, asyncio.Task[None]] = {}
        try:
            self._version = metadata.version("careteam")
        except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
            self._version = "0"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/metadata", self.capabilities, methods=["GET"]),
            Route("/Patient/$export", self.export_kickoff, methods=["GET"]),
            Route("/Group/{id}/$export", self.export_kickoff, methods=["GET"]),
            Route("/$import", self.import_kickoff, methods=["POST"]),
            Route("/$import-status/{job}", self.import_status, methods=["GET"]),
            Route("/$export-status/{job}", self.export_status, methods=["GET", "DELETE"]),
            Route("/$export-file/{job}/{name}", self.export_file, methods=["GET"]),
            Route("/Patient/{id}/$everything", self.everything, methods=["GET"]),
            Route("/QuestionnaireResponse", self.create_questionnaire_response, methods=["POST"]),
            Route("/{type}/{id}", self.read, methods=["GET"]),
            Route("/{type}", self.search, methods=["GET"]),
        ]

    # --- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}/fhir"

    async def _context(self, request: Request, operation: str = READ_OPERATION) -> CareteamContext:
        runtime = self._runtime()
        if runtime is None:
            raise Refusal(503, "transient", "the server is starting")
        token = bearer_token(request.headers.get("authorization"))
        reason = "MISSING_TOKEN"
        principal: Principal | None = None
        if token is not None:
            try:
                principal = await self._verifier.verify(token)
            except AuthenticationError as exc:
                reason = exc.reason
        if principal is None:
            log.info("fhir authentication failed reason=%s", reason)
            raise Refusal(401, "login", "authentication required: send a valid bearer token")
        ctx = FhirContext(runtime=runtime, request=request, principal=principal)
        try:
            check_role(principal, operation)
        except Denied as denied:
            await self._record_denial(ctx, denied, None)
            raise Refusal(403, "forbidden", "this role may not read these records") from None
        return ctx

    async def _record_denial(
        self, ctx: CareteamContext, denied: Denied, patient_id: UUID | None
    ) -> None:
        async with ctx.runtime.pool.acquire() as conn:
            await record_access(
                conn,
                principal=ctx.principal,
                operation=denied.operation,
                patient_id=patient_id,
                outcome="denied",
                reason=denied.reason,
                purpose_of_use=ctx.purpose_of_use,
                request_id=ctx.request_id,
            )
        log.info("fhir read refused reason=%s", denied.reason)

    async def _visible(self, ctx: CareteamContext, where: str, *args: Any) -> list[dict[str, Any]]:
        """Patient view documents matching ``where`` (parameters $1..) that the caller may
        read; the restriction is the policy's, in SQL."""
        predicate, params = patient_scope_sql(
            READ_OPERATION, ctx.require_principal(), "v.key", len(args) + 1
        )
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT v.doc FROM rm_patient_view v WHERE {where} AND {predicate}",
                *args,
                *params,
            )
        return [r["doc"] for r in rows]

    async def _refuse(
        self,
        ctx: CareteamContext,
        patient_id: UUID | None,
        what: str,
        operation: str = READ_OPERATION,
    ) -> Refusal:
        """Why a patient's record was not found among the visible ones: a clinician of the
        organisation off the team gets 403 (audited), anyone else 404 (another
        organisation's patient is indistinguishable from no patient; audited too)."""
        if patient_id is not None:
            try:
                async with ctx.runtime.pool.acquire() as conn:
                    await check_patient_operation(
                        conn, ctx.require_principal(), operation, patient_id
                    )
            except Denied as denied:
                await self._record_denial(ctx, denied, patient_id)
                if not denied.not_found:
                    return Refusal(403, "forbidden", "not on this patient's care team")
        return Refusal(404, "not-found", f"no {what} with this id")

    async def _patient_doc(self, ctx: CareteamContext, patient_id: UUID) -> dict[str, Any]:
        docs = await self._visible(ctx, "v.key = $1", patient_id)
        if not docs:
            raise await self._refuse(ctx, patient_id, "Patient")
        return docs[0]

    async def _doc_holding(
        self, ctx: CareteamContext, array: str, item_id: UUID, what: str
    ) -> dict[str, Any]:
        """The visible patient document whose ``array`` holds an entry with ``item_id``."""
        probe = [{"id": str(item_id)}]
        docs = await self._visible(ctx, f"v.doc->'{array}' @> $1::jsonb", probe)
        if docs:
            return docs[0]
        async with ctx.runtime.pool.acquire() as conn:
            owner: UUID | None = await conn.fetchval(
                f"SELECT key FROM rm_patient_view WHERE doc->'{array}' @> $1::jsonb LIMIT 1",
                probe,
            )
        raise await self._refuse(ctx, owner, what)

    async def _owner_doc(
        self, ctx: CareteamContext, sql: str, record_id: UUID
    ) -> dict[str, Any] | None:
        """The visible patient document of the patient ``sql`` names for ``record_id``
        (None when there is no such record; a refusal when the patient is not visible)."""
        async with ctx.runtime.pool.acquire() as conn:
            owner: UUID | None = await conn.fetchval(sql, record_id)
        if owner is None:
            return None
        return await self._patient_doc(ctx, owner)

    async def _referral(self, ctx: CareteamContext, referral_id: UUID) -> dict[str, Any] | None:
        """One referral's tracker document, once its patient is known to be visible."""
        doc = await self._owner_doc(
            ctx, "SELECT patient_id FROM rm_referral_tracker WHERE key = $1", referral_id
        )
        if doc is None:
            return None
        async with ctx.runtime.pool.acquire() as conn:
            found: dict[str, Any] | None = await conn.fetchval(
                "SELECT doc FROM rm_referral_tracker WHERE key = $1", referral_id
            )
        if found is None:
            return None
        return await segments.referral_document(ctx, "fhir.ServiceRequest", found)

    async def _referrals(self, ctx: CareteamContext, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """A visible patient's referrals, oldest first."""
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT doc FROM rm_referral_tracker WHERE patient_id = $1
                   ORDER BY doc->>'requested_at', key""",
                UUID(doc["id"]),
            )
        return [
            await segments.referral_document(ctx, "fhir.ServiceRequest", r["doc"]) for r in rows
        ]

    async def _plan(self, ctx: CareteamContext, plan_id: UUID) -> dict[str, Any] | None:
        """One care plan as a document, once its patient is known to be visible (care plans
        have no read model: the GraphQL API, too, answers from the aggregate)."""
        doc = await self._owner_doc(
            ctx,
            "SELECT patient_id FROM streams WHERE stream_id = $1 AND stream_type = 'care_plan'",
            plan_id,
        )
        if doc is None:
            return None
        plan = mapping.care_plan_doc(await ctx.runtime.app.load(CarePlan, plan_id))
        return await segments.care_plan_document(ctx, "fhir.CarePlan", plan)

    async def _plans(self, ctx: CareteamContext, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """A visible patient's care plans, oldest first."""
        async with ctx.runtime.pool.acquire() as conn:
            ids = await conn.fetch(
                """SELECT stream_id FROM streams
                   WHERE patient_id = $1 AND stream_type = 'care_plan'
                   ORDER BY created_at, stream_id""",
                UUID(doc["id"]),
            )
        return [
            await segments.care_plan_document(
                ctx,
                "fhir.CarePlan",
                mapping.care_plan_doc(await ctx.runtime.app.load(CarePlan, r["stream_id"])),
            )
            for r in ids
        ]

    async def _audit_patient(self, ctx: CareteamContext, patient_id: UUID | None) -> UUID:
        """The patient whose access log the caller may read (compliance, in SQL), or the
        refusal (404 for another organisation or no such patient, 403 otherwise)."""
        if patient_id is not None:
            try:
                async with ctx.runtime.pool.acquire() as conn:
                    await check_patient_operation(
                        conn, ctx.require_principal(), AUDIT_OPERATION, patient_id
                    )
                return patient_id
            except Denied:
                pass
        raise await self._refuse(ctx, patient_id, "AuditEvent", AUDIT_OPERATION)

    async def _access_rows(
        self, ctx: CareteamContext, where: str, *values: object
    ) -> list[dict[str, Any]]:
        """Access log entries, one per patient: a read of several patients is one row
        naming them all, and each is its own AuditEvent, ``<row>-<place in the list>``
        (a row of one patient keeps its number alone), naming only its own patient."""
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT id, part, at, actor_id, role, patient_id, operation, outcome,
                           reason, purpose_of_use, fields
                    FROM access_log_entries WHERE {where} ORDER BY id, part""",
                *values,
            )
        return [
            {
                **dict(r),
                "id": f"{r['id']}-{r['part']}" if r["part"] else str(r["id"]),
                "at": r["at"].isoformat(),
                "actor_id": None if r["actor_id"] is None else str(r["actor_id"]),
                "patient_id": str(r["patient_id"]),
                "fields": list(r["fields"]),
            }
            for r in rows
        ]

    async def _exported_ids(self, ctx: CareteamContext, doc: dict[str, Any]) -> set[str]:
        """``Type/id`` of every resource served for a visible patient."""
        resources = mapping.everything(
            doc, referrals=await self._referrals(ctx, doc), plans=await self._plans(ctx, doc)
        )
        return {f"{r['resourceType']}/{r['id']}" for r in resources}

    async def _events(
        self, ctx: CareteamContext, where: str, value: object
    ) -> list[dict[str, Any]]:
        async with ctx.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT event_id, stream_id, stream_version, patient_id, event_type, payload,
                           metadata, occurred_at, recorded_at
                    FROM events WHERE {where} ORDER BY position""",
                value,
            )
        return [
            {
                **dict(r),
                "event_id": str(r["event_id"]),
                "stream_id": str(r["stream_id"]),
                "patient_id": str(r["patient_id"]),
                "occurred_at": r["occurred_at"].isoformat(),
                "recorded_at": r["recorded_at"].isoformat(),
            }
            for r in rows
        ]

    async def _answer(
        self,
        ctx: CareteamContext,
        interaction: str,
        patient_id: UUID,
        body: dict[str, Any],
        types: Sequence[str],
    ) -> FhirResponse:
        """Records the read of ``patient_id`` (durably, before answering) and answers."""
        await record_reads(ctx, f"fhir:{interaction}", [patient_id], tuple(sorted(set(types))))
        return FhirResponse(body)

    # --- handlers ---------------------------------------------------------------------

    async def capabilities(self, request: Request) -> Response:
        """The CapabilityStatement; no token needed (it holds no patient data)."""
        try:
            _parameters(request, ())
        except Refusal as refusal:
            return refusal.response()
        return FhirResponse(
            capability_statement(
                date=self._started, base_url=self._base(request), software_version=self._version
            )
        )

    async def read(self, request: Request) -> Response:
        resource_type: str = request.path_params["type"]
        raw_id: str = request.path_params["id"]
        try:
            if resource_type not in SEARCH_PARAMETERS:
                raise Refusal(404, "not-supported", "resource type not supported")
            _parameters(request, ())
            ctx = await self._context(request, _operation_for(resource_type))
            resource, patient_id = await self._read(ctx, resource_type, raw_id)
            return await self._answer(ctx, "read", patient_id, resource, (resource_type,))
        except Refusal as refusal:
            return refusal.response()

    async def _read(
        self, ctx: CareteamContext, resource_type: str, raw_id: str
    ) -> tuple[dict[str, Any], UUID]:
        missing = Refusal(404, "not-found", f"no {resource_type} with this id")
        resource: dict[str, Any] | None = None
        if resource_type == "EpisodeOfCare":
            patient_part, _, _number = raw_id.rpartition("-")
            patient_id = _uuid_id(patient_part)
            if patient_id is None:
                raise missing
            doc = await self._patient_doc(ctx, patient_id)
            if mapping.episode_id(doc) == raw_id:
                resource = mapping.episode_of_care(doc)
            if resource is None:
                raise missing
            return resource, patient_id
        if resource_type == "AuditEvent":
            row_id, dash, part = raw_id.partition("-")
            if not _audit_event_number(row_id) or (dash and not _audit_event_number(part)):
                raise missing
            entry = (int(row_id), int(part) if dash else 0)
            async with ctx.runtime.pool.acquire() as conn:
                owner: UUID | None = await conn.fetchval(
                    "SELECT patient_id FROM access_log_entries WHERE id = $1 AND part = $2",
                    *entry,
                )
            patient_id = await self._audit_patient(ctx, owner)
            (row,) = await self._access_rows(ctx, "id = $1 AND part = $2", *entry)
            return mapping.audit_event(row), patient_id
        if resource_type == "Provenance":
            event_id = _uuid_id(raw_id)
            holder = None
            if event_id is not None:
                holder = await self._owner_doc(
                    ctx, "SELECT patient_id FROM events WHERE event_id = $1", event_id
                )
            if holder is None:
                raise missing
            (event,) = await self._events(ctx, "event_id = $1", event_id)
            resource = mapping.provenance(event, await self._exported_ids(ctx, holder))
            if resource is None:
                raise missing
            return resource, UUID(holder["id"])
        if resource_type == "Goal":
            parts = mapping.split_goal_id(raw_id)
            plan = None if parts is None else await self._plan(ctx, UUID(parts[0]))
            if plan is None:
                raise missing
            resource = next((g for g in mapping.goals(plan) if g["id"] == raw_id), None)
            if resource is None:
                raise missing
            return resource, UUID(plan["patient_id"])
        item_id = _uuid_id(raw_id)
        if item_id is None:
            raise missing
        if resource_type == "CarePlan":
            plan = await self._plan(ctx, item_id)
            if plan is None:
                raise missing
            return mapping.care_plan(plan), UUID(plan["patient_id"])
        if resource_type == "ServiceRequest":
            referral = await self._referral(ctx, item_id)
            if referral is None:
                raise missing
            return mapping.service_request(referral), UUID(referral["patient_id"])
        if resource_type in ("Patient", "CareTeam"):
            doc = await self._patient_doc(ctx, item_id)
            resource = (
                mapping.patient(doc) if resource_type == "Patient" else mapping.care_team(doc)
            )
        elif resource_type in ("Observation", "QuestionnaireResponse"):
            doc = await self._doc_holding(ctx, "screenings", item_id, resource_type)
            screening = next(s for s in doc["screenings"] if s["id"] == str(item_id))
            if resource_type == "Observation":
                resource = mapping.observation(doc, screening)
            elif not mapping.total_only(screening):
                resource = mapping.questionnaire_response(doc, screening)
            else:  # an imported total has no answers to serve
                resource = None
        else:  # Consent
            doc = await self._doc_holding(ctx, "consents", item_id, resource_type)
            granted = next(c for c in doc["consents"] if c["id"] == str(item_id))
            resource = mapping.consent(doc, granted)
        if resource is None:
            raise missing
        return resource, UUID(doc["id"])

    async def search(self, request: Request) -> Response:
        resource_type: str = request.path_params["type"]
        try:
            allowed = SEARCH_PARAMETERS.get(resource_type)
            if allowed is None:
                raise Refusal(404, "not-supported", "resource type not supported")
            params = _parameters(request, tuple(allowed))
            key = "_id" if resource_type == "Patient" else "patient"
            if key not in params:
                raise Refusal(
                    400,
                    "required",
                    f"{key}: this search needs it (one patient at a time)",
                    expression=key,
                )
            patient_id = _patient_reference(key, params[key])
            ctx = await self._context(request, _operation_for(resource_type))
            if resource_type == "AuditEvent":
                await self._audit_patient(ctx, patient_id)
                rows = await self._access_rows(
                    ctx, "patient_id = $1 AND listed @> ARRAY[$1]::uuid[]", patient_id
                )
                bundle = mapping.searchset(
                    self._base(request), str(request.url), [mapping.audit_event(r) for r in rows]
                )
                return await self._answer(ctx, "search", patient_id, bundle, (resource_type,))
            doc = await self._patient_doc(ctx, patient_id)
            if resource_type == "Provenance":
                exported = await self._exported_ids(ctx, doc)
                events = await self._events(ctx, "patient_id = $1", patient_id)
                found = (mapping.provenance(e, exported) for e in events)
                resources = [p for p in found if p is not None]
            elif resource_type == "ServiceRequest":
                resources = [mapping.service_request(r) for r in await self._referrals(ctx, doc)]
            elif resource_type in ("CarePlan", "Goal"):
                plans = await self._plans(ctx, doc)
                if resource_type == "CarePlan":
                    resources = [mapping.care_plan(p) for p in plans]
                else:
                    resources = [g for p in plans for g in mapping.goals(p)]
            else:
                resources = _of_type(doc, resource_type)
            bundle = mapping.searchset(self._base(request), str(request.url), resources)
            return await self._answer(ctx, "search", patient_id, bundle, (resource_type,))
        except Refusal as refusal:
            return refusal.response()

    # --- FHIR in: a QuestionnaireResponse is a screening -------------------------------

    async def create_questionnaire_response(self, request: Request) -> Response:
        """``POST /fhir/QuestionnaireResponse``: records the screening through the same
        command, policy row (``recordScreening``) and rules as GraphQL's recordScreening;
        201 with the stored resource, or an OperationOutcome (nothing written)."""
        try:
            _parameters(request, ())
            ctx = await self._context(request, "recordScreening")
            body = await _json_body(request)
            try:
                screening = inbound.screening_input(body)
            except inbound.InboundError as exc:
                raise Refusal(
                    400, "invalid", f"{exc.expression}: {exc.message}", expression=exc.expression
                ) from None
            screening_id = uuid4()
            command = RecordScreening(
                patient=screening.patient_id,
                instrument=screening.instrument,
                answers=tuple(screening.answers),
                occurred_at=screening.occurred_at,
                screening_id=screening_id,
            )
            written = await run(ctx, command)
            if not isinstance(written, Written):
                raise _command_refusal(written)
            doc = await self._patient_doc(ctx, screening.patient_id)
            stored = next(s for s in doc["screenings"] if s["id"] == str(screening_id))
            resource = mapping.questionnaire_response(doc, stored)
        except Refusal as refusal:
            return refusal.response()
        await record_reads(ctx, "fhir:create", [screening.patient_id], ("QuestionnaireResponse",))
        location = f"{self._base(request)}/QuestionnaireResponse/{screening_id}"
        return FhirResponse(resource, status_code=201, headers={"Location": location})

    # --- Bulk Data $export (asynchronous request pattern) ---------------------------------

    async def export_kickoff(self, request: Request) -> Response:
        """``Patient/$export`` (every patient the caller may read) or ``Group/{id}/$export``
        (a Group is an organisation's caseload: its id is the organisation's; only the
        caller's own organisation exists, any other id is 404), one NDJSON file per
        resource type; ``_since`` keeps the patients with a change recorded after it.
        Answers 202 with the status URL in Content-Location."""
        try:
            params = _parameters(request, ("_type", "_outputFormat", "_since"))
            prefer = request.headers.get("prefer", "")
            if "respond-async" not in prefer.lower():
                raise Refusal(
                    400, "required", "Prefer: respond-async is required", expression="Prefer"
                )
            fmt = params.get("_outputFormat", "application/fhir+ndjson")
            if fmt not in NDJSON_FORMATS:
                raise Refusal(
                    400, "not-supported", "_outputFormat: only NDJSON", expression="_outputFormat"
                )
            types: tuple[str, ...] = EXPORT_TYPES
            if "_type" in params:
                asked = tuple(t.strip() for t in params["_type"].split(",") if t.strip())
                unknown = [t for t in asked if t not in EXPORT_TYPES]
                if unknown or not asked:
                    raise Refusal(
                        400,
                        "not-supported",
                        f"_type: supported types are {', '.join(EXPORT_TYPES)}",
                        expression="_type",
                    )
                types = asked
            since = _instant("_since", params["_since"]) if "_since" in params else None
            ctx = await self._context(request)
            keyring = _keyring(ctx)
            group = request.path_params.get("id")
            if group is not None and _uuid_id(group) != ctx.require_principal().organisation_id:
                raise Refusal(404, "not-found", "no Group with this id")
        except Refusal as refusal:
            return refusal.response()
        principal = ctx.require_principal()
        owner = (principal.user_id, principal.organisation_id)
        where, args = "TRUE", list[Any]()
        if group is not None:
            where, args = "v.organisation_id = $1", [principal.organisation_id]
        if since is not None:
            args.append(since)
            where += (
                " AND EXISTS (SELECT 1 FROM events e WHERE e.patient_id = v.key"
                f" AND e.recorded_at > ${len(args)})"
            )
        job_id = secrets.token_urlsafe(18)
        detail = {
            "request": str(request.url),
            "transactionTime": datetime.now(UTC).isoformat(),
            "types": list(types),
        }
        pool = ctx.runtime.pool
        await jobs.create(pool, job_id=job_id, kind="export", owner=owner, detail=detail)
        build = self._build_export(ctx, keyring, job_id, types, where, args)
        self._start(job_id, jobs.run(pool, job_id, build))
        status_url = f"{self._base(request)}/$export-status/{job_id}"
        return Response(status_code=202, headers={"Content-Location": status_url})

    def _start(self, job_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def _build_export(
        self,
        ctx: CareteamContext,
        keyring: KeyRing,
        job_id: str,
        types: Sequence[str],
        where: str,
        args: Sequence[Any],
    ) -> None:
        """Maps every visible patient to resources and stores the lines of the asked
        types, a batch of patients per transaction, sealed with each patient's key."""
        pool = ctx.runtime.pool
        docs = sorted(await self._visible(ctx, where, *args), key=lambda d: d["id"])
        async with pool.acquire() as conn:
            await conn.execute("UPDATE fhir_jobs SET total = $2 WHERE id = $1", job_id, len(docs))
        wanted = set(types)
        next_seq: dict[str, int] = {}
        batch: list[jobs.ExportLine] = []
        for done, doc in enumerate(docs, start=1):
            resources = mapping.everything(
                doc,
                referrals=await self._referrals(ctx, doc),
                plans=await self._plans(ctx, doc),
            )
            patient_id = UUID(doc["id"])
            batch.extend(
                jobs.ExportLine(r["resourceType"], patient_id, orjson.dumps(r))
                for r in resources
                if r["resourceType"] in wanted
            )
            if done % EXPORT_BATCH == 0 or done == len(docs):
                await jobs.add_lines(pool, keyring, job_id, batch, first_seq=next_seq, done=done)
                batch = []

    async def _own_export(self, request: Request) -> tuple[CareteamContext, jobs.Job]:
        """The caller's own export job (another caller's is no job at all: 404)."""
        ctx = await self._context(request)
        principal = ctx.require_principal()
        owner = (principal.user_id, principal.organisation_id)
        job = await jobs.find(ctx.runtime.pool, request.path_params["job"], "export", owner)
        if job is None:
            raise Refusal(404, "not-found", "no export with this id")
        return ctx, job

    async def export_status(self, request: Request) -> Response:
        """202 while building; 200 with the manifest when done; DELETE cancels it and
        deletes its files."""
        try:
            _parameters(request, ())
            ctx, job = await self._own_export(request)
        except Refusal as refusal:
            return refusal.response()
        pool = ctx.runtime.pool
        if request.method == "DELETE":
            task = self._tasks.pop(job.id, None)
            if task is not None:
                task.cancel()
            await jobs.delete(pool, job.id)
            return Response(status_code=202)
        if job.status == "running":
            return Response(status_code=202, headers={"X-Progress": f"{job.done}/{job.total}"})
        if job.status == "interrupted":
            return Refusal(
                500,
                "incomplete",
                "the export was interrupted (its server stopped); start a new one",
            ).response()
        if job.status == "failed":
            return Refusal(500, "exception", "the export failed; start a new one").response()
        base = self._base(request)
        counts = await jobs.line_counts(pool, job.id)
        manifest = {
            "transactionTime": job.detail["transactionTime"],
            "request": job.detail["request"],
            "requiresAccessToken": True,
            "output": [
                {
                    "type": kind,
                    "url": f"{base}/$export-file/{job.id}/{kind}.ndjson",
                    "count": counts[kind],
                }
                for kind in job.detail["types"]
                if counts.get(kind)
            ],
            "error": [],
        }
        return Response(orjson.dumps(manifest), media_type="application/json")

    async def export_file(self, request: Request) -> Response:
        """One NDJSON file; the read of every patient in it is recorded before it is sent.
        A patient forgotten since the export is no longer in it."""
        try:
            _parameters(request, ())
            ctx, job = await self._own_export(request)
            kind = str(request.path_params["name"]).removesuffix(".ndjson")
            if job.status != "complete" or kind not in job.detail["types"]:
                raise Refusal(404, "not-found", "no such file in this export")
            runtime = ctx.runtime
            body, patients = await jobs.export_file(runtime.pool, _keyring(ctx), job.id, kind)
            if not body:
                raise Refusal(404, "not-found", "no such file in this export")
        except Refusal as refusal:
            return refusal.response()
        await record_reads(ctx, "fhir:$export", patients, (kind,))
        return Response(body, media_type="application/fhir+ndjson")

    # --- onboarding import (CSV or Bundle; asynchronous, with a report) ----------------

    async def import_kickoff(self, request: Request) -> Response:
        """``POST /fhir/$import`` (``dryRun=true`` to validate only): a registry CSV
        (``text/csv``) or a Bundle (``application/fhir+json``). 202 with the status URL."""
        try:
            params = _parameters(request, ("dryRun",))
            dry = params.get("dryRun", "false")
            if dry not in ("true", "false"):
                raise Refusal(400, "value", "dryRun: true or false", expression="dryRun")
            ctx = await self._context(request, "registerPatient")
            denied = import_job.import_role_problem(ctx)
            if denied is not None:
                await self._record_denial(ctx, denied, None)
                raise Refusal(403, "forbidden", "only a care manager or a PCP may import")
            records = await _import_records(request)
        except Refusal as refusal:
            return refusal.response()
        principal = ctx.require_principal()
        owner = (principal.user_id, principal.organisation_id)
        job_id = secrets.token_urlsafe(18)
        dry_run = dry == "true"
        pool = ctx.runtime.pool
        await jobs.create(
            pool,
            job_id=job_id,
            kind="import",
            owner=owner,
            detail={"dryRun": dry_run},
            total=len(records),
        )
        work = import_job.run_import(ctx, job_id, dry_run, records)
        self._start(job_id, jobs.run(pool, job_id, work))
        status_url = f"{self._base(request)}/$import-status/{job_id}"
        return Response(status_code=202, headers={"Content-Location": status_url})

    async def import_status(self, request: Request) -> Response:
        """202 with ``X-Progress: done/total`` while importing; 200 with the report; an
        import interrupted by its server's stop answers 500 with how far it got (what it
        wrote stays: the same file imported again completes it)."""
        try:
            _parameters(request, ())
            ctx = await self._context(request, "registerPatient")
            principal = ctx.require_principal()
            owner = (principal.user_id, principal.organisation_id)
            job = await jobs.find(ctx.runtime.pool, request.path_params["job"], "import", owner)
            if job is None:
                raise Refusal(404, "not-found", "no import with this id")
        except Refusal as refusal:
            return refusal.response()
        progress = {"X-Progress": f"{job.done}/{job.total}"}
        if job.status == "running":
            return Response(status_code=202, headers=progress)
        if job.status == "interrupted":
            return Refusal(
                500,
                "incomplete",
                f"the import was interrupted (its server stopped) after {job.done} of "
                f"{job.total} entries; import the same file again to complete it",
                headers=progress,
            ).response()
        if job.status == "failed":
            return Refusal(
                500, "exception", "the import stopped; start it again", headers=progress
            ).response()
        entries = await jobs.entries(ctx.runtime.pool, job.id)
        report = import_job.report(job.detail["dryRun"], job.total, entries)
        return Response(orjson.dumps(report), media_type="application/json", headers=progress)

    async def everything(self, request: Request) -> Response:
        try:
            _parameters(request, ())
            patient_id = _uuid_id(request.path_params["id"])
            if patient_id is None:
                raise Refusal(404, "not-found", "no Patient with this id")
            ctx = await self._context(request)
            doc = await self._patient_doc(ctx, patient_id)
            resources = mapping.everything(
                doc,
                referrals=await self._referrals(ctx, doc),
                plans=await self._plans(ctx, doc),
            )
            bundle = mapping.searchset(self._base(request), str(request.url), resources)
            types = [r["resourceType"] for r in resources]
            return await self._answer(ctx, "$everything", patient_id, bundle, types)
        except Refusal as refusal:
            return refusal.response()


async def _json_body(request: Request) -> Any:
    """The request's JSON resource (FHIR JSON, at most MAX_BODY_BYTES)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in JSON_TYPES:
        raise Refusal(
            415,
            "not-supported",
            "Content-Type must be application/fhir+json",
            expression="Content-Type",
        )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise Refusal(413, "too-costly", "the request body is too large")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise Refusal(413, "too-costly", "the request body is too large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refusal(400, "structure", "the request body must be a JSON resource") from None


# The largest import file accepted (a CSV of 1,000 patients with their history is ~200 KiB).
MAX_IMPORT_BYTES: Final = 16 * 1024 * 1024


async def _import_records(
    request: Request,
) -> list[importing.PatientRecord | importing.Refused]:
    """The import body as patient records; a 400 naming the field for an unreadable file."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in JSON_TYPES and kind != "text/csv":
        raise Refusal(
            415,
            "not-supported",
            "Content-Type must be text/csv or application/fhir+json",
            expression="Content-Type",
        )
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise Refusal(413, "too-costly", "the file is too large")
    try:
        if kind == "text/csv":
            return importing.parse_csv(body.decode("utf-8-sig"))
        try:
            bundle = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refusal(400, "structure", "the body must be a JSON Bundle") from None
        return importing.parse_bundle(bundle)
    except UnicodeDecodeError:
        raise Refusal(400, "structure", "the file must be UTF-8") from None
    except importing.FileError as exc:
        raise Refusal(400, "invalid", f"{exc.code} ({exc.field})", expression=exc.field) from None


def _command_refusal(error: Any) -> Refusal:
    """A command's typed error as an OperationOutcome; its code and field only (never a
    message that could describe the patient)."""
    code = getattr(error, "code", "ERROR")
    if isinstance(error, NotFoundError):
        return Refusal(404, "not-found", "no Patient with this id")
    if isinstance(error, ForbiddenError):
        return Refusal(403, "forbidden", code)
    if isinstance(error, ValidationError):
        where = "QuestionnaireResponse.item" if error.field == "answers" else None
        return Refusal(400, "invalid", f"{code} ({error.field or 'input'})", expression=where)
    if isinstance(error, InvalidTransitionError | NotAllowedError):
        return Refusal(422, "business-rule", code)
    if isinstance(error, ConflictError):
        return Refusal(409, "conflict", code)
    return Refusal(400, "invalid", code)


def _of_type(doc: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The patient's resources of one type."""
    match resource_type:
        case "Patient":
            return [mapping.patient(doc)]
        case "Observation":
            return mapping.observations(doc)
        case "QuestionnaireResponse":
            return mapping.questionnaire_responses(doc)
        case "Consent":
            return mapping.consents(doc)
        case "CareTeam":
            single = mapping.care_team(doc)
        case _:  # EpisodeOfCare
            single = mapping.episode_of_care(doc)
    return [] if single is None else [single]


def fhir_mount(runtime: Callable[[], Runtime | None], verifier: TokenVerifier) -> BaseRoute:
    """``/fhir``, for ``create_app(mounts=...)``."""
    return Mount("/fhir", routes=FhirApi(runtime, verifier).routes())


def _audit_event_number(text: str) -> bool:
    """A part of an AuditEvent id: a positive number as written by ``_access_rows``."""
    return text.isdigit() and not text.startswith("0") and len(text) <= 18
