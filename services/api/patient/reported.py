"""Patient-reported measures (docs/patient-channel.md).

- GraphQL ``issuePatientLink``: a care-team member who may record a screening for the
  patient issues a single-use, expiring link for one questionnaire; the answer carries
  the token once (only its hash is stored). Audited in the access log.
- HTTP ``POST /patient-reported/questionnaire`` and ``POST /patient-reported/submit``
  (JSON, the token in the body, never in the URL so it stays out of access logs):
  authorised by the link token only. The first says which questionnaire the link is for
  (instrument code, item count and each item's highest answer; no item text, no patient
  data); the second records the answers as a screening through the Patient aggregate
  with channel ``patient_reported``, under the same rules as staff entry (a safety alert
  raises the flag and the same-day task in the same command). Every attempt is audited.

A used, expired or unknown link answers 410 with code ``LINK_NOT_USABLE`` and a message
telling the person to contact their clinic; the three cases look the same, so the
answer reveals nothing. Bad answers answer 422 with the code and the field; nothing is
written and the link stays usable.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import strawberry
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from strawberry.types import Info

from domain import errors as domain_errors
from domain.instruments import SDQ_AGES, SDQ_IMPACT_ITEMS, SDQ_ITEM_COUNT, SdqInformant, spec_for
from domain.patient import Patient as PatientAggregate
from services import patient_links
from services.api.authz import Denied, check_patient_operation, record_access
from services.api.commanding import deny
from services.api.context import CareteamContext
from services.api.enums import InstrumentCode, SdqForm
from services.api.errors import (
    CommandError,
    NotAllowedError,
    ValidationError,
    camel_path,
    result_union,
)
from services.api.patient_types import PatientResult
from services.api.record_commands import answer_patient
from services.auth import TokenVerifier
from services.bootstrap import Runtime
from services.commands.commands import RemindMeasurement
from services.eventstore import EventMetadata, StreamNotFoundError
from services.projector.runner import ProjectionLagTimeoutError

log = logging.getLogger("careteam.patient_reported")

CHANNEL = "patient_reported"
# Issuing a link needs the same permission as recording a screening for the patient.
_ISSUE_PERMISSION = "recordScreening"
ISSUE_OPERATION = "issuePatientLink"
SUBMIT_OPERATION = "submitPatientReport"
NOT_USABLE_MESSAGE = (
    "This link can no longer be used. Please contact your clinic or care team for a new one."
)
SAFETY_MESSAGE = (
    "Thank you. Your care team has been told and will contact you today. If you are in "
    "danger or thinking of harming yourself now, call or text 988 or call 911."
)
THANKS_MESSAGE = "Thank you. Your answers were sent to your care team."
MAX_SUBMIT_BYTES = 16 * 1024
# SDQ links store the form as ``sdq_<informant>`` in ``patient_links.instrument``.
_SDQ_PREFIX = "sdq_"
# Who answers which SDQ form: caregivers report on the parent form.
_SDQ_REPORTERS = {
    SdqInformant.PARENT: frozenset({"guardian", "caregiver"}),
    SdqInformant.TEACHER: frozenset({"teacher"}),
    SdqInformant.SELF: frozenset({"patient"}),
}


@strawberry.enum(description="Who is expected to answer a patient link.")
class PatientLinkReporter(enum.Enum):
    PATIENT = "patient"
    GUARDIAN = "guardian"
    CAREGIVER = "caregiver"
    TEACHER = "teacher"


@strawberry.input(description="A link for a patient (or guardian) to answer one questionnaire.")
class IssuePatientLinkInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    instrument: InstrumentCode = strawberry.field(description="Which questionnaire.")
    reporter: PatientLinkReporter = strawberry.field(
        default=PatientLinkReporter.PATIENT, description="Who answers (default the patient)."
    )
    valid_hours: int = strawberry.field(
        default=patient_links.DEFAULT_VALID_HOURS,
        description=f"How long the link works, 1 to {patient_links.MAX_VALID_HOURS} hours.",
    )


@strawberry.type(description="An issued link. The token is shown only in this answer.")
class PatientLinkPayload:
    link_id: UUID = strawberry.field(description="The link (for the audit trail).")
    token: str = strawberry.field(
        description="The opaque single-use token; deliver it to the patient. Never stored."
    )
    instrument: InstrumentCode = strawberry.field(description="The questionnaire.")
    reporter: PatientLinkReporter = strawberry.field(description="Who answers.")
    expires_at: datetime = strawberry.field(description="When the link stops working.")


@strawberry.input(description="A link for one SDQ form about a child or adolescent.")
class IssueSdqLinkInput:
    patient_id: UUID = strawberry.field(description="The child or adolescent.")
    informant: SdqForm = strawberry.field(description="Which form.")
    reporter: PatientLinkReporter = strawberry.field(
        description="Who answers: GUARDIAN or CAREGIVER (parent form), PATIENT (self-report), "
        "TEACHER (teacher form)."
    )
    valid_hours: int = strawberry.field(
        default=patient_links.DEFAULT_VALID_HOURS,
        description=f"How long the link works, 1 to {patient_links.MAX_VALID_HOURS} hours.",
    )


@strawberry.type(description="An issued SDQ link. The token is shown only in this answer.")
class SdqLinkPayload:
    link_id: UUID = strawberry.field(description="The link (for the audit trail).")
    token: str = strawberry.field(description="The opaque single-use token. Never stored.")
    informant: SdqForm = strawberry.field(description="The form.")
    reporter: PatientLinkReporter = strawberry.field(description="Who answers.")
    expires_at: datetime = strawberry.field(description="When the link stops working.")


IssueSdqLinkResult = Annotated[
    SdqLinkPayload | CommandError,
    result_union("IssueSdqLinkResult", "The link, or why not."),
]

IssuePatientLinkResult = Annotated[
    PatientLinkPayload | CommandError,
    result_union("IssuePatientLinkResult", "The link, or why not."),
]


@strawberry.input(description="A reminder that a measure is due, for a messaging partner.")
class RemindMeasurementInput:
    patient_id: UUID = strawberry.field(description="The patient.")
    instrument: InstrumentCode = strawberry.field(description="The questionnaire that is due.")


@strawberry.type(description="Patient-reported measures.")
class PatientReportedMutation:
    @strawberry.mutation(
        description="Emit a measurement reminder (event patient.measurement_reminder_due) for "
        "a messaging partner to deliver through its feed; careteam sends no message itself. "
        "Refused with MEASUREMENT_NOT_DUE when the instrument was measured within the "
        "registry's measurement interval. createdId is the reminder's id."
    )
    async def remind_measurement(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[RemindMeasurementInput, strawberry.argument(description="What is due.")],
    ) -> PatientResult:
        command = RemindMeasurement(patient=input.patient_id, instrument=input.instrument.value)
        return await answer_patient(info, command)

    @strawberry.mutation(
        description="Issue a single-use, expiring link through which the patient (or, for a "
        "minor, a guardian or caregiver) answers one questionnaire. Needs the permission to "
        "record a screening for the patient; audited."
    )
    async def issue_patient_link(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[IssuePatientLinkInput, strawberry.argument(description="The link.")],
    ) -> IssuePatientLinkResult:
        spec = spec_for(input.instrument.value)
        issued = await _issue(
            info.context,
            input.patient_id,
            spec.instrument.value,
            input.reporter,
            input.valid_hours,
            spec.allows_age,
            spec.title,
        )
        if not isinstance(issued, tuple):
            return issued
        link, token = issued
        return PatientLinkPayload(
            link_id=link.link_id,
            token=token,
            instrument=input.instrument,
            reporter=input.reporter,
            expires_at=link.expires_at,
        )

    @strawberry.mutation(
        description="Issue a single-use, expiring link for one SDQ form: the parent form is "
        "answered by a guardian or caregiver, the self-report form (11-17) by the young "
        "person, the teacher form by a teacher. Same permission and audit as "
        "issuePatientLink."
    )
    async def issue_sdq_link(
        self,
        info: Info[CareteamContext, None],
        input: Annotated[IssueSdqLinkInput, strawberry.argument(description="The link.")],
    ) -> IssueSdqLinkResult:
        informant = SdqInformant(input.informant.value)
        if input.reporter.value not in _SDQ_REPORTERS[informant]:
            return ValidationError(
                code="WRONG_REPORTER_FOR_FORM",
                message=f"the SDQ {informant.value} form is not answered by that reporter",
                field="reporter",
            )
        low, high = SDQ_AGES[informant]
        issued = await _issue(
            info.context,
            input.patient_id,
            f"{_SDQ_PREFIX}{informant.value}",
            input.reporter,
            input.valid_hours,
            lambda age: low <= age <= high,
            f"the SDQ {informant.value} form",
        )
        if not isinstance(issued, tuple):
            return issued
        link, token = issued
        return SdqLinkPayload(
            link_id=link.link_id,
            token=token,
            informant=input.informant,
            reporter=input.reporter,
            expires_at=link.expires_at,
        )


async def _issue(
    ctx: CareteamContext,
    patient_id: UUID,
    code: str,
    reporter: PatientLinkReporter,
    valid_hours: int,
    allows_age: Callable[[int], bool],
    title: str,
) -> tuple[patient_links.PatientLink, str] | Any:
    """Checks, stores and audits a link; returns it with its token, or a typed error."""
    principal = ctx.require_principal()
    if not 1 <= valid_hours <= patient_links.MAX_VALID_HOURS:
        return ValidationError(
            code="VALID_HOURS_OUT_OF_RANGE",
            message=f"validHours must be between 1 and {patient_links.MAX_VALID_HOURS}",
            field="validHours",
        )
    async with ctx.runtime.pool.acquire() as conn:
        try:
            await check_patient_operation(conn, principal, _ISSUE_PERMISSION, patient_id)
        except Denied as denied:
            refused = Denied(ISSUE_OPERATION, denied.reason, not_found=denied.not_found)
            return await deny(ctx, refused, patient_id)
    now = ctx.runtime.clock()
    try:
        patient = await ctx.runtime.app.load(PatientAggregate, patient_id)
    except StreamNotFoundError:
        return ValidationError(code="PATIENT_NOT_FOUND", message="no such patient",
                               field="patientId")  # fmt: skip
    if patient.family_name is None:  # forgotten (crypto-shredding): no new links
        return NotAllowedError(
            code="PATIENT_FORGOTTEN", message="the patient was forgotten (erased)"
        )
    if patient.birth_date is not None and not allows_age(patient.age_on(now.date())):
        return ValidationError(
            code="INSTRUMENT_NOT_FOR_AGE",
            message=f"{title} is not validated for the patient's age",
            field="instrument" if not code.startswith(_SDQ_PREFIX) else "informant",
        )
    async with ctx.runtime.pool.acquire() as conn, conn.transaction():
        link, token = await patient_links.issue(
            conn,
            organisation_id=principal.organisation_id,
            patient_id=patient_id,
            instrument=code,
            reporter=reporter.value,
            issued_by=principal.user_id,
            at=now,
            valid_hours=valid_hours,
        )
        await record_access(
            conn,
            principal=principal,
            operation=ISSUE_OPERATION,
            patient_id=patient_id,
            outcome="allowed",
            reason=f"LINK:{link.link_id}",
            purpose_of_use=ctx.purpose_of_use,
            request_id=ctx.request_id,
        )
    return link, token


# --- HTTP, authorised by the link token only ------------------------------------------


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status)


class _LinkGoneError(Exception):
    """The link's patient was forgotten while the submission ran (nothing is written)."""


def _not_usable() -> JSONResponse:
    return _error(410, "LINK_NOT_USABLE", NOT_USABLE_MESSAGE, "token")


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_SUBMIT_BYTES:
        return _error(413, "BODY_TOO_LARGE", "the request body is too large")
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "INVALID_JSON", "the request body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "INVALID_JSON", "the request body must be a JSON object")
    if not isinstance(body.get("token"), str) or not body["token"]:
        return _error(422, "FIELD_REQUIRED", "token is required", "token")
    return body


async def _audit(
    runtime: Runtime, request: Request, patient_id: UUID | None, outcome: str, reason: str
) -> None:
    async with runtime.pool.acquire() as conn:
        await record_access(
            conn,
            principal=None,
            operation=SUBMIT_OPERATION,
            patient_id=patient_id,
            outcome=outcome,
            reason=reason,
            purpose_of_use="PATRQT" if outcome == "allowed" else None,
            request_id=request.scope.get("state", {}).get("request_id"),
        )


def patient_reported_routes(get_runtime: Callable[[], Runtime | None]) -> list[BaseRoute]:
    """The two JSON endpoints; ``get_runtime`` reaches the running process's resources."""

    def runtime_or_none() -> Runtime | None:
        return get_runtime()

    async def questionnaire(request: Request) -> JSONResponse:
        runtime = runtime_or_none()
        if runtime is None:
            return _error(503, "STARTING", "try again shortly")
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        async with runtime.pool.acquire() as conn:
            link = await patient_links.find(conn, body["token"])
        if link is None or not link.usable(runtime.clock()):
            await _audit(runtime, request, None, "denied", "LINK_NOT_USABLE")
            return _not_usable()
        await _audit(runtime, request, link.patient_id, "allowed", f"OPENED:{link.link_id}")
        if link.instrument.startswith(_SDQ_PREFIX):
            informant = SdqInformant(link.instrument.removeprefix(_SDQ_PREFIX))
            return JSONResponse(
                {
                    "instrument": link.instrument,
                    "title": f"SDQ ({informant.value} form)",
                    "reporter": link.reporter,
                    "itemCount": SDQ_ITEM_COUNT,
                    "itemMax": [2] * SDQ_ITEM_COUNT,
                    "impactItems": list(SDQ_IMPACT_ITEMS[informant]),
                    "impactMax": 3,
                    "expiresAt": link.expires_at.isoformat(),
                }
            )
        spec = spec_for(link.instrument)
        return JSONResponse(
            {
                "instrument": spec.instrument.value,
                "title": spec.title,
                "reporter": link.reporter,
                "itemCount": spec.item_count,
                "itemMax": list(spec.item_max),
                "expiresAt": link.expires_at.isoformat(),
            }
        )

    async def submit(request: Request) -> JSONResponse:
        runtime = runtime_or_none()
        if runtime is None:
            return _error(503, "STARTING", "try again shortly")
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        now = runtime.clock()
        async with runtime.pool.acquire() as conn:
            link = await patient_links.find(conn, body["token"])
        if link is None or not link.usable(now):
            await _audit(runtime, request, None, "denied", "LINK_NOT_USABLE")
            return _not_usable()
        # A link answers for its own patient and questionnaire only.
        if "patientId" in body and str(body["patientId"]) != str(link.patient_id):
            await _audit(runtime, request, link.patient_id, "denied", "WRONG_PATIENT")
            return _error(422, "WRONG_PATIENT", "this link is for another patient", "patientId")
        if "instrument" in body and body["instrument"] != link.instrument:
            await _audit(runtime, request, link.patient_id, "denied", "WRONG_INSTRUMENT")
            return _error(
                422, "WRONG_INSTRUMENT", "this link is for another questionnaire", "instrument"
            )
        answers = body.get("answers")
        if not isinstance(answers, list):
            return _error(422, "FIELD_REQUIRED", "answers must be a list", "answers")
        async with runtime.pool.acquire() as conn:
            if not await patient_links.claim(conn, link.link_id, now):
                await _audit(runtime, request, None, "denied", "LINK_NOT_USABLE")
                return _not_usable()
        metadata = EventMetadata(
            actor_id=f"patient-link:{link.link_id}",
            role=link.reporter,
            organisation_id=str(link.organisation_id),
            purpose_of_use="PATRQT",
            request_id=request.scope.get("state", {}).get("request_id"),
            channel=CHANNEL,
        )
        recorded: dict[str, Any] = {}

        impact = body.get("impact")
        if impact is not None and not isinstance(impact, dict):
            return _error(422, "INVALID_IMPACT", "impact must be an object", "impact")

        def run(patient: PatientAggregate) -> None:
            if patient.family_name is None:
                # Forgotten after this link was claimed: its row went with the erasure.
                raise _LinkGoneError
            if link.instrument.startswith(_SDQ_PREFIX):
                patient.record_sdq(
                    informant=link.instrument.removeprefix(_SDQ_PREFIX),
                    items=answers,
                    impact=impact,
                    occurred_at=now,
                    now=now,
                )
                recorded["result"], recorded["id"] = None, None
                return
            before = {s.screening_id for s in patient.screenings}
            recorded["result"] = patient.record_screening(
                instrument=link.instrument, answers=answers, occurred_at=now, now=now
            )
            recorded["id"] = next(
                s.screening_id for s in patient.screenings if s.screening_id not in before
            )

        try:
            result = await runtime.app.execute(
                PatientAggregate, link.patient_id, run, metadata=metadata, now=now
            )
        except _LinkGoneError:
            await _audit(runtime, request, link.patient_id, "denied", "LINK_NOT_USABLE")
            return _not_usable()
        except domain_errors.DomainError as exc:
            async with runtime.pool.acquire() as conn:
                await patient_links.release(conn, link.link_id)
            await _audit(runtime, request, link.patient_id, "denied", exc.code)
            return _error(422, exc.code, exc.message, camel_path(getattr(exc, "field", None)))
        except Exception:
            async with runtime.pool.acquire() as conn:
                await patient_links.release(conn, link.link_id)
            raise
        if recorded["id"] is not None:
            async with runtime.pool.acquire() as conn:
                await patient_links.record_screening(conn, link.link_id, recorded["id"])
        await _audit(runtime, request, link.patient_id, "allowed", f"SUBMITTED:{link.link_id}")
        if result.position is not None:
            try:
                await runtime.projector.wait_for(
                    result.position,
                    runtime.settings.read_your_writes_timeout_seconds,
                    link.patient_id,
                )
            except ProjectionLagTimeoutError:
                log.warning("read-your-writes wait timed out after a patient report")
        safety = recorded["result"] is not None and bool(recorded["result"].safety_alert)
        return JSONResponse(
            {"status": "received", "message": SAFETY_MESSAGE if safety else THANKS_MESSAGE},
            status_code=201,
        )

    return [
        Route("/questionnaire", questionnaire, methods=["POST"]),
        Route("/submit", submit, methods=["POST"]),
    ]


def patient_reported_mount(
    get_runtime: Callable[[], Runtime | None], _verifier: TokenVerifier
) -> BaseRoute:
    """``/patient-reported``, for ``create_app(mounts=...)``."""
    return Mount("/patient-reported", routes=patient_reported_routes(get_runtime))
