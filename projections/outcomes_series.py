"""Outcomes over time: one small document per patient for the series per enrollment month
(issue #19 item 3; docs/outcomes.md).

``rm_outcomes_series`` keeps, per patient, the organisation, the first enrollment day
(clinic calendar), the utilisation events (kind and effective day) and the complete GAD-7
totals (clinic day and total), and for the care-team measures per month
(projections/care_team_series.py) the care manager assignments, episodes, contact and
psychiatric review days, PHQ-9 / PHQ-A / GAD-7 / PHQ-2 screens and the birth date (for the DRR-E
age; dropped when the patient is forgotten). No names, no free text: codes, days and
totals. The series is computed on read by the pure rules of ``domain.rules.outcomes``
(``cohort_utilisation``, ``cohort_gad7``) over the documents the caller may reach, so a
late-recorded event counts at its effective day the next time the series is asked.

Choice: a patient's cohort is the month of their *first* enrollment; a re-enrollment
after a discharge does not move them (utilisation windows are a year long, and counting a
patient in two cohorts would count their events twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Final
from uuid import UUID

from domain.instruments import Instrument
from domain.patient import Patient
from domain.rules.outcomes import (
    CohortGad7,
    CohortUtilisation,
    EnrolledPatient,
    Gad7Course,
    UtilisationKind,
    cohort_gad7,
    cohort_utilisation,
)
from projections.clinic_calendar import day_of
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import Scope, unrestricted
from projections.source import Conn, RecordedEvent

NAME = "outcomes_series"
TABLE = "rm_outcomes_series"

_EVENTS: Final = frozenset(
    {
        Patient.Registered.EVENT_NAME,
        Patient.Enrolled.EVENT_NAME,
        Patient.ScreeningRecorded.EVENT_NAME,
        Patient.UtilisationRecorded.EVENT_NAME,
        # The care-team measures per month (projections/care_team_series.py).
        Patient.Referred.EVENT_NAME,
        Patient.Discharged.EVENT_NAME,
        Patient.Deactivated.EVENT_NAME,
        Patient.CareTeamAssigned.EVENT_NAME,
        Patient.CareTeamMemberUnassigned.EVENT_NAME,
        Patient.ContactLogged.EVENT_NAME,
        Patient.PsychiatricCaseReviewRecorded.EVENT_NAME,
        Patient.Forgotten.EVENT_NAME,
    }
)
# Keys of the care-team facts; a document stored before they existed lacks the facts of
# its earlier events until the projection is rebuilt (``careteam rebuild outcomes_series``).
CARE_TEAM_KEYS: Final = ("birth_date", "managers", "episodes", "contacts", "reviews", "screens")
PHQ9_SCALES: Final = frozenset({Instrument.PHQ9.value, Instrument.PHQ_A.value})
# Complete totals kept in ``screens`` (with every PHQ-2): the PHQ-9 scales and the GAD-7.
SERIES_SCALES: Final = PHQ9_SCALES | {Instrument.GAD7.value}


def _key(record: RecordedEvent) -> UUID | None:
    if record.stream_type == "patient" and record.event_type in _EVENTS:
        return record.stream_id
    return None


def evolve(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: the patient's outcomes document after ``record``."""
    ev = record.to_domain_event()
    if isinstance(ev, Patient.Registered):
        return {
            "patient_id": str(record.stream_id),
            "organisation_id": str(ev.organisation_id),
            "enrolled_on": None,
            "events": [],
            "gad7": [],
            "birth_date": None if ev.birth_date is None else ev.birth_date.isoformat(),
            # [day, care manager id or None] in recorded order.
            "managers": [],
            # {number, started_at (instant), enrolled_on, ended_on} per episode.
            "episodes": [],
            # [day, episode] of contacts with the patient and of psychiatric case reviews.
            "contacts": [],
            "reviews": [],
            # [instant, instrument, total or None, positive, episode or None] of complete
            # PHQ-9 / PHQ-A / GAD-7 and of every PHQ-2.
            "screens": [],
        }
    if doc is None:
        return None
    doc = copy_doc(doc)
    for key in CARE_TEAM_KEYS:
        doc.setdefault(key, None if key == "birth_date" else [])
    match ev:
        case Patient.Enrolled():
            day = day_of(ev.occurred_at).isoformat()
            if doc["enrolled_on"] is None:
                doc["enrolled_on"] = day
            if ev.new_episode or not doc["episodes"]:
                doc["episodes"].append(_episode(ev.episode_number, ev.occurred_at.isoformat()))
            doc["episodes"][-1]["enrolled_on"] = day
        case Patient.Referred():
            doc["episodes"].append(_episode(ev.episode_number, ev.occurred_at.isoformat()))
        case Patient.Discharged() | Patient.Deactivated() if doc["episodes"]:
            doc["episodes"][-1]["ended_on"] = day_of(ev.occurred_at).isoformat()
        case Patient.CareTeamAssigned():
            manager = None if ev.care_manager_id is None else str(ev.care_manager_id)
            doc["managers"].append([day_of(ev.occurred_at).isoformat(), manager])
        case Patient.CareTeamMemberUnassigned() if ev.role == "care_manager":
            doc["managers"].append([day_of(ev.occurred_at).isoformat(), None])
        case Patient.ContactLogged() if ev.activity == "contact":
            doc["contacts"].append([day_of(ev.occurred_at).isoformat(), ev.episode_number])
        case Patient.PsychiatricCaseReviewRecorded():
            doc["reviews"].append([day_of(ev.occurred_at).isoformat(), ev.episode_number])
        case Patient.ScreeningRecorded() if ev.instrument == Instrument.PHQ2.value or (
            ev.instrument in SERIES_SCALES and ev.complete and ev.total is not None
        ):
            if ev.instrument == Instrument.GAD7.value:
                doc["gad7"].append([day_of(ev.occurred_at).isoformat(), ev.total])
            doc["screens"].append(
                [
                    ev.occurred_at.isoformat(),
                    ev.instrument,
                    ev.total,
                    bool(ev.positive),
                    ev.episode_number,
                ]
            )
        case Patient.UtilisationRecorded():
            doc["events"].append([ev.kind, ev.effective_on.isoformat()])
        case Patient.Forgotten():
            doc["birth_date"] = None  # the only identifying fact kept here
        case _:
            pass
    return doc


def _episode(number: int, started_at: str) -> Doc:
    return {"number": number, "started_at": started_at, "enrolled_on": None, "ended_on": None}


def _columns(doc: Doc) -> dict[str, Any]:
    enrolled = doc["enrolled_on"]
    return {
        "patient_id": UUID(doc["patient_id"]),
        "organisation_id": UUID(doc["organisation_id"]),
        "enrolled_on": None if enrolled is None else date.fromisoformat(enrolled),
    }


projection = KeyedDocumentProjection(
    name=NAME,
    table=TABLE,
    key_of=_key,
    evolve=evolve,
    columns={"patient_id": "uuid", "organisation_id": "uuid", "enrolled_on": "date"},
    derive=_columns,
)


# --- reading the series ------------------------------------------------------------------


async def fetch_enrolled(
    conn: Conn, organisation_id: UUID, as_of: date, *, scope: Scope = unrestricted
) -> list[Doc]:
    """The documents of the organisation's patients enrolled by ``as_of`` in scope."""
    scope_sql, scope_args = scope("t.patient_id", 3)
    rows = await conn.fetch(
        f"""SELECT t.doc FROM {TABLE} t
            WHERE t.organisation_id = $1 AND t.enrolled_on <= $2 AND {scope_sql}
            ORDER BY t.enrolled_on, t.key""",
        organisation_id,
        as_of,
        *scope_args,
    )
    return [r["doc"] for r in rows]


def utilisation_series(docs: Iterable[Doc], as_of: date) -> list[CohortUtilisation]:
    """Per enrollment month and kind (months oldest first, kinds in declaration order)."""
    patients = [
        EnrolledPatient(
            date.fromisoformat(d["enrolled_on"]),
            tuple((UtilisationKind(k), date.fromisoformat(day)) for k, day in d["events"]),
        )
        for d in docs
        if d["enrolled_on"] is not None
    ]
    rows = [row for kind in UtilisationKind for row in cohort_utilisation(patients, kind, as_of)]
    order = {kind: i for i, kind in enumerate(UtilisationKind)}
    return sorted(rows, key=lambda r: (r.year, r.month, order[r.kind]))


def gad7_series(docs: Iterable[Doc], as_of: date) -> list[CohortGad7]:
    """GAD-7 response and remission per enrollment month (oldest first)."""
    return cohort_gad7(
        [
            Gad7Course(
                date.fromisoformat(d["enrolled_on"]),
                tuple((date.fromisoformat(day), total) for day, total in d["gad7"]),
            )
            for d in docs
            if d["enrolled_on"] is not None
        ],
        as_of,
    )
