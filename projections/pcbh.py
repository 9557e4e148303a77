"""The wider team and PCBH: who is on a patient's team beyond the three CoCM roles, its
caregivers and what each may see, warm handoffs and brief BHC visits.

One document per patient (``rm_pcbh``). Authorisation reads it (a wider-team member is on
the care team; a caregiver reaches only the scopes granted), the BHC's and the PCP's
views read the handoffs and visits from it, and ``same_day_share`` is the PCBH measure:
the share of decided warm handoffs the BHC saw on the clinic day they were offered.

Measure (docs/pcbh.md, 'Same-day handoffs'): the denominator is every handoff that is
decided (accepted or missed) or whose clinic day has ended by ``today``; the numerator
is those accepted on the clinic day of the offer (``projections.clinic_calendar.day_of``).
A handoff offered today and not yet answered is pending and counts in neither. Source of
the model: Reiter, Dobmeyer & Hunter 2018, "The Primary Care Behavioral Health (PCBH)
Model: An Overview and Operational Definition", J Clin Psychol Med Settings 25(2):109-126
(same-day access through warm handoffs is a defining practice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any, Final
from uuid import UUID

from domain.patient import Patient
from projections.clinic_calendar import CLINIC_ZONE, day_of, parse_instant
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.source import RecordedEvent

NAME = "pcbh"
TABLE = "rm_pcbh"

_EVENTS: Final = frozenset(
    {
        Patient.Registered.EVENT_NAME,
        Patient.WiderTeamMemberAdded.EVENT_NAME,
        Patient.WiderTeamMemberRemoved.EVENT_NAME,
        Patient.CaregiverAdded.EVENT_NAME,
        Patient.CaregiverAccessGranted.EVENT_NAME,
        Patient.CaregiverAccessRevoked.EVENT_NAME,
        Patient.WarmHandoffOffered.EVENT_NAME,
        Patient.WarmHandoffAccepted.EVENT_NAME,
        Patient.WarmHandoffMissed.EVENT_NAME,
        Patient.BriefVisitRecorded.EVENT_NAME,
    }
)


def _key(record: RecordedEvent) -> UUID | None:
    if record.stream_type == "patient" and record.event_type in _EVENTS:
        return record.stream_id
    return None


def evolve(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: the patient's wider-team document after ``record``."""
    ev = record.to_domain_event()
    if isinstance(ev, Patient.Registered):
        return {
            "patient_id": str(record.stream_id),
            "members": {},
            "caregivers": {},
            "handoffs": [],
            "visits": [],
        }
    if doc is None:
        return None
    doc = copy_doc(doc)
    match ev:
        case Patient.WiderTeamMemberAdded():
            doc["members"][str(ev.user_id)] = ev.role
        case Patient.WiderTeamMemberRemoved():
            doc["members"].pop(str(ev.user_id), None)
        case Patient.CaregiverAdded():
            doc["caregivers"][str(ev.caregiver_id)] = {
                "relationship": ev.relationship,
                "scopes": [],
            }
        case Patient.CaregiverAccessGranted():
            scopes = doc["caregivers"][str(ev.caregiver_id)]["scopes"]
            if ev.scope not in scopes:
                scopes.append(ev.scope)
        case Patient.CaregiverAccessRevoked():
            scopes = doc["caregivers"][str(ev.caregiver_id)]["scopes"]
            if ev.scope in scopes:
                scopes.remove(ev.scope)
        case Patient.WarmHandoffOffered():
            doc["handoffs"].append(
                {
                    "id": str(ev.handoff_id),
                    "from_user_id": str(ev.from_user_id),
                    "to_user_id": str(ev.to_user_id),
                    "offered_at": ev.occurred_at.isoformat(),
                    "status": "offered",
                    "closed_at": None,
                }
            )
        case Patient.WarmHandoffAccepted() | Patient.WarmHandoffMissed():
            status = "accepted" if isinstance(ev, Patient.WarmHandoffAccepted) else "missed"
            for handoff in doc["handoffs"]:
                if handoff["id"] == str(ev.handoff_id):
                    handoff.update(status=status, closed_at=ev.occurred_at.isoformat())
        case Patient.BriefVisitRecorded():
            doc["visits"].append(
                {
                    "id": str(ev.visit_id),
                    "bhc_id": str(ev.bhc_id),
                    "minutes": ev.minutes,
                    "handoff_id": None if ev.handoff_id is None else str(ev.handoff_id),
                    "occurred_at": ev.occurred_at.isoformat(),
                }
            )
        case _:
            pass
    return doc


def _columns(doc: Doc) -> dict[str, Any]:
    return {"patient_id": UUID(doc["patient_id"])}


projection = KeyedDocumentProjection(
    name=NAME,
    table=TABLE,
    key_of=_key,
    evolve=evolve,
    columns={"patient_id": "uuid"},
    derive=_columns,
)


# --- the same-day measure ----------------------------------------------------------------


def seen_same_day(handoff: Doc, zone: tzinfo = CLINIC_ZONE) -> bool:
    """Accepted on the clinic day (in the clinic ``zone``) it was offered."""
    return (
        handoff["status"] == "accepted"
        and handoff["closed_at"] is not None
        and day_of(parse_instant(handoff["closed_at"]), zone)
        == day_of(parse_instant(handoff["offered_at"]), zone)
    )


def decided(handoff: Doc, today: date, zone: tzinfo = CLINIC_ZONE) -> bool:
    """Accepted, missed, or offered on a clinic day that has ended by ``today``."""
    offered = day_of(parse_instant(handoff["offered_at"]), zone)
    return handoff["status"] != "offered" or offered < today


@dataclass(frozen=True)
class SameDayMeasure:
    """Handoffs decided, those seen the same clinic day, and their share (None if none)."""

    handoffs: int
    seen_same_day: int
    pending: int

    @property
    def share(self) -> float | None:
        return None if self.handoffs == 0 else self.seen_same_day / self.handoffs


def same_day_share(
    handoffs: Iterable[Doc], today: date, zone: tzinfo = CLINIC_ZONE
) -> SameDayMeasure:
    """Pure: the PCBH same-day measure over ``handoffs`` as of the clinic day ``today``,
    every day read in the clinic ``zone`` (docs/clinical-time.md, section 9)."""
    counted = seen = pending = 0
    for handoff in handoffs:
        if not decided(handoff, today, zone):
            pending += 1
            continue
        counted += 1
        seen += seen_same_day(handoff, zone)
    return SameDayMeasure(handoffs=counted, seen_same_day=seen, pending=pending)
