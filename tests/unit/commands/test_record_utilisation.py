"""The RecordUtilisation command (services/api/registry/outcomes.py): a frozen dataclass with
a policy row, applied to the patient with its effective time defaulting to now."""

from __future__ import annotations

from datetime import date

from domain.patient import Patient
from domain.rules.outcomes import UtilisationKind, UtilisationSource
from services.api.authz import POLICY
from services.api.registry.outcomes import RecordUtilisation
from tests.unit.domain.domain_support import NOW, new_patient


def test_record_utilisation_names_its_policy_row_and_is_frozen() -> None:
    assert RecordUtilisation.operation in POLICY
    assert RecordUtilisation.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_it_records_the_event_at_now_when_no_effective_time_is_given() -> None:
    patient = new_patient()
    patient.collect_events()
    command = RecordUtilisation(
        patient=patient.id,
        kind=UtilisationKind.SPECIALTY_MENTAL_HEALTH_REFERRAL,
        source=UtilisationSource.PATIENT_REPORT,
        effective_on=date(2026, 12, 30),
    )
    created = command.apply(patient, NOW)
    (event,) = patient.collect_events()
    assert isinstance(event, Patient.UtilisationRecorded)
    assert event.utilisation_id == created and event.occurred_at == NOW
    assert (event.kind, event.source) == ("specialty_mental_health_referral", "patient_report")
    assert command.stream_id == command.patient_id == patient.id
