"""The billing projection: stored facts and minutes, codes derived for any month."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest

from domain.care_plan import CarePlan
from domain.patient import Patient
from projections.billing import LoggedMinutes, bill_patient_month, code_summary, evolve
from tests.unit.projections.projection_support import (
    NOW,
    PCP,
    PSYCHIATRIST,
    Log,
    enrolled_patient,
    fold,
    phq9,
)

MARCH = date(2026, 3, 1)
APRIL = date(2026, 4, 1)


def at(month: date, day_of_month: int) -> datetime:
    return datetime(month.year, month.month, day_of_month, 10, 0, tzinfo=UTC)


def documented_patient(*, consent: bool = True, visit: datetime | None = None) -> Patient:
    """Enrolled 2 March 2026 with the PCP's initiating visit (``visit``, default 1 March),
    consent, an initial PHQ-9 and a March case review."""
    patient = enrolled_patient()
    patient.record_initiating_visit(
        practitioner_id=PCP,
        visit_kind="evaluation_and_management",
        occurred_at=visit or at(MARCH, 1),
        now=NOW,
    )
    if consent:
        patient.grant_consent(
            kind="cocm_treatment",
            method="verbal",
            cost_sharing_explained=True,
            occurred_at=at(MARCH, 2),
            now=NOW,
        )
    patient.record_screening(instrument="phq9", answers=phq9(15), occurred_at=at(MARCH, 2), now=NOW)
    patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=at(MARCH, 9), now=NOW)
    return patient


def with_care_plan(log: Log, patient: Patient) -> None:
    plan = CarePlan.create(
        patient_id=patient.id, episode_number=1, occurred_at=at(MARCH, 3), now=NOW
    )
    log.take(plan)


def minutes(*entries: tuple[datetime, int]) -> list[LoggedMinutes]:
    return [LoggedMinutes(uuid4(), when, m, "contact", 1) for when, m in entries]


def facts_of(patient: Patient, *, care_plan: bool = True) -> dict[str, Any]:
    log = Log()
    log.take(patient)
    if care_plan:
        with_care_plan(log, patient)
    return fold(evolve, log.records)


def codes(facts: dict[str, Any], entries: Sequence[LoggedMinutes], month: date) -> list[Any]:
    row = bill_patient_month(facts, entries, month)
    assert row.billing is not None
    return [tuple(c) for c in row.billing.codes]


def test_thirty_five_minutes_in_the_first_month_bill_g2214_and_thirty_six_bill_99492() -> None:
    """The midpoint rule: 36 minutes of the 70 typical make the first-month code."""
    facts = facts_of(documented_patient())
    assert codes(facts, minutes((at(MARCH, 10), 35)), MARCH) == [("G2214", 1)]
    assert codes(facts, minutes((at(MARCH, 10), 36)), MARCH) == [("99492", 1)]


def test_a_later_month_bills_99493_from_thirty_one_minutes() -> None:
    """The month after the episode's first month is a later month."""
    facts = facts_of(documented_patient())
    assert codes(facts, minutes((at(APRIL, 3), 30)), APRIL) == [("G2214", 1)]
    assert codes(facts, minutes((at(APRIL, 3), 31)), APRIL) == [("99493", 1)]


def test_a_past_month_is_re_derived_from_its_own_entries_only() -> None:
    """April's entries never change March's bill, asked for at any time."""
    facts = facts_of(documented_patient())
    entries = minutes((at(MARCH, 10), 40), (at(APRIL, 10), 90))
    assert codes(facts, entries, MARCH) == [("99492", 1)]
    assert codes(facts, entries, APRIL) == [("99493", 1), ("99494", 1)]


def test_without_consent_minutes_show_but_no_code_is_billable() -> None:
    """Consent comes first: the time is reported as before consent, consent as missing."""
    row = bill_patient_month(
        facts_of(documented_patient(consent=False)), minutes((at(MARCH, 10), 50)), MARCH
    )
    assert row.billing is not None
    assert row.billing.codes == () and not row.billing.billable
    assert row.billing.minutes_before_consent == 50
    assert [m.value for m in row.billing.missing_documentation] == ["consent"]


def test_consent_recorded_late_with_an_earlier_effective_day_re_derives_the_month() -> None:
    """A consent obtained on the 2nd but entered on the 20th covers minutes from the 2nd."""
    patient = documented_patient(consent=False)
    log = Log()
    log.take(patient)
    with_care_plan(log, patient)
    entries = minutes((at(MARCH, 5), 40))
    before = bill_patient_month(fold(evolve, log.records), entries, MARCH)
    assert before.billing is not None and not before.billing.billable
    patient.grant_consent(
        kind="cocm_treatment",
        method="written",
        cost_sharing_explained=True,
        occurred_at=at(MARCH, 2),
        now=at(MARCH, 20),
    )
    log.take(patient)
    after = bill_patient_month(fold(evolve, log.records), entries, MARCH)
    assert after.billing is not None and after.billing.billable
    assert after.consent_on == date(2026, 3, 2)


def test_a_consent_without_cost_sharing_explained_does_not_count() -> None:
    """docs/clinical-rules.md: consent is verbal or written *with* cost sharing explained."""
    patient = documented_patient(consent=False)
    patient.grant_consent(
        kind="cocm_treatment",
        method="verbal",
        cost_sharing_explained=False,
        occurred_at=at(MARCH, 2),
        now=NOW,
    )
    row = bill_patient_month(facts_of(patient), minutes((at(MARCH, 10), 40)), MARCH)
    assert row.consent_on is None and row.billing is not None and not row.billing.billable


def test_minutes_after_a_revocation_are_left_out_of_the_month() -> None:
    """Time after the patient withdrew consent is shown apart and never billed."""
    patient = documented_patient()
    (consent_id,) = patient.consents
    patient.revoke_consent(consent_id=consent_id, occurred_at=at(MARCH, 15), now=NOW)
    entries = minutes((at(MARCH, 10), 30), (at(MARCH, 20), 30))
    row = bill_patient_month(facts_of(patient), entries, MARCH)
    assert row.minutes_after_revocation == 30
    assert row.billing is not None and row.billing.counted_minutes == 30
    assert [tuple(c) for c in row.billing.codes] == [("G2214", 1)]


def test_missing_documentation_is_listed_without_hiding_the_code() -> None:
    """No care plan and no April case review: listed, and 99493 still stands."""
    facts = facts_of(documented_patient(), care_plan=False)
    row = bill_patient_month(facts, minutes((at(APRIL, 10), 40)), APRIL)
    assert row.billing is not None
    assert [tuple(c) for c in row.billing.codes] == [("99493", 1)]
    assert [m.value for m in row.billing.missing_documentation] == [
        "care_plan",
        "psychiatric_consultant_review",
    ]
    assert row.billing.billable and not row.billing.ready_to_submit


def test_minutes_during_an_inpatient_stay_do_not_count() -> None:
    """Time while the patient is in hospital is logged but not counted."""
    patient = documented_patient()
    patient.admit_inpatient(occurred_at=at(MARCH, 12), now=NOW)
    patient.discharge_inpatient(occurred_at=at(MARCH, 16), now=NOW)
    entries = minutes((at(MARCH, 10), 20), (at(MARCH, 14), 30), (at(MARCH, 18), 20))
    row = bill_patient_month(facts_of(patient), entries, MARCH)
    assert row.billing is not None
    assert (row.billing.inpatient_minutes, row.billing.counted_minutes) == (30, 40)
    assert [tuple(c) for c in row.billing.codes] == [("99492", 1)]


def test_a_new_episode_has_its_own_first_month() -> None:
    """After a discharge, the next enrollment's month bills the first-month code again."""
    patient = documented_patient()
    patient.discharge(reason="completed", occurred_at=at(APRIL, 1), now=NOW)
    june = date(2026, 6, 1)
    patient.enroll(occurred_at=at(june, 2), now=NOW)
    entries = [LoggedMinutes(uuid4(), at(june, 5), 40, "contact", 2)]
    row = bill_patient_month(facts_of(patient), entries, june)
    assert row.episode_number == 2 and row.billing is not None and row.billing.first_month
    assert [tuple(c) for c in row.billing.codes] == [("99492", 1)]


def test_a_month_before_the_episode_has_no_bill() -> None:
    """Nothing is billed before the episode's first month."""
    row = bill_patient_month(facts_of(documented_patient()), [], date(2026, 2, 1))
    assert row.billing is None


def test_the_code_summary_adds_units_of_billable_rows_only() -> None:
    """Totals count what can be billed."""
    billable = bill_patient_month(
        facts_of(documented_patient()), minutes((at(MARCH, 10), 120)), MARCH
    )
    unconsented = bill_patient_month(
        facts_of(documented_patient(consent=False)), minutes((at(MARCH, 10), 120)), MARCH
    )
    assert code_summary([billable, unconsented]) == {"99492": 1, "99494": 2}


@pytest.mark.parametrize(
    ("visit", "documented"),
    [
        # 365 days before the episode's start (2 March 2026): still initiates it.
        (datetime(2025, 3, 2, 10, 0, tzinfo=UTC), True),
        # One day more than a year before: the patient needs a new initiating visit.
        (datetime(2025, 3, 1, 10, 0, tzinfo=UTC), False),
        # After the start, within the billed month: documented from then on.
        (datetime(2026, 3, 31, 10, 0, tzinfo=UTC), True),
    ],
)
def test_an_initiating_visit_counts_within_a_year_before_the_episode_or_since(
    visit: datetime, documented: bool
) -> None:
    """CMS (MLN909432): an initiating visit for patients not seen within a year before BHI
    services start; without one the month lists it as missing and is not ready."""
    row = bill_patient_month(
        facts_of(documented_patient(visit=visit)), minutes((at(MARCH, 10), 40)), MARCH
    )
    assert row.billing is not None and [tuple(c) for c in row.billing.codes] == [("99492", 1)]
    missing = [m.value for m in row.billing.missing_documentation]
    assert missing == ([] if documented else ["initiating_visit"])
    assert row.billing.ready_to_submit is documented


def test_an_initiating_visit_after_the_month_does_not_document_it() -> None:
    """A visit recorded on 1 April does not initiate March's services."""
    row = bill_patient_month(
        facts_of(documented_patient(visit=at(APRIL, 1))), minutes((at(MARCH, 10), 40)), MARCH
    )
    assert row.billing is not None
    assert [m.value for m in row.billing.missing_documentation] == ["initiating_visit"]
