"""billingSummary on real PostgreSQL: minutes stored by effective time, codes derived on read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from domain.care_plan import CarePlan
from tests.integration.readmodels_support import (
    NOW,
    PCP,
    PSYCHIATRIST,
    Clinic,
    open_clinic,
    phq9,
)


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


BILLING = """
query($month: Date!) {
  billingSummary(month: $month) {
    month
    billableUnits { code units }
    rows {
      patientId firstMonth loggedMinutes countedMinutes minutesBeforeConsent
      codes { code units } missingDocumentation billable readyToSubmit ruleVersion
      entries { minutes activity }
    }
  }
}"""


def at(month: int, dom: int) -> datetime:
    return datetime(2026, month, dom, 10, tzinfo=UTC)


async def documented_patient(clinic: Clinic, *, consent: bool = True) -> UUID:
    """Enrolled 2 March with the PCP's initiating visit (1 March), consent, a PHQ-9, a care
    plan and a case review in March."""
    pid = await clinic.patient(enrolled_at=at(3, 2))
    await clinic.on_patient(
        pid,
        lambda p: p.record_initiating_visit(
            practitioner_id=PCP, visit_kind="annual_wellness_visit", occurred_at=at(3, 1), now=NOW
        ),
    )
    if consent:
        await clinic.on_patient(
            pid,
            lambda p: p.grant_consent(
                kind="cocm_treatment",
                method="verbal",
                cost_sharing_explained=True,
                occurred_at=at(3, 2),
                now=NOW,
            ),
        )
    await clinic.on_patient(
        pid,
        lambda p: p.record_screening(
            instrument="phq9", answers=phq9(15), occurred_at=at(3, 2), now=NOW
        ),
    )
    await clinic.on_patient(
        pid,
        lambda p: p.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=at(3, 9), now=NOW),
    )
    await clinic.create(
        CarePlan.create(patient_id=pid, episode_number=1, occurred_at=at(3, 3), now=NOW)
    )
    return pid


async def log_minutes(clinic: Clinic, pid: UUID, when: datetime, minutes: int) -> None:
    await clinic.on_patient(
        pid,
        lambda p: p.log_contact(
            activity="contact", modality="phone", minutes=minutes, occurred_at=when, now=NOW
        ),
    )


async def billing(clinic: Clinic, month: str) -> dict[UUID, dict[str, Any]]:
    data = await clinic.query(BILLING, {"month": month})
    return {UUID(r["patientId"]): r for r in data["billingSummary"]["rows"]}


async def test_thirty_five_minutes_bill_g2214_and_thirty_six_bill_99492_in_a_first_month(
    clinic: Clinic,
) -> None:
    """The midpoint rule over real stored minutes, split over two entries each."""
    short = await documented_patient(clinic)
    enough = await documented_patient(clinic)
    for pid, total in ((short, 35), (enough, 36)):
        await log_minutes(clinic, pid, at(3, 10), 20)
        await log_minutes(clinic, pid, at(3, 20), total - 20)
    await clinic.catch_up()
    rows = await billing(clinic, "2026-03-15")
    assert rows[short]["codes"] == [{"code": "G2214", "units": 1}]
    assert rows[enough]["codes"] == [{"code": "99492", "units": 1}]
    assert rows[enough]["firstMonth"] and rows[enough]["readyToSubmit"]
    assert rows[enough]["ruleVersion"] == "2026.1"
    assert [e["minutes"] for e in rows[enough]["entries"]] == [20, 16]


async def test_a_late_entry_for_a_past_month_changes_that_month_only(clinic: Clinic) -> None:
    """Minutes recorded in April for a March contact move March from G2214 to 99492."""
    pid = await documented_patient(clinic)
    await log_minutes(clinic, pid, at(3, 10), 30)
    await log_minutes(clinic, pid, at(4, 6), 31)
    await clinic.catch_up()
    assert (await billing(clinic, "2026-03-01"))[pid]["codes"] == [{"code": "G2214", "units": 1}]
    await log_minutes(clinic, pid, at(3, 28), 10)
    await clinic.catch_up()
    march = (await billing(clinic, "2026-03-01"))[pid]
    april = (await billing(clinic, "2026-04-01"))[pid]
    assert march["codes"] == [{"code": "99492", "units": 1}]
    assert april["codes"] == [{"code": "99493", "units": 1}] and not april["firstMonth"]
    assert april["missingDocumentation"] == ["psychiatric_consultant_review"]


async def test_without_consent_the_row_shows_minutes_and_missing_consent_but_no_code(
    clinic: Clinic,
) -> None:
    """Unconsented time is visible, never billable, and adds nothing to the totals."""
    pid = await documented_patient(clinic, consent=False)
    await log_minutes(clinic, pid, at(3, 10), 50)
    await clinic.catch_up()
    data = await clinic.query(BILLING, {"month": "2026-03-01"})
    (row,) = data["billingSummary"]["rows"]
    assert row["patientId"] == str(pid)
    assert (row["loggedMinutes"], row["countedMinutes"], row["minutesBeforeConsent"]) == (
        50,
        0,
        50,
    )
    assert row["codes"] == [] and not row["billable"]
    assert row["missingDocumentation"] == ["consent"]
    assert data["billingSummary"]["billableUnits"] == []


async def test_an_enrolled_patient_without_minutes_still_has_a_row_for_the_month(
    clinic: Clinic,
) -> None:
    """The team sees who has no time logged yet this month."""
    pid = await documented_patient(clinic)
    await clinic.catch_up()
    rows = await billing(clinic, "2026-05-01")
    assert rows[pid]["loggedMinutes"] == 0 and rows[pid]["codes"] == []
