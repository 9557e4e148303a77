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
- Clinic calendar and program (docs/clinical-time.md, docs/billing-programs.md): the
  facts keep instants, never days, so the day of every instant is taken on read in the
  patient's organisation's zone (``organisations.time_zone``), and the month is billed
  under the program the organisation runs from a date on or before the month's first
  day (``organisation_billing_programs``; collaborative care when none is recorded).
  The query reads both with the rows; changing either re-derives every month at once.
- Qualifying time: only care manager time counts (``QUALIFYING_ROLES``); a minute entry
  performed by anyone in another role is shown apart, by role, and never counted.
  Entries recorded before the performer was kept (performer_role null) are care
  manager time, as only a care manager could log them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.care_plan import CarePlan
from domain.patient import Patient
from domain.rules import billing as billing_rules
from domain.rules.billing import (
    ActivityType,
    BillingProgram,
    MinuteEntry,
    MonthBilling,
    PatientMonth,
)
from projections.base import Statement, apply_batched
from projections.clinic_calendar import day_of, month_range, month_start, parse_instant
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import Scope, unrestricted
from projections.source import Conn, RecordedEvent

NAME = "billing"
FACTS_TABLE = "rm_billing_facts"
MINUTES_TABLE = "rm_billing_minutes"

ASSESSMENT_INSTRUMENTS: Final = frozenset({"phq9", "phq_a", "gad7"})
# Whose time counts toward CoCM and general BHI minutes: the behavioral health care
# manager's (clinical staff under the billing practitioner's direction). The billing
# practitioner's (PCP's) own time and the psychiatric consultant's time do not count
# (CMS Behavioral Health Integration booklet; docs/billing-programs.md).
QUALIFYING_ROLES: Final = frozenset({"care_manager"})
PROGRAMS_TABLE = "organisation_billing_programs"
# The widest UTC offsets in use (UTC-12 to UTC+14): the instant range read for a month in
# any zone, narrowed to each patient's clinic month in Python.
_WIDEST_OFFSET: Final = timedelta(hours=15)


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
        "initiating_visits": [],
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
        case Patient.InitiatingVisitRecorded():
            # Documents older than this event type have no list: rebuilt or added here.
            doc.setdefault("initiating_visits", []).append({"at": ev.occurred_at.isoformat()})
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
        await apply_batched(conn, self, events)

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        return _facts.reads(events)

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        statements = _facts.writes(events, rows)
        entries = [
            (e.patient_id, e.to_domain_event())
            for e in events
            if e.stream_type == "patient" and e.event_type == Patient.ContactLogged.EVENT_NAME
        ]
        if entries:
            statements.append(
                Statement(
                    lambda n: (
                        f"""INSERT INTO {MINUTES_TABLE}
                        (contact_id, patient_id, occurred_at, minutes, activity, episode_number,
                         performed_by, performer_role)
                    SELECT * FROM unnest(${n}::uuid[], ${n + 1}::uuid[],
                                         ${n + 2}::timestamptz[], ${n + 3}::integer[],
                                         ${n + 4}::text[], ${n + 5}::integer[],
                                         ${n + 6}::uuid[], ${n + 7}::text[])
                    ON CONFLICT (contact_id) DO NOTHING"""
                    ),
                    [
                        [ev.contact_id for _, ev in entries],
                        [pid for pid, _ in entries],
                        [ev.occurred_at for _, ev in entries],
                        [ev.minutes for _, ev in entries],
                        [ev.activity for _, ev in entries],
                        [ev.episode_number for _, ev in entries],
                        [ev.performed_by for _, ev in entries],
                        [getattr(ev, "performer_role", None) for _, ev in entries],
                    ],
                )
            )
        return statements

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
    performed_by: UUID | None = None
    performer_role: str | None = None

    @property
    def qualifies(self) -> bool:
        """Care manager time (or an entry from before performers were kept)."""
        return self.performer_role is None or self.performer_role in QUALIFYING_ROLES


@dataclass(frozen=True)
class Clinic:
    """An organisation's calendar zone and its billing programs by start date."""

    zone: tzinfo = UTC
    programs: tuple[tuple[date, BillingProgram], ...] = ()

    def program_on(self, month: date) -> BillingProgram | None:
        """The program in force on the month's first day; None when none is recorded."""
        chosen = None
        for since, program in sorted(self.programs):
            if since <= month:
                chosen = program
        return chosen


UTC_CLINIC = Clinic()


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
    # Minutes by performer role that did not count (not qualifying time), sorted by role.
    non_qualifying_minutes: tuple[tuple[str, int], ...] = ()
    time_zone: str = "UTC"


def _days_in(items: list[dict[str, Any]], key: str, episode: int, zone: tzinfo = UTC) -> list[date]:
    return [day_of(parse_instant(i[key]), zone) for i in items if i["episode"] == episode]


def _choose_episode(
    facts: Doc, entries: Sequence[LoggedMinutes], first: date, last: date, zone: tzinfo = UTC
) -> dict[str, Any] | None:
    if entries:
        number = max(entries, key=lambda e: e.occurred_at).episode_number
        return _episode(facts, number)
    chosen = None
    for episode in facts["episodes"]:
        if episode["enrolled_at"] is None:
            continue
        enrolled = day_of(parse_instant(episode["enrolled_at"]), zone)
        ended = episode["ended_at"]
        if enrolled <= last and (ended is None or day_of(parse_instant(ended), zone) >= first):
            chosen = episode
    return chosen


def _consent(
    facts: Doc, first: date, last: date, zone: tzinfo = UTC
) -> tuple[date | None, date | None]:
    """The grant day of the consent that covers the month, and its revocation day if any."""
    best: tuple[date, date | None] | None = None
    for consent in facts["consents"]:
        if consent["method"] is None or not consent["cost_sharing_explained"]:
            continue
        granted = day_of(parse_instant(consent["granted_at"]), zone)
        revoked = (
            day_of(parse_instant(consent["revoked_at"]), zone) if consent["revoked_at"] else None
        )
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
    clinic: Clinic = UTC_CLINIC,
) -> BillingRow:
    """Pure: the billing row of one patient for the month containing ``month``.

    Every day is the clinic's (``clinic.zone``); the program is the clinic's program in
    force on the month's first day (none recorded: collaborative care as before, with
    ``rules`` as given).
    """
    zone = clinic.zone
    first = month_start(month)
    last = billing_rules.month_end(first)
    in_month = [e for e in entries if first <= day_of(e.occurred_at, zone) <= last]
    manager = facts["care_manager_id"]
    episode = _choose_episode(facts, in_month, first, last, zone)
    consent_on, revoked_on = _consent(facts, first, last, zone)
    kept = [e for e in in_month if revoked_on is None or day_of(e.occurred_at, zone) < revoked_on]
    after_revocation = sum(e.minutes for e in in_month) - sum(e.minutes for e in kept)
    not_qualifying: dict[str, int] = {}
    for e in kept:
        if not e.qualifies:
            role = e.performer_role or ""
            not_qualifying[role] = not_qualifying.get(role, 0) + e.minutes
    if episode is None or episode["enrolled_at"] is None:
        started_on = None
    else:
        started_on = day_of(parse_instant(episode["enrolled_at"]), zone)
    row = BillingRow(
        patient_id=UUID(facts["id"]),
        care_manager_id=None if manager is None else UUID(manager),
        episode_number=None if episode is None else episode["number"],
        episode_started_on=started_on,
        consent_on=consent_on,
        minutes_after_revocation=after_revocation,
        entries=tuple(sorted(in_month, key=lambda e: e.occurred_at)),
        billing=None,
        non_qualifying_minutes=tuple(sorted(not_qualifying.items())),
        time_zone=str(zone),
    )
    if episode is None or started_on is None or month_start(started_on) > first:
        return row
    number = episode["number"]
    patient_month = PatientMonth(
        month=first,
        episode_started_on=started_on,
        entries=tuple(
            MinuteEntry(
                on=day_of(e.occurred_at, zone),
                minutes=e.minutes,
                activity=ActivityType(e.activity),
                inpatient=_inpatient(facts, e.occurred_at),
            )
            for e in kept
            if e.qualifies
        ),
        consent_on=consent_on,
        initial_assessment_documented=any(
            d <= last for d in _days_in(facts["assessments"], "at", number, zone)
        ),
        care_plan_documented=any(
            d <= last for d in _days_in(facts["care_plans"], "at", number, zone)
        ),
        psychiatric_review_documented=any(
            first <= d <= last for d in _days_in(facts["case_reviews"], "at", number, zone)
        ),
        registry_tracking_documented=started_on <= last,
        initiating_visit_documented=any(
            started_on - timedelta(days=billing_rules.INITIATING_VISIT_LOOKBACK_DAYS) <= d <= last
            for d in (
                day_of(parse_instant(v["at"]), zone) for v in facts.get("initiating_visits", [])
            )
        ),
    )
    program = clinic.program_on(first)
    if rules is not None:  # an explicit rule version (tests, a payer that differs)
        billed = billing_rules.bill_month(patient_month, rules)
    elif program is None:  # nothing recorded: collaborative care, reported as no program
        billed = replace(
            billing_rules.bill_program_month(
                patient_month, billing_rules.BillingProgram.COLLABORATIVE_CARE
            ),
            program=None,
        )
    else:
        billed = billing_rules.bill_program_month(patient_month, program)
    return replace(row, billing=billed)


# --- queries -----------------------------------------------------------------------------


async def minutes_in_month(conn: Conn, patient_ids: Sequence[UUID], day: date) -> dict[UUID, int]:
    """Logged minutes per patient in the month containing ``day``, each month cut in the
    patient's organisation's zone.

    An entry at least ``_WIDEST_OFFSET`` inside the month's UTC bounds falls on a day of
    the month in every zone (offsets run from UTC-12 to UTC+14): those are summed in SQL.
    Only the entries near either bound are read one by one and cut into the clinic's day
    here (about a day's entries, instead of the month's)."""
    start, end = month_range(day)
    # One statement: the interior sums, then the entries near the bounds with the zone of
    # each (as fetch_clinics reads it: the directory's zone, UTC when none is recorded).
    rows = await conn.fetch(
        f"""SELECT m.patient_id, NULL::timestamptz AS occurred_at,
                   sum(m.minutes)::bigint AS minutes, NULL::text AS time_zone
            FROM {MINUTES_TABLE} m JOIN {FACTS_TABLE} f ON f.key = m.patient_id
            WHERE m.patient_id = ANY($1::uuid[]) AND m.occurred_at >= $4 AND m.occurred_at < $5
            GROUP BY m.patient_id
            UNION ALL
            SELECT m.patient_id, m.occurred_at, m.minutes, o.time_zone
            FROM {MINUTES_TABLE} m JOIN {FACTS_TABLE} f ON f.key = m.patient_id
            LEFT JOIN organisations o ON o.organisation_id = f.organisation_id
            WHERE m.patient_id = ANY($1::uuid[])
              AND ((m.occurred_at >= $2 AND m.occurred_at < $4)
                OR (m.occurred_at >= $5 AND m.occurred_at < $3))""",
        list(patient_ids),
        start - _WIDEST_OFFSET,
        end + _WIDEST_OFFSET,
        start + _WIDEST_OFFSET,
        end - _WIDEST_OFFSET,
    )
    zones: dict[str | None, tzinfo] = {None: Clinic().zone}
    first, last = month_start(day), billing_rules.month_end(day)
    totals: dict[UUID, int] = {}
    for r in rows:
        at = r["occurred_at"]
        if at is not None:
            name = r["time_zone"]
            zone = zones.get(name) or zones.setdefault(name, ZoneInfo(name))
            if not first <= day_of(at, zone) <= last:
                continue
        totals[r["patient_id"]] = totals.get(r["patient_id"], 0) + int(r["minutes"])
    return totals


async def fetch_clinics(conn: Conn, organisation_ids: Sequence[UUID]) -> dict[UUID, Clinic]:
    """Each organisation's zone and programs, as the directory keeps them (default UTC)."""
    zones = await conn.fetch(
        "SELECT organisation_id, time_zone FROM organisations"
        " WHERE organisation_id = ANY($1::uuid[])",
        list(organisation_ids),
    )
    programs = await conn.fetch(
        f"""SELECT organisation_id, effective_from, program FROM {PROGRAMS_TABLE}
            WHERE organisation_id = ANY($1::uuid[]) ORDER BY effective_from""",
        list(organisation_ids),
    )
    by_org: dict[UUID, list[tuple[date, BillingProgram]]] = {}
    for r in programs:
        by_org.setdefault(r["organisation_id"], []).append(
            (r["effective_from"], BillingProgram(r["program"]))
        )
    clinics = {oid: Clinic(programs=tuple(by_org.get(oid, ()))) for oid in organisation_ids}
    for r in zones:
        oid = r["organisation_id"]
        clinics[oid] = Clinic(zone=ZoneInfo(r["time_zone"]), programs=clinics[oid].programs)
    return clinics


async def fetch_billing_month(
    conn: Conn,
    month: date,
    *,
    care_manager_id: UUID | None = None,
    patient_id: UUID | None = None,
    scope: Scope = unrestricted,
) -> list[BillingRow]:
    """Billing rows of the month: every patient with minutes in it or an episode open in it,
    each in its organisation's calendar and under its organisation's program."""
    start, end = month_range(month)
    start, end = start - _WIDEST_OFFSET, end + _WIDEST_OFFSET
    scope_sql, scope_args = scope("m.patient_id", 5)
    minute_rows = await conn.fetch(
        f"""SELECT m.contact_id, m.patient_id, m.occurred_at, m.minutes, m.activity,
                   m.episode_number, m.performed_by, m.performer_role
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
                r["contact_id"],
                r["occurred_at"],
                r["minutes"],
                r["activity"],
                r["episode_number"],
                r["performed_by"],
                r["performer_role"],
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
    clinics = await fetch_clinics(
        conn, sorted({UUID(r["doc"]["organisation_id"]) for r in fact_rows})
    )
    rows = []
    for r in fact_rows:
        clinic = clinics[UUID(r["doc"]["organisation_id"])]
        entries = [
            e
            for e in by_patient.get(r["key"], [])
            if first <= day_of(e.occurred_at, clinic.zone) <= last
        ]
        if not entries and _choose_episode(r["doc"], [], first, last, clinic.zone) is None:
            continue
        rows.append(bill_patient_month(r["doc"], entries, first, clinic=clinic))
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
