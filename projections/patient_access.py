"""Patient access: which organisation a patient belongs to and who is on their care team.

Answers the authorisation question for every role ("may this caller see or change this
patient?"); every patient query joins it, so access is restricted in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from domain.patient import Patient
from projections.source import Conn, RecordedEvent

NAME = "patient_access"
TABLE = "rm_patient_access"


@dataclass(frozen=True)
class Access:
    patient_id: UUID
    organisation_id: UUID
    care_manager_id: UUID | None = None
    pcp_id: UUID | None = None
    psychiatric_consultant_id: UUID | None = None


def evolve(state: Access | None, record: RecordedEvent) -> Access | None:
    """Pure: the access row after ``record``."""
    if record.stream_type != "patient":
        return state
    event = record.to_domain_event()
    if isinstance(event, Patient.Registered):
        return Access(patient_id=record.stream_id, organisation_id=event.organisation_id)
    if state is None:
        return None
    if isinstance(event, Patient.CareTeamAssigned):
        return replace(
            state,
            care_manager_id=event.care_manager_id,
            pcp_id=event.pcp_id,
            psychiatric_consultant_id=event.psychiatric_consultant_id,
        )
    if isinstance(event, Patient.CareTeamMemberUnassigned):
        field = {
            "care_manager": "care_manager_id",
            "pcp": "pcp_id",
            "psychiatric_consultant": "psychiatric_consultant_id",
        }[event.role]
        return replace(state, **{field: None})  # type: ignore[arg-type]
    return state


_RELEVANT = frozenset(
    {"patient.registered", "patient.care_team_assigned", "patient.care_team_member_unassigned"}
)


class PatientAccessProjection:
    name = NAME

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        relevant = [e for e in events if e.event_type in _RELEVANT]
        if not relevant:
            return
        ids = list(dict.fromkeys(e.patient_id for e in relevant))
        rows = await conn.fetch(f"SELECT * FROM {TABLE} WHERE patient_id = ANY($1::uuid[])", ids)
        states: dict[UUID, Access | None] = {i: None for i in ids}
        states.update({r["patient_id"]: Access(**dict(r)) for r in rows})
        for e in relevant:
            states[e.patient_id] = evolve(states[e.patient_id], e)
        changed = [s for s in states.values() if s is not None]
        await conn.executemany(
            f"""INSERT INTO {TABLE} (patient_id, organisation_id, care_manager_id, pcp_id,
                                     psychiatric_consultant_id)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (patient_id) DO UPDATE SET
                  organisation_id = EXCLUDED.organisation_id,
                  care_manager_id = EXCLUDED.care_manager_id,
                  pcp_id = EXCLUDED.pcp_id,
                  psychiatric_consultant_id = EXCLUDED.psychiatric_consultant_id""",
            [
                (
                    s.patient_id,
                    s.organisation_id,
                    s.care_manager_id,
                    s.pcp_id,
                    s.psychiatric_consultant_id,
                )
                for s in changed
            ],
        )

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {TABLE}")


projection = PatientAccessProjection()
