"""Review queue, PCP panel, trackers and outcomes on real PostgreSQL, for the clock's day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.consultation import ConsultationNote
from domain.referral import Referral
from services.auth import Role
from services.seed import DemoTeam, seed_demo
from tests.integration.readmodels_support import (
    CARE_MANAGER,
    NOW,
    ORG,
    PCP,
    PSYCHIATRIST,
    Clinic,
    day,
    on,
    open_clinic,
    phq9,
)


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        opened.today = day(0)
        yield opened


def screened(n: int, total: int, item9: int = 0, recorded: int | None = None) -> Any:
    return lambda p: p.record_screening(
        instrument="phq9",
        answers=phq9(total, item9=item9),
        occurred_at=day(n),
        now=day(recorded if recorded is not None else n),
    )


def contacted(n: int) -> Any:
    return lambda p: p.log_contact(
        activity="contact", modality="phone", minutes=15, occurred_at=day(n), now=day(n)
    )


def reviewed(n: int) -> Any:
    return lambda p: p.record_case_review(
        consultant_id=PSYCHIATRIST, occurred_at=day(n), now=day(n)
    )


async def four_patients(clinic: Clinic) -> dict[str, UUID]:
    """Safety risk, not improving, newly enrolled, and calm (reviewed, improving)."""
    safety = await clinic.patient(family_name="Safety", enrolled_at=day(-40))
    slow = await clinic.patient(family_name="Slow", enrolled_at=day(-80))
    new = await clinic.patient(family_name="New", enrolled_at=day(-3))
    calm = await clinic.patient(family_name="Calm", enrolled_at=day(-80))
    for pid in (safety, slow, calm):
        await clinic.on_patient(pid, reviewed(-39))
    await clinic.on_patient(safety, screened(-40, 16))
    await clinic.on_patient(safety, screened(-1, 12, item9=1))
    await clinic.on_patient(slow, screened(-80, 20))
    await clinic.on_patient(slow, screened(-5, 16))
    await clinic.on_patient(calm, screened(-80, 20))
    await clinic.on_patient(calm, screened(-5, 6))
    for pid in (safety, slow, new, calm):
        await clinic.on_patient(pid, contacted(-2))
    return {"safety": safety, "slow": slow, "new": new, "calm": calm}


REVIEW_QUEUE = """
query($first: Int!, $after: String) {
  reviewQueue(first: $first, after: $after) {
    asOf totalCount pageInfo { hasNextPage endCursor }
    patients { priority patient { familyName reviewReasons } }
    notesToDraft { id status steps { name actor dueOn overdue } }
    notesToSign { id status steps { name dueOn overdue } }
  }
}"""


async def test_the_review_queue_puts_safety_first_then_not_improving_then_new(
    clinic: Clinic,
) -> None:
    """The calm, reviewed patient is not on it; the order holds across pages."""
    await four_patients(clinic)
    await clinic.catch_up()
    first = await clinic.query(
        REVIEW_QUEUE, {"first": 2, "after": None}, role=Role.PSYCHIATRIST, user=PSYCHIATRIST
    )
    queue = first["reviewQueue"]
    assert queue["totalCount"] == 3
    second = await clinic.query(
        REVIEW_QUEUE,
        {"first": 2, "after": queue["pageInfo"]["endCursor"]},
        role=Role.PSYCHIATRIST,
        user=PSYCHIATRIST,
    )
    entries = queue["patients"] + second["reviewQueue"]["patients"]
    assert [(e["priority"], e["patient"]["familyName"]) for e in entries] == [
        ("SAFETY_RISK", "Safety"),
        ("NOT_IMPROVING", "Slow"),
        ("NEW_ENROLLMENT", "New"),
    ]
    assert "safety_risk" in entries[0]["patient"]["reviewReasons"]


async def test_the_review_queue_lists_notes_to_draft_and_to_sign_with_their_due_days(
    clinic: Clinic,
) -> None:
    """A request without a named consultant goes to the patient's psychiatrist."""
    patients = await four_patients(clinic)
    asked = ConsultationNote.request(
        patient_id=patients["slow"],
        requested_by=CARE_MANAGER,
        question="next step?",
        occurred_at=day(-9),
        now=NOW,
    )
    drafted = ConsultationNote.request(
        patient_id=patients["new"],
        requested_by=CARE_MANAGER,
        consultant_id=PSYCHIATRIST,
        question="start medication?",
        occurred_at=day(-2),
        now=NOW,
    )
    drafted.draft(author_id=PSYCHIATRIST, content="draft", occurred_at=day(-1), now=NOW)
    await clinic.create(asked)
    await clinic.create(drafted)
    await clinic.catch_up()
    data = await clinic.query(
        REVIEW_QUEUE, {"first": 10, "after": None}, role=Role.PSYCHIATRIST, user=PSYCHIATRIST
    )
    queue = data["reviewQueue"]
    (to_draft,) = queue["notesToDraft"]
    assert to_draft["id"] == str(asked.id)
    assert to_draft["steps"] == [
        {"name": "draft", "actor": "psychiatric_consultant", "dueOn": str(on(-2)), "overdue": True}
    ]
    (to_sign,) = queue["notesToSign"]
    assert to_sign["steps"][0]["name"] == "sign" and not to_sign["steps"][0]["overdue"]


PANEL = """
{ panel {
    asOf
    patients { familyName safetyRisk safetyFlags { ruleId } latestPhq9 { total }
               recommendationsAwaiting openReferrals overdueReferrals }
    consultationsAwaiting { patientId status steps { name actor overdue } }
    referrals { patientId status overdue nextStep { name actor dueOn overdue } }
} }"""


async def test_the_pcp_panel_shows_safety_alerts_recommendations_and_overdue_referrals(
    clinic: Clinic,
) -> None:
    """Safety first; a signed note waits for acknowledgement; a late referral is overdue."""
    patients = await four_patients(clinic)
    note = ConsultationNote.request(
        patient_id=patients["slow"],
        requested_by=CARE_MANAGER,
        question="change?",
        occurred_at=day(-12),
        now=NOW,
    )
    note.draft(author_id=PSYCHIATRIST, content="note", occurred_at=day(-11), now=NOW)
    note.add_recommendation(text="switch medication", occurred_at=day(-11), now=NOW)
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(-10), now=NOW)
    referral = Referral.request(
        patient_id=patients["slow"],
        service="psychotherapy",
        reason="therapy",
        expected_by=on(-1),
        occurred_at=day(-30),
        now=NOW,
    )
    referral.send(occurred_at=day(-29), now=NOW)
    await clinic.create(note)
    await clinic.create(referral)
    await clinic.catch_up()
    panel = (await clinic.query(PANEL, role=Role.PCP, user=PCP))["panel"]
    names = [p["familyName"] for p in panel["patients"]]
    assert names[0] == "Safety" and sorted(names[1:]) == ["Calm", "New", "Slow"]
    assert panel["patients"][0]["safetyRisk"] and panel["patients"][0]["safetyFlags"]
    slow = next(p for p in panel["patients"] if p["familyName"] == "Slow")
    assert (slow["recommendationsAwaiting"], slow["openReferrals"], slow["overdueReferrals"]) == (
        1,
        1,
        1,
    )
    (awaiting,) = panel["consultationsAwaiting"]
    assert awaiting["steps"] == [{"name": "acknowledge", "actor": "pcp", "overdue": True}]
    (open_referral,) = panel["referrals"]
    assert open_referral["overdue"] and open_referral["nextStep"]["name"] == "answer"


async def test_the_referral_tracker_filters_overdue_loops_and_follows_the_clock(
    clinic: Clinic,
) -> None:
    """Yesterday's on-time referral is overdue once its expected day has passed."""
    pid = await clinic.patient()
    referral = Referral.request(
        patient_id=pid,
        service="specialty_psychiatry",
        reason="assessment",
        expected_by=on(20),
        occurred_at=day(0),
        now=NOW,
    )
    await clinic.create(referral)
    await clinic.run(Referral, referral.id, lambda r: r.send(occurred_at=day(1), now=NOW))
    await clinic.catch_up()
    query = "{ referralTracker(overdueOnly: true) { id nextStep { name } } }"
    assert (await clinic.query(query, at=day(14)))["referralTracker"] == []
    late = (await clinic.query(query, at=day(21)))["referralTracker"]
    assert late == [{"id": str(referral.id), "nextStep": {"name": "answer"}}]


OUTCOMES = """
query($asOf: Date) {
  outcomes(asOf: $asOf) {
    asOf
    byCareManager { careManagerId episodes twelveWeeks { final response remission } }
    episodes { baseline { total } twelveWeeks { counted { total } response remission } }
  }
}"""


async def test_outcomes_recompute_when_a_score_in_the_window_is_recorded_late(
    clinic: Clinic,
) -> None:
    """A day-90 score entered weeks later becomes the one that counts at 12 weeks."""
    pid = await clinic.patient()
    await clinic.on_patient(pid, screened(0, 18))
    await clinic.on_patient(pid, screened(84, 8))
    await clinic.catch_up()
    before = (await clinic.query(OUTCOMES, {"asOf": str(on(120))}))["outcomes"]
    (episode,) = before["episodes"]
    assert episode["twelveWeeks"] == {
        "counted": {"total": 8},
        "response": True,
        "remission": False,
    }
    await clinic.on_patient(pid, screened(90, 3, recorded=115))
    await clinic.catch_up()
    after = (await clinic.query(OUTCOMES, {"asOf": str(on(120))}))["outcomes"]
    assert after["episodes"][0]["twelveWeeks"]["remission"] is True
    (manager,) = after["byCareManager"]
    assert manager["careManagerId"] == str(CARE_MANAGER)
    assert manager["twelveWeeks"] == {"final": 1, "response": 1, "remission": 1}


GAD7_OUTCOMES = """
query($asOf: Date) {
  outcomes(asOf: $asOf) {
    byCareManager { gad7At12Weeks { episodes final response remission }
                    gad7At6Months { episodes final inProgress } }
    episodes { gad7At12Weeks { measureKind counted { total } response remission windowClosed }
               gad7At6Months { windowClosed counted { total } } }
  }
}"""


async def test_outcomes_report_gad7_at_12_weeks_and_6_months(clinic: Clinic) -> None:
    """GAD-7 15 at the index, 7 on day 80 (more than half below: response; not below 5)
    and 4 on day 95 (the latest in days 70-98: response and remission). Asked on day 150
    the 6-month window (days 120-240) is still open; an episode without a GAD-7 has no
    GAD-7 measure and is not counted in the care manager's."""
    pid = await clinic.patient()
    await clinic.on_patient(pid, screened(0, 18))
    for n, total in ((0, 15), (80, 7), (95, 4)):
        answers = [min(3, max(0, total - 3 * i)) for i in range(7)]
        await clinic.on_patient(
            pid,
            lambda p, n=n, answers=answers: p.record_screening(
                instrument="gad7", answers=answers, occurred_at=day(n, 1), now=day(n, 1)
            ),
        )
    other = await clinic.patient()
    await clinic.on_patient(other, screened(0, 12))
    await clinic.catch_up()
    report = (await clinic.query(GAD7_OUTCOMES, {"asOf": str(on(150))}))["outcomes"]
    measured = [e for e in report["episodes"] if e["gad7At12Weeks"] is not None]
    assert len(report["episodes"]) == 2 and len(measured) == 1
    (episode,) = measured
    assert episode["gad7At12Weeks"] == {
        "measureKind": "GAD7_TWELVE_WEEKS",
        "counted": {"total": 4},
        "response": True,
        "remission": True,
        "windowClosed": True,
    }
    assert episode["gad7At6Months"] == {"windowClosed": False, "counted": None}
    (manager,) = report["byCareManager"]
    assert manager["gad7At12Weeks"] == {"episodes": 1, "final": 1, "response": 1, "remission": 1}
    assert manager["gad7At6Months"] == {"episodes": 1, "final": 0, "inProgress": 1}


async def test_the_demo_seed_fills_every_role_view(clinic: Clinic) -> None:
    """Seeded through domain commands: flags, queue order, bills and loops all show."""
    team = DemoTeam(ORG, CARE_MANAGER, PCP, PSYCHIATRIST)
    seeded = await seed_demo(clinic.app, team, now=day(0))
    await clinic.catch_up()
    page = (await clinic.query("{ caseload { totalCount edges { node { flagged } } } }"))[
        "caseload"
    ]
    assert page["totalCount"] == len(seeded.patients)
    queue = await clinic.query(
        REVIEW_QUEUE, {"first": 10, "after": None}, role=Role.PSYCHIATRIST, user=PSYCHIATRIST
    )
    priorities = [e["priority"] for e in queue["reviewQueue"]["patients"]]
    assert priorities[:2] == ["SAFETY_RISK", "NOT_IMPROVING"]
    assert len(queue["reviewQueue"]["notesToDraft"]) == 1
    last_month = (on(0).replace(day=1) - timedelta(days=1)).replace(day=1)
    bills = await clinic.query(
        "query($m: Date!) { billingSummary(month: $m) { rows { patientId codes { code } } } }",
        {"m": str(last_month)},
    )
    rows = bills["billingSummary"]["rows"]
    codes = {r["patientId"]: [c["code"] for c in r["codes"]] for r in rows}
    assert codes[str(seeded.patients["billing_35_minutes"])] == ["G2214"]
    assert codes[str(seeded.patients["billing_36_minutes"])] == ["99492"]
    panel = (await clinic.query(PANEL, role=Role.PCP, user=PCP))["panel"]
    assert panel["referrals"][0]["overdue"] and panel["consultationsAwaiting"]


async def test_the_paged_tracker_pages_through_overdue_loops_only(clinic: Clinic) -> None:
    """overdueOnly is decided for today in Python (lateness grows with the clock), so the
    page, its cursor and totalCount count only the late loops, oldest request first."""
    pid = await clinic.patient()
    ids = []
    for n, expected in enumerate((on(20), on(40), on(20), on(20))):
        referral = Referral.request(
            patient_id=pid,
            service="specialty_psychiatry",
            reason="assessment",
            expected_by=expected,
            occurred_at=day(n),
            now=NOW,
        )
        await clinic.create(referral)
        # Sent on day 10: the receiving side's answer is due on day 24, so on day 21 only
        # the expected-by day (on(20)) makes a loop late.
        await clinic.run(Referral, referral.id, lambda r: r.send(occurred_at=day(10), now=NOW))
        ids.append(str(referral.id))
    await clinic.catch_up()
    query = """query($after: String) { referralTrackerPage(overdueOnly: true, first: 2,
      after: $after) { ... on ReferralTrackerConnection { totalCount
        pageInfo { hasNextPage endCursor } edges { node { id overdue } } } } }"""
    first = (await clinic.query(query, at=day(21)))["referralTrackerPage"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    rest = (await clinic.query(query, {"after": first["pageInfo"]["endCursor"]}, at=day(21)))[
        "referralTrackerPage"
    ]
    assert rest["totalCount"] == 3 and not rest["pageInfo"]["hasNextPage"]
    seen = [e["node"] for e in first["edges"] + rest["edges"]]
    assert [n["id"] for n in seen] == [ids[0], ids[2], ids[3]]  # the second is not late
    assert all(n["overdue"] for n in seen)
