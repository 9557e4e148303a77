"""Monthly minutes and billing eligibility, for the care manager and the billing office.

Answers "what can we bill for this patient in this month, and what documentation is
missing?" for any month, past or current. The projection stores facts only: every
minute entry with its effective time, activity and episode (``rm_billing_minutes``),
and per patient the dated facts billing reads (``rm_billing_facts``: episodes,
collaborative care consents, assessments, care plans, case reviews, inpatient stays).
The codes are derived on read by domain.rules.billing (``bill_month``) with the rule
version in force for that month, so a past month is re-derived exactly, and a
late-recorded entry, consent or admission changes the months it falls in.

How the facts become a ``PatientMonth`` (choices, docs/clinical-rules.md "Billing"):
- The month's episode is the episode of its latest minute entry, or, without entries,
  the latest episode enrolled by the month's end and not ended before it starts; its
  enrollment day is ``episode_started_on``, so the first calendar month of each episode
  is a first month (99492) and later months are 99493.
- Consent is a collaborative care consent with a method (verbal or written) and cost
  sharing explained, granted by the month's end and not revoked before it started;
  ``consent_on`` is its grant day. Minutes on or after a revocation day are left out
  of the month and shown apart (``minutes_after_revocation``).
- A minute counts as inpatient when its instant falls inside an inpatient stay.
- Documentation: initial assessment = a complete PHQ-9, PHQ-A or GAD-7 of the episode
  taken by the month's end; care plan = a care plan of the episode created by the
  month's end; psychiatric consultant review = a case review of the episode within the
  month (CoCM's weekly caseload review, so each month needs one); registry tracking =
  the episode was enrolled by the month's end (careteam is the registry).
- Every month is billed as collaborative care (``BillingMode.COCM``): nothing records
  a practice's choice of general BHI (99484) yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

from domain.care_plan import CarePlan
from domain.patient import Patient
from domain.rules import billing as billing_rules
from domain.rules.billing import ActivityType, MinuteEntry, MonthBilling, PatientMonth
from projections.clinic_calendar import day_of, month_range, month_start, parse_instant
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import Scope, unrestricted
from projections.source import Conn, RecordedEvent

NAME = "billing"
FACTS_TABLE = "rm_billing_facts"
MINUTES_TABLE = "rm_billing_minutes"

ASSESSMENT_INSTRUMENTS: Final = frozenset({"phq9", "phq_a", "gad7"})


# --- evolve: facts ---------------------------------------------------------------------


def _new_facts(record: RecordedEvent, ev: Patient.Registered) -> Doc:
    return {
        "id": str(record.stream_id),
        "organisation_id": str(ev.organisation_id),
        "care_manager_id": None,
        "episodes": [],
        "consents": [],
        "assessments": [],
        "care_plans": [],
        "case_reviews": [],
        "inpatient_stays": [],
    }


def _episode(doc: Doc, number: int) -> dict[str, Any] | None:
    for episode in doc["episodes"]:
        if episode["number"] == number:
            found: dict[str, Any] = episode
            return found
    return None


def evolve(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: one patient's billing facts after ``record`` (a new document)."""
    if record.stream_type not in ("patient", "care_plan"):
        return doc
    ev = record.to_domain_event()
    if isinstance(ev, Patient.Registered):
        return _new_facts(record, ev)
    if doc is None:
        return None
    doc = copy_doc(doc)
    match ev:
        case Patient.Referred():
            doc["episodes"].append(
                {"number": ev.episode_number, "enrolled_at": None, "ended_at": None}
            )
        case Patient.Enrolled():
            episode = _episode(doc, ev.episode_number)
            if episode is None:
                episode = {"number": ev.episode_number, "enrolled_at": None, "ended_at": None}
                doc["episodes"].append(episode)
            episode["enrolled_at"] = ev.occurred_at.isoformat()
        case Patient.Discharged() | Patient.Deactivated():
            episode = _episode(doc, ev.episode_number)
            if episode is not None:
                episode["ended_at"] = ev.occurred_at.isoformat()
        case Patient.CareTeamAssigned():
            doc["care_manager_id"] = None if ev.care_manager_id is None else str(ev.care_manager_id)
        case Patient.CareTeamMemberUnassigned() if ev.role == "care_manager":
            doc["care_manager_id"] = None
        case Patient.ConsentGranted() if ev.kind == "cocm_treatment":
            doc["consents"].append(
                {
                    "id": str(ev.consent_id),
                    "granted_at": ev.occurred_at.isoformat(),
                    "method": ev.method,
                    "cost_sharing_explained": ev.cost_sharing_explained,
                    "revoked_at": None,
                }
            )
        case Patient.ConsentRevoked():
            for consent in doc["consents"]:
                if consent["id"] == str(ev.consent_id):
                    consent["revoked_at"] = ev.occurred_at.isoformat()
        case Patient.ScreeningRecorded() if (
            ev.instrument in ASSESSMENT_INSTRUMENTS and ev.complete and ev.episode_number
        ):
            doc["assessments"].append(
                {"episode": ev.episode_number, "at": ev.occurred_at.isoformat()}
            )
        case Patient.PsychiatricCaseReviewRecorded():
            doc["case_reviews"].append(
                {"episode": ev.episode_number, "at": ev.occurred_at.isoformat()}
            )
        case Patient.InpatientAdmitted():
            doc["inpatient_stays"].append(
                {"admitted_at": ev.occurred_at.isoformat(), "discharged_at": None}
            )
        case Patient.InpatientDischarged() if doc["inpatient_stays"]:
            doc["inpatient_stays"][-1]["discharged_at"] = ev.occurred_at.isoformat()
        case CarePlan.Created():
            doc["care_plans"].append(
                {"episode": ev.episode_number, "at": ev.occurred_at.isoformat()}
            )
        case _:
            pass
    return doc


def _derive(doc: Doc) -> dict[str, Any]:
    manager = doc["care_manager_id"]
    return {
        "organisation_id": UUID(doc["organisation_id"]),
        "care_manager_id": None if manager is None else UUID(manager),
    }


def _patient_key(record: RecordedEvent) -> UUID | None:
    return record.patient_id if record.stream_type in ("patient", "care_plan") else None


_facts = KeyedDocumentProjection(
    name=NAME,
    table=FACTS_TABLE,
    key_of=_patient_key,
    evolve=evolve,
    columns={"organisation_id": "uuid", "care_manager_id": "uuid"},
    derive=_derive,
)


@dataclass(frozen=True)
class BillingProjection:
    """Writes the per-patient facts and one row per minute entry, in the runner's transaction."""

    name: str = NAME

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await _facts.apply(conn, events)
        entries = [
            (e.patient_id, e.to_domain_event())
            for e in events
            if e.stream_type == "patient" and e.event_type == Patient.ContactLogged.EVENT_NAME
        ]
        if entries:
            await conn.execute(
                f"""INSERT INTO {MINUTES_TABLE}
                        (contact_id, patient_id, occurred_at, minutes, activity, episode_number,
                         performed_by)
                    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[],
                                         $4::integer[], $5::text[], $6::integer[], $7::uuid[])
                    ON CONFLICT (contact_id) DO NOTHING""",
                [ev.contact_id for _, ev in entries],
                [pid for pid, _ in entries],
                [ev.occurred_at for _, ev in entries],
                [ev.minutes for _, ev in entries],
                [ev.activity for _, ev in entries],
                [ev.episode_number for _, ev in entries],
                [ev.performed_by for _, ev in entries],
            )

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {FACTS_TABLE}, {MINUTES_TABLE}")


projection = BillingProjection()


# --- derive on read ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedMinutes:
    """One stored minute entry."""

    contact_id: UUID
    occurred_at: datetime
    minutes: int
    activity: str
    episode_number: int


@dataclass(frozen=True)
class BillingRow:
    """One patient-month: the rules' result plus what the row needs to explain it."""

    patient_id: UUID
    care_manager_id: UUID | None
    episode_number: int | None
    episode_started_on: date | None
    consent_on: date | None
    minutes_after_revocation: int
    entries: tuple[LoggedMinutes, ...]
    billing: MonthBilling | None


def _days_in(items: list[dict[str, Any]], key: str, episode: int) -> list[date]:
    return [day_of(parse_instant(i[key])) for i in items if i["episode"] == episode]


def _choose_episode(
    facts: Doc, entries: Sequence[LoggedMinutes], first: date, last: date
) -> dict[str, Any] | None:
    if entries:
        number = max(entries, key=lambda e: e.occurred_at).episode_number
        return _episode(facts, number)
    chosen = None
    for episode in facts["episodes"]:
        if episode["enrolled_at"] is None:
            continue
        enrolled = day_of(parse_instant(episode["enrolled_at"]))
        ended = episode["ended_at"]
        if enrolled <= last and (ended is None or day_of(parse_instant(ended)) >= first):
            chosen = episode
    return chosen


def _consent(facts: Doc, first: date, last: date) -> tuple[date | None, date | None]:
    """The grant day of the consent that covers the month, and its revocation day if any."""
    best: tuple[date, date | None] | None = None
    for consent in facts["consents"]:
        if consent["method"] is None or not consent["cost_sharing_explained"]:
            continue
        granted = day_of(parse_instant(consent["granted_at"]))
        revoked = day_of(parse_instant(consent["revoked_at"])) if consent["revoked_at"] else None
        if granted > last or (revoked is not None and revoked < first):
            continue
        if best is None or granted < best[0]:
            best = (granted, revoked)
    return (None, None) if best is None else best


def _inpatient(facts: Doc, at: datetime) -> bool:
    for stay in facts["inpatient_stays"]:
        admitted = parse_instant(stay["admitted_at"])
        left = parse_instant(stay["discharged_at"]) if stay["discharged_at"] else None
        if admitted <= at and (left is None or at < left):
            return True
    return False


def bill_patient_month(
    facts: Doc,
    entries: Sequence[LoggedMinutes],
    month: date,
    rules: billing_rules.BillingRules | None = None,
) -> BillingRow:
    """Pure: the billing row of one patient for the month containing ``month``."""
    first = month_start(month)
    last = billing_rules.month_end(first)
    in_month = [e for e in entries if first <= day_of(e.occurred_at) <= last]
    manager = facts["care_manager_id"]
    episode = _choose_episode(facts, in_month, first, last)
    consent_on, revoked_on = _consent(facts, first, last)
    kept = [e for e in in_month if revoked_on is None or day_of(e.occurred_at) < revoked_on]
    after_revocation = sum(e.minutes for e in in_month) - sum(e.minutes for e in kept)
    if episode is None or episode["enrolled_at"] is None:
        started_on = None
    else:
        started_on = day_of(parse_instant(episode["enrolled_at"]))
    row = BillingRow(
        patient_id=UUID(facts["id"]),
        care_manager_id=None if manager is None else UUID(manager),
        episode_number=None if episode is None else episode["number"],
        episode_started_on=started_on,
        consent_on=consent_on,
        minutes_after_revocation=after_revocation,
        entries=tuple(sorted(in_month, key=lambda e: e.occurred_at)),
        billing=None,
    )
    if episode is None or started_on is None or month_start(started_on) > first:
        return row
    number = episode["number"]
    patient_month = PatientMonth(
        month=first,
        episode_started_on=started_on,
        entries=tuple(
            MinuteEntry(
                on=day_of(e.occurred_at),
                minutes=e.minutes,
                activity=ActivityType(e.activity),
                inpatient=_inpatient(facts, e.occurred_at),
            )
            for e in kept
        ),
        consent_on=consent_on,
        initial_assessment_documented=any(
            d <= last for d in _days_in(facts["assessments"], "at", number)
        ),
        care_plan_documented=any(d <= last for d in _days_in(facts["care_plans"], "at", number)),
        psychiatric_review_documented=any(
            first <= d <= last for d in _days_in(facts["case_reviews"], "at", number)
        ),
        registry_tracking_documented=started_on <= last,
    )
    billed = billing_rules.bill_month(patient_month, rules)
    return replace(row, billing=billed)


# --- queries -----------------------------------------------------------------------------


async def minutes_in_month(conn: Conn, patient_ids: Sequence[UUID], day: date) -> dict[UUID, int]:
    """Logged minutes per patient in the clinic month containing ``day``."""
    start, end = month_range(day)
    rows = await conn.fetch(
        f"""SELECT patient_id, sum(minutes)::integer AS minutes FROM {MINUTES_TABLE}
            WHERE patient_id = ANY($1::uuid[]) AND occurred_at >= $2 AND occurred_at < $3
            GROUP BY patient_id""",
        list(patient_ids),
        start,
        end,
    )
    return {r["patient_id"]: r["minutes"] for r in rows}


async def fetch_billing_month(
    conn: Conn,
    month: date,
    *,
    care_manager_id: UUID | None = None,
    patient_id: UUID | None = None,
    scope: Scope = unrestricted,
) -> list[BillingRow]:
    """Billing rows of the month: every patient with minutes in it or an episode open in it."""
    start, end = month_range(month)
    scope_sql, scope_args = scope("m.patient_id", 5)
    minute_rows = await conn.fetch(
        f"""SELECT m.contact_id, m.patient_id, m.occurred_at, m.minutes, m.activity,
                   m.episode_number
            FROM {MINUTES_TABLE} m JOIN {FACTS_TABLE} f ON f.key = m.patient_id
            WHERE m.occurred_at >= $1 AND m.occurred_at < $2
              AND ($3::uuid IS NULL OR f.care_manager_id = $3::uuid)
              AND ($4::uuid IS NULL OR m.patient_id = $4::uuid)
              AND {scope_sql}""",
        start,
        end,
        care_manager_id,
        patient_id,
        *scope_args,
    )
    by_patient: dict[UUID, list[LoggedMinutes]] = {}
    for r in minute_rows:
        by_patient.setdefault(r["patient_id"], []).append(
            LoggedMinutes(
                r["contact_id"], r["occurred_at"], r["minutes"], r["activity"], r["episode_number"]
            )
        )
    scope_sql, scope_args = scope("key", 3)
    fact_rows = await conn.fetch(
        f"""SELECT key, doc FROM {FACTS_TABLE}
            WHERE ($1::uuid IS NULL OR care_manager_id = $1::uuid)
              AND ($2::uuid IS NULL OR key = $2::uuid)
              AND jsonb_array_length(doc->'episodes') > 0
              AND {scope_sql}""",
        care_manager_id,
        patient_id,
        *scope_args,
    )
    first = month_start(month)
    last = billing_rules.month_end(first)
    rows = []
    for r in fact_rows:
        entries = by_patient.get(r["key"], [])
        if not entries and _choose_episode(r["doc"], [], first, last) is None:
            continue
        rows.append(bill_patient_month(r["doc"], entries, first))
    return sorted(rows, key=lambda row: str(row.patient_id))


def code_summary(rows: Sequence[BillingRow]) -> Mapping[str, int]:
    """Units per code over the billable rows."""
    totals: dict[str, int] = {}
    for row in rows:
        if row.billing is None or not row.billing.billable:
            continue
        for code in row.billing.codes:
            totals[code.code] = totals.get(code.code, 0) + code.units
    return totals
