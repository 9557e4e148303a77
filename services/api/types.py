"""GraphQL read-model types: shapes of the read models, never domain objects."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from services.api.enums import EpisodeStatus, InstrumentCode, member


@strawberry.type(description="One completed or partial questionnaire with every item answer.")
class Screening:
    id: UUID = strawberry.field(description="Screening id.")
    instrument: str = strawberry.field(
        description="The questionnaire as its lower-case code.",
        deprecation_reason="Use instrumentCode (an enum).",
    )
    answers: list[int | None] = strawberry.field(
        description=(
            "Item answers in questionnaire order; null where an item was not answered. "
            "Empty for a total imported without its answers (totalOnly)."
        )
    )
    total_only: bool = strawberry.field(
        description=(
            "True for a historical total imported without its item answers (onboarding "
            "import): no answers, no safety alert, no tasks; its total counts as any other."
        )
    )
    complete: bool = strawberry.field(description="False when an item is missing: then no total.")
    total: int | None = strawberry.field(description="Total score; null when incomplete.")
    severity: str | None = strawberry.field(description="Severity band of the total.")
    safety_alert: bool = strawberry.field(
        description="True when a safety item (PHQ-9 item 9) was answered above 0."
    )
    needs_follow_up: bool = strawberry.field(
        description=(
            "True when the total reaches the instrument's follow-up threshold (a PHQ-9 "
            "of 20 or more, a positive PHQ-2). A screening raises a follow-up task for "
            "it; an imported total (totalOnly) is judged the same but raises no task."
        )
    )
    rules_version: str = strawberry.field(description="Version of the scoring rules applied.")
    loinc_total: str | None = strawberry.field(description="LOINC code of the total score.")
    occurred_at: datetime = strawberry.field(description="When the questionnaire was taken.")
    recorded_at: datetime = strawberry.field(description="When it was recorded in careteam.")

    @strawberry.field(description="Which questionnaire.")
    def instrument_code(self) -> InstrumentCode:
        return InstrumentCode(self.instrument)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Screening:
        return cls(
            id=UUID(d["id"]),
            instrument=d["instrument"],
            answers=d["answers"],
            total_only=bool(d.get("total_only")),
            complete=d["complete"],
            total=d["total"],
            severity=d["severity"],
            safety_alert=d["safety_alert"],
            needs_follow_up=d["needs_follow_up"],
            rules_version=d["rules_version"],
            loinc_total=d.get("loinc_total"),
            occurred_at=datetime.fromisoformat(d["occurred_at"]),
            recorded_at=datetime.fromisoformat(d["recorded_at"]),
        )


@strawberry.type(description="An active registry flag, with the rule and inputs that raised it.")
class Flag:
    id: UUID = strawberry.field(description="Flag id.")
    kind: str = strawberry.field(description="safety_risk, not_improving, overdue_contact, ...")
    rule_id: str = strawberry.field(description="The rule that raised the flag.")
    rule_version: str = strawberry.field(description="The version of that rule.")
    inputs: strawberry.scalars.JSON = strawberry.field(description="The values that raised it.")
    raised_at: datetime = strawberry.field(description="Effective time the flag was raised.")


@strawberry.type(description="An open task for the care team.")
class Task:
    id: UUID = strawberry.field(description="Task id.")
    kind: str = strawberry.field(description="What must be done, e.g. suicide_risk_assessment.")
    due_on: date = strawberry.field(description="The day it is due.")
    source_id: UUID | None = strawberry.field(
        description="The record that caused it (a screening)."
    )
    assignee_id: UUID | None = strawberry.field(
        default=None,
        description="Who should do it; null for the whole team (or for a task recorded "
        "before assignees were kept in this view, until the read model is rebuilt).",
    )


async def staff_name(info: Info[Any, None], user_id: UUID | None) -> str | None:
    """A colleague's display name from the caller's organisation's staff directory (staff
    names are not patient data); null when the id is not in the directory.

    Batched: the names a page asks for in one pass of resolution (every row's care team)
    are read with one query per request tick, not one per name (see ``staff_names``)."""
    if user_id is None:
        return None
    return await staff_names(info.context).load(user_id)


_STAFF_NAMES = "_careteam_staff_names"


def staff_names(ctx: Any) -> DataLoader[UUID, str | None]:
    """The request's loader of staff display names (created on first use, kept on the
    context). Not caching: each batch reads the directory afresh, so a long-lived
    subscription context never serves a stale name; batching alone makes a page one query."""
    loader: DataLoader[UUID, str | None] | None = getattr(ctx, _STAFF_NAMES, None)
    if loader is None:

        async def load(user_ids: list[UUID]) -> list[str | None]:
            async with ctx.runtime.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT user_id, display_name FROM staff "
                    "WHERE organisation_id = $1 AND user_id = ANY($2::uuid[])",
                    ctx.require_principal().organisation_id,
                    list(dict.fromkeys(user_ids)),
                )
            names = {r["user_id"]: r["display_name"] for r in rows}
            return [names.get(u) for u in user_ids]

        loader = DataLoader(load_fn=load, cache=False)
        setattr(ctx, _STAFF_NAMES, loader)
    return loader


@strawberry.type(description="The patient's collaborative care team.")
class CareTeam:
    care_manager_id: UUID | None = strawberry.field(description="Behavioral health care manager.")
    pcp_id: UUID | None = strawberry.field(description="Primary care provider.")
    psychiatric_consultant_id: UUID | None = strawberry.field(description="Psychiatric consultant.")

    @strawberry.field(description="The care manager's display name from the staff directory.")
    async def care_manager_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.care_manager_id)

    @strawberry.field(description="The PCP's display name from the staff directory.")
    async def pcp_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.pcp_id)

    @strawberry.field(
        description="The psychiatric consultant's display name from the staff directory."
    )
    async def psychiatric_consultant_name(self, info: Info[Any, None]) -> str | None:
        return await staff_name(info, self.psychiatric_consultant_id)


@strawberry.type(description="A patient's current state, as the care team sees it.")
class Patient:
    id: UUID = strawberry.field(description="Patient id.")
    organisation_id: UUID = strawberry.field(description="The organisation the patient belongs to.")
    given_name: str | None = strawberry.field(description="Given name; null once forgotten.")
    family_name: str | None = strawberry.field(description="Family name; null once forgotten.")
    birth_date: date | None = strawberry.field(description="Date of birth; null once forgotten.")
    mrn: str | None = strawberry.field(description="Medical record number; null once forgotten.")
    status: str | None = strawberry.field(
        description="Episode status as its lower-case value; null before any episode.",
        deprecation_reason="Use episodeStatus (an enum).",
    )
    episode_number: int = strawberry.field(description="Current episode number (0 before any).")
    enrolled_at: datetime | None = strawberry.field(
        description="Enrollment time of the current episode."
    )
    care_team: CareTeam = strawberry.field(description="Assigned team members.")
    screenings: list[Screening] = strawberry.field(
        description="Every screening, oldest taken first."
    )
    latest_phq9: Screening | None = strawberry.field(
        description="The most recently taken complete PHQ-9 (by effective time)."
    )
    latest_gad7: Screening | None = strawberry.field(
        description="The most recently taken complete GAD-7 (by effective time)."
    )
    flags: list[Flag] = strawberry.field(description="Active flags.")
    safety_risk: bool = strawberry.field(description="True while a safety-risk flag is active.")
    open_tasks: list[Task] = strawberry.field(description="Tasks not yet completed.")
    contact_count: int = strawberry.field(description="Number of logged contacts and activities.")
    minutes_total: int = strawberry.field(description="Total care manager minutes logged.")
    last_contact_at: datetime | None = strawberry.field(
        description="Effective time of the last contact."
    )
    version: int = strawberry.field(description="Stream version this view reflects.")

    @strawberry.field(description="Where the current episode stands; null before any episode.")
    def episode_status(self) -> EpisodeStatus | None:
        return member(EpisodeStatus, self.status)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Patient:
        screenings = [Screening.from_doc(s) for s in d["screenings"]]

        def latest(instrument: str) -> Screening | None:
            done = [s for s in screenings if s.instrument == instrument and s.complete]
            return done[-1] if done else None

        flags = [
            Flag(
                id=UUID(f["id"]),
                kind=f["kind"],
                rule_id=f["rule_id"],
                rule_version=f["rule_version"],
                inputs=f["inputs"],
                raised_at=datetime.fromisoformat(f["raised_at"]),
            )
            for f in d["flags"]
        ]
        team = d["care_team"]
        return cls(
            id=UUID(d["id"]),
            organisation_id=UUID(d["organisation_id"]),
            given_name=d["given_name"],
            family_name=d["family_name"],
            birth_date=date.fromisoformat(d["birth_date"]) if d["birth_date"] else None,
            mrn=d["mrn"],
            status=d["status"],
            episode_number=d["episode_number"],
            enrolled_at=_dt(d["enrolled_at"]),
            care_team=CareTeam(
                care_manager_id=_uuid(team["care_manager_id"]),
                pcp_id=_uuid(team["pcp_id"]),
                psychiatric_consultant_id=_uuid(team["psychiatric_consultant_id"]),
            ),
            screenings=screenings,
            latest_phq9=latest("phq9"),
            latest_gad7=latest("gad7"),
            flags=flags,
            safety_risk=any(f.kind == "safety_risk" for f in flags),
            open_tasks=[
                Task(
                    id=UUID(t["id"]),
                    kind=t["kind"],
                    due_on=date.fromisoformat(t["due_on"]),
                    source_id=_uuid(t["source_id"]),
                    assignee_id=_uuid(t.get("assignee_id")),
                )
                for t in d["tasks"]
            ],
            contact_count=d["contacts"],
            minutes_total=d["minutes_total"],
            last_contact_at=_dt(d["last_contact_at"]),
            version=d["version"],
        )


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


@strawberry.enum(description="The kind of record an event of the care log belongs to.")
class StreamKind(enum.Enum):
    # One member per aggregate's STREAM_TYPE (tests/unit/api/test_error_contract.py pins it).
    PATIENT = "patient"
    CARE_PLAN = "care_plan"
    REFERRAL = "referral"
    CONSULTATION_NOTE = "consultation_note"


@strawberry.type(description="One event from the care log, as a subscriber receives it.")
class CareEvent:
    event_id: UUID = strawberry.field(description="Stable event id (deduplicate by it).")
    patient_id: UUID = strawberry.field(description="The patient the event concerns.")
    stream_type: str = strawberry.field(
        description="patient, care_plan, referral or consultation_note.",
        deprecation_reason="Use streamKind (an enum).",
    )
    stream_id: UUID = strawberry.field(description="The record the event belongs to.")
    stream_version: int = strawberry.field(description="The record's version after the event.")
    event_type: str = strawberry.field(description="Stable name, e.g. patient.screening_recorded.")
    event_version: int = strawberry.field(description="Version of the event's schema.")
    occurred_at: datetime = strawberry.field(description="Clinical effective time.")
    recorded_at: datetime = strawberry.field(description="When careteam recorded it.")
    position: str = strawberry.field(description="Log position; pass as `after` to resume.")
    payload: strawberry.scalars.JSON = strawberry.field(description="The event's data.")

    @strawberry.field(description="The kind of record the event belongs to.")
    def stream_kind(self) -> StreamKind:
        return StreamKind(self.stream_type)
