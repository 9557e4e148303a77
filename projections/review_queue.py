"""The psychiatric consultant's review queue: who to discuss at this week's caseload review.

Answers "which patients need my review, most urgent first, and which notes do I owe?":
patients whose Needs psychiatric review flag (domain.rules.flags) is raised today, or
who carry a safety flag nobody has cleared, ordered safety first, then not improving,
then new enrollments, then the team's requests (IMPACT: weekly review of new and
not-improving patients; a safety signal comes before everything); plus the
consultation notes waiting for the consultant to draft or to sign
(projections.trackers). Reads the registry rows (projections.caseload): the order is
decided in SQL from the stored flag onset days for "today", so it pages with a cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import Final
from uuid import UUID

from projections.caseload import CaseloadRow, Page, fetch_page
from projections.keyset import Scope, SortKey, unrestricted
from projections.source import Conn


class ReviewPriority(IntEnum):
    """Queue order: lower comes first."""

    SAFETY_RISK = 0
    NOT_IMPROVING = 1
    NEW_ENROLLMENT = 2
    TEAM_REQUEST = 3


# $1 is today; each onset is the first day the flag is raised (NULL: not raised).
_PRIORITY_SQL: Final = """CASE
    WHEN safety_risk_on <= $1 THEN 0
    WHEN not_improving_on <= $1 THEN 1
    WHEN review_new_enrollment THEN 2
    ELSE 3 END"""
_KEYS: Final = (
    SortKey(_PRIORITY_SQL, False, "integer", "3"),
    SortKey("enrolled_at", False, "timestamptz", "'infinity'"),
)
_WHERE: Final = """(needs_review_on <= $1 OR safety_risk_on <= $1)
    AND ($2::uuid IS NULL OR psychiatric_consultant_id = $2::uuid)"""


def priority_of(row: CaseloadRow) -> ReviewPriority:
    """The row's place in the queue from the flags evaluated for its day (as the SQL does)."""
    kinds = {flag.kind for flag in row.flags}
    if "safety_risk" in kinds:
        return ReviewPriority.SAFETY_RISK
    if "not_improving" in kinds:
        return ReviewPriority.NOT_IMPROVING
    if "new_enrollment" in row.review_reasons:
        return ReviewPriority.NEW_ENROLLMENT
    return ReviewPriority.TEAM_REQUEST


@dataclass(frozen=True)
class ReviewEntry:
    """One patient on the queue with why and how urgent."""

    priority: ReviewPriority
    row: CaseloadRow


async def fetch_review_page(
    conn: Conn,
    *,
    today: date,
    consultant_id: UUID | None,
    first: int,
    after: str | None,
    scope: Scope = unrestricted,
) -> Page:
    """One keyset page of the review queue."""
    return await fetch_page(
        conn,
        today=today,
        where=_WHERE,
        where_args=[consultant_id],
        keys=_KEYS,
        ordering="review_queue",
        first=first,
        after=after,
        scope=scope,
    )
