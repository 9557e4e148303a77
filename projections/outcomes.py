"""Outcome measures per episode and per care manager, for the team and quality reporting.

Answers "how are our patients doing against the targets?": per episode, the baseline,
latest score, response and remission now, at 12 weeks, NCQA DRR-E and CMS159, and GAD-7
response and remission at 12 weeks and 6 months (after the episode's first GAD-7); per care
manager, how many episodes each measure counts and how many met it. Computed on read
from the registry's stored scores (projections.caseload) with domain.rules.outcomes for
the asked day, by effective time: a score recorded late lands in its own place in time
and the next query counts it (an older score becomes the baseline; a score in the DRR-E
window changes the rate).

Choices: an episode is reported under the patient's *current* care manager (the
registry keeps the current team only). A measure's rates count the episodes whose
window has closed on the as-of day (``final``): while a window is open a later score
can still change the result, so those episodes are counted as ``in_progress`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from uuid import UUID

from domain.rules import outcomes as outcome_rules
from domain.rules.outcomes import EpisodeFacts, EpisodeOutcomes, WindowOutcome
from projections.caseload import PHQ9_SCALES, TABLE, episode_scores
from projections.clinic_calendar import CLINIC_ZONE
from projections.document import Doc
from projections.keyset import Scope, unrestricted
from projections.source import Conn

GAD7_SCALES = frozenset({"gad7"})
# The first day the outcome rules are in force; earlier as-of days use that version.
OUTCOME_RULES_START = outcome_rules.RULE_BOOK.versions[0].effective_from


@dataclass(frozen=True)
class EpisodeOutcome:
    """The outcome measures of one episode of one patient as of a day."""

    patient_id: UUID
    care_manager_id: UUID | None
    episode_number: int
    status: str
    age_at_index: int
    outcomes: EpisodeOutcomes
    # GAD-7 at 12 weeks and 6 months after the episode's first complete GAD-7; None
    # without a GAD-7 in the episode (docs/clinical-rules.md, "Outcomes over time").
    gad7_twelve_weeks: WindowOutcome | None = None
    gad7_six_months: WindowOutcome | None = None


@dataclass(frozen=True)
class MeasureSummary:
    """How many episodes a window measure counts and how many met each result."""

    measure: str
    episodes: int
    eligible: int
    in_progress: int
    final: int
    follow_up: int
    response: int
    remission: int


@dataclass(frozen=True)
class CareManagerOutcomes:
    """The measures over one care manager's episodes."""

    care_manager_id: UUID | None
    episodes: int
    twelve_weeks: MeasureSummary
    drr_e: MeasureSummary
    cms159: MeasureSummary
    # Over the episodes with a GAD-7.
    gad7_twelve_weeks: MeasureSummary
    gad7_six_months: MeasureSummary


def age_on(birth: date, day: date) -> int:
    years = day.year - birth.year
    return years - 1 if (day.month, day.day) < (birth.month, birth.day) else years


def episode_outcomes(doc: Doc, as_of: date, zone: tzinfo = CLINIC_ZONE) -> list[EpisodeOutcome]:
    """Pure: the outcomes of every episode of the patient that has a complete PHQ-9; the
    scores' days, and so every window (12 weeks, response and remission, CMS159), are
    calendar days in the clinic ``zone`` (docs/clinical-time.md, section 9)."""
    team = doc["care_team"]["care_manager_id"]
    day = max(as_of, OUTCOME_RULES_START)
    out = []
    for episode in doc["episodes"]:
        scores = tuple(episode_scores(doc, PHQ9_SCALES, episode["number"], zone))
        index = outcome_rules.baseline(scores, day)
        if index is None:
            continue
        age = age_on(date.fromisoformat(doc["birth_date"]), index.day)
        anxiety = episode_scores(doc, GAD7_SCALES, episode["number"])
        out.append(
            EpisodeOutcome(
                patient_id=UUID(doc["id"]),
                care_manager_id=None if team is None else UUID(team),
                episode_number=episode["number"],
                status=episode["status"],
                age_at_index=age,
                outcomes=outcome_rules.episode_outcomes(EpisodeFacts(age, scores), day),
                gad7_twelve_weeks=outcome_rules.gad7_twelve_week_outcome(anxiety, day)
                if anxiety
                else None,
                gad7_six_months=outcome_rules.gad7_six_month_outcome(anxiety, day)
                if anxiety
                else None,
            )
        )
    return out


def summarise(measure: str, windows: Sequence[WindowOutcome]) -> MeasureSummary:
    """Counts of one window measure over episodes (rates over closed windows only)."""
    eligible = [w for w in windows if w.eligible]
    final = [w for w in eligible if w.window_closed]
    return MeasureSummary(
        measure=measure,
        episodes=len(windows),
        eligible=len(eligible),
        in_progress=len(eligible) - len(final),
        final=len(final),
        follow_up=sum(w.follow_up for w in final),
        response=sum(w.response for w in final),
        remission=sum(w.remission for w in final),
    )


def by_care_manager(episodes: Iterable[EpisodeOutcome]) -> list[CareManagerOutcomes]:
    """The measures grouped by care manager (unassigned last)."""
    groups: dict[UUID | None, list[EpisodeOutcome]] = {}
    for episode in episodes:
        groups.setdefault(episode.care_manager_id, []).append(episode)
    out = []
    for manager in sorted(groups, key=lambda m: (m is None, str(m))):
        items = groups[manager]
        out.append(
            CareManagerOutcomes(
                care_manager_id=manager,
                episodes=len(items),
                twelve_weeks=summarise("twelve_weeks", [e.outcomes.twelve_weeks for e in items]),
                drr_e=summarise("drr_e", [e.outcomes.drr_e for e in items]),
                cms159=summarise("cms159", [e.outcomes.cms159 for e in items]),
                gad7_twelve_weeks=summarise(
                    "gad7_twelve_weeks",
                    [e.gad7_twelve_weeks for e in items if e.gad7_twelve_weeks is not None],
                ),
                gad7_six_months=summarise(
                    "gad7_six_months",
                    [e.gad7_six_months for e in items if e.gad7_six_months is not None],
                ),
            )
        )
    return out


async def fetch_outcomes(
    conn: Conn,
    as_of: date,
    *,
    care_manager_id: UUID | None = None,
    scope: Scope = unrestricted,
    zone: tzinfo = CLINIC_ZONE,
) -> list[EpisodeOutcome]:
    """Outcomes of every episode of the care manager's patients (or of everyone in scope)."""
    scope_sql, scope_args = scope("key", 2)
    rows = await conn.fetch(
        f"""SELECT doc FROM {TABLE}
            WHERE ($1::uuid IS NULL OR care_manager_id = $1::uuid) AND status IS NOT NULL
              AND {scope_sql}
            ORDER BY key""",
        care_manager_id,
        *scope_args,
    )
    out: list[EpisodeOutcome] = []
    for r in rows:
        out.extend(episode_outcomes(r["doc"], as_of, zone))
    return out
