"""Guardian consent for minors: the organisation's age rule (default under 18), the
consents it covers, and the guardian's details (docs/minors.md)."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from domain.minors import (
    ConsentAgeRuleError,
    GuardianConsentRequiredError,
    GuardianDetailsRequiredError,
)
from domain.patient import Patient
from tests.unit.domain.domain_support import NOW, T0, new_patient

PARTNER = UUID("00000000-0000-4000-8000-0000000000f1")
# T0 is 2026-03-02: born 2008-03-03 is 17 on T0 (18 the next day); 2008-03-02 is 18.
SEVENTEEN = date(2008, 3, 3)
EIGHTEEN = date(2008, 3, 2)


def _share(patient: Patient, given_by: str, **more: object) -> UUID:
    return patient.grant_consent_given_by(
        given_by=given_by,
        kind="data_sharing",
        partner_organisation_id=PARTNER,
        occurred_at=T0,
        now=NOW,
        **more,  # type: ignore[arg-type]
    )


def test_a_minors_data_sharing_consent_given_by_the_minor_is_refused_and_nothing_written() -> None:
    patient = new_patient(birth_date=SEVENTEEN)
    patient.collect_events()
    with pytest.raises(GuardianConsentRequiredError) as refused:
        _share(patient, "patient")
    assert refused.value.field == "given_by"
    assert patient.collect_events() == [] and patient.consents == {}


@pytest.mark.parametrize("kind", ["data_sharing", "cocm_treatment"])
def test_a_consent_that_does_not_say_who_gave_it_is_refused_for_a_minor(kind: str) -> None:
    patient = new_patient(birth_date=SEVENTEEN)
    patient.collect_events()
    with pytest.raises(GuardianConsentRequiredError) as refused:
        patient.grant_consent(
            kind=kind, method="written", partner_organisation_id=PARTNER, occurred_at=T0, now=NOW
        )
    assert refused.value.field == "kind"
    assert patient.collect_events() == [] and patient.consents == {}
    # The organisation's rule decides here too: under 17 only, so 17 consents alone.
    consent_id = patient.grant_consent(
        kind=kind,
        method="written",
        partner_organisation_id=PARTNER,
        occurred_at=T0,
        now=NOW,
        guardian_consent_under=17,
    )
    assert patient.consents[consent_id].is_active()


def test_on_the_eighteenth_birthday_the_patient_consents_for_themselves() -> None:
    patient = new_patient(birth_date=EIGHTEEN)
    consent_id = _share(patient, "patient")
    assert patient.consents[consent_id].is_active()


def test_a_guardian_consents_for_a_minor_and_the_record_says_who() -> None:
    patient = new_patient(birth_date=SEVENTEEN)
    patient.collect_events()
    consent_id = patient.grant_consent_given_by(
        given_by="guardian",
        relationship="parent",
        giver_name="A Parent",
        kind="cocm_treatment",
        method="written",
        occurred_at=T0,
        now=NOW,
    )
    events = patient.collect_events()
    assert [type(e).__name__ for e in events] == ["ConsentGranted", "ConsentGiverRecorded"]
    giver = events[1]
    assert isinstance(giver, Patient.ConsentGiverRecorded)
    assert (giver.consent_id, giver.given_by, giver.relationship, giver.giver_name) == (
        consent_id,
        "guardian",
        "parent",
        "A Parent",
    )
    assert giver.guardian_consent_under == 18


def test_the_organisations_age_rule_decides() -> None:
    """An organisation in a state where 16-year-olds consent (rule: guardian under 16)."""
    patient = new_patient(birth_date=date(2009, 6, 1))  # 16 on T0
    assert _share(patient, "patient", guardian_consent_under=16)
    with pytest.raises(GuardianConsentRequiredError):
        _share(patient, "patient", guardian_consent_under=17)
    with pytest.raises(ConsentAgeRuleError):
        _share(patient, "patient", guardian_consent_under=11)


def test_a_minors_part2_consent_is_not_covered_by_the_rule() -> None:
    patient = new_patient(birth_date=SEVENTEEN)
    assert patient.grant_consent_given_by(given_by="patient", kind="part2", occurred_at=T0,
                                          now=NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("more", "field"),
    [({"giver_name": "A Parent"}, "relationship"), ({"relationship": "parent"}, "giver_name")],
)
def test_a_guardians_consent_names_the_guardian_and_relationship(
    more: dict[str, str], field: str
) -> None:
    patient = new_patient(birth_date=SEVENTEEN)
    with pytest.raises(GuardianDetailsRequiredError) as missing:
        _share(patient, "guardian", **more)
    assert missing.value.field == field


# --- measurement reminders (patient channel) -------------------------------------------


def test_a_reminder_is_emitted_only_when_the_measure_is_due() -> None:
    from datetime import timedelta

    from domain.minors import MeasurementNotDueError
    from tests.unit.domain.domain_support import day, enrolled_patient

    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=[1] * 9, occurred_at=day(2), now=NOW)
    patient.collect_events()
    # 30 days after the last PHQ-9 it is not due yet; on day 31 it is.
    with pytest.raises(MeasurementNotDueError) as early:
        patient.remind_measurement(
            instrument="phq9", due_after_days=30, occurred_at=day(32), now=NOW
        )
    assert early.value.field == "instrument" and patient.collect_events() == []
    reminder = patient.remind_measurement(
        instrument="phq9", due_after_days=30, occurred_at=day(33), now=NOW
    )
    (event,) = patient.collect_events()
    assert isinstance(event, Patient.MeasurementReminderDue)
    assert (event.reminder_id, event.instrument, event.due_on) == (
        reminder,
        "phq9",
        (day(33)).date(),
    )
    # A GAD-7 never measured is due at once.
    assert patient.remind_measurement(
        instrument="gad7", due_after_days=30, occurred_at=day(3) + timedelta(hours=1), now=NOW
    )
