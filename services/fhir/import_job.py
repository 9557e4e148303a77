"""Onboarding import, the commands: each parsed patient through careteam's command path.

Per patient, all or nothing: a new patient (no patient of the organisation holds the MRN,
found by the MRN blind index) is one ``registerPatient`` command whose aggregate also
carries the care team assignment of the importing clinician (as GraphQL's registration
does), the enrollment and every measure, appended in one transaction with the MRN claim;
an existing patient gets one ``recordScreening`` (or ``enrollPatient``) command with
what is new. Authorisation, typed refusals, audited denials, event metadata (the importer
as actor, ``channel: fhir``) and read-your-writes are the command path's
(``services/commands``), as for GraphQL.

A measure is a screening with its answers (``record_screening``) or a total alone
(``import_measure_total``: no answers, so no safety flag or task).

Idempotent: a measure's id is derived from the patient id, the instrument and the instant
(UUIDv5), so the same measure imported again is found and left alone; an enrollment is
added only to a patient without an episode. Before writing, the same domain methods run
on an in-memory copy, one step at a time, so a refusal names the step's field (a dry run
stops there). Nothing in the log or the report is patient data: rows are named by their
number, patients by their careteam id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID, uuid4, uuid5

from domain.errors import DomainError, InvalidBirthDateError
from domain.patient import Patient as PatientAggregate
from services.api.authz import Denied, check_patient_operation, check_role, record_access
from services.api.commanding import Written, run
from services.api.context import CareteamContext
from services.auth import Principal, Role
from services.commands.commands import Command, Creation, PatientCommand
from services.fhir import jobs
from services.fhir.importing import Measure, PatientRecord, Problem, Refused

log = logging.getLogger("careteam.fhir.import")

# The operations an import runs; the caller's role must hold every one.
OPERATIONS: Final = ("registerPatient", "enrollPatient", "recordScreening")
# The namespace of measure ids (UUIDv5 of the patient id, instrument and instant).
MEASURE_NAMESPACE: Final = UUID("6f1d8a52-6c1e-4d0e-9a43-0f3c1b7e5d21")


@dataclass
class Outcome:
    """The report line of one CSV row or Bundle entry."""

    ref: str
    outcome: str  # created, updated, unchanged, rejected
    patient_id: UUID | None = None
    measures_created: int = 0
    measures_unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "outcome": self.outcome,
            "patientId": None if self.patient_id is None else str(self.patient_id),
            "measuresCreated": self.measures_created,
            "measuresUnchanged": self.measures_unchanged,
            "errors": [{"code": p.code, "field": p.field} for p in self.problems],
        }


def report(dry_run: bool, total: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The import's report from its stored entries (``Outcome.as_json``)."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return {"dryRun": dry_run, "total": total, "counts": counts, "entries": entries}


def import_role_problem(ctx: CareteamContext) -> Denied | None:
    """The role-level refusal, before any row: an importer registers, enrolls and screens,
    so only a care manager or a PCP may import (an admin may register but not screen)."""
    principal = ctx.require_principal()
    for operation in OPERATIONS:
        try:
            check_role(principal, operation)
        except Denied as denied:
            return denied
    return None


def measure_id(patient_id: UUID, measure: Measure) -> UUID:
    return uuid5(patient_id, f"{measure.instrument}|{measure.occurred_at.timestamp():.0f}")


async def run_import(
    ctx: CareteamContext, job_id: str, dry_run: bool, records: list[PatientRecord | Refused]
) -> None:
    """Imports ``records`` one after the other, storing each report line as it goes
    (services/fhir/jobs.py); an unexpected error propagates (the job is then failed)."""
    pool = ctx.runtime.pool
    seen: set[bytes] = set()
    counts: dict[str, int] = {}
    for seq, record in enumerate(records):
        if isinstance(record, Refused):
            outcome = Outcome(record.ref, "rejected", problems=list(record.problems))
        else:
            outcome = await _one(ctx, dry_run, record, seen)
        await jobs.add_entry(pool, job_id, seq, outcome.as_json())
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    log.info("fhir import done dry_run=%s counts=%s", dry_run, counts)


async def _one(
    ctx: CareteamContext, dry_run: bool, record: PatientRecord, seen: set[bytes]
) -> Outcome:
    runtime = ctx.runtime
    principal = ctx.require_principal()
    org = principal.organisation_id
    mrn_index = runtime.app.mrn_index
    if mrn_index is None:
        return Outcome(record.ref, "rejected", problems=[Problem("IMPORT_UNAVAILABLE", "mrn")])
    digest = mrn_index.digest(org, record.mrn)
    if digest in seen:
        return Outcome(record.ref, "rejected", problems=[Problem("DUPLICATE_MRN_IN_FILE", "mrn")])
    seen.add(digest)
    async with runtime.pool.acquire() as conn:
        existing: UUID | None = await conn.fetchval(
            "SELECT patient_id FROM patient_mrn_index WHERE organisation_id = $1 "
            "AND mrn_digest = $2",
            org,
            digest,
        )
    now = runtime.clock()
    ordered = sorted(record.measures, key=lambda m: m.occurred_at)
    if existing is None:
        patient_id = uuid4()
        try:
            made = _register(record, principal, patient_id, now)
            outcome = Outcome(record.ref, "created", patient_id)
            _steps(made, record, ordered, now, outcome)
        except _Refusal as refusal:
            return Outcome(record.ref, "rejected", problems=[refusal.problem])
        if dry_run:
            outcome.patient_id = None  # nothing was registered
            return outcome

        return await _written(
            ctx, ImportNewPatient(record=record, principal=principal, new_id=patient_id), outcome
        )
    # An existing patient: the caller must be on its team (an audited denial otherwise).
    try:
        async with runtime.pool.acquire() as conn:
            for operation in ("enrollPatient", "recordScreening"):
                await check_patient_operation(conn, principal, operation, existing)
    except Denied as denied:
        async with runtime.pool.acquire() as conn:
            await record_access(
                conn,
                principal=principal,
                operation=denied.operation,
                patient_id=existing,
                outcome="denied",
                reason=denied.reason,
                purpose_of_use=ctx.purpose_of_use,
                request_id=ctx.request_id,
            )
        code = "PATIENT_NOT_FOUND" if denied.not_found else "NOT_ON_CARE_TEAM"
        return Outcome(record.ref, "rejected", problems=[Problem(code, "mrn")])
    loaded = await runtime.app.load(PatientAggregate, existing)
    outcome = Outcome(record.ref, "unchanged", existing)
    try:
        if loaded.birth_date != record.birth_date:
            raise _Refusal(Problem("IDENTITY_MISMATCH", "birth_date"))
        _steps(loaded, record, ordered, now, outcome)
    except _Refusal as refusal:
        return Outcome(record.ref, "rejected", existing, problems=[refusal.problem])
    if outcome.measures_created == 0 and outcome.outcome == "unchanged":
        return outcome
    outcome.outcome = "updated"
    if dry_run:
        return outcome
    command: Command = (
        ImportMeasures(patient=existing, record=record)
        if outcome.measures_created
        else ImportEnrollment(patient=existing, record=record)
    )
    return await _written(ctx, command, outcome)


# --- the import's commands (commands as data; services/commands runs them) -----------


@dataclass(frozen=True, kw_only=True)
class ImportNewPatient(Creation):
    """Registers an imported patient with the importer on the care team, enrolls it and
    records every measure, in one append (all or nothing)."""

    operation: ClassVar[str] = "registerPatient"
    aggregate: ClassVar[type[Any]] = PatientAggregate
    record: PatientRecord = field(compare=False)
    principal: Principal = field(compare=False)
    new_id: UUID

    def create(self, now: datetime) -> PatientAggregate:
        patient = _register(self.record, self.principal, self.new_id, now)
        ordered = sorted(self.record.measures, key=lambda m: m.occurred_at)
        _steps(patient, self.record, ordered, now, Outcome(self.record.ref, "created"))
        return patient


@dataclass(frozen=True, kw_only=True)
class ImportMeasures(PatientCommand):
    """Enrolls (when needed) an existing patient and records the imported measures that
    are new."""

    operation: ClassVar[str] = "recordScreening"
    record: PatientRecord = field(compare=False)

    def apply(self, aggregate: Any, now: datetime) -> object:
        ordered = sorted(self.record.measures, key=lambda m: m.occurred_at)
        _steps(aggregate, self.record, ordered, now, Outcome(self.record.ref, "updated"))
        return None


@dataclass(frozen=True, kw_only=True)
class ImportEnrollment(ImportMeasures):
    """An existing patient's import that only enrolls it (no new measure)."""

    operation: ClassVar[str] = "enrollPatient"


class _Refusal(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


def _register(
    record: PatientRecord, principal: Principal, patient_id: UUID, now: datetime
) -> PatientAggregate:
    """The registration, at the earliest instant of the record, with the importing
    clinician on the team in their own role (as GraphQL's registerPatient)."""
    instants = [m.occurred_at for m in record.measures]
    if record.enrolled_at is not None:
        instants.append(record.enrolled_at)
    occurred_at = min(instants, default=now)
    try:
        patient = PatientAggregate.register(
            given_name=record.given_name,
            family_name=record.family_name,
            birth_date=record.birth_date,
            mrn=record.mrn,
            organisation_id=principal.organisation_id,
            sex=record.sex,
            occurred_at=occurred_at,
            now=now,
            id=patient_id,
        )
        role = "care_manager_id" if principal.role is Role.CARE_MANAGER else "pcp_id"
        team = {role: principal.user_id}
        patient.assign_care_team(occurred_at=occurred_at, now=now, **team)
    except DomainError as exc:
        where = "birth_date" if isinstance(exc, InvalidBirthDateError) else exc.field
        raise _Refusal(Problem(exc.code, where or "record")) from None
    return patient


def _steps(
    patient: PatientAggregate,
    record: PatientRecord,
    ordered: list[Measure],
    now: datetime,
    outcome: Outcome,
) -> None:
    """Enrollment (once, for a patient without an episode), then each measure not yet
    recorded, oldest first; a refusal names the column or element of the step."""
    if record.enrolled_at is not None and patient.current_episode is None:
        try:
            patient.enroll(occurred_at=record.enrolled_at, now=now)
        except DomainError as exc:
            raise _Refusal(Problem(exc.code, "enrolled_on")) from None
        outcome.outcome = "created" if outcome.outcome == "created" else "updated"
    recorded = {s.screening_id: s for s in patient.screenings}
    for measure in ordered:
        screening_id = measure_id(patient.id, measure)
        previous = recorded.get(screening_id)
        if previous is not None:
            same = (
                previous.total_only and previous.total == measure.total
                if measure.total is not None
                else not previous.total_only and tuple(previous.answers) == measure.answers
            )
            if not same:
                raise _Refusal(Problem("MEASURE_CONFLICT", measure.field))
            outcome.measures_unchanged += 1
            continue
        try:
            if measure.total is not None:  # a total alone: no answers, no safety item
                patient.import_measure_total(
                    instrument=measure.instrument,
                    total=measure.total,
                    occurred_at=measure.occurred_at,
                    now=now,
                    screening_id=screening_id,
                )
            else:
                patient.record_screening(
                    instrument=measure.instrument,
                    answers=list(measure.answers),
                    occurred_at=measure.occurred_at,
                    now=now,
                    screening_id=screening_id,
                )
        except DomainError as exc:
            raise _Refusal(Problem(exc.code, measure.field)) from None
        outcome.measures_created += 1


async def _written(ctx: CareteamContext, command: Command, outcome: Outcome) -> Outcome:
    """Runs one import command through the command path (``commanding.run``)."""
    written = await run(ctx, command)
    if isinstance(written, Written):
        return outcome
    code = getattr(written, "code", "ERROR")
    return Outcome(
        outcome.ref,
        "rejected",
        command.patient_id,
        problems=[Problem(str(code), str(getattr(written, "field", None) or "record"))],
    )
