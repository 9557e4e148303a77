"""The public event types partners receive: a versioned contract, one JSON Schema each.

A public event type is a minimum-necessary projection of one internal event type:
which fields leave careteam is decided here, per type, and nowhere else. Every
projection has the same frame:

- ``patient``: the partner-specific pseudonym of the patient (never the internal id);
- ``occurred_at``: the clinical effective time;
- the type's own fields (codes, numbers, dates, pseudonymous record ids: no names, no
  MRN, no free text, no actor metadata);
- ``confidentiality`` only on 42 CFR Part 2 data: its label and redisclosure notice.

Each type has a JSON Schema at ``services/partners/schemas/<name>.v<version>.json``
(``additionalProperties: false`` everywhere, so a field added by mistake fails
validation instead of leaking). A breaking change is a new version beside the old one;
partners name the versions they accept (``referral.requested.v1``).

Deliberately not public: registration (identity), care team, consents, contacts and
minutes, flags and tasks, goals and interventions (free text, medication names that can
reveal a substance use disorder), consultation questions, drafts and recommendations.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from hashlib import sha256
from importlib import resources
from typing import Any
from uuid import UUID

from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.patient import Patient
from domain.referral import Referral
from services.eventstore import RecordedEvent
from services.partners.rules import PART2_CONFIDENTIALITY_CODE, REDISCLOSURE_NOTICE

TYPE_PREFIX = "org.careteam.partner"
SCHEMA_ID_PREFIX = "urn:careteam:partner-event:"
# Where a deployment serves the public schemas, without authentication (services/api).
SCHEMA_PATH = "/schemas/partners"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Publisher:
    """Where one deployment publishes partner feeds and their contract.

    ``base_url`` is ``CARETEAM_PUBLIC_BASE_URL`` (the deployment as partners reach it).
    A message's CloudEvents ``source`` names the deployment and the organisation whose
    patients the feed discloses; its ``dataschema`` is the URL at which that deployment
    serves the JSON Schema of its data.
    """

    base_url: str = DEFAULT_BASE_URL

    def source(self, organisation_id: UUID) -> str:
        return f"{self.base_url}/organisations/{organisation_id}/partner-feed"

    def schema_url(self, key: str) -> str:
        """The URL of the JSON Schema of public type ``key`` (``referral.requested.v1``)."""
        return f"{self.base_url}{SCHEMA_PATH}/{key}.json"

    def published_schema(self, key: str) -> dict[str, Any]:
        """The schema as served: its ``$id`` is the URL it is served at."""
        return {**public_type(key).schema(), "$id": self.schema_url(key)}


class UnknownPublicTypeError(LookupError):
    """A public event type key that the contract does not define."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no public event type {key}")
        self.key = key


class Pseudonyms:
    """Partner-specific pseudonyms: HMAC-SHA256 under the partner's own key.

    The same patient gets a different, stable id at each partner, so partners cannot
    join their feeds on it and nobody can turn it back into careteam's id without the
    key, which never leaves careteam.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonym keys must be at least 16 bytes")
        self._key = key

    def of(self, kind: str, value: UUID) -> str:
        """The pseudonym of ``value`` in the namespace ``kind`` (32 hex digits)."""
        return hmac.new(self._key, f"{kind}:{value}".encode(), sha256).hexdigest()[:32]

    def patient(self, patient_id: UUID) -> str:
        return self.of("patient", patient_id)

    def event(self, event_id: UUID) -> str:
        return self.of("event", event_id)


@dataclass(frozen=True)
class Source:
    """What a projection may look at besides the decoded event."""

    stream_type: str
    stream_id: UUID
    pseudonyms: Pseudonyms

    @property
    def record(self) -> str:
        """The pseudonym of the record (stream) the event belongs to."""
        return self.pseudonyms.of(self.stream_type, self.stream_id)


Projection = Callable[[Any, Source], dict[str, Any]]


@dataclass(frozen=True)
class PublicEventType:
    """One version of one public event type."""

    name: str
    version: int
    source: str  # the internal event type it projects
    description: str  # what it discloses, in words (for the accounting of disclosures)
    project: Projection
    # --- FHIR payloads (docs/partners.md): a FHIR type's data is the resource itself,
    # not careteam's frame; its media type says so.
    media_type: str = "application/json"
    fhir: bool = False

    @property
    def key(self) -> str:
        """``referral.requested.v1``: how partners and schema files name it."""
        return f"{self.name}.v{self.version}"

    @property
    def cloudevent_type(self) -> str:
        return f"{TYPE_PREFIX}.{self.key}"

    @property
    def schema_id(self) -> str:
        return f"{SCHEMA_ID_PREFIX}{self.key}"

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the type's data (package data; loaded once)."""
        return _schema(self.key)

    def data(self, event: RecordedEvent, pseudonyms: Pseudonyms, *, part2: bool) -> dict[str, Any]:
        """The public, minimum-necessary data for ``event``."""
        decoded = event.to_domain_event()
        source = Source(event.stream_type, event.stream_id, pseudonyms)
        if self.fhir:
            return _fhir_frame(self.project(decoded, source), event, decoded, pseudonyms, part2)
        data: dict[str, Any] = {
            "patient": pseudonyms.patient(event.patient_id),
            "occurred_at": rfc3339(decoded.occurred_at),
            **self.project(decoded, source),
        }
        if part2:
            data["confidentiality"] = {
                "code": PART2_CONFIDENTIALITY_CODE,
                "notice": REDISCLOSURE_NOTICE,
            }
        return data


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@cache
def _schema(key: str) -> dict[str, Any]:
    text = resources.files("services.partners").joinpath("schemas", f"{key}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


# --- projections, one per public type ---------------------------------------------------


def _episode(e: Any, _s: Source) -> dict[str, Any]:
    return {"episode_number": e.episode_number}


def _enrolled(e: Patient.Enrolled, _s: Source) -> dict[str, Any]:
    return {"episode_number": e.episode_number, "new_episode": e.new_episode}


def _episode_ended(e: Patient.Discharged | Patient.Deactivated, _s: Source) -> dict[str, Any]:
    return {"episode_number": e.episode_number, "reason": e.reason}


def _screening(e: Patient.ScreeningRecorded, s: Source) -> dict[str, Any]:
    # Totals and bands only: item answers (item 9 above all) stay with the care team.
    return {
        "screening": s.pseudonyms.of("screening", e.screening_id),
        "instrument": e.instrument,
        "complete": e.complete,
        "total": e.total,
        "severity": e.severity,
        "loinc_panel": e.loinc_panel,
        "loinc_total": e.loinc_total,
    }


def _reminder(e: Patient.MeasurementReminderDue, s: Source) -> dict[str, Any]:
    # What is due and since when; a messaging partner maps the pseudonym to its contact.
    return {
        "reminder": s.pseudonyms.of("reminder", e.reminder_id),
        "instrument": e.instrument,
        "due_on": e.due_on.isoformat(),
    }


def _referral_requested(e: Referral.Requested, s: Source) -> dict[str, Any]:
    # No reason and no requester: free text and staff identities are not needed.
    return {
        "referral": s.record,
        "service": e.service,
        "receiving_organisation_id": (
            str(e.receiving_organisation_id) if e.receiving_organisation_id else None
        ),
        "expected_by": e.expected_by.isoformat(),
    }


def _referral_step(_e: Any, s: Source) -> dict[str, Any]:
    # Declined, cancelled and completed carry free text (reasons, the report back): not sent.
    return {"referral": s.record}


def _referral_scheduled(e: Referral.Scheduled, s: Source) -> dict[str, Any]:
    return {"referral": s.record, "appointment_at": rfc3339(e.appointment_at)}


def _care_plan_reviewed(e: CarePlan.Reviewed, s: Source) -> dict[str, Any]:
    return {
        "care_plan": s.record,
        "decision": e.decision,
        "baseline_total": e.baseline_total,
        "latest_total": e.latest_total,
    }


def _note_signed(e: ConsultationNote.Signed, s: Source) -> dict[str, Any]:
    return {"consultation_note": s.record, "recommendation_count": len(e.recommendation_ids)}


# --- FHIR R4 payloads: the same minimum necessary as the JSON types, as resources ---------

FHIR_MEDIA_TYPE = "application/fhir+json"
PSEUDONYM_SYSTEM = "urn:careteam:partner-pseudonym"
_LOINC = "http://loinc.org"


def _fhir_frame(
    resource: dict[str, Any],
    event: RecordedEvent,
    decoded: Any,
    pseudonyms: Pseudonyms,
    part2: bool,
) -> dict[str, Any]:
    """The subject (the partner's pseudonym, a logical reference: no Patient resource is
    sent), the effective time, and on Part 2 data its security label and notice."""
    pseudonym = pseudonyms.patient(event.patient_id)
    framed = {
        **resource,
        "subject": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": pseudonym}},
        "effectiveDateTime": rfc3339(decoded.occurred_at),
        "issued": rfc3339(event.recorded_at),
    }
    if part2:
        framed["meta"] = {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "42CFRPart2",
                }
            ]
        }
        framed["note"] = [{"text": REDISCLOSURE_NOTICE}]
    return framed


def _fhir_observation(e: Patient.ScreeningRecorded, s: Source) -> dict[str, Any]:
    """A questionnaire's total as a survey Observation: the LOINC total code, the total,
    the severity band as text. No item answers and no QuestionnaireResponse (item 9 stays
    with the care team, as in patient.screening_recorded.v1); an incomplete or unscored
    questionnaire has no value (dataAbsentReason)."""
    code: dict[str, Any] = {"text": f"{e.instrument} total score"}
    if e.loinc_total:
        code["coding"] = [{"system": _LOINC, "code": e.loinc_total}]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": s.pseudonyms.of("screening", e.screening_id),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": code,
    }
    if e.total is not None:
        resource["valueInteger"] = e.total
    else:
        resource["dataAbsentReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "not-performed" if not e.complete else "unknown",
                }
            ]
        }
    if e.severity:
        resource["interpretation"] = [{"text": e.severity}]
    return resource


def _t(name: str, source: str, description: str, project: Projection) -> PublicEventType:
    return PublicEventType(name, 1, source, description, project)


_P, _R = "patient.", "referral."
CATALOGUE: tuple[PublicEventType, ...] = (
    _t(
        "patient.referred",
        _P + "referred",
        "referral to collaborative care (episode number, date)",
        _episode,
    ),
    _t(
        "patient.enrolled",
        _P + "enrolled",
        "enrollment in collaborative care (episode number, date)",
        _enrolled,
    ),
    _t(
        "patient.treatment_started",
        _P + "treatment_started",
        "start of active treatment (episode number, date)",
        _episode,
    ),
    _t(
        "patient.relapse_prevention_started",
        _P + "relapse_prevention_started",
        "move to relapse prevention (episode number, date)",
        _episode,
    ),
    _t(
        "patient.treatment_resumed",
        _P + "treatment_resumed",
        "resumption of active treatment (episode number, date)",
        _episode,
    ),
    _t(
        "patient.discharged",
        _P + "discharged",
        "discharge from collaborative care (episode number, reason code, date)",
        _episode_ended,
    ),
    _t(
        "patient.deactivated",
        _P + "deactivated",
        "end of an episode without discharge (episode number, reason code, date)",
        _episode_ended,
    ),
    _t(
        "patient.screening_recorded",
        _P + "screening_recorded",
        "questionnaire result (instrument, total, severity band, LOINC codes, date)",
        _screening,
    ),
    _t(  # patient channel (issue #19): reminders a messaging partner delivers
        "patient.measurement_reminder_due",
        _P + "measurement_reminder_due",
        "a measure is due: remind the patient (instrument, due date)",
        _reminder,
    ),
    _t(
        "referral.requested",
        _R + "requested",
        "referral to an outside service (service type, receiving organisation, due date)",
        _referral_requested,
    ),
    _t("referral.sent", _R + "sent", "referral sent (date)", _referral_step),
    _t("referral.accepted", _R + "accepted", "referral accepted (date)", _referral_step),
    _t("referral.declined", _R + "declined", "referral declined (date)", _referral_step),
    _t(
        "referral.scheduled",
        _R + "scheduled",
        "referral appointment scheduled (appointment time)",
        _referral_scheduled,
    ),
    _t("referral.completed", _R + "completed", "referral completed (date)", _referral_step),
    _t("referral.cancelled", _R + "cancelled", "referral cancelled (date)", _referral_step),
    _t(
        "care_plan.reviewed",
        "care_plan.reviewed",
        "treat-to-target review (decision, baseline and latest totals, date)",
        _care_plan_reviewed,
    ),
    _t(
        "consultation_note.signed",
        "consultation_note.signed",
        "psychiatric consultation signed (number of recommendations, date)",
        _note_signed,
    ),
)

# FHIR R4 payloads beside the JSON types: a partner chooses by the types it accepts.
CATALOGUE += (
    PublicEventType(
        "fhir.observation",
        1,
        _P + "screening_recorded",
        "questionnaire result as a FHIR R4 Observation (LOINC total code, total, severity "
        "band, date)",
        _fhir_observation,
        media_type=FHIR_MEDIA_TYPE,
        fhir=True,
    ),
)

BY_KEY: Mapping[str, PublicEventType] = {t.key: t for t in CATALOGUE}


def public_type(key: str) -> PublicEventType:
    """The public type ``name.vN``; raises UnknownPublicTypeError."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise UnknownPublicTypeError(key) from None


def public_types_for(event_type: str, allowed: frozenset[str]) -> list[PublicEventType]:
    """The public versions of an internal event type that a partner accepts."""
    return [t for t in CATALOGUE if t.source == event_type and t.key in allowed]


class ContractViolationError(ValueError):
    """A projection does not match its own schema (a bug here: it is never sent)."""

    def __init__(self, key: str, path: str, problem: str) -> None:
        super().__init__(f"{key} data violates its schema at {path or '/'}: {problem}")
        self.key = key


@cache
def _validator(key: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped, unused-ignore]

    schema = _schema(key)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate(public: PublicEventType, data: Mapping[str, Any]) -> None:
    """Raises ContractViolationError unless ``data`` matches the type's JSON Schema."""
    error = next(iter(_validator(public.key).iter_errors(data)), None)
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        # The validator's message may quote the offending value; keep only its kind.
        raise ContractViolationError(public.key, path, str(error.validator))
