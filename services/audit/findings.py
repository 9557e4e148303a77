"""What a verification found, in words a compliance officer can act on.

A finding names the table, the row's key, the patient (an id, never a name), what
happened to it (edited, deleted, inserted, reordered, or the chain rebuilt) and since
when. Findings carry no row content: the report can be shared without disclosing PHI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


class FindingKind(enum.Enum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CHAIN_REBUILT = "chain rebuilt"
    FORGED_CHECKPOINT = "forged checkpoint"


_TABLE_WORDS = {
    "events": "event",
    "access_log": "access record",
    "disclosures": "disclosure",
    "partner_changes": "partner registry change",
    "audit_chain": "chain link",
    "checkpoints": "published checkpoint",
}


@dataclass(frozen=True)
class Finding:
    """One piece of evidence that no longer matches what was sealed."""

    table: str
    key: int | None
    kind: FindingKind
    patient_id: UUID | None
    since: datetime | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "kind": self.kind.value,
            "patient_id": str(self.patient_id) if self.patient_id else None,
            "since": self.since.isoformat() if self.since else None,
            "detail": self.detail,
        }

    def sentence(self) -> str:
        what = _TABLE_WORDS.get(self.table, self.table)
        where = f"{self.table} {what}" + (f" {self.key}" if self.key is not None else "")
        whose = f" of patient {self.patient_id}" if self.patient_id else ""
        when = f", after {self.since.isoformat(timespec='seconds')}" if self.since else ""
        return f"{self.kind.value.upper()}: {where}{whose}{when}: {self.detail}"


def render_text(findings: list[Finding], summary: list[str]) -> str:
    """The human-readable report: a verdict, the summary lines, then one line a finding."""
    lines = [
        "audit chain: OK" if not findings else f"audit chain: {len(findings)} finding(s)",
        *(f"  {s}" for s in summary),
    ]
    lines += [f"- {f.sentence()}" for f in findings]
    return "\n".join(lines) + "\n"
