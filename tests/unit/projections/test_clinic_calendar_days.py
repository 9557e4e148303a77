"""Pure clinic-day arithmetic at daylight saving boundaries (issue 18, clinic calendars;
docs/clinical-time.md, section 9): "today", days since an instant, and the registry row
and tracker due days, counted on local calendar dates in the clinic's IANA zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from projections import caseload, trackers
from projections.clinic_calendar import day_of, days_between, today_in, zone_named

LA = ZoneInfo("America/Los_Angeles")
PST, PDT = timezone(timedelta(hours=-8)), timezone(timedelta(hours=-7))


def test_zone_named_defaults_to_utc() -> None:
    assert zone_named(None) is UTC
    assert zone_named("") is UTC
    assert zone_named("Not/AZone") is UTC
    assert zone_named("America/Los_Angeles") == LA


@pytest.mark.parametrize(
    ("now", "local", "utc"),
    [
        # 23:30 on the day DST starts (8 March 2026) and ends (1 November 2026).
        (datetime(2026, 3, 9, 6, 30, tzinfo=UTC), date(2026, 3, 8), date(2026, 3, 9)),
        (datetime(2026, 11, 2, 7, 30, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 2)),
        # Midnight local, the first minute of the day, on each side.
        (datetime(2026, 3, 8, 8, 0, tzinfo=UTC), date(2026, 3, 8), date(2026, 3, 8)),
        (datetime(2026, 3, 8, 7, 59, tzinfo=UTC), date(2026, 3, 7), date(2026, 3, 8)),
        (datetime(2026, 11, 2, 8, 0, tzinfo=UTC), date(2026, 11, 2), date(2026, 11, 2)),
        (datetime(2026, 11, 2, 7, 59, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 2)),
    ],
)
def test_today_is_the_clocks_local_day(now: datetime, local: date, utc: date) -> None:
    assert today_in(now, LA) == local
    assert today_in(now) == utc


def test_both_sides_of_each_change_are_the_same_local_day() -> None:
    # Spring: 01:59 PST and 03:00 PDT are one minute apart and on 8 March.
    assert day_of(datetime(2026, 3, 8, 1, 59, tzinfo=PST), LA) == date(2026, 3, 8)
    assert day_of(datetime(2026, 3, 8, 3, 0, tzinfo=PDT), LA) == date(2026, 3, 8)
    # Autumn: both 01:30s of 1 November 2026 are 1 November.
    assert day_of(datetime(2026, 11, 1, 1, 30, tzinfo=PDT), LA) == date(2026, 11, 1)
    assert day_of(datetime(2026, 11, 1, 1, 30, tzinfo=PST), LA) == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("contact", "today", "days"),
    [
        # A 23-hour day: from 00:30 PST to 23:30 PDT on 8 March is the same day.
        (datetime(2026, 3, 8, 0, 30, tzinfo=PST), date(2026, 3, 8), 0),
        # 23:30 PST on 7 March to 8 March: one day, though under 24 hours passed.
        (datetime(2026, 3, 7, 23, 30, tzinfo=PST), date(2026, 3, 8), 1),
        # A 25-hour day: 00:30 PDT to 23:30 PST on 1 November is the same day.
        (datetime(2026, 11, 1, 0, 30, tzinfo=PDT), date(2026, 11, 1), 0),
        # 23:30 PDT on 31 October to 2 November: two days, though 49 hours passed.
        (datetime(2026, 10, 31, 23, 30, tzinfo=PDT), date(2026, 11, 2), 2),
    ],
)
def test_days_since_counts_local_dates(contact: datetime, today: date, days: int) -> None:
    assert days_between(contact, today, LA) == days


def _doc(last_contact: datetime, enrolled: datetime) -> dict[str, object]:
    return {
        "id": "00000000-0000-4000-8000-0000000000aa",
        "organisation_id": "00000000-0000-4000-8000-000000000001",
        "given_name": None,
        "family_name": None,
        "mrn": None,
        "episodes": [
            {
                "number": 1,
                "status": "enrolled",
                "started_at": enrolled.isoformat(),
                "enrolled_at": enrolled.isoformat(),
                "ended_at": None,
            }
        ],
        "screenings": [],
        "recorded_flags": [],
        "last_contact_at": last_contact.isoformat(),
        "last_case_review_at": None,
        "contact_count": 1,
        "outreach_count": 0,
        "case_review_count": 0,
        "care_team": {"care_manager_id": None, "pcp_id": None, "psychiatric_consultant_id": None},
        "relapse_prevention_plan_at": None,
        "version": 3,
    }


def test_the_registry_row_counts_days_and_weeks_in_the_clinic_zone() -> None:
    # Enrolled 20:00 PST on 8 February (9 February in UTC), last contact 20:00 PST on
    # 7 March (8 March in UTC); today is 8 March in Los Angeles, DST's first day.
    doc = _doc(
        last_contact=datetime(2026, 3, 7, 20, 0, tzinfo=PST),
        enrolled=datetime(2026, 2, 8, 20, 0, tzinfo=PST),
    )
    local = caseload.caseload_row(doc, date(2026, 3, 8), zone=LA)
    utc = caseload.caseload_row(doc, date(2026, 3, 8))
    assert local.days_since_last_contact == 1
    assert utc.days_since_last_contact == 0
    # 8 February (local) to 8 March is four weeks; from 9 February (UTC) it is three.
    assert (local.weeks_in_treatment, utc.weeks_in_treatment) == (4, 3)
    assert local.as_of == date(2026, 3, 8)


def test_tracker_due_days_start_from_the_local_day() -> None:
    # Requested at 20:00 PST on 7 March (8 March in UTC): the due day is counted from
    # 7 March in the clinic's zone.
    asked = datetime(2026, 3, 7, 20, 0, tzinfo=PST)
    note = {
        "status": "requested",
        "requested_at": asked.isoformat(),
        "recommendations": [],
    }
    local = trackers.consultation_steps(note, date(2026, 3, 8), LA)
    utc = trackers.consultation_steps(note, date(2026, 3, 8))
    assert local and [s.due_on for s in local] == [s.due_on - timedelta(days=1) for s in utc]


def test_onsets_near_today_are_re_derived_in_the_clinic_zone() -> None:
    # Last contact 20:00 PST on 21 February (22 February in UTC): overdue after 14 days,
    # from 8 March in Los Angeles; the stored (UTC) column says 9 March.
    doc = _doc(
        last_contact=datetime(2026, 2, 21, 20, 0, tzinfo=PST),
        enrolled=datetime(2026, 2, 2, 10, 0, tzinfo=PST),
    )
    assert caseload.derive_columns(doc)["overdue_contact_on"] == date(2026, 3, 9)
    assert caseload.onsets_in_zone(doc, LA)["overdue_contact_on"] == date(2026, 3, 8)
    assert caseload.onsets_in_zone(doc, UTC)["overdue_contact_on"] == date(2026, 3, 9)


@pytest.mark.parametrize(
    ("contact", "local_onset", "utc_onset"),
    [
        # 20:00 PST on 21 February: overdue (over 14 days) from 8 March, the day daylight
        # saving time starts; the UTC day of the contact is the 22nd.
        (datetime(2026, 2, 21, 20, 0, tzinfo=PST), date(2026, 3, 8), date(2026, 3, 9)),
        # 01:59 PST on 8 March, the last standard-time minute: 23 March either way.
        (datetime(2026, 3, 8, 1, 59, tzinfo=PST), date(2026, 3, 23), date(2026, 3, 23)),
        # The second 01:30 of 1 November (PST) is 1 November: 16 November either way;
        # 20:00 PDT on 17 October is the 18th in UTC: overdue from 1 November locally.
        (datetime(2026, 11, 1, 1, 30, tzinfo=PST), date(2026, 11, 16), date(2026, 11, 16)),
        (datetime(2026, 10, 17, 20, 0, tzinfo=PDT), date(2026, 11, 1), date(2026, 11, 2)),
    ],
)
def test_stored_onsets_are_derived_in_the_zone_the_projection_is_given(
    contact: datetime, local_onset: date, utc_onset: date
) -> None:
    """The registry writer derives its stored onset columns in the organisation's zone
    (recorded in the log); without one, in UTC."""
    doc = _doc(last_contact=contact, enrolled=contact - timedelta(days=20))
    local = caseload.derive_columns(doc, LA)
    assert local["overdue_contact_on"] == local_onset
    assert caseload.derive_columns(doc)["overdue_contact_on"] == utc_onset
    assert local == {**local, **caseload.onsets_in_zone(doc, LA)}
