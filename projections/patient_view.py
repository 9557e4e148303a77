"""The patient view: one document per patient, for ``patient(id:)`` in every role's portal.

Answers "who is this patient, where are they in their episode, who is on their team, how
are their scores and what is open": identity, episode status, care team, consents, every
screening with its items (ordered by effective time), latest and baseline score per
instrument, active flags, open tasks, contacts and minutes.

Scores are ordered by when they were taken (``occurred_at``), never by when they were
recorded, so a late entry of an older questionnaire does not become the "latest".
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.patient import Patient
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.source import RecordedEvent

NAME = "patient_view"
TABLE = "rm_patient_view"


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _new_doc(record: RecordedEvent, ev: Patient.Registered) -> Doc:
    return {
        "id": str(record.stream_id),
        "organisation_id": str(ev.organisation_id),
        "given_name": ev.given_name,
        "family_name": ev.family_name,
        "birth_date": _iso(ev.birth_date),
        "sex": ev.sex,
        "mrn": ev.mrn,
        "registered_at": _iso(ev.occurred_at),
        "status": None,
        "episode_number": 0,
        "enrolled_at": None,
        "care_team": {"care_manager_id": None, "pcp_id": None, "psychiatric_consultant_id": None},
        "consents": [],
        "screenings": [],
        "flags": [],
        "tasks": [],
        "contacts": 0,
        "minutes_total": 0,
        "last_contact_at": None,
        "last_case_review_at": None,
        "relapse_prevention_plan_at": None,
        "version": record.stream_version,
        "updated_at": _iso(record.recorded_at),
    }


def _set_status(doc: Doc, status: str, episode: int) -> None:
    doc["status"] = status
    doc["episode_number"] = episode


def evolve(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: the patient document after ``record`` (returns a new document)."""
    if record.stream_type != "patient":
        return doc
    ev = record.to_domain_event()
    if isinstance(ev, Patient.Registered):
        return _new_doc(record, ev)
    if doc is None:  # an event of a stream whose registration this model never saw
        return None
    doc = copy_doc(doc)
    doc["version"] = record.stream_version
    doc["updated_at"] = _iso(record.recorded_at)
    match ev:
        case Patient.Referred():
            _set_status(doc, "referred", ev.episode_number)
        case Patient.Enrolled():
            _set_status(doc, "enrolled", ev.episode_number)
            doc["enrolled_at"] = _iso(ev.occurred_at)
            if ev.new_episode:
                doc["last_case_review_at"] = None
                doc["relapse_prevention_plan_at"] = None
        case Patient.TreatmentStarted() | Patient.TreatmentResumed():
            _set_status(doc, "active_treatment", ev.episode_number)
        case Patient.RelapsePreventionStarted():
            _set_status(doc, "relapse_prevention", ev.episode_number)
        case Patient.Discharged():
            _set_status(doc, "discharged", ev.episode_number)
            doc["discharge_reason"] = ev.reason
        case Patient.Deactivated():
            _set_status(doc, "deactivated", ev.episode_number)
            doc["discharge_reason"] = ev.reason
        case Patient.CareTeamAssigned():
            doc["care_team"] = {
                "care_manager_id": _str(ev.care_manager_id),
                "pcp_id": _str(ev.pcp_id),
                "psychiatric_consultant_id": _str(ev.psychiatric_consultant_id),
            }
        case Patient.CareTeamMemberUnassigned():
            key = {"care_manager": "care_manager_id", "pcp": "pcp_id"}.get(
                ev.role, "psychiatric_consultant_id"
            )
            doc["care_team"][key] = None
        case Patient.ConsentGranted():
            doc["consents"].append(
                {
                    "id": str(ev.consent_id),
                    "kind": ev.kind,
                    "method": ev.method,
                    "partner_organisation_id": _str(ev.partner_organisation_id),
                    "granted_at": _iso(ev.occurred_at),
                    "expires_on": _iso(ev.expires_on),
                    "revoked_at": None,
                }
            )
        case Patient.ConsentRevoked():
            for consent in doc["consents"]:
                if consent["id"] == str(ev.consent_id):
                    consent["revoked_at"] = _iso(ev.occurred_at)
        case Patient.ScreeningRecorded():
            doc["screenings"].append(
                {
                    "id": str(ev.screening_id),
                    "instrument": ev.instrument,
                    "answers": list(ev.answers),
                    "complete": ev.complete,
                    "total": ev.total,
                    "severity": ev.severity,
                    "positive": ev.positive,
                    "safety_alert": ev.safety_alert,
                    "needs_follow_up": ev.needs_follow_up,
                    "rules_version": ev.rules_version,
                    "loinc_panel": ev.loinc_panel,
                    "loinc_total": ev.loinc_total,
                    # An imported total without answers (answers empty, no safety alert).
                    "total_only": ev.total_only,
                    "episode_number": ev.episode_number,
                    "occurred_at": _iso(ev.occurred_at),
                    "recorded_at": _iso(record.recorded_at),
                }
            )
            # Effective time first; recording order breaks ties.
            doc["screenings"].sort(key=lambda s: (s["occurred_at"], s["recorded_at"]))
        case Patient.ContactLogged():
            doc["contacts"] += 1
            doc["minutes_total"] += ev.minutes
            if doc["last_contact_at"] is None or _iso(ev.occurred_at) > doc["last_contact_at"]:
                doc["last_contact_at"] = _iso(ev.occurred_at)
        case Patient.FlagRaised():
            doc["flags"].append(
                {
                    "id": str(ev.flag_id),
                    "kind": ev.kind,
                    "rule_id": ev.rule_id,
                    "rule_version": ev.rule_version,
                    "inputs": ev.inputs or {},  # None once forgotten: free text
                    "raised_at": _iso(ev.occurred_at),
                }
            )
        case Patient.FlagCleared():
            doc["flags"] = [f for f in doc["flags"] if f["id"] != str(ev.flag_id)]
        case Patient.TaskCreated():
            doc["tasks"].append(
                {
                    "id": str(ev.task_id),
                    "kind": ev.kind,
                    "due_on": ev.due_on.isoformat(),
                    "source_id": _str(ev.source_id),
                    "assignee_id": _str(ev.assignee_id),
                    "created_at": _iso(ev.occurred_at),
                }
            )
        case Patient.TaskCompleted():
            doc["tasks"] = [t for t in doc["tasks"] if t["id"] != str(ev.task_id)]
        case Patient.PsychiatricCaseReviewRecorded():
            doc["last_case_review_at"] = max(
                filter(None, [doc["last_case_review_at"], _iso(ev.occurred_at)])
            )
        case Patient.Forgotten():
            for key in ("given_name", "family_name", "birth_date", "mrn"):
                doc[key] = None
            for flag in doc["flags"]:  # a team member's note is among a flag's inputs
                flag["inputs"] = {}
            doc["forgotten"] = True
        case Patient.RelapsePreventionPlanWritten():
            doc["relapse_prevention_plan_at"] = _iso(ev.occurred_at)
        case _:
            pass
    return doc


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _key(record: RecordedEvent) -> UUID | None:
    return record.patient_id if record.stream_type == "patient" else None


projection = KeyedDocumentProjection(
    name=NAME,
    table=TABLE,
    key_of=_key,
    evolve=evolve,
    columns={"organisation_id": "uuid"},
    derive=lambda doc: {"organisation_id": doc["organisation_id"]},
)
