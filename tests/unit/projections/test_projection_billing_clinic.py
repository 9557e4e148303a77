"""Billing rows in the clinic's calendar and program, with qualifying time by role."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from domain.patient import Patient
from domain.rules.billing import BillingProgram
from projections.billing import Clinic, LoggedMinutes, bill_patient_month, evolve
from tests.unit.projections.projection_support import NOW, ORG, Log, fold

LA = ZoneInfo("America/Los_Angeles")
LA_CLINIC = Clinic(zone=LA)
OCT = date(2025, 10, 1)
NOV = date(2025, 11, 1)


def facts(enrolled_at: datetime) -> dict[str, Any]:
    """Registered, enrolled and consented (verbal, cost sharing explained) at one instant."""
    patient = Patient.register(
        given_name="Test",
        family_name="Person",
        birth_date=date(1980, 5, 17),
        mrn="MRN-1",
        organisation_id=ORG,
        occurred_at=enrolled_at,
        now=NOW,
    )
    patient.enroll(occurred_at=enrolled_at, now=NOW)
    patient.grant_consent(
        kind="cocm_treatment",
        method="verbal",
        cost_sharing_explained=True,
        occurred_at=enrolled_at,
        now=NOW,
    )
    log = Log()
    log.take(patient)
    return fold(evolve, log.records)


def logged(when: datetime, minutes: int, role: str | None = "care_manager") -> LoggedMinutes:
    return LoggedMinutes(uuid4(), when, minutes, "contact", 1, uuid4(), role)


ENROLLED = datetime(2025, 10, 31, 20, 30, tzinfo=LA)  # 03:30 UTC on 1 November


def test_20_00_local_on_the_last_day_counts_for_that_month_in_the_clinic_zone() -> None:
    doc = facts(ENROLLED)
    evening = datetime(2025, 10, 31, 20, 0, tzinfo=LA)  # 1 November 03:00 UTC
    row = bill_patient_month(doc, [logged(evening, 40)], OCT, clinic=LA_CLINIC)
    assert row.time_zone == "America/Los_Angeles"
    assert row.billing is not None and row.billing.first_month
    assert [tuple(c) for c in row.billing.codes] == [("99492", 1)]
    # In UTC the same contact and the enrollment are November's.
    assert bill_patient_month(doc, [logged(evening, 40)], OCT).entries == ()


def test_the_first_month_follows_the_local_calendar_across_the_end_of_dst() -> None:
    doc = facts(ENROLLED)
    # 01:30 on 2 November 2025, the second (PST) one, after clocks fell back.
    second_0130 = datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=LA)
    assert second_0130.utcoffset() == datetime(2025, 11, 2, 12, tzinfo=LA).utcoffset()
    local_row = bill_patient_month(doc, [logged(second_0130, 35)], NOV, clinic=LA_CLINIC)
    assert local_row.billing is not None and not local_row.billing.first_month
    assert [tuple(c) for c in local_row.billing.codes] == [("99493", 1)]
    utc_row = bill_patient_month(doc, [logged(second_0130, 35)], NOV)
    assert utc_row.billing is not None and utc_row.billing.first_month
    assert [tuple(c) for c in utc_row.billing.codes] == [("G2214", 1)]


def test_the_start_of_dst_keeps_the_day_whole() -> None:
    """8 March 2026: 01:59 PST and 03:00 PDT are the same clinic day, both in March."""
    doc = facts(datetime(2026, 3, 1, 9, tzinfo=LA))
    before = datetime(2026, 3, 8, 1, 59, tzinfo=LA)
    after = datetime(2026, 3, 8, 3, 0, tzinfo=LA)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(minutes=1)
    row = bill_patient_month(
        doc, [logged(before, 20), logged(after, 16)], date(2026, 3, 1), clinic=LA_CLINIC
    )
    assert row.billing is not None and row.billing.counted_minutes == 36
    # The first instant of April in Los Angeles is 07:00 UTC: 06:59 UTC is still March.
    last = datetime(2026, 4, 1, 6, 59, tzinfo=UTC)
    row = bill_patient_month(doc, [logged(last, 5)], date(2026, 3, 1), clinic=LA_CLINIC)
    assert [e.minutes for e in row.entries] == [5]
    row = bill_patient_month(doc, [logged(last, 5)], date(2026, 4, 1), clinic=LA_CLINIC)
    assert row.entries == ()


def test_only_care_manager_time_counts_and_the_rest_is_shown_by_role() -> None:
    doc = facts(ENROLLED)
    day = datetime(2025, 11, 10, 10, tzinfo=LA)
    entries = [
        logged(day, 20),
        logged(day, 30, "pcp"),
        logged(day, 15, "psychiatrist"),
        logged(day, 11, None),  # logged before performers were kept: care manager time
    ]
    row = bill_patient_month(doc, entries, NOV, clinic=LA_CLINIC)
    assert row.billing is not None and row.billing.counted_minutes == 31
    assert row.non_qualifying_minutes == (("pcp", 30), ("psychiatrist", 15))
    assert [tuple(c) for c in row.billing.codes] == [("99493", 1)]


def test_the_program_in_force_is_the_latest_on_or_before_the_month() -> None:
    clinic = Clinic(
        zone=LA,
        programs=((date(2025, 11, 1), BillingProgram.FQHC_RHC), (OCT, BillingProgram.GENERAL_BHI)),
    )
    assert clinic.program_on(date(2025, 9, 1)) is None
    assert clinic.program_on(OCT) is BillingProgram.GENERAL_BHI
    assert clinic.program_on(NOV) is BillingProgram.FQHC_RHC
    doc = facts(ENROLLED)
    day = datetime(2025, 11, 10, 10, tzinfo=LA)
    row = bill_patient_month(doc, [logged(day, 75)], NOV, clinic=clinic)
    assert row.billing is not None and row.billing.program is BillingProgram.FQHC_RHC
    assert [tuple(c) for c in row.billing.codes] == [("G0512", 1)]  # later month, from 60
