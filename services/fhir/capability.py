"""What the FHIR surface supports: the search parameters per resource type and the
CapabilityStatement served at ``/fhir/metadata`` (pure)."""

from __future__ import annotations

from typing import Any, Final

from services.fhir.mapping import FHIR_VERSION

# resource type -> the search parameters it accepts (anything else is a 400).
SEARCH_PARAMETERS: Final[dict[str, dict[str, str]]] = {
    "Patient": {"_id": "token"},
    "Observation": {"patient": "reference"},
    "QuestionnaireResponse": {"patient": "reference"},
    "CareTeam": {"patient": "reference"},
    "EpisodeOfCare": {"patient": "reference"},
    "Consent": {"patient": "reference"},
    "CarePlan": {"patient": "reference"},
    "Goal": {"patient": "reference"},
    "ServiceRequest": {"patient": "reference"},
    "AuditEvent": {"patient": "reference"},
    "Provenance": {"patient": "reference"},
}

# Parameters about the response's format, accepted on every interaction and ignored
# (the only format is JSON).
FORMAT_PARAMETERS: Final = frozenset({"_format"})
JSON_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})

SEARCH_DOCS: Final = {
    "_id": "The patient's id.",
    "patient": "The patient the resources are about, as Patient/ID or ID. Required. "
    "AuditEvent: who read this patient's record, for compliance.",
}


def capability_statement(*, date: str, base_url: str, software_version: str) -> dict[str, Any]:
    """The server's CapabilityStatement (``date``: when this server started)."""
    resources = []
    for resource_type, params in SEARCH_PARAMETERS.items():
        entry: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}]
            + ([{"code": "create"}] if resource_type == "QuestionnaireResponse" else []),
            "searchParam": [
                {"name": name, "type": kind, "documentation": SEARCH_DOCS[name]}
                for name, kind in params.items()
            ],
        }
        if resource_type == "Patient":
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                },
                {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    "documentation": "Bulk Data export of every patient the caller may read "
                    "(Prefer: respond-async; NDJSON; the files need the same bearer token).",
                },
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "careteam",
        "kind": "instance",
        "software": {"name": "careteam", "version": software_version},
        "implementation": {
            "description": "careteam collaborative care records as FHIR R4 (reads; screenings in)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Every request but this one needs an OIDC bearer token, as "
                "the GraphQL API; reads are authorised per patient and audited.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "An OIDC JWT in the Authorization header (Bearer scheme).",
                },
                "resource": resources,
            }
        ],
    }
