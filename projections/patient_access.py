"""Patient access: which organisation a patient belongs to and who is on their care team.

Answers the authorisation question for every role ("may this caller see or change this
patient?"); every patient query joins it, so access is restricted in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from domain.patient import Patient
from projections.base import Statement, apply_batched
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


_MEMBERS = ("care_manager_id", "pcp_id", "psychiatric_consultant_id")


def _access(patient_id: UUID, doc: dict[str, Any]) -> Access:
    """An access row from the document ``reads`` gives for it (ids as text, or null)."""
    ids = {name: None if doc[name] is None else UUID(doc[name]) for name in _MEMBERS}
    return Access(patient_id=patient_id, organisation_id=UUID(doc["organisation_id"]), **ids)


class PatientAccessProjection:
    """Batched (projections/base.py): its rows are read, as documents, with the other
    batched read models' rows, and the changed ones written in their statement."""

    name = NAME

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await apply_batched(conn, self, events)

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        ids = list(dict.fromkeys(e.patient_id for e in events if e.event_type in _RELEVANT))
        if not ids:
            return None
        return Statement(
            lambda n: (
                f"""SELECT patient_id AS key,
                      jsonb_build_object('organisation_id', organisation_id,
                                         'care_manager_id', care_manager_id,
                                         'pcp_id', pcp_id,
                                         'psychiatric_consultant_id', psychiatric_consultant_id)
                      AS doc
                FROM {TABLE} WHERE patient_id = ANY(${n}::uuid[])"""
            ),
            [ids],
        )

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        relevant = [e for e in events if e.event_type in _RELEVANT]
        if not relevant:
            return []
        stored = {r["key"]: _access(r["key"], r["doc"]) for r in rows}
        states: dict[UUID, Access | None] = {e.patient_id: None for e in relevant}
        states.update(stored)
        for e in relevant:
            states[e.patient_id] = evolve(states[e.patient_id], e)
        changed = [s for s in states.values() if s is not None and s != stored.get(s.patient_id)]
        if not changed:
            return []
        return [
            Statement(
                lambda n: (
                    f"""INSERT INTO {TABLE} (patient_id, organisation_id, care_manager_id,
                                             pcp_id, psychiatric_consultant_id)
                    SELECT * FROM unnest(${n}::uuid[], ${n + 1}::uuid[], ${n + 2}::uuid[],
                                         ${n + 3}::uuid[], ${n + 4}::uuid[])
                    ON CONFLICT (patient_id) DO UPDATE SET
                      organisation_id = EXCLUDED.organisation_id,
                      care_manager_id = EXCLUDED.care_manager_id,
                      pcp_id = EXCLUDED.pcp_id,
                      psychiatric_consultant_id = EXCLUDED.psychiatric_consultant_id"""
                ),
                [
                    [s.patient_id for s in changed],
                    [s.organisation_id for s in changed],
                    [s.care_manager_id for s in changed],
                    [s.pcp_id for s in changed],
                    [s.psychiatric_consultant_id for s in changed],
                ],
            )
        ]

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {TABLE}")


projection = PatientAccessProjection()
