"""The care-team month rows kept at projection time give, for every as-of day, the same
series as the computation on read from the patients' documents (care_team_series), for a
seeded population of patients with random episodes, hand-overs, contacts, reviews and
PHQ-9, PHQ-A, GAD-7 and PHQ-2 screens. Every as-of day of the range is compared, so a
day on which a contribution changes and no row starts would show."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from projections.care_team_months import (
    COUNT_COLUMNS,
    MonthFact,
    month_facts,
    series_from_sums,
)
from projections.care_team_series import CareTeamSeries, care_team_series
from projections.document import Doc

ORG = "00000000-0000-4000-8000-00000000000a"
MANAGERS = [
    "00000000-0000-4000-8000-0000000000c1",
    "00000000-0000-4000-8000-0000000000c5",
    "00000000-0000-4000-8000-0000000000c9",
]
FIRST = date(2025, 11, 1)


def _instant(day: date, rng: random.Random) -> str:
    at = datetime(day.year, day.month, day.day, rng.choice([0, 9, 16, 23]), tzinfo=UTC)
    return at.isoformat()


def _patient(n: int, rng: random.Random) -> Doc:
    """A document as projections/outcomes_series.py writes it, with random facts."""

    def some_day(start: date, span: int) -> date:
        return start + timedelta(days=rng.randrange(span))

    episodes: list[dict[str, Any]] = []
    start = some_day(FIRST, 150)
    for number in (1, 2)[: rng.choice([1, 1, 2])]:
        enrolled = None if rng.random() < 0.15 else start + timedelta(days=rng.randrange(6))
        ended = (
            None
            if rng.random() < 0.5
            else (enrolled or start) + timedelta(days=rng.randrange(20, 200))
        )
        episodes.append(
            {
                "number": number,
                "started_at": _instant(start, rng),
                "enrolled_on": None if enrolled is None else enrolled.isoformat(),
                "ended_on": None if ended is None else ended.isoformat(),
            }
        )
        if ended is None:
            break
        start = ended + timedelta(days=rng.randrange(1, 60))
    numbers = [e["number"] for e in episodes]
    managers = sorted(
        [some_day(FIRST, 300).isoformat(), rng.choice([*MANAGERS, None])]
        for _ in range(rng.randrange(4))
    )
    screens = []
    for _ in range(rng.randrange(12)):
        kind = rng.choice(["phq9", "phq9", "phq_a", "gad7", "gad7", "phq2"])
        total = {"phq9": 27, "phq_a": 27, "gad7": 21, "phq2": 6}[kind]
        value = rng.randrange(total + 1)
        taken = some_day(FIRST - timedelta(days=20), 420)
        screens.append(
            [_instant(taken, rng), kind, value, kind == "phq2" and value >= 3, rng.choice(numbers)]
        )
    screens.sort(key=lambda s: s[0])
    return {
        "patient_id": f"00000000-0000-4000-8000-{n:012d}",
        "organisation_id": ORG,
        "enrolled_on": next((e["enrolled_on"] for e in episodes if e["enrolled_on"]), None),
        "events": [],
        "gad7": [],
        "birth_date": rng.choice([None, "1970-03-03", "2014-06-30", "2012-01-15"]),
        "managers": managers,
        "episodes": episodes,
        "contacts": sorted(
            [some_day(FIRST, 400).isoformat(), rng.choice(numbers)] for _ in range(rng.randrange(9))
        ),
        "reviews": sorted(
            [some_day(FIRST, 300).isoformat(), rng.choice(numbers)] for _ in range(rng.randrange(4))
        ),
        "screens": screens,
    }


def _from_rows(
    rows: Sequence[MonthFact],
    wanted: Sequence[tuple[int, int]],
    as_of: date,
    by_care_manager: bool,
) -> list[CareTeamSeries]:
    """What the SQL query sums, in Python: the rows that hold for each month on as_of."""
    shown = [(y, m) for y, m in wanted if date(y, m, 1) <= as_of]
    sums: dict[tuple[UUID | None, date], tuple[list[int], list[int]]] = {}
    for y, m in shown:
        month = date(y, m, 1)
        for row in rows:
            if row.holds(month, as_of):
                group = row.care_manager_id if by_care_manager else None
                counts, reviews = sums.setdefault((group, month), ([0] * len(COUNT_COLUMNS), []))
                for i, value in enumerate(row.counts):
                    counts[i] += value
                reviews.extend(row.review_days)
    return series_from_sums(
        {k: (c, sorted(r)) for k, (c, r) in sums.items()}, shown, by_care_manager=by_care_manager
    )


def test_month_rows_equal_the_computation_on_read_on_every_as_of_day() -> None:
    rng = random.Random(19)
    docs = [_patient(n, rng) for n in range(30)]
    rows = [row for doc in docs for row in month_facts(doc)]
    wanted = [(2025, 11), (2025, 12)] + [(2026, m) for m in range(1, 13)] + [(2027, 1)]
    as_of = date(2025, 11, 1)
    while as_of <= date(2027, 4, 30):
        for by in (True, False):
            expected, _ = care_team_series(docs, wanted, as_of, by_care_manager=by)
            assert _from_rows(rows, wanted, as_of, by) == expected, (as_of, by)
        as_of += timedelta(days=1)


def test_an_open_episode_counts_in_every_later_month_under_the_last_care_manager() -> None:
    doc = _patient(1, random.Random(1))
    doc.update(
        managers=[["2026-01-05", MANAGERS[0]], ["2026-02-10", MANAGERS[1]]],
        episodes=[
            {
                "number": 1,
                "started_at": "2026-01-05T10:00:00+00:00",
                "enrolled_on": "2026-01-05",
                "ended_on": None,
            }
        ],
        contacts=[["2026-01-20", 1]],
        reviews=[],
        screens=[],
    )
    tail = month_facts(doc)[-1]
    assert tail.month_to is None and tail.valid_from is None and tail.valid_to is None
    assert tail.care_manager_id == UUID(MANAGERS[1])
    assert tail.counts[:3] == (1, 0, 0)  # on the caseload, not contacted, not enrolled
    far = [(2030, 5)]
    (series,) = _from_rows([tail], far, date(2030, 5, 9), by_care_manager=False)
    assert series.months[0].caseload == 1


def test_a_patient_with_nothing_in_any_month_has_no_rows() -> None:
    doc = _patient(2, random.Random(2))
    doc.update(episodes=[], contacts=[], screens=[], reviews=[])
    assert month_facts(doc) == []
