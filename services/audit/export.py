"""``careteam audit export``: the audit evidence of a period, for a compliance officer.

One entry per write (event), read or refusal (access log), disclosure to a partner and
partner registry change, oldest first, as CSV, NDJSON, or FHIR R4 ``AuditEvent``
resources (NDJSON, one resource a line, as FHIR Bulk Data files are) shaped after the
IHE Basic Audit Log Patterns (BALP) profiles. Bad arguments (an instant without a time
zone, an inverted or too-long range, an id that is not a UUID) are refused by name
before anything is written; with ``--out`` the file appears only once it is complete.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from services.database import Conn
from services.settings import Settings

MAX_RANGE = timedelta(days=366)
FORMATS = ("csv", "ndjson", "fhir")

COLUMNS = (
    "kind",
    "at",
    "table",
    "key",
    "actor_id",
    "actor_name",
    "role",
    "organisation_id",
    "purpose_of_use",
    "request_id",
    "patient_id",
    "action",
    "outcome",
    "reason",
    "subject_type",
    "subject_id",
    "recipient",
)


class ExportArgumentError(ValueError):
    """An export option is invalid; the message names the option."""


@dataclass(frozen=True)
class ExportRequest:
    since: datetime
    until: datetime
    patient_id: UUID | None
    actor_id: UUID | None
    format: str


def parse_request(
    since: str, until: str, patient: str | None, actor: str | None, fmt: str
) -> ExportRequest:
    """Validates the options; raises ExportArgumentError naming the first bad one."""
    instants: dict[str, datetime] = {}
    for name, text in (("--since", since), ("--until", until)):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ExportArgumentError(f"{name} must be an ISO 8601 instant") from None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ExportArgumentError(f"{name} needs a time zone (e.g. Z or +01:00)")
        instants[name] = value
    if instants["--until"] <= instants["--since"]:
        raise ExportArgumentError("--until must be after --since")
    if instants["--until"] - instants["--since"] > MAX_RANGE:
        raise ExportArgumentError(f"--since to --until spans more than {MAX_RANGE.days} days")
    ids: dict[str, UUID | None] = {}
    for name, given in (("--patient", patient), ("--actor", actor)):
        try:
            ids[name] = UUID(given) if given else None
        except ValueError:
            raise ExportArgumentError(f"{name} must be a UUID") from None
    if fmt not in FORMATS:
        raise ExportArgumentError(f"--format must be one of {', '.join(FORMATS)}")
    return ExportRequest(
        instants["--since"], instants["--until"], ids["--patient"], ids["--actor"], fmt
    )


# ``actor_name``: the staff directory's name of the actor in their organisation, if listed.
_SQL = """
SELECT t.kind, t.at, t."table", t.key, t.actor_id, s.display_name AS actor_name, t.role,
       t.organisation_id, t.purpose_of_use, t.request_id, t.patient_id, t.action, t.outcome,
       t.reason, t.subject_type, t.subject_id, t.recipient, t.part
FROM (
    SELECT 'write' AS kind, e.recorded_at AS at, 'events' AS "table", e.position AS key,
           e.metadata->>'actor_id' AS actor_id, e.metadata->>'role' AS role,
           e.metadata->>'organisation_id' AS organisation_id,
           e.metadata->>'purpose_of_use' AS purpose_of_use,
           e.metadata->>'request_id' AS request_id, e.patient_id::text AS patient_id,
           e.event_type AS action, 'allowed' AS outcome, NULL::text AS reason,
           e.stream_type AS subject_type, e.stream_id::text AS subject_id,
           NULL::text AS recipient, 0::bigint AS part
    FROM events e
    UNION ALL
    SELECT CASE WHEN l.outcome = 'denied' THEN 'denial' ELSE 'read' END, l.at, 'access_log',
           l.id, l.actor_id::text, l.role, l.organisation_id::text, l.purpose_of_use,
           l.request_id, l.patient_id::text, l.operation, l.outcome, l.reason,
           NULL, NULL, NULL, l.part
    FROM access_log_entries l
    UNION ALL
    SELECT 'disclosure', d.disclosed_at, 'disclosures', d.id, d.partner_id::text, 'partner',
           d.recipient_organisation_id::text, d.purpose, d.message_id, d.patient_id::text,
           d.public_type, 'allowed', NULL, 'event', d.event_id::text, d.recipient_name, 0
    FROM disclosures d
    UNION ALL
    SELECT 'partner_change', c.at, 'partner_changes', c.id, c.actor_id::text, c.role,
           c.organisation_id::text, NULL, c.request_id, NULL, c.change, 'allowed', NULL,
           'partner', c.partner_id::text, NULL, 0
    FROM partner_changes c
) t
LEFT JOIN staff s ON s.user_id::text = t.actor_id AND s.organisation_id::text = t.organisation_id
WHERE t.at >= $1 AND t.at < $2
  AND ($3::text IS NULL OR t.patient_id = $3)
  AND ($4::text IS NULL OR t.actor_id = $4)
ORDER BY t.at, t."table", t.key, t.part
"""


async def entries(conn: Conn, request: ExportRequest) -> AsyncIterator[dict[str, Any]]:
    """The period's entries, oldest first, streamed from one read-only snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for r in conn.cursor(
            _SQL,
            request.since,
            request.until,
            str(request.patient_id) if request.patient_id else None,
            str(request.actor_id) if request.actor_id else None,
        ):
            yield dict(r)


# IHE BALP (https://profiles.ihe.net/ITI/BALP/) and FHIR R4 code systems.
_BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
_AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_PURPOSES = {
    "TREATMENT": "TREAT",
    "EMERGENCY": "ETREAT",
    "PAYMENT": "HPAYMT",
    "OPERATIONS": "HOPERAT",
    "RESEARCH": "HRESCH",
    "PUBLIC_HEALTH": "PUBHLTH",
}
_SHAPES = {
    # kind: (profile, type coding, subtype coding, action)
    "write": (
        "IHE.BasicAudit.PatientCreate",
        (_AUDIT_TYPE, "rest", "RESTful Operation"),
        (_INTERACTION, "create", "create"),
        "C",
    ),
    "read": (
        "IHE.BasicAudit.PatientRead",
        (_AUDIT_TYPE, "rest", "RESTful Operation"),
        (_INTERACTION, "read", "read"),
        "R",
    ),
    "denial": (
        "IHE.BasicAudit.PatientRead",
        (_AUDIT_TYPE, "rest", "RESTful Operation"),
        (_INTERACTION, "read", "read"),
        "R",
    ),
    "disclosure": (
        "IHE.BasicAudit.PatientRead",
        (_DCM, "110106", "Export"),
        (_INTERACTION, "read", "read"),
        "R",
    ),
    "partner_change": (
        "IHE.BasicAudit.Update",
        (_AUDIT_TYPE, "rest", "RESTful Operation"),
        (_INTERACTION, "update", "update"),
        "U",
    ),
}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def audit_event(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry as a FHIR R4 AuditEvent after the IHE BALP profiles."""
    profile, type_, subtype, action = _SHAPES[entry["kind"]]
    denied = entry["outcome"] == "denied"
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        # A read of several patients is one access row, one entry (and AuditEvent) per
        # patient: the n-th patient of row k is ``access-log-k-n``, as in the FHIR API.
        "id": f"{entry['table'].replace('_', '-')}-{entry['key']}"
        + (f"-{entry['part']}" if entry.get("part") else ""),
        "meta": {"profile": [_BALP + profile]},
        "type": _coding(*type_),
        "subtype": [_coding(*subtype)],
        "action": action,
        "recorded": entry["at"].isoformat(),
        "outcome": "4" if denied else "0",
        "agent": [],
        "source": {
            "site": "careteam",
            "observer": {"display": "careteam"},
            "type": [_coding(_SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": [],
    }
    if denied:
        resource["outcomeDesc"] = f"refused: {entry['reason']}"
    if (purpose := entry["purpose_of_use"]) is not None:
        code = _PURPOSES.get(purpose)
        resource["purposeOfEvent"] = [
            {"coding": [_coding(_ACT_REASON, code, purpose)]} if code else {"text": purpose}
        ]
    if entry["actor_id"] is not None:
        agent: dict[str, Any] = {
            "type": {"coding": [_coding(_PARTICIPATION, "IRCP", "information recipient")]}
            if entry["kind"] == "disclosure"
            else {"coding": [_coding(_DCM, "110153", "Source Role ID")]},
            "who": {
                "identifier": {"system": "urn:careteam:actor", "value": entry["actor_id"]},
                **({"display": entry["actor_name"]} if entry.get("actor_name") else {}),
            },
            "requestor": True,
        }
        if entry["role"]:
            agent["role"] = [{"text": entry["role"]}]
        if entry["kind"] == "disclosure" and entry["recipient"]:
            agent["name"] = entry["recipient"]
        resource["agent"].append(agent)
    resource["agent"].append(
        {
            "type": {"coding": [_coding(_DCM, "110152", "Destination Role ID")]},
            "who": {"display": "careteam"},
            "requestor": False,
        }
    )
    if entry["patient_id"] is not None:
        resource["entity"].append(
            {
                "what": {"reference": f"Patient/{entry['patient_id']}"},
                "type": _coding(_ENTITY_TYPE, "1", "Person"),
                "role": _coding(_OBJECT_ROLE, "1", "Patient"),
            }
        )
    if entry["subject_id"] is not None:
        resource["entity"].append(
            {
                "what": {
                    "identifier": {
                        "system": f"urn:careteam:{entry['subject_type']}",
                        "value": entry["subject_id"],
                    }
                },
                "type": _coding(_ENTITY_TYPE, "2", "System Object"),
                "role": _coding(_OBJECT_ROLE, "4", "Domain Resource"),
                "detail": [{"type": "action", "valueString": entry["action"]}],
            }
        )
    elif entry["action"]:
        resource["entity"].append(
            {
                "what": {"identifier": {"system": "urn:careteam:operation", "value": "query"}},
                "type": _coding(_ENTITY_TYPE, "2", "System Object"),
                "role": _coding(_OBJECT_ROLE, "24", "Query"),
                "detail": [{"type": "operation", "valueString": entry["action"]}],
            }
        )
    if entry["request_id"]:
        resource["entity"].append(
            {
                "what": {"identifier": {"value": entry["request_id"]}},
                "type": _coding(_BALP_ENTITY, "XrequestId", "X-Request-Id"),
            }
        )
    return resource


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    return {c: (entry[c].isoformat() if c == "at" else entry[c]) for c in COLUMNS}


async def write_export(conn: Conn, request: ExportRequest, out: IO[str]) -> int:
    """Writes the period's entries to ``out``; returns how many."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS) if request.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    async for entry in entries(conn, request):
        if writer is not None:
            writer.writerow(_plain(entry))
        elif request.format == "ndjson":
            out.write(json.dumps(_plain(entry), separators=(",", ":")) + "\n")
        else:
            out.write(json.dumps(audit_event(entry), separators=(",", ":")) + "\n")
        count += 1
    return count


def add_export_cli(sub: Any, settings_from: Any, data_dir: Any, run: Any) -> None:
    export = sub.add_parser(
        "export",
        help="the audit evidence of a period as CSV, NDJSON or FHIR R4 AuditEvent (NDJSON)",
    )
    export.add_argument("--since", required=True, help="from this instant (inclusive, ISO 8601)")
    export.add_argument("--until", required=True, help="to this instant (exclusive, ISO 8601)")
    export.add_argument("--patient", help="one patient (UUID)")
    export.add_argument("--actor", help="one actor (UUID)")
    export.add_argument("--format", default="csv", help="csv (default), ndjson or fhir")
    export.add_argument("--out", help="write to this file (default: standard output)")
    data_dir(export)

    def command(args: argparse.Namespace) -> int:
        try:
            request = parse_request(args.since, args.until, args.patient, args.actor, args.format)
        except ExportArgumentError as exc:
            print(f"careteam: {exc}", file=sys.stderr)
            return 2
        out_path = Path(args.out) if args.out else None
        if out_path is not None and out_path.exists():
            print(f"careteam: --out {out_path} exists; exports never overwrite", file=sys.stderr)
            return 2
        return int(run(settings_from(args), args, _action(request, out_path)))

    export.set_defaults(func=command)


def _action(request: ExportRequest, out_path: Path | None) -> Any:
    async def go(conn: Conn, _settings: Settings, _args: argparse.Namespace) -> int:
        if out_path is None:
            buffer = io.StringIO()
            count = await write_export(conn, request, buffer)
            sys.stdout.write(buffer.getvalue())
        else:
            fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".export-")
            try:
                with os.fdopen(fd, "w", newline="") as f:
                    count = await write_export(conn, request, f)
                os.link(tmp, out_path)
            finally:
                os.unlink(tmp)
        print(f"exported {count} entries", file=sys.stderr)
        return 0

    return go
