"""The GraphQL schema: queries read read models, mutations run domain commands."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Annotated, Any, cast
from uuid import UUID, uuid4

import strawberry
from graphql import ExecutionResult, GraphQLError, parse
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule, ValidationRule
from starlette.websockets import WebSocket
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.scalars import JSON
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext, Info
from strawberry.types.graphql import OperationType

from services.api.authz import (
    Denied,
    check_patient_operation,
)
from services.api.commanding import deny, record_reads, record_shared_reads, selected_fields
from services.api.compliance.erasure import ErasureMutation
from services.api.compliance.queries import ComplianceQuery
from services.api.context import CareteamContext
from services.api.enums import ActivityType, InstrumentCode, Modality, Sex
from services.api.errors import (
    ForbiddenError,
    NotFoundError,
    ValidationError,
    at_most_one,
    exactly_one,
    result_union,
)
from services.api.extension_runner import LeanExtensionsRunner
from services.api.fanout import group_key
from services.api.lean_execution import LeanExecutionContext
from services.api.partners.api import PartnerMutation, PartnerQuery, PartnerSubscription
from services.api.patient.emergency import EmergencyMutation, EmergencyQuery
from services.api.patient.minors import MinorsMutation  # minors (#19)
from services.api.patient.psychotherapy import PsychotherapyNoteQuery
from services.api.patient.reported import PatientReportedMutation  # patient channel (#19)
from services.api.patient.search import SearchQuery
from services.api.patient_types import PatientResult, load_patient_view
from services.api.record_commands import answer_patient
from services.api.records.mutations import CLINICAL_MUTATIONS
from services.api.records.queries import RecordQuery
from services.api.registry.care_team import CareTeamQuery  # care-team measures per month (#19)
from services.api.registry.outcomes import OutcomesMutation, OutcomesQuery  # outcomes (#19)
from services.api.registry.queries import RegistryQuery
from services.api.registry.worklist import WorklistQuery
from services.api.segments import care_event_payload
from services.api.team.directory import (
    DirectoryMutation,
    DirectoryQuery,
    minute_performer,
    team_role_rider,
)
from services.api.team.pcbh import PcbhMutation, PcbhQuery  # the wider team and PCBH
from services.api.types import CareEvent, Patient
from services.audit.reads import AuditUnavailableError
from services.auth import Role
from services.commands.commands import (
    AssignCareTeam,
    EnrollPatient,
    ImportMeasureTotal,
    LogContact,
    RecordScreening,
    RegisterPatient,
    StartTreatment,
)
from services.database import RETRY_AFTER_SECONDS, is_connection_failure
from services.eventstore import LogPosition
from services.logs import log_fields

log = logging.getLogger("careteam.api")


PatientLookup = Annotated[
    Patient | NotFoundError | ForbiddenError,
    result_union("PatientLookup", "A patient, or why it cannot be shown."),
]


@strawberry.input(description="A new patient's minimal identity.")
class RegisterPatientInput:
    given_name: str = strawberry.field(description="Given name.")
    family_name: str = strawberry.field(description="Family name.")
    birth_date: date = strawberry.field(description="Date of birth.")
    mrn: str = strawberry.field(description="Medical record number in the organisation.")
    administrative_sex: Sex | None = strawberry.field(
        default=None, description="Administrative sex (optional)."
    )
    sex: str | None = strawberry.field(
        default=None,
        description="Administrative sex as its lower-case value; give administrativeSex "
        "instead (not both).",
        deprecation_reason="Use administrativeSex (an enum).",
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default now; never in the future)."
    )


@strawberry.input(description="Enroll a patient in collaborative care.")
class EnrollPatientInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default now; never in the future)."
    )


@strawberry.input(description="A questionnaire with every item answer.")
class RecordScreeningInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    instrument: InstrumentCode = strawberry.field(description="Which questionnaire.")
    answers: list[int | None] = strawberry.field(
        description="Item answers in order; null for an unanswered item (then no total)."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it was taken (default now; never in the future)."
    )


@strawberry.input(description="A historical total without its item answers.")
class ImportMeasureTotalInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    instrument: InstrumentCode = strawberry.field(
        description="Which questionnaire (one with a total: not the ASQ)."
    )
    total: int = strawberry.field(
        description="The total, within the instrument's range (PHQ-9 0-27, GAD-7 0-21, ...)."
    )
    occurred_at: datetime = strawberry.field(
        description="When it was taken (with its offset; never in the future)."
    )


@strawberry.input(description="A care manager activity with its minutes.")
class LogContactInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    activity_kind: ActivityType | None = strawberry.field(
        default=None,
        description="The activity; required (unless the deprecated activity is given).",
    )
    activity: str | None = strawberry.field(
        default=None,
        description="The activity as its lower-case value; give activityKind instead "
        "(exactly one of the two).",
        deprecation_reason="Use activityKind (an enum).",
    )
    minutes: int = strawberry.field(description="Whole minutes spent, above 0.")
    modality_kind: Modality | None = strawberry.field(
        default=None,
        description="How the contact took place; required for a contact or outreach.",
    )
    modality: str | None = strawberry.field(
        default=None,
        description="The modality as its lower-case value; give modalityKind instead (not both).",
        deprecation_reason="Use modalityKind (an enum).",
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default now; never in the future)."
    )
    # issue 18: who did the work (default: you); only care manager time counts.
    performed_by: UUID | None = strawberry.field(
        default=None,
        description="The member of staff who did the work (default: you); must be listed, "
        "active staff of your organisation. Only care manager time counts for billing.",
    )


@strawberry.input(description="Assign care team members; omitted roles stay as they are.")
class AssignCareTeamInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    care_manager_id: UUID | None = strawberry.field(default=None, description="Care manager.")
    pcp_id: UUID | None = strawberry.field(default=None, description="Primary care provider.")
    psychiatric_consultant_id: UUID | None = strawberry.field(
        default=None, description="Psychiatric consultant."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default now; never in the future)."
    )


@strawberry.input(description="Start active treatment for an enrolled patient.")
class StartTreatmentInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    occurred_at: datetime | None = strawberry.field(
        default=None, description="When it happened (default now; never in the future)."
    )


def _register(ctx: CareteamContext, data: RegisterPatientInput) -> RegisterPatient:
    """Registers in the caller's organisation; a registering clinician joins the care team
    in their own role (otherwise nobody could enroll the new patient)."""
    principal = ctx.require_principal()
    return RegisterPatient(
        given_name=data.given_name,
        family_name=data.family_name,
        birth_date=data.birth_date,
        mrn=data.mrn,
        organisation_id=principal.organisation_id,
        sex=data.administrative_sex or data.sex,
        occurred_at=data.occurred_at,
        care_manager_id=principal.user_id if principal.role is Role.CARE_MANAGER else None,
        pcp_id=principal.user_id if principal.role is Role.PCP else None,
    )


@strawberry.type(description="Read the care team's views.")
class PatientQuery:
    @strawberry.field(
        description="One patient's current view, or why you cannot see it (not found in your "
        "organisation, or not on the patient's care team; refusals are audited)."
    )
    async def patient(self, info: Info[CareteamContext, None], id: UUID) -> PatientLookup:
        ctx = info.context
        view, on_team = await load_patient_view(ctx, id)
        if view is not None:
            team = {id} if on_team else set()
            await record_reads(ctx, "patient", [id], selected_fields(info), on_team=team)
            return view
        try:
            async with ctx.runtime.pool.acquire() as conn:
                await check_patient_operation(conn, ctx.require_principal(), "patient", id)
        except Denied as denied:
            return await deny(ctx, denied, id)
        return NotFoundError(code="PATIENT_NOT_FOUND", message=f"no patient {id}")


@strawberry.type(
    description="Commands. Each returns its result or a typed error; an error writes nothing."
)
class PatientMutation:
    @strawberry.mutation(description="Register a patient with minimal identity.")
    async def register_patient(
        self, info: Info[CareteamContext, None], input: RegisterPatientInput
    ) -> PatientResult:
        if problem := at_most_one("administrativeSex", input.administrative_sex, "sex", input.sex):
            return problem
        return await answer_patient(info, _register(info.context, input))

    @strawberry.mutation(description="Enroll a patient in collaborative care (starts an episode).")
    async def enroll_patient(
        self, info: Info[CareteamContext, None], input: EnrollPatientInput
    ) -> PatientResult:
        return await answer_patient(
            info, EnrollPatient(patient=input.patient_id, occurred_at=input.occurred_at)
        )

    @strawberry.mutation(description="Move an enrolled patient into active treatment.")
    async def start_treatment(
        self, info: Info[CareteamContext, None], input: StartTreatmentInput
    ) -> PatientResult:
        return await answer_patient(
            info, StartTreatment(patient=input.patient_id, occurred_at=input.occurred_at)
        )

    @strawberry.mutation(description="Assign members of the patient's care team.")
    async def assign_care_team(
        self, info: Info[CareteamContext, None], input: AssignCareTeamInput
    ) -> PatientResult:
        # The directory is consulted only for a caller the policy allows, decided in the
        # policy's own statement (the load's): refusals stay typed and audited.
        rider = team_role_rider(
            info.context.require_principal().organisation_id,
            {
                "careManagerId": input.care_manager_id,
                "pcpId": input.pcp_id,
                "psychiatricConsultantId": input.psychiatric_consultant_id,
            },
        )
        command = AssignCareTeam(
            patient=input.patient_id,
            care_manager_id=input.care_manager_id,
            pcp_id=input.pcp_id,
            psychiatric_consultant_id=input.psychiatric_consultant_id,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command, rider=rider)

    @strawberry.mutation(
        description="Record a questionnaire with every item answer; scores it, and raises the "
        "safety flag and tasks its rules require."
    )
    async def record_screening(
        self, info: Info[CareteamContext, None], input: RecordScreeningInput
    ) -> PatientResult:
        command = RecordScreening(
            patient=input.patient_id,
            instrument=input.instrument.value,
            answers=tuple(input.answers),
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Record one historical total of a registry that kept totals only (no item "
        "answers): checked and judged as a screening's total, counted by baselines, flags and "
        "outcomes, but it raises no safety flag and no task (totalOnly on the screening)."
    )
    async def import_measure_total(
        self, info: Info[CareteamContext, None], input: ImportMeasureTotalInput
    ) -> PatientResult:
        command = ImportMeasureTotal(
            patient=input.patient_id,
            instrument=input.instrument.value,
            total=input.total,
            occurred_at=input.occurred_at,
        )
        return await answer_patient(info, command)

    @strawberry.mutation(description="Log a care manager contact or activity with its minutes.")
    async def log_contact(
        self, info: Info[CareteamContext, None], input: LogContactInput
    ) -> PatientResult:
        problem = exactly_one(
            "activityKind", input.activity_kind, "activity", input.activity
        ) or at_most_one("modalityKind", input.modality_kind, "modality", input.modality)
        if problem is not None:
            return problem
        activity = input.activity_kind or input.activity
        assert activity is not None  # exactly one was given
        modality = input.modality_kind or input.modality
        performer = await minute_performer(info, input.performed_by)
        if isinstance(performer, ValidationError):
            return performer
        command = LogContact(
            patient=input.patient_id,
            activity=activity,
            modality=modality,
            minutes=input.minutes,
            occurred_at=input.occurred_at,
            performed_by=performer[0],
            performer_role=performer[1],
        )
        return await answer_patient(info, command)


UNAVAILABLE = "SERVICE_UNAVAILABLE"


def is_unavailable(error: GraphQLError) -> bool:
    """The database could not be reached or dropped the connection (a restart, a
    failover, a pool exhausted): retryable. Usually nothing was committed; a connection
    lost after a command's commit (while reading its response) leaves it recorded, which
    an Idempotency-Key makes safe to retry. So is a read audit that could not be
    committed (its batch insert failed: in practice the database went away), which
    withholds an answer, a command's included (its retry replays the first result)."""
    original = error.original_error
    return original is not None and (
        is_connection_failure(original) or isinstance(original, AuditUnavailableError)
    )


def error_id(error: GraphQLError) -> str:
    """The id of an unexpected error: in the masked error's ``extensions.errorId`` and in
    the server's log line with its traceback, so one can be found from the other. Made
    once per error (``process_errors`` logs before the extension masks)."""
    found = getattr(error, "careteam_error_id", None)
    if not isinstance(found, str):
        found = uuid4().hex[:16]
        error.careteam_error_id = found  # type: ignore[attr-defined]
    return found


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors as "Unexpected error." with an ``errorId`` that the log
    line of its traceback carries; a database connection failure becomes a typed,
    retryable error instead (``extensions.code`` SERVICE_UNAVAILABLE, ``retryable``,
    ``retryAfterSeconds``), without the exception's message."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not is_unavailable(error):
            masked = super().anonymise_error(error)
            masked.extensions = {"errorId": error_id(error)}
            return masked
        return GraphQLError(
            message="The service is briefly unavailable (database). Retry after "
            "retryAfterSeconds, with the same Idempotency-Key if the request had one.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={
                "code": UNAVAILABLE,
                "retryable": True,
                "retryAfterSeconds": RETRY_AFTER_SECONDS,
            },
        )


def is_unexpected(error: GraphQLError) -> bool:
    """A crash in our code, as opposed to an expected client error: syntax, validation,
    input coercion, or a GraphQLError a resolver raised on purpose (e.g. a page size out
    of range). Unexpected errors are masked for the client and logged as errors."""
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, GraphQLError)


_SAFE_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def error_kind(error: GraphQLError) -> str:
    """What went wrong, as a constant: the error's code, else where it arose. Never its
    message: graphql-core's messages quote the document's literals and variables."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str) and _SAFE_CODE.match(code):
        return code
    return "INVALID_DOCUMENT" if error.path is None else "FIELD_ERROR"


class CareteamSchema(strawberry.Schema):
    """The schema, logging GraphQL errors without patient data (strawberry's own logger
    writes each error's message, with the document's source lines, and a traceback), and
    running the plain live ``careEvents`` subscription once for all the subscribers who
    would get the same answer (services/api/fanout.py). Its extensions' hooks are entered
    by ``LeanExtensionsRunner`` (services/api/extension_runner.py)."""

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Any:
        def alone(context: Any) -> Any:
            return super(CareteamSchema, self).stream(
                query,
                variable_values=variable_values,
                context_value=context,
                root_value=root_value,
                operation_name=operation_name,
                operation_extensions=operation_extensions,
                allowed_operation_types=allowed_operation_types,
            )

        key = _shared_key(query, variable_values, operation_name, context_value)
        if key is None or operation_extensions or root_value is not None:
            return await alone(context_value)
        context = cast(CareteamContext, context_value)
        assert context.fanout is not None
        return context.fanout.join(
            key,
            context,
            lambda audience: alone(
                dataclasses.replace(context, active_subscriptions=0, audience=audience)
            ),
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        expected = [e for e in errors if not is_unexpected(e)]
        if expected:
            log.info(
                "graphql client errors",
                extra=log_fields(
                    count=len(expected), codes=",".join(sorted({error_kind(e) for e in expected}))
                ),
            )
        for error in errors:
            if is_unavailable(error):
                # The exception's type only: asyncpg's messages may quote a statement.
                log.warning(
                    "graphql database unavailable",
                    extra=log_fields(error_type=type(error.original_error).__name__),
                )
            elif is_unexpected(error):
                log.error(
                    "graphql unexpected error",
                    exc_info=error.original_error,
                    extra=log_fields(error_id=error_id(error)),
                )


def _shared_key(
    query: str | None,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Any,
) -> tuple[object, ...] | None:
    """The fan-out group of this subscription (None: it runs on its own): a WebSocket
    caller's plain live ``careEvents`` with a connection under its limit."""
    if (
        query is None
        or not isinstance(context, CareteamContext)
        or context.fanout is None
        or context.principal is None
        or not isinstance(context.request, WebSocket)
        or context.active_subscriptions >= MAX_SUBSCRIPTIONS_PER_CONNECTION
    ):
        return None
    return group_key(
        query,
        variables,
        operation_name,
        context.principal,
        context.purpose_of_use,
        max_tokens=MAX_TOKENS,
    )


def merge_root(name: str, description: str, parts: tuple[type, ...]) -> type:
    """One root type from several groups of fields; a field defined twice is an error."""
    names = [f.name for p in parts for f in p.__strawberry_definition__.fields]  # type: ignore[attr-defined]
    if dupes := {n for n in names if names.count(n) > 1}:
        raise TypeError(f"{name} defines fields twice: {sorted(dupes)}")
    merged: type = strawberry.type(type(name, parts, {}), description=description)
    return merged


Query = merge_root(
    "Query",
    "Read models for every role; every read of patient data is audited.",
    (
        PatientQuery,
        RecordQuery,
        SearchQuery,
        DirectoryQuery,
        WorklistQuery,
        PsychotherapyNoteQuery,
        ComplianceQuery,
        EmergencyQuery,
        RegistryQuery,
        PartnerQuery,
        PcbhQuery,
        OutcomesQuery,
        CareTeamQuery,
    ),
)

Mutation = merge_root(
    "Mutation",
    "Commands. Each returns its result or a typed error; an error writes nothing.",
    (
        PatientMutation,
        DirectoryMutation,
        EmergencyMutation,
        ErasureMutation,
        PartnerMutation,
        *CLINICAL_MUTATIONS,
        PcbhMutation,
        PatientReportedMutation,
        MinorsMutation,
        OutcomesMutation,
    ),
)

MAX_SUBSCRIPTIONS_PER_CONNECTION = 10


@strawberry.type(description="Care events for care teams.")
class CareEventSubscription:
    @strawberry.subscription(
        description="Care events of the patients you may read, in log order; filter by "
        "patients and event types; `after` replays from a position first. At most "
        f"{MAX_SUBSCRIPTIONS_PER_CONNECTION} at once per connection."
    )
    async def care_events(
        self,
        info: Info[CareteamContext, None],
        patient_ids: list[UUID] | None = None,
        event_types: list[str] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[CareEvent, None]:
        ctx = info.context
        principal = ctx.require_principal()
        if ctx.active_subscriptions >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise GraphQLError(
                "too many subscriptions on this connection",
                extensions={"code": "SUBSCRIPTION_LIMIT"},
            )
        start = None
        if after is not None:
            try:
                start = LogPosition.decode(after)
            except ValueError:
                raise GraphQLError(
                    "after is not a log position", extensions={"code": "VALIDATION_ERROR"}
                ) from None
        ctx.active_subscriptions += 1
        try:
            feed = ctx.runtime_feed()
            async for event in feed.subscribe(
                principal,
                patient_ids=set(patient_ids) if patient_ids is not None else None,
                event_types=set(event_types) if event_types is not None else None,
                after=start,
                shared=ctx.audience is not None,
            ):
                # A delivered event is patient data read: audited before it is sent. A
                # shared execution audits every subscriber it answers, in one call, and
                # only they are given the result (services/api/fanout.py).
                if ctx.audience is None:
                    await record_reads(ctx, "careEvents", [event.patient_id], ("careEvents",))
                else:
                    readers = ctx.audience.recipients()
                    if not readers:
                        continue
                    await record_shared_reads(
                        readers, "careEvents", [event.patient_id], ("careEvents",)
                    )
                yield CareEvent(
                    event_id=event.event_id,
                    patient_id=event.patient_id,
                    stream_type=event.stream_type,
                    stream_id=event.stream_id,
                    stream_version=event.stream_version,
                    event_type=event.event_type,
                    event_version=event.event_version,
                    occurred_at=event.occurred_at,
                    recorded_at=event.recorded_at,
                    position=event.log_position.encode(),
                    payload=cast(
                        JSON,
                        await care_event_payload(
                            ctx,
                            event.stream_type,
                            event.stream_id,
                            event.patient_id,
                            event.payload,
                            event_type=event.event_type,
                        ),
                    ),
                )
        finally:
            ctx.active_subscriptions -= 1


Subscription = merge_root(
    "Subscription",
    "Live updates over WebSocket (graphql-transport-ws).",
    (CareEventSubscription, PartnerSubscription),
)

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2_000

# Built once, so the rule classes are the same objects on every request and the
# validation cache (keyed by the rules) hits; a limiter built per request would
# create new rule classes each time and never hit it.
_DepthValidator = depth_validator(MAX_DEPTH, None, None)


class _SafeDepthValidator(_DepthValidator):  # type: ignore[misc, valid-type]
    """strawberry's depth rule looks fragments up without checking they exist; an unknown
    fragment is reported by graphql-core's own KnownFragmentNames rule instead. It also
    takes the max() of every selection set, which fails on an empty one (`{ a { } }`,
    which graphql-core parses): that document is refused here."""

    def __init__(self, context: Any) -> None:
        try:
            super().__init__(context)
        except KeyError:
            ValidationRule.__init__(self, context)
        except ValueError:
            ValidationRule.__init__(self, context)
            context.report_error(GraphQLError("a selection set must select at least one field"))


_LIMIT_RULES: list[type[ASTValidationRule]] = [
    _SafeDepthValidator,
    alias_validator(MAX_ALIASES),
]
_PRODUCTION_RULES: list[type[ASTValidationRule]] = [*_LIMIT_RULES, NoSchemaIntrospectionCustomRule]


# Parsing (with the token limit) and validation (with the limit rules, keyed by the same
# rule classes on every request) are cached per document text; bounded so that unique
# documents cannot grow memory without limit.
_parse_cached = functools.lru_cache(maxsize=256)(parse)
_validate_cached = functools.lru_cache(maxsize=256)(validate_document)


class Hardening(MaskUnexpectedErrors):
    """Every hardening step in one extension: the token limit and the parse cache, the
    depth and alias rules (and introspection refused in production) with the validation
    cache, a subscription sent over HTTP refused, and unexpected errors masked.

    strawberry builds, per request and per extension, a context manager for each of an
    extension's hooks; six extensions (strawberry's ``MaxTokensLimiter``,
    ``AddValidationRules``, ``ParserCache``, ``ValidationCache``, ``MaskErrors`` and ours)
    cost about 60 us a request more than one doing the same (docs/performance.md, "Seventh
    pass"). Behaviour is theirs: the same parse options, the same rules and validation
    (``validate_document`` adds strawberry's own two rules), the same masking."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...]) -> None:
        super().__init__()
        self._rules = rules

    def _process_result(self, result: object) -> None:
        # MaskErrors checks a runtime Protocol (``isinstance`` on a Protocol walks its
        # attributes each time, about 16 us); the same test, read directly.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def on_operation(self) -> Iterator[None]:
        ec = self.execution_context
        ec.parse_options["max_tokens"] = MAX_TOKENS
        ec.validation_rules = ec.validation_rules + self._rules
        yield from super().on_operation()

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        ec.graphql_document = _parse_cached(ec.query, **ec.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        ec.pre_execution_errors = _validate_cached(
            ec.schema._schema, ec.graphql_document, ec.validation_rules
        )
        yield

    def on_execute(self) -> Iterator[None]:
        """A subscription document sent over HTTP gets a clear error instead of running."""
        ec = self.execution_context
        request = getattr(ec.context, "request", None)
        if ec.operation_type is OperationType.SUBSCRIPTION and not isinstance(request, WebSocket):
            ec.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "subscriptions are served over WebSocket (graphql-transport-ws) only",
                        extensions={"code": "SUBSCRIPTION_OVER_HTTP"},
                    )
                ],
            )
        yield


def build_schema(*, production: bool = False, extensions: Sequence[Any] = ()) -> strawberry.Schema:
    """The schema with its hardening: masked errors, depth/alias/token limits, caches;
    introspection is refused in production. ``extensions`` come first (e.g. the app's
    metrics, which then see the masked errors)."""
    rules = tuple(_PRODUCTION_RULES if production else _LIMIT_RULES)
    return CareteamSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=LeanExecutionContext,
        extensions=[
            *extensions,
            lambda: Hardening(rules),
        ],
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
