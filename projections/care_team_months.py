"""Care-team measures per month kept at projection time (issue #19; docs/outcomes.md,
"Care-team measures per month").

``careTeamOverTime`` used to parse every patient document of the organisation and run
the month rules on each, per request. This read model keeps, per patient, the patient's
*contribution* to each month as plain counts, so a request sums rows in SQL.

A contribution depends on the as-of day as well as on the month (a window closes, a
deadline passes, a month is still running, a later score is not yet taken), but it is
constant between the days on which one of the patient's facts or deadlines falls. So
``month_facts(doc)`` evaluates the very rule the series used on read
(``PatientFacts.contribution`` in projections/care_team_series.py) on each of those days
and stores one row per stretch of as-of days with the same contribution:

- ``month_from``/``month_to``: the months the row is for (one month; or, for the months
  after the patient's last fact, every month from ``month_from`` on, ``month_to`` null:
  an open episode is on the caseload in each of them, under the last care manager);
- ``valid_from`` (inclusive) / ``valid_to`` (exclusive): the as-of days it holds for
  (null: unbounded). A month is only shown from its first day on, as before;
- the care manager the patient counts under, the counts (caseload, contacted, enrolled,
  the five window measures' seven counts, DMS-E and DSF-E), and the days to first
  psychiatric review of the month's episodes (for the median).

The days on which a contribution can change: every day of a fact (assignment,
enrollment, end, contact, review, screen), each score's window opening and the day
after it closes, the day after a DSF-E deadline and after a DMS-E period, the first day
of each month and the day after its last, and the first day of each outcome rule
version. Equality with the computation on read is tested day by day
(tests/unit/projections/test_projection_care_team_months.py) and over PostgreSQL
(tests/integration/test_care_team_months.py).

The facts document is the outcomes series document (the same pure ``evolve``), kept in
this read model's own table so each read model rebuilds on its own
(``careteam rebuild care_team_months``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final
from uuid import UUID

from domain.rules import care_team_months as months_rules
from domain.rules import outcomes as outcome_rules
from projections.base import Statement, apply_batched
from projections.care_team_series import (
    CareTeamMonth,
    CareTeamSeries,
    MonthAcc,
    MonthFrame,
    PatientFacts,
    StatusCount,
)
from projections.document import Doc
from projections.keyed import KeyedDocumentProjection
from projections.keyset import Scope, unrestricted
from projections.outcomes import MeasureSummary, summarise
from projections.outcomes_series import evolve as facts_evolve
from projections.outcomes_series import projection as outcomes_series
from projections.source import Conn, RecordedEvent

NAME = "care_team_months"
FACTS_TABLE = "rm_care_team_facts"
MONTHS_TABLE = "rm_care_team_months"

WINDOWS: Final = ("twelve_weeks", "six_months", "drr_e", "gad7_twelve_weeks", "gad7_six_months")
WINDOW_COUNTS: Final = (
    "episodes",
    "eligible",
    "in_progress",
    "final",
    "follow_up",
    "response",
    "remission",
)
COUNT_COLUMNS: Final = (
    "caseload",
    "contacted",
    "enrolled",
    *(f"{w}_{c}" for w in WINDOWS for c in WINDOW_COUNTS),
    "dms_e_eligible",
    "dms_e_met",
    "dms_e_open",
    "dsf_e_eligible",
    "dsf_e_met",
    "dsf_e_open",
)


@dataclass(frozen=True)
class MonthFact:
    """A patient's contribution to the months ``month_from``-``month_to`` (null: on and
    on), for the as-of days ``valid_from`` (null: any) to before ``valid_to`` (null: on)."""

    month_from: date
    month_to: date | None
    valid_from: date | None
    valid_to: date | None
    care_manager_id: UUID | None
    counts: tuple[int, ...]  # in COUNT_COLUMNS order
    review_days: tuple[int, ...]

    def holds(self, month: date, as_of: date) -> bool:
        """Whether the row counts for the month (its first day) on ``as_of``."""
        return (
            self.month_from <= month
            and (self.month_to is None or month <= self.month_to)
            and (self.valid_from is None or self.valid_from <= as_of)
            and (self.valid_to is None or as_of < self.valid_to)
        )


Value = tuple[UUID | None, tuple[int, ...], tuple[int, ...]]


def _value(found: tuple[UUID | None, MonthAcc] | None) -> Value | None:
    if found is None:
        return None
    manager, acc = found
    counts: list[int] = [acc.caseload, acc.contacted, acc.enrolled]
    for window in WINDOWS:
        summary = summarise(window, getattr(acc, window))
        counts.extend(getattr(summary, c) for c in WINDOW_COUNTS)
    for status in (acc.dms_e, acc.dsf_e):
        counts.extend((status.eligible, status.met, status.open))
    return manager, tuple(counts), tuple(sorted(acc.review_days))


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def _frame(first: date, as_of: date) -> MonthFrame:
    """The month starting ``first`` as the rules see it on ``as_of`` (on or after ``first``)."""
    end = months_rules.month_end(first.year, first.month)
    rules = outcome_rules.rules_for(max(as_of, outcome_rules.RULE_BOOK.versions[0].effective_from))
    return MonthFrame(
        first.year,
        first.month,
        first,
        min(end, as_of),
        outcome_rules.utilisation_period(first, rules)[2],
    )


def _change_days(facts: PatientFacts) -> tuple[list[date], list[date]]:
    """The days on which one of the patient's month contributions may change: those of
    every month (caseload, contact, care manager, DMS-E, DSF-E), and those that matter only
    to a month with an enrollment (the cohort's review days and score windows)."""
    days: set[date] = {v.effective_from for v in outcome_rules.RULE_BOOK.versions}
    days.update(d for d, _ in facts.managers)
    for _, enrolled_on, ended_on in facts.episodes:
        days.add(enrolled_on)
        if ended_on is not None:
            days.add(ended_on)
    days.update(d for d, _ in facts.contacts)
    days.update(facts.phq9_days)
    days.update(facts.positive_phq2)
    cohort: set[date] = {d for d, _ in facts.reviews}
    cohort.update(s.day for pair in facts.scores.values() for series in pair for s in series)
    # A window runs from the episode's index score, its first (the same whatever the
    # as-of day, once that score is taken).
    indexes = [series[0].day for pair in facts.scores.values() for series in pair if series]
    for rules in outcome_rules.RULE_BOOK.versions:
        offsets = (
            rules.twelve_week_from_day,
            rules.twelve_week_to_day + 1,
            rules.six_month_from_day,
            rules.six_month_to_day + 1,
            rules.drr_from_day,
            rules.drr_to_day + 1,
        )
        cohort.update(i + timedelta(days=k) for i in indexes for k in offsets)
        days.update(p + timedelta(days=rules.dsf_follow_up_days + 1) for p in facts.positive_phq2)
        days.update(
            outcome_rules.utilisation_period(c, rules)[3] + timedelta(days=1)
            for c, _ in facts.contacts
        )
    return sorted(days), sorted(cohort | days)


# The longest DSF-E follow-up of any rule version (days).
_LONGEST_FOLLOW_UP: Final = max(r.dsf_follow_up_days for r in outcome_rules.RULE_BOOK.versions)


def _period_end(period_start: date) -> date:
    """The last day of the longest DMS-E period starting on ``period_start``."""
    return max(
        outcome_rules.utilisation_period(period_start, r)[3]
        for r in outcome_rules.RULE_BOOK.versions
    )


def month_facts(doc: Doc) -> list[MonthFact]:
    """Pure: the patient's contribution to every month, by stretches of as-of days."""
    facts = PatientFacts(doc)
    starts = [
        *(enrolled_on for _, enrolled_on, _ in facts.episodes),
        *(d for d, _ in facts.contacts),
        *facts.positive_phq2,
    ]
    if not starts:
        return []  # counted in no month (no episode on the caseload, contact or screen)
    every_month, cohort_months = _change_days(facts)
    last_change = cohort_months[-1]
    out: list[MonthFact] = []
    month = min(starts).replace(day=1)
    while month <= last_change:
        end = months_rules.month_end(month.year, month.month)
        after = end + timedelta(days=1)
        if any(month <= e <= end for _, e, _ in facts.episodes):
            # The month's cohort: review days and score windows run on after it.
            later = [d for d in cohort_months if d > month]
        elif any(
            month <= d <= end for d in [*(c for c, _ in facts.contacts), *facts.positive_phq2]
        ):
            # DMS-E and DSF-E of the month are settled by later screens and deadlines: by
            # the day after its four-month period, or after a 30-day follow-up from its end.
            settled = max(
                _period_end(month) + timedelta(days=1),
                after + timedelta(days=_LONGEST_FOLLOW_UP + 1),
            )
            later = [d for d in every_month if month < d <= settled]
        else:
            later = [d for d in every_month if month < d <= after]
        points = sorted({month, after, *later})
        segments: list[tuple[date, Value | None]] = []
        for point in points:
            value = _value(facts.contribution(_frame(month, point), point))
            if not segments or segments[-1][1] != value:
                segments.append((point, value))
        for i, (start, value) in enumerate(segments):
            if value is None:
                continue
            stop = segments[i + 1][0] if i + 1 < len(segments) else None
            out.append(MonthFact(month, month, start, stop, *value))
        month = _next_month(month)
    # After the last change every month looks alike: an open episode is on the caseload
    # under the last care manager, with nothing else in it.
    tail = _value(facts.contribution(_frame(month, month), month))
    if tail is not None:
        out.append(MonthFact(month, None, None, None, *tail))
    return out


# --- the writer ------------------------------------------------------------------------------


def _columns(doc: Doc) -> dict[str, Any]:
    return {
        "patient_id": UUID(doc["patient_id"]),
        "organisation_id": UUID(doc["organisation_id"]),
    }


_facts = KeyedDocumentProjection(
    name=NAME,
    table=FACTS_TABLE,
    key_of=outcomes_series.key_of,
    evolve=facts_evolve,
    columns={"patient_id": "uuid", "organisation_id": "uuid"},
    derive=_columns,
)


@dataclass(frozen=True)
class CareTeamMonthsProjection:
    """Keeps each touched patient's facts document and replaces their month rows when it
    changed, in the runner's transaction (one computation per patient per batch). Batched
    (projections/base.py): the runner reads the documents with other read models' rows
    and writes them, with the month rows, in a statement shared with theirs."""

    name: str = NAME

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        await apply_batched(conn, self, events)

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        return _facts.reads(events)

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        batch = _facts.evolved(events, rows)
        if batch is None:
            return []
        # A patient's month rows are a pure function of their facts document
        # (``month_facts``): only those whose document changed or went are replaced, from
        # the documents just evolved (not read back), with the facts.
        replaced = [k for k, _ in batch.changed] + batch.gone
        if not replaced:
            return []
        statements = _facts.write_statements(batch)
        statements.append(
            Statement(
                lambda n: f"DELETE FROM {MONTHS_TABLE} WHERE patient_id = ANY(${n}::uuid[])",
                [replaced],
            )
        )
        written: list[tuple[UUID, UUID, MonthFact]] = []
        for key, doc in batch.changed:
            organisation = UUID(doc["organisation_id"])
            written.extend((key, organisation, f) for f in month_facts(doc))
        if written:
            statements.append(_insert_months(written))
        return statements

    async def reset(self, conn: Conn) -> None:
        await conn.execute(f"TRUNCATE {FACTS_TABLE}, {MONTHS_TABLE}")


def _insert_months(written: list[tuple[UUID, UUID, MonthFact]]) -> Statement:
    names = ["patient_id", "organisation_id", "month_from", "month_to", "valid_from"]
    names += ["valid_to", "care_manager_id", "review_days", *COUNT_COLUMNS]
    types = ["uuid", "uuid", "date", "date", "date", "date", "uuid", "text"]
    types += ["integer"] * len(COUNT_COLUMNS)
    values = [f"t.c{i}" for i in range(len(names))]
    values[7] = "t.c7::integer[]"
    aliases = ", ".join(f"c{i}" for i in range(len(names)))

    def sql(first: int) -> str:
        arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types))
        return f"""INSERT INTO {MONTHS_TABLE} ({", ".join(names)})
            SELECT {", ".join(values)} FROM unnest({arrays}) AS t({aliases})"""

    return Statement(
        sql,
        [
            [p for p, _, _ in written],
            [o for _, o, _ in written],
            [f.month_from for _, _, f in written],
            [f.month_to for _, _, f in written],
            [f.valid_from for _, _, f in written],
            [f.valid_to for _, _, f in written],
            [f.care_manager_id for _, _, f in written],
            ["{" + ",".join(map(str, f.review_days)) + "}" for _, _, f in written],
            *([f.counts[i] for _, _, f in written] for i in range(len(COUNT_COLUMNS))),
        ],
    )


projection = CareTeamMonthsProjection()


# --- reading the series ----------------------------------------------------------------------


def _month(year: int, month: int, counts: Sequence[int], review_days: list[int]) -> CareTeamMonth:
    named = dict(zip(COUNT_COLUMNS, counts, strict=True))

    def window(name: str) -> MeasureSummary:
        return MeasureSummary(name, *(named[f"{name}_{c}"] for c in WINDOW_COUNTS))

    return CareTeamMonth(
        year=year,
        month=month,
        caseload=named["caseload"],
        contacted=named["contacted"],
        enrolled=named["enrolled"],
        reviewed=len(review_days),
        median_days_to_review=months_rules.median_days(review_days),
        twelve_weeks=window("twelve_weeks"),
        six_months=window("six_months"),
        drr_e=window("drr_e"),
        dms_e=StatusCount(named["dms_e_eligible"], named["dms_e_met"], named["dms_e_open"]),
        dsf_e=StatusCount(named["dsf_e_eligible"], named["dsf_e_met"], named["dsf_e_open"]),
        gad7_twelve_weeks=window("gad7_twelve_weeks"),
        gad7_six_months=window("gad7_six_months"),
    )


def series_from_sums(
    sums: dict[tuple[UUID | None, date], tuple[Sequence[int], list[int]]],
    shown: Sequence[tuple[int, int]],
    *,
    by_care_manager: bool,
) -> list[CareTeamSeries]:
    """The series per group from the summed counts and review days of each (group, month):
    ordered as ``care_team_series`` orders them (care managers by id, unassigned last)."""
    groups: set[UUID | None] = {g for g, _ in sums}
    if not by_care_manager:
        groups.add(None)
    zero: tuple[Sequence[int], list[int]] = (tuple(0 for _ in COUNT_COLUMNS), [])
    return [
        CareTeamSeries(
            group,
            [_month(y, m, *sums.get((group, date(y, m, 1)), zero)) for y, m in shown],
        )
        for group in sorted(groups, key=lambda g: (g is None, str(g)))
    ]


async def fetch_series(
    conn: Conn,
    organisation_id: UUID,
    wanted: Sequence[tuple[int, int]],
    as_of: date,
    *,
    by_care_manager: bool,
    scope: Scope = unrestricted,
) -> tuple[list[CareTeamSeries], set[UUID]]:
    """The series of the organisation's patients in scope, summed in SQL from their month
    rows, and the patients counted anywhere in it (for the read audit)."""
    shown = [(y, m) for y, m in wanted if date(y, m, 1) <= as_of]
    months = [date(y, m, 1) for y, m in shown]
    scope_sql, scope_args = scope("f.patient_id", 4)
    matching = f"""FROM unnest($2::date[]) AS m(first)
        JOIN {MONTHS_TABLE} f ON f.organisation_id = $1
         AND f.month_from <= m.first AND (f.month_to IS NULL OR m.first <= f.month_to)
         AND (f.valid_from IS NULL OR f.valid_from <= $3)
         AND (f.valid_to IS NULL OR $3 < f.valid_to)
         AND {scope_sql}"""
    args = [organisation_id, months, as_of, *scope_args]
    by = len(args) + 1
    group = f"CASE WHEN ${by}::boolean THEN f.care_manager_id END"
    sums_sql = ", ".join(f"sum(f.{c})::integer" for c in COUNT_COLUMNS)
    counts = await conn.fetch(
        f"SELECT m.first, {group} AS manager, {sums_sql} {matching} GROUP BY 1, 2",
        *args,
        by_care_manager,
    )
    reviews = await conn.fetch(
        f"""SELECT m.first, {group} AS manager, array_agg(d.day) AS review_days
            {matching} CROSS JOIN LATERAL unnest(f.review_days) AS d(day)
            GROUP BY 1, 2""",
        *args,
        by_care_manager,
    )
    review_days = {(r["manager"], r["first"]): list(r["review_days"]) for r in reviews}
    sums: dict[tuple[UUID | None, date], tuple[Sequence[int], list[int]]] = {
        (r["manager"], r["first"]): (
            [r[i] for i in range(2, 2 + len(COUNT_COLUMNS))],
            review_days.get((r["manager"], r["first"]), []),
        )
        for r in counts
    }
    counted = await conn.fetch(f"SELECT DISTINCT f.patient_id {matching}", *args)
    series = series_from_sums(sums, shown, by_care_manager=by_care_manager)
    return series, {r["patient_id"] for r in counted}
