"""Clinic calendar days for the read models: "this month", "days since", "due on".

The rules modules count calendar days in the clinic's time zone (domain.rules.calendar_day
reads a datetime in its own zone). Events carry aware instants in whatever offset the
client sent, so every read model turns an instant into a day through ``day_of`` with one
zone, and every query turns its clock reading into "today" the same way.

Choice (docs/clinical-time.md, section 9): a read model that stores instants takes the
day on read in the patient's organisation's zone, handed to its pure derivation by the
query (the billing summary: ``projections.billing.Clinic``; the registry row, trackers
and worklist: ``zone=``). Every view's "today" is the clock's instant in the caller's
organisation's zone (``today_in``), read once per request. Read models that store days
computed while evolving (the caseload's flag onset days) still use ``CLINIC_ZONE`` (UTC)
until the organisation's zone is recorded in the log for them to evolve on; changing it
then needs a projection rebuild.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CLINIC_ZONE: Final[tzinfo] = UTC


def zone_named(name: str | None) -> tzinfo:
    """The IANA zone an organisation recorded; UTC when none is set (or, defensively, when
    the name is no longer known to the zone database: the directory refuses unknown names)."""
    if not name:
        return CLINIC_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return CLINIC_ZONE


def today_in(now: datetime, zone: tzinfo = CLINIC_ZONE) -> date:
    """A view's "today": the clock's instant read as a calendar day in the clinic zone."""
    return day_of(now, zone)


def days_between(earlier: datetime, today: date, zone: tzinfo = CLINIC_ZONE) -> int:
    """Calendar days from an instant's clinic day to ``today`` (0 on the same local day).
    Counted on local dates, so a day on which daylight saving time starts (23 hours) or
    ends (25 hours) is still one day."""
    return (today - day_of(earlier, zone)).days


def day_of(instant: datetime, zone: tzinfo = CLINIC_ZONE) -> date:
    """The clinic calendar day of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("a naive datetime has no calendar day")
    return instant.astimezone(zone).date()


def in_zone(instant: datetime, zone: tzinfo = CLINIC_ZONE) -> datetime:
    """The same instant expressed in the clinic zone (rules read the day in its own zone)."""
    return instant.astimezone(zone)


def parse_instant(text: str) -> datetime:
    """An ISO instant as stored in a read-model document."""
    return datetime.fromisoformat(text)


def month_start(day: date) -> date:
    """The first day of the month containing ``day``."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after the one containing ``day``."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def month_range(day: date, zone: tzinfo = CLINIC_ZONE) -> tuple[datetime, datetime]:
    """The half-open instant range [first midnight, next first midnight) of a month."""
    first = month_start(day)
    start = datetime(first.year, first.month, 1, tzinfo=zone)
    after = next_month(first)
    return start, datetime(after.year, after.month, 1, tzinfo=zone)
