"""Pure mappings from careteam's patient view document to FHIR R4 resources (JSON dicts).

Every function here takes the stored ``rm_patient_view`` document (projections.patient_view)
and returns plain JSON-ready dicts; nothing reads a clock, a database or a request, so
tests/unit/fhir checks each mapping on its own. docs/fhir.md says what maps to what,
which codes are used, and what is left out on purpose.

Ids: a Patient, its CareTeam and its EpisodeOfCare take the patient's id (one team and
one current episode per patient; the episode's id carries its number); an Observation
and the QuestionnaireResponse it is derived from both take the screening's id (ids are
unique per resource type); a Consent takes the consent's id. A total imported without
its answers (``total_only``) is an Observation with no QuestionnaireResponse and no
``derivedFrom``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from domain.care_plan import CarePlan
from domain.instruments import SPECS, Instrument

Resource = dict[str, Any]

FHIR_VERSION: Final = "4.0.1"
LOINC: Final = "http://loinc.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# A careteam id (user, organisation) is a UUID: written as a URI, it is its own system.
URI_SYSTEM: Final = "urn:ietf:rfc:3986"
# The MRN is assigned by the patient's organisation; careteam names that namespace.
MRN_SYSTEM: Final = "urn:careteam:mrn"
# LOINC 59284-0 "Consent Document", the category R4's own examples use for consents.
CONSENT_CATEGORY_LOINC: Final = "59284-0"

SEX_TO_GENDER: Final = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}

# careteam's episode statuses -> EpisodeOfCare.status (required binding).
EPISODE_STATUS: Final = {
    "referred": "planned",
    "enrolled": "active",
    "active_treatment": "active",
    "relapse_prevention": "active",
    "discharged": "finished",
    "deactivated": "finished",
}

CARE_TEAM_ROLES: Final = (
    ("care_manager_id", "Behavioral health care manager"),
    ("pcp_id", "Primary care provider"),
    ("psychiatric_consultant_id", "Psychiatric consultant"),
)

CONSENT_TEXT: Final = {
    "cocm_treatment": "Consent to collaborative care (treatment and its cost sharing)",
    "data_sharing": "Consent to share care events with a partner organisation",
    "part2": "Consent to disclose 42 CFR Part 2 records to a partner organisation",
}


def _ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def _uuid_identifier(value: str, resource_type: str) -> dict[str, Any]:
    """A logical reference to something careteam does not serve as a FHIR resource."""
    return {
        "type": resource_type,
        "identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{value}"},
    }


def _organisation(doc: dict[str, Any]) -> dict[str, Any]:
    return _uuid_identifier(doc["organisation_id"], "Organization")


def patient(doc: dict[str, Any]) -> Resource:
    """The Patient: identity as registered; a forgotten patient carries none of it."""
    resource: Resource = {"resourceType": "Patient", "id": doc["id"]}
    if doc.get("mrn"):
        resource["identifier"] = [{"use": "usual", "system": MRN_SYSTEM, "value": doc["mrn"]}]
    resource["active"] = doc.get("status") != "deactivated"
    name: dict[str, Any] = {}
    if doc.get("family_name"):
        name["family"] = doc["family_name"]
    if doc.get("given_name"):
        name["given"] = [doc["given_name"]]
    if name:
        resource["name"] = [{"use": "official", **name}]
    gender = SEX_TO_GENDER.get(doc.get("sex") or "")
    if gender is not None:
        resource["gender"] = gender
    if doc.get("birth_date"):
        resource["birthDate"] = doc["birth_date"]
    resource["managingOrganization"] = _organisation(doc)
    return resource


def _spec(screening: dict[str, Any]) -> Any:
    return SPECS[Instrument(screening["instrument"])]


def total_only(screening: dict[str, Any]) -> bool:
    """A total imported without its answers: it has no QuestionnaireResponse."""
    return bool(screening.get("total_only"))


def questionnaire_response(doc: dict[str, Any], screening: dict[str, Any]) -> Resource:
    """A screening's item answers. Items are numbered 1..n in the instrument's order;
    an unanswered item is left out; yes/no items (0-1) are booleans."""
    spec = _spec(screening)
    items = []
    for number, (answer, high) in enumerate(
        zip(screening["answers"], spec.item_max, strict=False), start=1
    ):
        if answer is None:
            continue
        value = {"valueBoolean": answer == 1} if high == 1 else {"valueInteger": answer}
        items.append({"linkId": str(number), "answer": [value]})
    resource: Resource = {
        "resourceType": "QuestionnaireResponse",
        "id": screening["id"],
    }
    if spec.loinc_panel is not None:
        resource["questionnaire"] = f"{LOINC}/q/{spec.loinc_panel}"
    resource.update(
        {
            "status": "completed",
            "subject": _ref("Patient", doc["id"]),
            "authored": screening["occurred_at"],
        }
    )
    if items:
        resource["item"] = items
    return resource


def observation(doc: dict[str, Any], screening: dict[str, Any]) -> Resource | None:
    """The total score of a complete screening, or None when there is no total (an
    incomplete questionnaire, or an instrument without a LOINC total such as the ASQ)."""
    spec = _spec(screening)
    total = screening.get("total")
    if total is None or spec.loinc_total is None:
        return None
    resource: Resource = {
        "resourceType": "Observation",
        "id": screening["id"],
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
        "code": {
            "coding": [{"system": LOINC, "code": spec.loinc_total}],
            "text": f"{spec.title} total score",
        },
        "subject": _ref("Patient", doc["id"]),
        "effectiveDateTime": screening["occurred_at"],
        "issued": screening["recorded_at"],
        "valueInteger": total,
    }
    if screening.get("severity"):
        resource["interpretation"] = [{"text": screening["severity"].replace("_", " ")}]
    if not total_only(screening):
        resource["derivedFrom"] = [_ref("QuestionnaireResponse", screening["id"])]
    return resource


def observations(doc: dict[str, Any]) -> list[Resource]:
    """Every total score of the patient, in the order the screenings were taken."""
    found = (observation(doc, s) for s in doc.get("screenings", []))
    return [o for o in found if o is not None]


def questionnaire_responses(doc: dict[str, Any]) -> list[Resource]:
    """Every screening of the patient with answers as a QuestionnaireResponse (an
    imported total has none)."""
    return [questionnaire_response(doc, s) for s in doc.get("screenings", []) if not total_only(s)]


def care_team(doc: dict[str, Any]) -> Resource | None:
    """The patient's collaborative care team (None while nobody is on it)."""
    team = doc.get("care_team") or {}
    participants = [
        {"role": [{"text": label}], "member": _uuid_identifier(team[key], "Practitioner")}
        for key, label in CARE_TEAM_ROLES
        if team.get(key)
    ]
    if not participants:
        return None
    ended = doc.get("status") in ("discharged", "deactivated")
    return {
        "resourceType": "CareTeam",
        "id": doc["id"],
        "status": "inactive" if ended else "active",
        "name": "Collaborative care team",
        "subject": _ref("Patient", doc["id"]),
        "participant": participants,
        "managingOrganization": [_organisation(doc)],
    }


def episode_id(doc: dict[str, Any]) -> str:
    return f"{doc['id']}-{doc.get('episode_number', 0)}"


def episode_of_care(doc: dict[str, Any]) -> Resource | None:
    """The current collaborative care episode (None before the patient is referred)."""
    status = EPISODE_STATUS.get(doc.get("status") or "")
    if status is None or not doc.get("episode_number"):
        return None
    resource: Resource = {
        "resourceType": "EpisodeOfCare",
        "id": episode_id(doc),
        "status": status,
        "type": [{"text": "Collaborative care (behavioral health integration)"}],
        "patient": _ref("Patient", doc["id"]),
        "managingOrganization": _organisation(doc),
    }
    if doc.get("enrolled_at"):
        resource["period"] = {"start": doc["enrolled_at"]}
    if (doc.get("care_team") or {}).get("care_manager_id"):
        resource["careManager"] = _uuid_identifier(
            doc["care_team"]["care_manager_id"], "Practitioner"
        )
    if care_team(doc) is not None:
        resource["team"] = [_ref("CareTeam", doc["id"])]
    return resource


def consent(doc: dict[str, Any], granted: dict[str, Any]) -> Resource:
    """One consent: treatment or privacy scope, opt-in, active until revoked.

    Expiry is a provision period; whether an unrevoked consent has expired depends on
    the day it is read, so the status says only whether it was revoked.
    """
    treatment = granted["kind"] == "cocm_treatment"
    scope = "treatment" if treatment else "patient-privacy"
    resource: Resource = {
        "resourceType": "Consent",
        "id": granted["id"],
        "status": "inactive" if granted.get("revoked_at") else "active",
        "scope": {
            "coding": [
                {
                    "system": CONSENT_SCOPE,
                    "code": scope,
                    "display": "Treatment" if treatment else "Privacy Consent",
                }
            ]
        },
        "category": [
            {
                "coding": [{"system": LOINC, "code": CONSENT_CATEGORY_LOINC}],
                "text": CONSENT_TEXT.get(granted["kind"], granted["kind"]),
            }
        ],
        "patient": _ref("Patient", doc["id"]),
        "dateTime": granted["granted_at"],
        "organization": [_organisation(doc)],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}]},
    }
    provision: dict[str, Any] = {"type": "permit"}
    period: dict[str, str] = {"start": granted["granted_at"]}
    if granted.get("revoked_at"):
        period["end"] = granted["revoked_at"]
    elif granted.get("expires_on"):
        period["end"] = granted["expires_on"]
    provision["period"] = period
    if granted.get("partner_organisation_id"):
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": _uuid_identifier(granted["partner_organisation_id"], "Organization"),
            }
        ]
    resource["provision"] = provision
    return resource


def consents(doc: dict[str, Any]) -> list[Resource]:
    return [consent(doc, c) for c in doc.get("consents", [])]


# --- referrals: ServiceRequest ------------------------------------------------------------

REFERRAL_STATUS: Final = {
    "requested": "draft",
    "sent": "active",
    "accepted": "active",
    "scheduled": "active",
    "completed": "completed",
    "declined": "revoked",
    "cancelled": "revoked",
}

REFERRAL_SERVICE: Final = {
    "specialty_psychiatry": "Specialty psychiatry",
    "psychotherapy": "Psychotherapy",
    "substance_use_treatment": "Substance use treatment",
    "community_services": "Community services",
    "other": "Other service",
}
# SNOMED CT 3457005 "Patient referral", the category R4's own referral examples use.
SNOMED: Final = "http://snomed.info/sct"
REFERRAL_CATEGORY: Final = "3457005"


def service_request(referral: dict[str, Any]) -> Resource:
    """A referral (the referral tracker's document) and whether its report came back.

    Status: requested (not yet sent) is draft; sent, accepted and scheduled are active;
    completed (the report came back) is completed; declined and cancelled are revoked.
    """
    resource: Resource = {
        "resourceType": "ServiceRequest",
        "id": referral["id"],
        "status": REFERRAL_STATUS.get(referral["status"], "unknown"),
        "intent": "order",
        "category": [
            {
                "coding": [{"system": SNOMED, "code": REFERRAL_CATEGORY}],
                "text": "Referral",
            }
        ],
        "code": {"text": REFERRAL_SERVICE.get(referral["service"], referral["service"])},
        "subject": _ref("Patient", referral["patient_id"]),
    }
    if referral.get("appointment_at"):
        resource["occurrenceDateTime"] = referral["appointment_at"]
    resource["authoredOn"] = referral["requested_at"]
    if referral.get("requested_by"):
        resource["requester"] = _uuid_identifier(referral["requested_by"], "Practitioner")
    if referral.get("receiving_organisation_id"):
        resource["performer"] = [
            _uuid_identifier(referral["receiving_organisation_id"], "Organization")
        ]
    if referral.get("reason"):
        resource["reasonCode"] = [{"text": referral["reason"]}]
    if referral.get("report_back"):
        resource["note"] = [
            {
                "time": referral["closed_at"],
                "text": "The receiving organisation reported back; the referral is closed.",
            }
        ]
    return resource


# --- care plans: CarePlan and Goal ---------------------------------------------------------

GOAL_STATUS: Final = {"open": "active", "achieved": "completed", "dropped": "cancelled"}
INTERVENTION_STATUS: Final = {"active": "in-progress", "stopped": "stopped"}


def _masked() -> dict[str, Any]:
    """FHIR's data-absent-reason: the value exists but this reader may not see it (minimum
    necessary), or it was erased with the patient."""
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "masked",
    }


def care_plan_doc(plan: CarePlan) -> dict[str, Any]:
    """The care plan aggregate as a plain document (what the FHIR mappings read)."""

    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": str(plan.id),
        "patient_id": str(plan.patient_id),
        "episode_number": plan.episode_number,
        "author_id": None if plan.author_id is None else str(plan.author_id),
        "status": plan.status.value,
        "created_at": iso(plan.created_at),
        "closed_at": iso(plan.closed_at),
        "goals": [
            {
                "id": str(g.goal_id),
                "description": g.description,
                "status": g.status.value,
                "added_at": iso(g.added_at),
            }
            for g in plan.goals.values()
        ],
        "targets": [
            {
                "id": str(t.target_id),
                "instrument": t.instrument.value,
                "kind": t.kind.value,
                "value": t.value,
                "due_on": iso(t.due_on),
                "set_at": iso(t.set_at),
                "removed": t.removed_at is not None,
            }
            for t in plan.targets.values()
        ],
        "interventions": [
            {
                "id": str(i.intervention_id),
                "kind": i.kind.value,
                "name": i.name,
                "dose": i.dose,
                "modality": None if i.modality is None else i.modality.value,
                "status": i.status.value,
            }
            for i in plan.interventions.values()
        ],
    }


def goal_id(plan: dict[str, Any], item_id: str) -> str:
    """A goal's FHIR id: its plan's id and its own, 32 hex digits each (64, FHIR's limit),
    so a read by id finds the plan without an index."""
    return str(plan["id"]).replace("-", "") + item_id.replace("-", "")


def split_goal_id(value: str) -> tuple[str, str] | None:
    """(plan id, goal or target id) of a Goal id, or None when it is not one."""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        return None

    def dashed(h: str) -> str:
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return dashed(value[:32]), dashed(value[32:])


def _target_text(target: dict[str, Any]) -> str:
    title = SPECS[Instrument(target["instrument"])].title
    if target["kind"] == "score_below":
        return f"{title} total below {target['value']}"
    return f"{title} total reduced by at least {target['value']}% from baseline"


def goals(plan: dict[str, Any]) -> list[Resource]:
    """The plan's goals (the team's words) and measurable targets, as Goals."""
    subject = _ref("Patient", plan["patient_id"])
    found: list[Resource] = []
    for g in plan["goals"]:
        resource: Resource = {
            "resourceType": "Goal",
            "id": goal_id(plan, g["id"]),
            "lifecycleStatus": GOAL_STATUS.get(g["status"], "active"),
        }
        if g["status"] == "achieved":
            resource["achievementStatus"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                        "code": "achieved",
                        "display": "Achieved",
                    }
                ]
            }
        resource.update(
            {
                "description": (
                    {"text": g["description"]}
                    if g["description"] is not None
                    else {"extension": [_masked()]}
                ),
                "subject": subject,
                "startDate": g["added_at"][:10],
            }
        )
        found.append(resource)
    for t in plan["targets"]:
        spec = SPECS[Instrument(t["instrument"])]
        target: dict[str, Any] = {}
        if spec.loinc_total is not None:
            target["measure"] = {"coding": [{"system": LOINC, "code": spec.loinc_total}]}
        if t["kind"] == "score_below":
            target["detailQuantity"] = {"value": t["value"], "comparator": "<"}
        if t.get("due_on"):
            target["dueDate"] = t["due_on"]
        resource = {
            "resourceType": "Goal",
            "id": goal_id(plan, t["id"]),
            "lifecycleStatus": "cancelled" if t["removed"] else "active",
            "description": {"text": _target_text(t)},
            "subject": subject,
            "startDate": t["set_at"][:10],
        }
        if target:
            resource["target"] = [target]
        found.append(resource)
    return found


def care_plan(plan: dict[str, Any]) -> Resource:
    """The plan: status, period, author, its goals and its interventions as activities."""
    closed = plan["status"] == "closed"
    resource: Resource = {
        "resourceType": "CarePlan",
        "id": plan["id"],
        "status": "completed" if closed else "active",
        "intent": "plan",
        "title": f"Collaborative care plan, episode {plan['episode_number']}",
        "subject": _ref("Patient", plan["patient_id"]),
        "period": {"start": plan["created_at"]},
        "created": plan["created_at"],
    }
    if plan.get("closed_at"):
        resource["period"]["end"] = plan["closed_at"]
    if plan.get("author_id"):
        resource["author"] = _uuid_identifier(plan["author_id"], "Practitioner")
    found = goals(plan)
    if found:
        resource["goal"] = [_ref("Goal", g["id"]) for g in found]
    activities = []
    for i in plan["interventions"]:
        detail: dict[str, Any] = {}
        if i["kind"] == "medication":
            detail["kind"] = "MedicationRequest"
        detail["code"] = {"text": i["kind"]}
        detail["status"] = INTERVENTION_STATUS.get(i["status"], "unknown")
        if i["kind"] == "medication" and i["name"] is not None:
            detail["productCodeableConcept"] = {"text": i["name"]}
        words = [i["name"], i.get("dose"), i.get("modality")]
        if any(words):
            detail["description"] = ", ".join(w for w in words if w)
        activities.append({"detail": detail})
    if activities:
        resource["activity"] = activities
    return resource


# --- the access log: AuditEvent --------------------------------------------------------------

DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# careteam's operation names (GraphQL fields and FHIR interactions) as a code system.
OPERATION_SYSTEM: Final = "urn:careteam:operation"
PURPOSE_OF_USE: Final = {
    "TREATMENT": "TREAT",
    "PAYMENT": "HPAYMT",
    "OPERATIONS": "HOPERAT",
    "AUDIT": "HCOMPL",
    "EMERGENCY": "ETREAT",
}


def audit_event(row: dict[str, Any]) -> Resource:
    """One access log row (a read of the patient's data, or a refusal) as an AuditEvent.

    ``row``: id, at, actor_id, role, patient_id, operation, outcome (allowed or denied),
    reason, purpose_of_use, fields. Every allowed row is a read (writes are events in the
    log, not access rows); a refusal is a minor failure with its reason.
    """
    allowed = row["outcome"] == "allowed"
    resource: Resource = {
        "resourceType": "AuditEvent",
        "id": str(row["id"]),
        "type": {"system": DICOM, "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": OPERATION_SYSTEM, "code": row["operation"]}],
        "action": "R",
        "recorded": row["at"],
        "outcome": "0" if allowed else "4",
    }
    if not allowed and row.get("reason"):
        resource["outcomeDesc"] = row["reason"]
    purpose = PURPOSE_OF_USE.get(row.get("purpose_of_use") or "")
    if purpose is not None:
        resource["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": purpose}]}]
    agent: dict[str, Any] = {"requestor": True}
    if row.get("role"):
        agent["role"] = [{"text": row["role"]}]
    if row.get("actor_id"):
        agent["who"] = _uuid_identifier(row["actor_id"], "Practitioner")
    resource["agent"] = [agent]
    resource["source"] = {"observer": {"display": "careteam"}}
    entity: dict[str, Any] = {"what": _ref("Patient", row["patient_id"])}
    if row.get("fields"):
        entity["detail"] = [{"type": "fields", "valueString": ",".join(row["fields"])}]
    resource["entity"] = [entity]
    return resource


# --- the event log: Provenance -----------------------------------------------------------------

DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
EPISODE_EVENTS: Final = frozenset(
    {
        "patient.referred",
        "patient.enrolled",
        "patient.treatment_started",
        "patient.relapse_prevention_started",
        "patient.treatment_resumed",
        "patient.discharged",
        "patient.deactivated",
    }
)


def provenance_targets(event: dict[str, Any]) -> list[str]:
    """The exported resources (``Type/id``) an event of the log created or changed."""
    kind = event["event_type"]
    payload = event["payload"]
    pid = event["patient_id"]
    stream = event["stream_id"]
    targets: list[str] = []
    if kind in ("patient.registered", "patient.forgotten", "patient.deactivated"):
        targets.append(f"Patient/{pid}")
    if kind in EPISODE_EVENTS and payload.get("episode_number"):
        targets.append(f"EpisodeOfCare/{pid}-{payload['episode_number']}")
    if kind in ("patient.care_team_assigned", "patient.care_team_member_unassigned"):
        targets.append(f"CareTeam/{pid}")
    if kind in ("patient.consent_granted", "patient.consent_revoked"):
        targets.append(f"Consent/{payload['consent_id']}")
    if kind == "patient.screening_recorded":
        sid = payload["screening_id"]
        if not payload.get("total_only"):
            targets.append(f"QuestionnaireResponse/{sid}")
        targets.append(f"Observation/{sid}")
    if kind.startswith("care_plan."):
        targets.append(f"CarePlan/{stream}")
        item = payload.get("goal_id") or payload.get("target_id")
        if item:
            targets.append(f"Goal/{goal_id({'id': stream}, str(item))}")
    if kind.startswith("referral."):
        targets.append(f"ServiceRequest/{stream}")
    return targets


def provenance(event: dict[str, Any], exported: set[str]) -> Resource | None:
    """Who recorded one event of the log, when and why, for the exported resources it
    created or changed (``exported``: the ``Type/id`` of every resource served for the
    patient); None when it touched none of them (flags, tasks, contacts, ...)."""
    targets = [t for t in provenance_targets(event) if t in exported]
    if not targets:
        return None
    metadata = event.get("metadata") or {}
    operation = "CREATE" if event["stream_version"] == 1 else "UPDATE"
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]}
    }
    if metadata.get("role"):
        agent["role"] = [{"text": metadata["role"]}]
    actor = str(metadata.get("actor_id") or "")
    if _is_uuid(actor):
        agent["who"] = _uuid_identifier(actor, "Practitioner")
    else:
        agent["who"] = {"display": "careteam"}
    resource: Resource = {
        "resourceType": "Provenance",
        "id": event["event_id"],
        "target": [{"reference": t} for t in targets],
        "occurredDateTime": event["occurred_at"],
        "recorded": event["recorded_at"],
    }
    purpose = PURPOSE_OF_USE.get(metadata.get("purpose_of_use") or "")
    if purpose is not None:
        resource["reason"] = [{"coding": [{"system": ACT_REASON, "code": purpose}]}]
    resource["activity"] = {
        "coding": [{"system": DATA_OPERATION, "code": operation}],
        "text": event["event_type"],
    }
    resource["agent"] = [agent]
    return resource


def _is_uuid(value: str) -> bool:
    parts = value.split("-")
    return len(value) == 36 and [len(p) for p in parts] == [8, 4, 4, 4, 12]


def everything(
    doc: dict[str, Any],
    *,
    referrals: Iterable[dict[str, Any]] = (),
    plans: Iterable[dict[str, Any]] = (),
) -> list[Resource]:
    """Every resource of the patient: the Patient first, then its compartment."""
    resources: list[Resource] = [patient(doc)]
    for single in (care_team(doc), episode_of_care(doc)):
        if single is not None:
            resources.append(single)
    resources += questionnaire_responses(doc)
    resources += observations(doc)
    resources += consents(doc)
    for plan in plans:
        resources.append(care_plan(plan))
        resources += goals(plan)
    resources += [service_request(r) for r in referrals]
    return resources


# --- search results and errors ------------------------------------------------------------


def searchset(base: str, self_url: str, resources: Iterable[Resource]) -> Resource:
    """A searchset Bundle of ``resources`` (every match, no paging)."""
    entries = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    bundle: Resource = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
    }
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = entries
    return bundle


def operation_outcome(code: str, diagnostics: str, *, expression: str | None = None) -> Resource:
    """An error as an OperationOutcome; ``code`` is from the R4 issue-type value set."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression is not None:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
