"""The caseload registry: one row per patient, for the care manager's registry.

Answers the care manager's question "who on my caseload needs what, today?": status,
enrollment day, weeks in treatment, baseline and latest PHQ-9 and GAD-7 with their
days, percent change, contacts, last contact and days since, last psychiatric case
review, the care team, the relapse prevention plan's status, minutes this month and
the flags of domain.rules.flags with the rule, version and inputs that raised each.
The psychiatrist's review queue, the PCP's panel and the outcome report read the same
rows (projections.review_queue, projections.panel, projections.outcomes).

Time. Most flags depend on today (weeks in treatment, days since contact, days since
the last PHQ-9), so a row stored when its last event arrived would go stale: a patient
nobody touched for 15 days must show Overdue contact on day 15. So the projection stores
*facts* (effective times of scores, contacts, reviews; the episode; the team) and every
query evaluates the flags for its own "today" from the injected clock, through
``evaluate_flags`` (never a copy of its thresholds). Both, in fact: to filter and order
in SQL ("flagged first", the review queue, keyset pagination) the writer also stores,
per flag kind, the first day on which that flag is raised given the stored facts
(``flag_onsets``). Between two events the facts do not change and every registry flag
can only switch on as days pass (weeks, days since contact, days since a PHQ-9 only
grow), so "flag K is raised on day D" is exactly "onset_K <= D"; the onset is found by
bisecting ``evaluate_flags`` over days, so a new rule version changes it without code
here changing. The SQL columns decide which rows and in what order; the flags shown,
with their inputs, are evaluated on read for the page's rows. tests/unit/projections
checks the onsets against a day-by-day evaluation.

Which scores count: PHQ-9 and PHQ-A totals (PHQ-A is scored as PHQ-9, docs/clinical-rules.md) of
the current episode, complete ones only, ordered by when they were taken, so a
late-recorded older score becomes the baseline. Item 9 is read from the latest PHQ-9 or
PHQ-A that answered it, complete or not and in any episode (a safety signal is never
dropped by bookkeeping). Flags recorded on the patient stream (the safety flag a
screening raises, a team member's flag) stay on the row until someone clears them,
even when the rule would no longer raise them: clearing a safety flag is a clinical act.

Contacts: "number of contacts" counts contacts with the patient (activity ``contact``)
in the current episode; outreach attempts are counted apart, and the other activities
(registry review, case review, coordination) are minutes, not contacts (choice, as the
AIMS tracking system separates attempts from contacts). The Overdue contact rule reads
the last contact with the patient.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

from domain.instruments import SdqInformant, SdqScale, sdq_category
from domain.organisation import Organisation
from domain.patient import Patient, counts_for_episode
from domain.rules import DatedScore
from domain.rules import flags as flag_rules
from domain.rules import outcomes as outcome_rules
from domain.rules.flags import EpisodeStatus, FlagKind, RegistrySnapshot
from domain.rules.treatment import TreatmentAction, decide_treatment
from projections.base import Statement
from projections.clinic_calendar import (
    CLINIC_ZONE,
    day_of,
    days_between,
    in_zone,
    parse_instant,
    zone_named,
)
from projections.document import Doc, copy_doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import (
    Scope,
    SortKey,
    after_clause,
    decode_cursor,
    encode_cursor,
    order_by,
    unrestricted,
)
from projections.patient_access import TABLE as ACCESS_TABLE
from projections.source import Conn, RecordedEvent

NAME = "registry"
TABLE = "rm_registry"

ON_CASELOAD: Final = frozenset({"enrolled", "active_treatment", "relapse_prevention"})
# PHQ-A is the PHQ-9 for ages 11-17, scored the same way (docs/clinical-rules.md, Instruments).
PHQ9_SCALES: Final = frozenset({"phq9", "phq_a"})
KEPT_INSTRUMENTS: Final = frozenset({"phq9", "phq_a", "gad7", "asq"})
PHQ9_ITEM9_INDEX: Final = 8
# Flags recorded by a team member that ask for the psychiatric consultant's review.
TEAM_REVIEW_KINDS: Final = frozenset({"team_member", "needs_psychiatric_review"})
# The first day any flag rule is in force; flags are never evaluated before it.
FLAG_RULES_START: Final = flag_rules.RULE_BOOK.versions[0].effective_from
# Every time-based onset lies within (last fact + the longest threshold) days; this
# horizon bounds the bisection with a wide margin.
ONSET_HORIZON: Final = timedelta(days=400)
# "Always": the onset of a flag already raised on the first day evaluated.
ALWAYS: Final = date.min

# Choice: a portal loads a whole caseload in one request. A full-time care manager's
# registry (active treatment plus relapse prevention) is rarely above 150 patients, so
# the largest page is 200; larger caseloads page by cursor.
MAX_PAGE_SIZE: Final = 200
DEFAULT_PAGE_SIZE: Final = 50


# --- evolve: facts only ------------------------------------------------------------------


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _later(current: str | None, candidate: datetime) -> str:
    """The later of a stored instant and a new one (late entries may be older)."""
    if current is None or parse_instant(current) < candidate:
        return candidate.isoformat()
    return current


def _new_doc(record: RecordedEvent, ev: Patient.Registered) -> Doc:
    return {
        "id": str(record.stream_id),
        "organisation_id": str(ev.organisation_id),
        "given_name": ev.given_name,
        "family_name": ev.family_name,
        "mrn": ev.mrn,
        "birth_date": ev.birth_date.isoformat() if ev.birth_date else None,
        "care_team": {"care_manager_id": None, "pcp_id": None, "psychiatric_consultant_id": None},
        "episodes": [],
        "screenings": [],
        "contact_count": 0,
        "outreach_count": 0,
        "last_contact_at": None,
        "last_case_review_at": None,
        "case_review_count": 0,
        "relapse_prevention_plan_at": None,
        "recorded_flags": [],
        "version": record.stream_version,
    }


def _start_episode(doc: Doc, number: int, status: str, at: datetime) -> None:
    doc["episodes"].append(
        {
            "number": number,
            "status": status,
            "started_at": at.isoformat(),
            "enrolled_at": None,
            "treatment_started_at": None,
            "ended_at": None,
            "end_reason": None,
        }
    )
    # Contacts, reviews and the relapse plan are per episode.
    doc["contact_count"] = 0
    doc["outreach_count"] = 0
    doc["last_contact_at"] = None
    doc["last_case_review_at"] = None
    doc["case_review_count"] = 0
    doc["relapse_prevention_plan_at"] = None


def _current_number(doc: Doc) -> int | None:
    return doc["episodes"][-1]["number"] if doc["episodes"] else None


def _set_status(doc: Doc, status: str) -> dict[str, Any]:
    episode: dict[str, Any] = doc["episodes"][-1]
    episode["status"] = status
    return episode


def evolve(doc: Doc | None, record: RecordedEvent) -> Doc | None:
    """Pure: the registry facts of one patient after ``record`` (a new document)."""
    if record.stream_type != "patient":
        return doc
    ev = record.to_domain_event()
    if isinstance(ev, Patient.Registered):
        return _new_doc(record, ev)
    if doc is None:
        return None
    doc = copy_doc(doc)
    doc["version"] = record.stream_version
    match ev:
        case Patient.Referred():
            _start_episode(doc, ev.episode_number, "referred", ev.occurred_at)
        case Patient.Enrolled():
            if ev.new_episode or not doc["episodes"]:
                _start_episode(doc, ev.episode_number, "enrolled", ev.occurred_at)
            _set_status(doc, "enrolled")["enrolled_at"] = ev.occurred_at.isoformat()
        case Patient.TreatmentStarted():
            episode = _set_status(doc, "active_treatment")
            episode["treatment_started_at"] = ev.occurred_at.isoformat()
        case Patient.TreatmentResumed():
            _set_status(doc, "active_treatment")
        case Patient.RelapsePreventionStarted():
            _set_status(doc, "relapse_prevention")
        case Patient.Discharged() | Patient.Deactivated():
            kind = "discharged" if isinstance(ev, Patient.Discharged) else "deactivated"
            episode = _set_status(doc, kind)
            episode["ended_at"] = ev.occurred_at.isoformat()
            episode["end_reason"] = ev.reason
        case Patient.CareTeamAssigned():
            doc["care_team"] = {
                "care_manager_id": _str(ev.care_manager_id),
                "pcp_id": _str(ev.pcp_id),
                "psychiatric_consultant_id": _str(ev.psychiatric_consultant_id),
            }
        case Patient.CareTeamMemberUnassigned():
            role_key = {"care_manager": "care_manager_id", "pcp": "pcp_id"}.get(
                ev.role, "psychiatric_consultant_id"
            )
            doc["care_team"][role_key] = None
        case Patient.ScreeningRecorded() if ev.instrument in KEPT_INSTRUMENTS:
            answers = list(ev.answers)
            item9 = None
            if ev.instrument in PHQ9_SCALES and len(answers) > PHQ9_ITEM9_INDEX:
                item9 = answers[PHQ9_ITEM9_INDEX]
            doc["screenings"].append(
                {
                    "id": str(ev.screening_id),
                    "instrument": ev.instrument,
                    "taken_at": ev.occurred_at.isoformat(),
                    "recorded_at": record.recorded_at.isoformat(),
                    "complete": ev.complete,
                    "total": ev.total,
                    "severity": ev.severity,
                    "item9": item9,
                    "positive": ev.positive,
                    "safety_alert": ev.safety_alert,
                    "episode": ev.episode_number,
                }
            )
            # Effective time first; the recording order breaks ties (a stable sort).
            doc["screenings"].sort(
                key=lambda s: (parse_instant(s["taken_at"]), parse_instant(s["recorded_at"]))
            )
        case Patient.SdqRecorded():
            # The most recently taken SDQ (any form); a tie keeps the later recorded.
            taken = ev.occurred_at.isoformat()
            latest = doc.get("latest_sdq")
            if latest is None or parse_instant(taken) >= parse_instant(latest["taken_at"]):
                doc["latest_sdq"] = {
                    "taken_at": taken,
                    "informant": ev.informant,
                    "total": ev.scores.get(SdqScale.TOTAL_DIFFICULTIES.value),
                    "band": ev.bands.get(SdqScale.TOTAL_DIFFICULTIES.value),
                }
        case Patient.ContactLogged() if ev.episode_number == _current_number(doc):
            if ev.activity == "contact":
                doc["contact_count"] += 1
                doc["last_contact_at"] = _later(doc["last_contact_at"], ev.occurred_at)
            elif ev.activity == "outreach":
                doc["outreach_count"] += 1
        case Patient.PsychiatricCaseReviewRecorded() if ev.episode_number == _current_number(doc):
            doc["case_review_count"] += 1
            doc["last_case_review_at"] = _later(doc["last_case_review_at"], ev.occurred_at)
        case Patient.RelapsePreventionPlanWritten() if ev.episode_number == _current_number(doc):
            doc["relapse_prevention_plan_at"] = _later(
                doc["relapse_prevention_plan_at"], ev.occurred_at
            )
        case Patient.FlagRaised():
            doc["recorded_flags"].append(
                {
                    "id": str(ev.flag_id),
                    "kind": ev.kind,
                    "rule_id": ev.rule_id,
                    "rule_version": ev.rule_version,
                    "inputs": ev.inputs or {},  # None once forgotten: free text
                    "raised_at": ev.occurred_at.isoformat(),
                }
            )
        case Patient.FlagCleared():
            doc["recorded_flags"] = [f for f in doc["recorded_flags"] if f["id"] != str(ev.flag_id)]
        case Patient.Forgotten():
            # Crypto-shredding: the read model drops the identity with the key.
            for key in ("given_name", "family_name", "mrn", "birth_date"):
                doc[key] = None
            for flag in doc["recorded_flags"]:  # a team member's note is among the inputs
                flag["inputs"] = {}
        case _:
            pass
    return doc


# --- reading the facts -----------------------------------------------------------------


def current_episode(doc: Doc) -> dict[str, Any] | None:
    """The latest episode (open or ended), or None before any."""
    episodes: list[dict[str, Any]] = doc["episodes"]
    return episodes[-1] if episodes else None


def _episode_screenings(
    doc: Doc, instruments: Iterable[str], episode: int | None
) -> list[dict[str, Any]]:
    """Complete screenings of ``instruments`` that belong to ``episode``, in effective-time
    order: recorded in it and taken no earlier than the intake look-back before it began
    (domain.patient.counts_for_episode; docs/clinical-time.md). New events older than
    that carry no episode; the date test also keeps such scores recorded before the rule
    existed out of the episode's baseline, while the history keeps them."""
    if episode is None:
        return []
    wanted = frozenset(instruments)
    started = next(
        (parse_instant(e["started_at"]) for e in doc["episodes"] if e["number"] == episode), None
    )
    return [
        s
        for s in doc["screenings"]
        if s["instrument"] in wanted
        and s["complete"]
        and s["total"] is not None
        and s["episode"] == episode
        and (started is None or counts_for_episode(parse_instant(s["taken_at"]), started))
    ]


def episode_scores(
    doc: Doc, instruments: Iterable[str], episode: int | None, zone: tzinfo = CLINIC_ZONE
) -> list[DatedScore]:
    """Complete totals of ``instruments`` in ``episode``, by effective time (recorded order
    breaks ties). The times are read in the clinic zone, as the rules count days."""
    return [
        DatedScore(in_zone(parse_instant(s["taken_at"]), zone), s["total"])
        for s in _episode_screenings(doc, instruments, episode)
    ]


def _latest(scores: Sequence[DatedScore]) -> DatedScore | None:
    return sorted(scores, key=DatedScore.order_key)[-1] if scores else None


def _latest_screening(doc: Doc, instruments: frozenset[str], field: str) -> dict[str, Any] | None:
    """The latest screening of ``instruments`` (by effective time) where ``field`` is set."""
    found = [
        s for s in doc["screenings"] if s["instrument"] in instruments and s[field] is not None
    ]
    return found[-1] if found else None


def registry_snapshot(doc: Doc, zone: tzinfo = CLINIC_ZONE) -> RegistrySnapshot | None:
    """The facts ``evaluate_flags`` reads, their days in ``zone``; None before the first
    episode."""
    episode = current_episode(doc)
    if episode is None:
        return None
    number = episode["number"]
    phq9 = episode_scores(doc, PHQ9_SCALES, number, zone)
    item9 = _latest_screening(doc, PHQ9_SCALES, "item9")
    asq = _latest_screening(doc, frozenset({"asq"}), "positive")
    return RegistrySnapshot(
        status=EpisodeStatus(episode["status"]),
        enrolled_on=_day(episode["enrolled_at"], zone),
        latest_item9=item9["item9"] if item9 is not None else None,
        latest_item9_on=_day(item9["taken_at"], zone) if item9 is not None else None,
        asq_positive=bool(asq is not None and asq["positive"]),
        baseline_phq9=outcome_rules.baseline(phq9),
        latest_phq9=_latest(phq9),
        last_contact_on=_day(doc["last_contact_at"], zone),
        last_case_review_on=_day(doc["last_case_review_at"], zone),
        review_requested_by_team=any(f["kind"] in TEAM_REVIEW_KINDS for f in doc["recorded_flags"]),
    )


def _day(iso: str | None, zone: tzinfo = CLINIC_ZONE) -> date | None:
    return None if iso is None else day_of(parse_instant(iso), zone)


# --- flags ---------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """A rule input as JSON: days as ISO text, exact fractions as numbers, tuples as lists."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


@dataclass(frozen=True)
class RegistryFlag:
    """A flag on a registry row, explainable: the rule, its version and the inputs.

    ``source`` is ``rule`` for a flag evaluated now by domain.rules.flags, ``recorded``
    for a flag raised on the patient stream that nobody has cleared yet.
    """

    kind: str
    rule_id: str
    rule_version: str
    inputs: Mapping[str, Any]
    summary: str
    source: str
    flag_id: UUID | None = None
    raised_at: datetime | None = None


def _recorded_summary(kind: str) -> str:
    try:
        return flag_rules.Flag(FlagKind(kind), "", "", {}).summary
    except ValueError:
        return "Flag raised by a team member"


def evaluation_day(snapshot: RegistrySnapshot | None, today: date) -> date:
    """The day flags are evaluated for ``today``: never before the rules or the enrollment."""
    floor = FLAG_RULES_START
    if snapshot is not None and snapshot.enrolled_on is not None:
        floor = max(floor, snapshot.enrolled_on)
    return max(today, floor)


def flags_on(doc: Doc, today: date, zone: tzinfo = CLINIC_ZONE) -> list[RegistryFlag]:
    """Every flag of the row on ``today`` (a day in ``zone``): the rules' flags, then
    recorded ones not also raised by a rule."""
    out: list[RegistryFlag] = []
    snapshot = registry_snapshot(doc, zone)
    if snapshot is not None:
        for flag in flag_rules.evaluate_flags(snapshot, evaluation_day(snapshot, today)):
            out.append(
                RegistryFlag(
                    kind=flag.kind.value,
                    rule_id=flag.rule_id,
                    rule_version=flag.rule_version,
                    inputs={k: _json(v) for k, v in flag.inputs.items()},
                    summary=flag.summary,
                    source="rule",
                )
            )
    raised = {f.kind for f in out}
    for recorded in doc["recorded_flags"]:
        if recorded["kind"] in raised:
            continue
        out.append(
            RegistryFlag(
                kind=recorded["kind"],
                rule_id=recorded["rule_id"],
                rule_version=recorded["rule_version"],
                inputs=recorded["inputs"],
                summary=_recorded_summary(recorded["kind"]),
                source="recorded",
                flag_id=UUID(recorded["id"]),
                raised_at=parse_instant(recorded["raised_at"]),
            )
        )
    return out


def _kinds_on(snapshot: RegistrySnapshot, day: date) -> frozenset[str]:
    return frozenset(f.kind.value for f in flag_rules.evaluate_flags(snapshot, day))


def _last_fact_day(snapshot: RegistrySnapshot) -> date:
    days = [
        d
        for d in (
            snapshot.enrolled_on,
            snapshot.latest_item9_on,
            snapshot.baseline_phq9.day if snapshot.baseline_phq9 else None,
            snapshot.latest_phq9.day if snapshot.latest_phq9 else None,
            snapshot.last_contact_on,
            snapshot.last_case_review_on,
        )
        if d is not None
    ]
    return max([FLAG_RULES_START, *days])


# The rules' onsets are a function of the facts a snapshot holds (``evaluate_flags`` is
# pure), and most events change nothing a flag reads (a care-team change, a task, a note): the
# bisection, some 40-60 evaluations of the rules, is remembered per snapshot, for a
# bounded number of them. The key adds each score's wall-clock time: a snapshot compares
# its scores by instant, so the snapshots of one row in two clinic zones can be equal
# while the rules read the scores on different days. A tuple is remembered, so no caller
# can change what the next one gets. The bisection reads the rule book's own thresholds
# only (no practice's settings, no clock); anything else it came to read would have to
# join the key.
def _rule_onsets(snapshot: RegistrySnapshot) -> tuple[tuple[str, date | None], ...]:
    return _remembered_onsets(
        snapshot, (_wall(snapshot.baseline_phq9), _wall(snapshot.latest_phq9))
    )


def _wall(score: DatedScore | None) -> tuple[date, int] | None:
    """A score as the rules read it: its time on the clock of its own zone, and total."""
    if score is None:
        return None
    effective = score.effective
    wall = effective.replace(tzinfo=None) if isinstance(effective, datetime) else effective
    return wall, score.total


@functools.lru_cache(maxsize=8192)
def _remembered_onsets(
    snapshot: RegistrySnapshot, _scores: tuple[tuple[date, int] | None, ...]
) -> tuple[tuple[str, date | None], ...]:
    onsets: dict[str, date | None] = {}
    first = evaluation_day(snapshot, FLAG_RULES_START)
    last = max(first, _last_fact_day(snapshot)) + ONSET_HORIZON
    at_first = _kinds_on(snapshot, first)
    at_last = _kinds_on(snapshot, last)
    for kind in FlagKind:
        if kind.value in at_first:
            onsets[kind.value] = ALWAYS
        elif kind.value in at_last:
            low, high = first, last  # not raised on ``low``, raised on ``high``
            while (high - low).days > 1:
                middle = low + timedelta(days=(high - low).days // 2)
                if kind.value in _kinds_on(snapshot, middle):
                    high = middle
                else:
                    low = middle
            onsets[kind.value] = high
    return tuple(onsets.items())


def flag_onsets(doc: Doc, snapshot: RegistrySnapshot | None = None) -> dict[str, date | None]:
    """Per flag kind, the first day it is raised given the stored facts (``ALWAYS`` when
    raised from the first day evaluated; None when never, as long as nothing changes).

    Relies on each flag switching on at most once as days pass with fixed facts; the
    first raised day is found by bisection over ``evaluate_flags``.
    """
    onsets: dict[str, date | None] = {k.value: None for k in FlagKind}
    snapshot = snapshot if snapshot is not None else registry_snapshot(doc)
    if snapshot is not None:
        onsets.update(_rule_onsets(snapshot))
    for recorded in doc["recorded_flags"]:
        onsets[recorded["kind"]] = ALWAYS
        # A safety flag nobody has cleared keeps the patient on the review queue, even
        # when the rule no longer raises it (docs/clinical-rules.md: review for Safety risk).
        if recorded["kind"] == FlagKind.SAFETY_RISK.value:
            onsets[FlagKind.NEEDS_PSYCHIATRIC_REVIEW.value] = ALWAYS
    return onsets


def _review_new_enrollment(snapshot: RegistrySnapshot | None) -> bool:
    """Whether the review flag's reasons include a new enrollment (fixed between events)."""
    if snapshot is None:
        return False
    for flag in flag_rules.evaluate_flags(snapshot, evaluation_day(snapshot, FLAG_RULES_START)):
        if flag.kind is FlagKind.NEEDS_PSYCHIATRIC_REVIEW:
            reasons = flag.inputs["reasons"]
            return isinstance(reasons, tuple) and "new_enrollment" in reasons
    return False


# --- the row a query returns -----------------------------------------------------------


class RelapsePlanStatus(StrEnum):
    """Where the relapse prevention plan stands in the current episode."""

    # Written in this episode.
    WRITTEN = "written"
    # Not written, and the treatment rule says relapse prevention (PHQ-9 below 5).
    DUE = "due"
    # Not written and not yet indicated.
    NOT_DUE = "not_due"


@dataclass(frozen=True)
class ScorePoint:
    """One complete score with the time it was taken."""

    instrument: str
    total: int
    severity: str | None
    taken_at: datetime


@dataclass(frozen=True)
class SdqPoint:
    """The latest SDQ: its form, total difficulties (None when an item was missing) and
    that total's band in the four-band and the original three-band schemes."""

    informant: str
    total_difficulties: int | None
    band: str | None
    category: str | None
    taken_at: datetime


def _sdq_point(doc: Doc) -> SdqPoint | None:
    latest = doc.get("latest_sdq")  # absent in a document stored before SDQs were kept
    if latest is None:
        return None
    total = latest["total"]
    informant = SdqInformant(latest["informant"])
    return SdqPoint(
        informant=informant.value,
        total_difficulties=total,
        band=latest["band"],
        category=None
        if total is None
        else sdq_category(informant, SdqScale.TOTAL_DIFFICULTIES, total).value,
        taken_at=parse_instant(latest["taken_at"]),
    )


@dataclass(frozen=True)
class CaseloadRow:
    """One registry row as of ``as_of`` (every time-dependent value is for that day)."""

    patient_id: UUID
    organisation_id: UUID
    given_name: str | None
    family_name: str | None
    mrn: str | None
    status: str | None
    episode_number: int
    enrolled_at: datetime | None
    weeks_in_treatment: int | None
    baseline_phq9: ScorePoint | None
    latest_phq9: ScorePoint | None
    phq9_percent_change: Fraction | None
    baseline_gad7: ScorePoint | None
    latest_gad7: ScorePoint | None
    gad7_percent_change: Fraction | None
    latest_sdq: SdqPoint | None
    contact_count: int
    outreach_count: int
    last_contact_at: datetime | None
    days_since_last_contact: int | None
    last_case_review_at: datetime | None
    case_review_count: int
    care_manager_id: UUID | None
    pcp_id: UUID | None
    psychiatric_consultant_id: UUID | None
    relapse_prevention_plan: RelapsePlanStatus
    relapse_prevention_plan_at: datetime | None
    minutes_this_month: int
    flags: tuple[RegistryFlag, ...]
    as_of: date
    version: int
    review_reasons: tuple[str, ...] = field(default=())


def _points(doc: Doc, instruments: frozenset[str], episode: int | None) -> list[ScorePoint]:
    """Complete scores of the episode as ScorePoints, in effective-time order."""
    return [
        ScorePoint(s["instrument"], s["total"], s["severity"], parse_instant(s["taken_at"]))
        for s in _episode_screenings(doc, instruments, episode)
    ]


def _baseline_and_latest(
    points: list[ScorePoint], zone: tzinfo = CLINIC_ZONE
) -> tuple[ScorePoint | None, ScorePoint | None, Fraction | None]:
    """Baseline (first by effective time, via the outcome rule), latest, percent change.

    The percent change needs a score after the baseline; with one score it is None.
    """
    if not points:
        return None, None, None
    scores = [DatedScore(in_zone(p.taken_at, zone), p.total) for p in points]
    first = outcome_rules.baseline(scores)
    base = points[scores.index(first)] if first is not None else None
    latest = points[-1]
    change = None
    if base is not None and len(points) > 1:
        change = flag_rules.percent_change(base.total, latest.total)
    return base, latest, change


def _relapse_plan(
    doc: Doc, baseline: ScorePoint | None, latest: ScorePoint | None, today: date
) -> RelapsePlanStatus:
    if doc["relapse_prevention_plan_at"] is not None:
        return RelapsePlanStatus.WRITTEN
    if baseline is None or latest is None or latest is baseline:
        return RelapsePlanStatus.NOT_DUE
    decision = decide_treatment(baseline.total, latest.total, max(today, FLAG_RULES_START))
    if decision.action is TreatmentAction.RELAPSE_PREVENTION:
        return RelapsePlanStatus.DUE
    return RelapsePlanStatus.NOT_DUE


def _weeks(episode: dict[str, Any] | None, today: date, zone: tzinfo) -> int | None:
    if episode is None or episode["enrolled_at"] is None:
        return None
    enrolled = day_of(parse_instant(episode["enrolled_at"]), zone)
    ended = _day(episode["ended_at"], zone)
    end = today if ended is None else min(today, ended)
    return flag_rules.weeks_in_treatment(enrolled, end) if end >= enrolled else 0


def caseload_row(
    doc: Doc, today: date, minutes_this_month: int = 0, zone: tzinfo = CLINIC_ZONE
) -> CaseloadRow:
    """Pure: the registry row of one patient's facts on ``today``, a calendar day in the
    clinic's ``zone``; every stored instant (enrollment, contacts, reviews, scores) is read
    as a day in the same zone (docs/clinical-time.md, section 9)."""
    episode = current_episode(doc)
    number = episode["number"] if episode is not None else None
    phq = _points(doc, PHQ9_SCALES, number)
    gad = _points(doc, frozenset({"gad7"}), number)
    phq_base, phq_latest, phq_change = _baseline_and_latest(phq, zone)
    gad_base, gad_latest, gad_change = _baseline_and_latest(gad, zone)
    last_contact = parse_instant(doc["last_contact_at"]) if doc["last_contact_at"] else None
    team = doc["care_team"]
    flags = tuple(flags_on(doc, today, zone))
    reasons = review_reasons(flags)
    return CaseloadRow(
        patient_id=UUID(doc["id"]),
        organisation_id=UUID(doc["organisation_id"]),
        given_name=doc["given_name"],
        family_name=doc["family_name"],
        mrn=doc["mrn"],
        status=episode["status"] if episode is not None else None,
        episode_number=number or 0,
        enrolled_at=parse_instant(episode["enrolled_at"])
        if episode is not None and episode["enrolled_at"]
        else None,
        weeks_in_treatment=_weeks(episode, today, zone),
        baseline_phq9=phq_base,
        latest_phq9=phq_latest,
        phq9_percent_change=phq_change,
        baseline_gad7=gad_base,
        latest_gad7=gad_latest,
        gad7_percent_change=gad_change,
        latest_sdq=_sdq_point(doc),
        contact_count=doc["contact_count"],
        outreach_count=doc["outreach_count"],
        last_contact_at=last_contact,
        days_since_last_contact=days_between(last_contact, today, zone) if last_contact else None,
        last_case_review_at=parse_instant(doc["last_case_review_at"])
        if doc["last_case_review_at"]
        else None,
        case_review_count=doc["case_review_count"],
        care_manager_id=_uuid(team["care_manager_id"]),
        pcp_id=_uuid(team["pcp_id"]),
        psychiatric_consultant_id=_uuid(team["psychiatric_consultant_id"]),
        relapse_prevention_plan=_relapse_plan(doc, phq_base, phq_latest, today),
        relapse_prevention_plan_at=parse_instant(doc["relapse_prevention_plan_at"])
        if doc["relapse_prevention_plan_at"]
        else None,
        minutes_this_month=minutes_this_month,
        flags=flags,
        as_of=today,
        version=doc["version"],
        review_reasons=reasons,
    )


def review_reasons(flags: Sequence[RegistryFlag]) -> tuple[str, ...]:
    """Why the patient needs the psychiatric consultant's review (empty when not)."""
    reasons: list[str] = []
    for flag in flags:
        if flag.kind == FlagKind.NEEDS_PSYCHIATRIC_REVIEW.value and flag.source == "rule":
            reasons.extend(flag.inputs["reasons"])
        elif flag.kind == FlagKind.NEEDS_PSYCHIATRIC_REVIEW.value:
            reasons.append("team_request")
    safety = any(f.kind == FlagKind.SAFETY_RISK.value for f in flags)
    if safety and "safety_risk" not in reasons:
        reasons.append("safety_risk")
    return tuple(dict.fromkeys(reasons))


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


# The stored onset column of each rule flag kind (rm_registry).
ONSET_COLUMNS: Final[Mapping[str, str]] = {
    FlagKind.SAFETY_RISK.value: "safety_risk_on",
    FlagKind.NOT_IMPROVING.value: "not_improving_on",
    FlagKind.OVERDUE_CONTACT.value: "overdue_contact_on",
    FlagKind.MEASUREMENT_DUE.value: "measurement_due_on",
    FlagKind.NEEDS_PSYCHIATRIC_REVIEW.value: "needs_review_on",
}


def onsets_in_zone(doc: Doc, zone: tzinfo) -> dict[str, date | None]:
    """The onset columns as they would be with the facts' days taken in ``zone``.

    The stored columns are derived in ``CLINIC_ZONE`` (UTC) when the row evolves; a day
    read in another zone is the UTC day or the one next to it, so a stored onset can be
    a day off only when it falls within a day of "today". Queries re-derive just those
    rows with this (docs/clinical-time.md, section 9)."""
    onsets = flag_onsets(doc, registry_snapshot(doc, zone))
    return {column: onsets[kind] for kind, column in ONSET_COLUMNS.items()}


# --- the writer --------------------------------------------------------------------------


def derive_columns(doc: Doc, zone: tzinfo = CLINIC_ZONE) -> dict[str, Any]:
    """The indexed columns of a registry row, derived from its facts, with every day
    (the flag onsets) taken in the clinic zone ``zone``."""
    episode = current_episode(doc)
    team = doc["care_team"]
    snapshot = registry_snapshot(doc, zone)
    onsets = flag_onsets(doc, snapshot)
    latest = snapshot.latest_phq9 if snapshot is not None else None
    present = [d for d in onsets.values() if d is not None]
    return {
        "organisation_id": UUID(doc["organisation_id"]),
        "care_manager_id": _uuid(team["care_manager_id"]),
        "pcp_id": _uuid(team["pcp_id"]),
        "psychiatric_consultant_id": _uuid(team["psychiatric_consultant_id"]),
        "status": episode["status"] if episode else None,
        "on_caseload": episode is not None and episode["status"] in ON_CASELOAD,
        "enrolled_at": parse_instant(episode["enrolled_at"])
        if episode and episode["enrolled_at"]
        else None,
        "last_contact_at": parse_instant(doc["last_contact_at"])
        if doc["last_contact_at"]
        else None,
        "latest_phq9_total": latest.total if latest else None,
        "family_name": doc["family_name"],
        "safety_risk_on": onsets[FlagKind.SAFETY_RISK.value],
        "not_improving_on": onsets[FlagKind.NOT_IMPROVING.value],
        "overdue_contact_on": onsets[FlagKind.OVERDUE_CONTACT.value],
        "measurement_due_on": onsets[FlagKind.MEASUREMENT_DUE.value],
        "needs_review_on": onsets[FlagKind.NEEDS_PSYCHIATRIC_REVIEW.value],
        "flagged_on": min(present) if present else None,
        "review_new_enrollment": _review_new_enrollment(snapshot),
    }


COLUMNS: Final[Mapping[str, str]] = {
    "organisation_id": "uuid",
    "care_manager_id": "uuid",
    "pcp_id": "uuid",
    "psychiatric_consultant_id": "uuid",
    "status": "text",
    "on_caseload": "boolean",
    "enrolled_at": "timestamptz",
    "last_contact_at": "timestamptz",
    "latest_phq9_total": "integer",
    "family_name": "text",
    "safety_risk_on": "date",
    "not_improving_on": "date",
    "overdue_contact_on": "date",
    "measurement_due_on": "date",
    "needs_review_on": "date",
    "flagged_on": "date",
    "review_new_enrollment": "boolean",
}


def _key(record: RecordedEvent) -> UUID | None:
    return record.patient_id if record.stream_type == "patient" else None


rows = KeyedDocumentProjection(
    name=NAME, table=TABLE, key_of=_key, evolve=evolve, columns=COLUMNS, derive=derive_columns
)

# The clinic zone each organisation's stream last recorded (domain/organisation.py).
ZONES_TABLE: Final = "rm_registry_zones"
ZONE_EVENTS: Final = frozenset(
    {Organisation.CalendarOpened.EVENT_NAME, Organisation.TimeZoneSet.EVENT_NAME}
)


# Every organisation's zone, read FOR SHARE: the table's ROW SHARE lock holds back a zone
# change in another projector transaction (``_lock_zones``) until this one commits.
_ZONES_FOR_SHARE: Final = f"SELECT organisation_id, time_zone FROM {ZONES_TABLE} FOR SHARE"


def _zone_change(e: RecordedEvent) -> bool:
    return e.stream_type == Organisation.STREAM_TYPE and e.event_type in ZONE_EVENTS


async def _lock_zones(conn: Conn) -> None:
    """A zone change waits for every registry write in progress (each holds the zones
    table's ROW SHARE lock from its ``FOR SHARE`` read) and holds back new ones until it
    commits: its re-derivation then reads every patient's latest document and no other
    projector transaction (another partition) writes a row in the old zone, or over the
    re-derived one, meanwhile. That covers an organisation's first zone too (a row that
    did not exist cannot be locked). Taking it again in the same transaction is free."""
    await conn.execute(f"LOCK TABLE {ZONES_TABLE} IN EXCLUSIVE MODE")


@dataclass(frozen=True)
class ZonedRegistryProjection:
    """The registry rows, with their stored days in each patient's clinic zone.

    The onset columns are days, so they depend on the zone of the patient's organisation
    (docs/clinical-time.md, section 9). The zone is in the log (the organisation's
    stream); this projection keeps the last one per organisation (``rm_registry_zones``)
    and derives every row's columns in it. A new zone re-derives the columns of every row
    of that organisation in the same transaction, so a row is always derived in its
    organisation's latest zone, whatever the batches: a rebuild from the log gives the
    same rows. An organisation with no zone in the log counts in UTC."""

    rows: KeyedDocumentProjection

    @property
    def name(self) -> str:
        return self.rows.name

    async def lock_first(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        """A page holding a zone change takes the zones table in EXCLUSIVE mode before
        any of its groups reads it ``FOR SHARE`` (projections/base.py, ``LocksFirst``)."""
        if any(_zone_change(e) for e in events):
            await _lock_zones(conn)

    def batches(self, events: Sequence[RecordedEvent]) -> bool:
        """A page without a zone change goes through ``reads`` and ``writes`` with the
        other read models' (projections/base.py, ``BatchedMostly``); one with a zone
        change through ``apply``, which locks the zones table and derives rows again."""
        return not any(_zone_change(e) for e in events)

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        """The rows ``events`` touch, and every organisation's zone as a row with a NULL
        key, read ``FOR SHARE`` as ``apply`` reads them (the table's ROW SHARE lock holds
        back a zone change in another projector transaction until this one commits)."""
        rows = self.rows.reads(events)
        if rows is None:
            return None
        return Statement(
            lambda n: (
                f"""SELECT key, doc FROM ({rows.render(n)}) d
                UNION ALL
                SELECT NULL::uuid, jsonb_build_object(
                    'organisation_id', organisation_id, 'time_zone', time_zone)
                FROM ({_ZONES_FOR_SHARE}) z"""
            ),
            rows.args,
        )

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        zones = {
            UUID(r["doc"]["organisation_id"]): r["doc"]["time_zone"]
            for r in rows
            if r["key"] is None
        }
        documents = [r for r in rows if r["key"] is not None]
        return self._zoned(zones).writes(events, documents)

    def _zoned(self, zones: Mapping[UUID, str]) -> KeyedDocumentProjection:
        """The rows' projection deriving each row in its organisation's zone."""
        named = {organisation: zone_named(zone) for organisation, zone in zones.items()}

        def derive(doc: Doc) -> dict[str, Any]:
            return derive_columns(doc, named.get(UUID(doc["organisation_id"]), CLINIC_ZONE))

        return replace(self.rows, derive=derive)

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        # The last zone each organisation recorded in this batch.
        changed: dict[UUID, str] = {
            e.stream_id: e.to_domain_event().time_zone for e in events if _zone_change(e)
        }
        if changed:
            await _lock_zones(conn)
            await conn.execute(
                f"""INSERT INTO {ZONES_TABLE} (organisation_id, time_zone)
                    SELECT * FROM unnest($1::uuid[], $2::text[])
                    ON CONFLICT (organisation_id) DO UPDATE SET time_zone = EXCLUDED.time_zone""",
                list(changed),
                list(changed.values()),
            )
        if not changed and not any(_key(e) is not None for e in events):
            return
        # FOR SHARE: a zone change by another projector transaction (another partition's
        # worker) is waited for and read, never overtaken by rows derived in the old zone;
        # its table lock above waits for this transaction in turn.
        zoned = self._zoned(
            {r["organisation_id"]: r["time_zone"] for r in await conn.fetch(_ZONES_FOR_SHARE)}
        )
        await zoned.apply(conn, events)
        if changed:
            again = await conn.fetch(
                f"SELECT key, doc FROM {TABLE} WHERE organisation_id = ANY($1::uuid[])",
                list(changed),
            )
            if again:
                await zoned.write(conn, [(r["key"], r["doc"]) for r in again])

    async def reset(self, conn: Conn) -> None:
        await self.rows.reset(conn)
        await conn.execute(f"TRUNCATE {ZONES_TABLE}")


projection = ZonedRegistryProjection(rows)


# --- queries -----------------------------------------------------------------------------


class CaseloadSort(StrEnum):
    """Orderings of the caseload (each ends with the patient id, so it is total)."""

    # Longest in treatment first (earliest enrollment).
    ENROLLED_AT = "enrolled_at"
    # Longest without a contact first; never contacted counts from the enrollment.
    LAST_CONTACT = "last_contact"
    # Highest latest PHQ-9 first; no score last.
    LATEST_PHQ9 = "latest_phq9"
    # Family name A to Z.
    FAMILY_NAME = "family_name"


# $1 is always "today" in the registry queries.
FLAGGED_TODAY: Final = SortKey(
    "(flagged_on IS NOT NULL AND flagged_on <= $1)", True, "boolean", "false"
)
_SORTS: Final[Mapping[CaseloadSort, SortKey]] = {
    CaseloadSort.ENROLLED_AT: SortKey("enrolled_at", False, "timestamptz", "'infinity'"),
    CaseloadSort.LAST_CONTACT: SortKey(
        "COALESCE(last_contact_at, enrolled_at)", False, "timestamptz", "'-infinity'"
    ),
    CaseloadSort.LATEST_PHQ9: SortKey("latest_phq9_total", True, "integer", "-1"),
    CaseloadSort.FAMILY_NAME: SortKey("lower(family_name)", False, "text", "''"),
}
_KEY: Final = SortKey("key", False, "uuid", "'00000000-0000-0000-0000-000000000000'")


@dataclass(frozen=True)
class Page:
    """One page of rows with the cursor of each and whether more follow.

    Each row's document is decoded, or its JSON text when the page was fetched with
    ``as_text``, or None when it was fetched ``without_docs`` (a caller that memoises rows
    by their version reads only the documents it does not have: ``fetch_documents``)."""

    rows: list[tuple[str, Any]]
    has_next_page: bool
    total_count: int
    # The patient id of each row, in the same order.
    keys: tuple[UUID, ...] = ()
    # With ``team_of``: the rows' patients whose CoCM care team that user is on (from the
    # page's own statement; the read audit's ``on_team``), else None.
    on_team: frozenset[UUID] | None = None
    # The version of each row as read (its PostgreSQL ``xmin``: the transaction that
    # wrote it), in the same order; see ``fetch_documents``.
    versions: tuple[int, ...] = ()


def check_page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise PageSizeError(MAX_PAGE_SIZE)
    return first


class PageSizeError(ValueError):
    """``first`` is outside 1..MAX_PAGE_SIZE."""

    code = "PAGE_SIZE"

    def __init__(self, maximum: int) -> None:
        super().__init__(f"first must be between 1 and {maximum}")


async def fetch_page(
    conn: Conn,
    *,
    today: date,
    where: str,
    where_args: Sequence[Any],
    keys: Sequence[SortKey],
    ordering: str,
    first: int,
    after: str | None,
    scope: Scope = unrestricted,
    as_text: bool = False,
    without_docs: bool = False,
    team_of: UUID | None = None,
    cursors_by_version: bool = False,
) -> Page:
    """A keyset page of registry rows; ``where`` may use $1 (today) and $2.. for its args.
    With ``as_text`` the documents are returned as their JSON text, undecoded; with
    ``without_docs`` not at all (the rows' versions say which ones a caller has); with
    ``team_of`` the page says which of its patients have that user on their care team;
    with ``cursors_by_version`` (only for sort keys that read nothing but the row and $1)
    the cursors of the same row versions on the same day are made once."""
    check_page_size(first)
    keys = [*keys, _KEY]
    args: list[Any] = [today, *where_args]
    scope_sql, scope_args = scope("key", len(args) + 1)
    args.extend(scope_args)
    count_args = list(args)
    team = "NULL::boolean"
    if team_of is not None:
        args.append(team_of)
        team = (
            f"EXISTS (SELECT 1 FROM {ACCESS_TABLE} t WHERE t.patient_id = key AND "
            f"${len(args)}::uuid IN (t.care_manager_id, t.pcp_id, t.psychiatric_consultant_id))"
        )
    # "$1 IS NOT NULL" gives $1 its type even when no condition or key reads it.
    conditions = ["$1::date IS NOT NULL", f"({where})", scope_sql]
    filtered = " AND ".join(conditions)
    count = f"SELECT count(*) FROM {TABLE} WHERE {filtered}"
    if after is not None:
        args.extend(decode_cursor(ordering, after, len(keys)))
        conditions.append(after_clause(keys, len(args) - len(keys) + 1))
    selects = ", ".join(f"{k.expr} AS s{i}" for i, k in enumerate(keys))
    # The count of every matching row (without the cursor's condition) comes with the
    # page, as an uncorrelated subquery PostgreSQL runs once: one statement, not two.
    rows = await conn.fetch(
        f"""SELECT {_doc_column(as_text=as_text, without_docs=without_docs)} AS doc,
                   xmin AS version, {selects}, ({count}) AS total, {team} AS on_team
            FROM {TABLE}
            WHERE {" AND ".join(conditions)}
            ORDER BY {order_by(keys)}
            LIMIT {first + 1}""",
        *args,
    )
    if rows:
        total = rows[0]["total"]
    elif after is None:
        total = 0  # the first page is empty: nothing matches
    else:  # past the last page: the count on its own
        total = await conn.fetchval(count, *count_args)
    shown = rows[:first]
    last = f"s{len(keys) - 1}"  # the last sort key is the patient id (``_KEY``)
    ids = tuple(r[last] for r in shown)
    versions = tuple(r["version"] for r in shown)
    memo_key = None
    if cursors_by_version and not any(k.sql_type == "text" for k in keys):
        memo_key = (ordering, today, versions, ids)
    cursors = _PAGE_CURSORS.get(memo_key) if memo_key is not None else None
    if cursors is None:
        names = [f"s{i}" for i in range(len(keys))]
        cursors = [encode_cursor(ordering, [r[n] for n in names]) for r in shown]
        if memo_key is not None:
            if len(_PAGE_CURSORS) >= _PAGE_CURSORS_LIMIT:
                _PAGE_CURSORS.clear()
            _PAGE_CURSORS[memo_key] = cursors
    page = [(cursor, r["doc"]) for cursor, r in zip(cursors, shown, strict=True)]
    on_team = None if team_of is None else frozenset(r[last] for r in shown if r["on_team"])
    return Page(page, len(rows) > first, int(total), ids, on_team, versions)


# The cursors of whole pages by ordering, day, and each row's version and patient
# (``fetch_page(cursors_by_version=True)``): when every sort key is a stored column of the
# row or an expression of it and the day ($1), as the caseload's are, the same row
# versions on the same day have the same sort values, so the same cursors (150 cursors a
# request were about a tenth of a caseload request's CPU). Never for an ordering with a
# text key: a family name must not stay in memory (docs/erasure.md). Bounded: past it,
# it starts afresh.
_PAGE_CURSORS: dict[tuple[Any, ...], list[str]] = {}
_PAGE_CURSORS_LIMIT: Final = 64


def forget_page_cursors() -> None:
    """Drops every remembered page of cursors (the row versions they are keyed by may be
    issued again by a restored or failed-over server: services.row_memo)."""
    _PAGE_CURSORS.clear()


def _doc_column(*, as_text: bool, without_docs: bool) -> str:
    if without_docs:
        return "NULL::text"
    return "doc::text" if as_text else "doc"


async def fetch_documents(conn: Conn, keys: Sequence[UUID]) -> dict[UUID, tuple[int, str]]:
    """The current version (``xmin``) and JSON text of these registry rows, by patient.

    A row's ``xmin`` names the transaction that wrote that version of it: every insert and
    update (the projector's, a rebuild's, an older release's) makes a new one, and only
    committed versions are read, so within a process's lifetime the pair (patient,
    version) names one document. A version that differs from the page's means the row
    changed between the two statements; the caller then reads the page again whole."""
    rows = await conn.fetch(
        f"SELECT key, xmin AS version, doc::text AS doc FROM {TABLE} WHERE key = ANY($1::uuid[])",
        list(keys),
    )
    return {r["key"]: (r["version"], r["doc"]) for r in rows}


async def fetch_caseload(
    conn: Conn,
    *,
    today: date,
    care_manager_id: UUID | None,
    flagged_first: bool,
    sort: CaseloadSort,
    first: int,
    after: str | None,
    scope: Scope = unrestricted,
    as_text: bool = False,
    without_docs: bool = False,
    team_of: UUID | None = None,
) -> Page:
    """The caseload (enrolled, active treatment, relapse prevention), one keyset page."""
    keys = [FLAGGED_TODAY, _SORTS[sort]] if flagged_first else [_SORTS[sort]]
    ordering = f"caseload:{sort.value}:{'flagged' if flagged_first else 'plain'}"
    return await fetch_page(
        conn,
        today=today,
        where="on_caseload AND ($2::uuid IS NULL OR care_manager_id = $2::uuid)",
        where_args=[care_manager_id],
        keys=keys,
        ordering=ordering,
        first=first,
        after=after,
        scope=scope,
        as_text=as_text,
        without_docs=without_docs,
        team_of=team_of,
        cursors_by_version=True,  # its sort keys read only the row and the day
    )


async def fetch_docs(
    conn: Conn, patient_ids: Sequence[UUID], scope: Scope = unrestricted
) -> dict[UUID, Doc]:
    """Registry facts of the given patients (those the scope lets through)."""
    scope_sql, scope_args = scope("key", 2)
    rows = await conn.fetch(
        f"SELECT key, doc FROM {TABLE} WHERE key = ANY($1::uuid[]) AND {scope_sql}",
        list(patient_ids),
        *scope_args,
    )
    return {r["key"]: r["doc"] for r in rows}
