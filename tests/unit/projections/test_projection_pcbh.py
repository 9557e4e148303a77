"""The PCBH same-day measure and the community-service loop figures (pure functions)."""

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from projections.pcbh import same_day_share, seen_same_day
from projections.trackers import community_service_loops, referral_next_step


def handoff(offered: str, status: str = "offered", closed: str | None = None) -> dict[str, Any]:
    return {"offered_at": offered, "status": status, "closed_at": closed}


def test_same_day_counts_acceptances_on_the_clinic_day_of_the_offer() -> None:
    today = date(2026, 3, 10)
    handoffs = [
        handoff("2026-03-09T10:00:00+00:00", "accepted", "2026-03-09T23:59:59+00:00"),
        handoff("2026-03-09T10:00:00+00:00", "accepted", "2026-03-10T00:00:00+00:00"),
        handoff("2026-03-09T11:00:00+00:00", "missed", "2026-03-09T12:00:00+00:00"),
        handoff("2026-03-09T11:00:00+00:00"),  # day over, never answered: counted, not seen
        handoff("2026-03-10T09:00:00+00:00"),  # today, unanswered: pending
    ]
    measure = same_day_share(handoffs, today)
    assert (measure.handoffs, measure.seen_same_day, measure.pending) == (4, 1, 1)
    assert measure.share == 0.25
    assert [seen_same_day(h) for h in handoffs] == [True, False, False, False, False]


def test_no_decided_handoff_has_no_share() -> None:
    measure = same_day_share([handoff("2026-03-10T09:00:00+00:00")], date(2026, 3, 10))
    assert (measure.handoffs, measure.pending, measure.share) == (0, 1, None)


def test_same_day_is_the_clinics_local_day_on_the_day_daylight_saving_time_starts() -> None:
    """Offered at 16:00 PDT on 8 March 2026 (23:00 UTC), accepted at 17:30 PDT (00:30 UTC on
    the 9th): the same day in Los Angeles, two days in UTC. At 23:30 PDT that day a
    handoff offered at 01:59 PST (the last standard-time minute) is still pending."""
    la = ZoneInfo("America/Los_Angeles")
    accepted = handoff("2026-03-08T23:00:00+00:00", "accepted", "2026-03-09T00:30:00+00:00")
    open_today = handoff("2026-03-08T09:59:00+00:00")
    assert seen_same_day(accepted, la) and not seen_same_day(accepted)
    local = same_day_share([accepted, open_today], date(2026, 3, 8), la)
    assert (local.handoffs, local.seen_same_day, local.pending) == (1, 1, 1)
    utc = same_day_share([accepted, open_today], date(2026, 3, 9))
    assert (utc.handoffs, utc.seen_same_day, utc.pending) == (2, 0, 0)


def referral(service: str, status: str, **times: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "service": service,
        "receiving_organisation_id": None,
        "status": status,
        "requested_at": "2026-03-01T09:00:00+00:00",
        "expected_by": "2026-04-01",
        "sent_at": None,
        "accepted_at": None,
        "appointment_at": None,
        "closed_at": None,
    }
    doc.update(times)
    return doc


def test_community_loops_per_service_with_share_and_medians() -> None:
    docs = [
        referral(
            "food_assistance",
            "completed",
            sent_at="2026-03-01T10:00:00+00:00",
            accepted_at="2026-03-03T10:00:00+00:00",
            closed_at="2026-03-05T10:00:00+00:00",
        ),
        referral(
            "food_assistance",
            "completed",
            sent_at="2026-03-01T10:00:00+00:00",
            accepted_at="2026-03-02T10:00:00+00:00",
            closed_at="2026-03-11T10:00:00+00:00",
        ),
        referral("food_assistance", "declined", sent_at="2026-03-01T10:00:00+00:00"),
        referral("food_assistance", "requested"),
        referral("psychotherapy", "completed", sent_at="2026-03-01T10:00:00+00:00"),
    ]
    (food,) = community_service_loops(docs)
    assert food.service == "food_assistance"
    assert (food.referrals, food.sent, food.closed_with_report) == (4, 3, 2)
    assert (food.declined_or_cancelled, food.open) == (1, 1)
    assert food.closed_loop_share == 2 / 3
    assert food.median_days_to_accept == 1.5
    assert food.median_days_to_report_back == 7.0


def test_an_accepted_community_referral_waits_for_its_report_back() -> None:
    doc = referral(
        "housing_support",
        "accepted",
        sent_at="2026-03-01T10:00:00+00:00",
        accepted_at="2026-03-02T10:00:00+00:00",
    )
    step = referral_next_step(doc, date(2026, 3, 10))
    assert step is not None and (step.name, step.due_on, step.overdue) == (
        "report_back",
        date(2026, 3, 9),
        True,
    )
    clinical = referral_next_step({**doc, "service": "psychotherapy"}, date(2026, 3, 10))
    assert clinical is not None and clinical.name == "schedule"
