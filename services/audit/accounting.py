"""The accounting of disclosures for one patient (45 CFR 164.528), backed by the chain.

For each disclosure in the period (at most six years, the rule's look-back): the date,
the recipient's name and organisation id, a brief description of what was disclosed and
the purpose. Before the document is written the audit chain is verified, and any finding
about this patient's disclosures (a delivery deleted, edited or slipped in behind the
application's back) is printed with it, so the document never silently omits one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.audit.findings import Finding
from services.database import Conn

LOOK_BACK_YEARS = 6


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


class AccountingArgumentError(ValueError):
    """An option of the accounting is invalid; the message names it."""


@dataclass(frozen=True)
class AccountingRequest:
    patient_id: UUID
    since: datetime
    until: datetime


def parse_accounting(
    patient: str, since: str | None, until: str, now: datetime
) -> AccountingRequest:
    """Validates the options (``until`` defaults to now, ``since`` to six years before)."""
    try:
        patient_id = UUID(patient)
    except ValueError:
        raise AccountingArgumentError("--patient must be a UUID") from None
    instants: dict[str, datetime] = {}
    for name, text in (("--until", until), ("--since", since)):
        if text is None:
            continue
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise AccountingArgumentError(f"{name} must be an ISO 8601 instant") from None
        if value.tzinfo is None or value.utcoffset() is None:
            raise AccountingArgumentError(f"{name} needs a time zone (e.g. Z or +01:00)")
        instants[name] = value
    end = instants.get("--until", now)
    earliest = _years_before(end, LOOK_BACK_YEARS)
    start = instants.get("--since", earliest)
    if end <= start:
        raise AccountingArgumentError("--until must be after --since")
    if start < earliest:
        raise AccountingArgumentError("--since to --until spans more than six years")
    return AccountingRequest(patient_id, start, end)


async def disclosures_of(conn: Conn, request: AccountingRequest) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, disclosed_at, recipient_name, recipient_organisation_id, description,
                  purpose, channel, part2
           FROM disclosures
           WHERE patient_id = $1 AND disclosed_at >= $2 AND disclosed_at < $3
           ORDER BY disclosed_at, id""",
        request.patient_id,
        request.since,
        request.until,
    )
    return [dict(r) for r in rows]


def patient_findings(findings: list[Finding], patient_id: UUID) -> list[Finding]:
    """Findings about this patient's disclosures, and those that concern the whole chain."""
    return [
        f
        for f in findings
        if (f.table == "disclosures" and f.patient_id in (patient_id, None))
        or f.table in ("audit_chain", "checkpoints")
    ]


def render(
    request: AccountingRequest,
    rows: list[dict[str, Any]],
    findings: list[Finding],
    *,
    as_json: bool,
) -> str:
    if as_json:
        return (
            json.dumps(
                {
                    "patient_id": str(request.patient_id),
                    "since": request.since.isoformat(),
                    "until": request.until.isoformat(),
                    "disclosures": [
                        {
                            "date": r["disclosed_at"].isoformat(),
                            "recipient": r["recipient_name"],
                            "recipient_organisation_id": str(r["recipient_organisation_id"]),
                            "description": r["description"],
                            "purpose": r["purpose"],
                        }
                        for r in rows
                    ],
                    "evidence_findings": [f.as_dict() for f in findings],
                },
                indent=2,
            )
            + "\n"
        )
    lines = [
        f"Accounting of disclosures for patient {request.patient_id}",
        f"Period: {request.since.isoformat(timespec='seconds')} to "
        f"{request.until.isoformat(timespec='seconds')}",
        "",
    ]
    if not rows:
        lines.append("No disclosures in this period.")
    for r in rows:
        lines += [
            f"{r['disclosed_at'].date().isoformat()}  to {r['recipient_name']} "
            f"(organisation {r['recipient_organisation_id']})",
            f"    what: {r['description']}",
            f"    why:  {r['purpose']}",
        ]
    lines.append("")
    if findings:
        lines.append(
            "WARNING: the audit evidence behind this accounting has findings; it may be incomplete:"
        )
        lines += [f"- {f.sentence()}" for f in findings]
    else:
        lines.append("The audit chain behind these records verified without findings.")
    return "\n".join(lines) + "\n"
