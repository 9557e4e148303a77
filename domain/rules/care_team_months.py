"""Care-team measures per calendar month: who a patient counts under, who was on the
caseload, who was contacted, how long until the first psychiatric review.

Source: docs/outcomes.md, "Care-team measures per month" (issue #19 item 3), after the
AIMS Center's care-management process measures (caseload, contact, psychiatric
consultation) for collaborative care. Pure: days in, answers out; the read model
(projections/care_team_series.py) groups patients with these rules.

Rules (all days are clinic calendar days; nothing after the as-of day counts):

- **Month of a patient under a care manager.** A patient counts, for a month, under the
  care manager assigned to them on the month's last day (or on the as-of day when the
  month is still running); a patient with none then counts as unassigned. One patient
  is under one care manager a month, so the care managers' rows add up to the
  organisation's.
- **On the caseload in a month.** An episode enrolled on or before the month's last day
  (and the as-of day) that had not ended before the month's first day.
- **Contacted in a month.** A contact with the patient (activity ``contact``; outreach
  attempts are not contacts) on a day of the month, in an episode on the caseload then.
- **Time to first psychiatric review.** Days from the episode's enrollment day to the
  first psychiatric case review of that episode on or after it; episodes not reviewed
  by the as-of day have no value (they are counted apart, never as zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from statistics import median
from uuid import UUID

__all__ = [
    "MAX_MONTHS",
    "care_manager_on",
    "days_to_first_review",
    "in_month",
    "median_days",
    "month_end",
    "month_start",
    "months_from_to",
    "on_caseload_in",
]

# The longest series one request may ask for (the query stays bounded).
MAX_MONTHS = 36


def month_start(year: int, month: int) -> date:
    """The first day of the month."""
    return date(year, month, 1)


def month_end(year: int, month: int) -> date:
    """The last day of the month."""
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def months_from_to(first: date, last: date) -> list[tuple[int, int]]:
    """The months (year, month) from the month of ``first`` to that of ``last``, inclusive."""
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def in_month(day: date, year: int, month: int) -> bool:
    """Whether ``day`` is a day of the month."""
    return (day.year, day.month) == (year, month)


def care_manager_on(history: Sequence[tuple[date, UUID | None]], day: date) -> UUID | None:
    """The care manager assigned on ``day``: the last assignment (or unassignment, None)
    effective on or before it, in recorded order within a day; None before any."""
    current: UUID | None = None
    for effective, manager in sorted(history, key=lambda h: h[0]):  # stable: recorded order
        if effective > day:
            break
        current = manager
    return current


def on_caseload_in(enrolled_on: date, ended_on: date | None, first: date, last: date) -> bool:
    """Whether an episode enrolled on ``enrolled_on`` and ended on ``ended_on`` (None: still
    open) was on the caseload on some day from ``first`` to ``last``."""
    return enrolled_on <= last and (ended_on is None or ended_on >= first)


def days_to_first_review(enrolled_on: date, review_days: Iterable[date], as_of: date) -> int | None:
    """Days from enrollment to the episode's first review on or after that day, by ``as_of``."""
    reviewed = [d for d in review_days if enrolled_on <= d <= as_of]
    return (min(reviewed) - enrolled_on).days if reviewed else None


def median_days(values: Sequence[int]) -> float | None:
    """The median of whole days (the mean of the middle two for an even count); None if none."""
    return None if not values else float(median(values))
