"""Emergency (break-the-glass) access grants.

Answers two questions: for authorisation, "does this clinician hold an unexpired emergency
grant for this patient?"; for compliance, "which emergency accesses still need review?".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.patient import Patient
from projections.source import Conn, RecordedEvent

NAME = "emergency_access"
TABLE = "rm_emergency_access"

_RELEVANT = frozenset(
    {
        "patient.emergency_access_granted",
        "patient.emergency_access_reviewed",
        Patient.Forgotten.EVENT_NAME,
    }
)
# What a grant's reason reads as once its patient is forgotten (the column is NOT NULL).
ERASED_REASON = ""


def row_changes(record: RecordedEvent) -> tuple[str, dict[str, Any]] | None:
    """Pure: the row insert or update an event implies (None when it implies none)."""
    event = record.to_domain_event()
    if isinstance(event, Patient.EmergencyAccessGranted):
        return "insert", {
            "grant_id": event.grant_id,
            "patient_id": record.patient_id,
            "organisation_id": record.metadata.get("organisation_id"),
            "user_id": event.user_id,
            "role": event.role,
            "reason": ERASED_REASON if event.reason is None else event.reason,
            "granted_at": event.occurred_at,
            "expires_at": event.expires_at,
        }
    if isinstance(event, Patient.EmergencyAccessReviewed):
        return "update", {
            "grant_id": event.grant_id,
            "review_outcome": event.outcome,
            "reviewed_by": event.reviewer_id,
            "review_note": event.note,
            "reviewed_at": event.occurred_at,
        }
    if isinstance(event, Patient.Forgotten):
        # The reasons and review notes are free text about the patient: erased with them.
        return "erase", {"patient_id": record.patient_id}
    return None


class EmergencyAccessProjection:
    name = NAME

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        for record in events:
            if record.event_type not in _RELEVANT:
                continue
            change = row_changes(record)
            if change is None:
                continue
            kind, row = change
            if kind == "insert":
                await conn.execute(
                    f"""INSERT INTO {TABLE} (grant_id, patient_id, organisation_id, user_id, role,
                                             reason, granted_at, expires_at)
                        VALUES ($1, $2, COALESCE(
                                    (SELECT organisation_id FROM rm_patient_access
                                     WHERE patient_id = $2), $8::uuid),
                                $3, $4, $5, $6, $7)
                        ON CONFLICT (grant_id) DO NOTHING""",
                    row["grant_id"],
                    row["patient_id"],
                    row["user_id"],
                    row["role"],
                    row["reason"],
                    row["granted_at"],
                    row["expires_at"],
                    row["organisation_id"],
                )
            elif kind == "erase":
                await conn.execute(
                    f"""UPDATE {TABLE} SET reason = $2, review_note = NULL
                        WHERE patient_id = $1""",
                    row["patient_id"],
                    ERASED_REASON,
                )
            else:
                await conn.execute(
                    f"""UPDATE {TABLE} SET review_outcome = $2, reviewed_by = $3,
                                          review_note = $4, reviewed_at = $5
                        WHERE grant_id = $1""",
                    row["grant_id"],
                    row["review_outcome"],
                    row["reviewed_by"],
                    row["review_note"],
                    row["reviewed_at"],
                )

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {TABLE}")


projection = EmergencyAccessProjection()
