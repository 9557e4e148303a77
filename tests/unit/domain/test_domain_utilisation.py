"""System-level utilisation on the Patient aggregate (issue #19 item 3): the kind and the
source are closed sets; the effective day is neither in the future (after today anywhere
on Earth, UTC+14) nor before the patient's birth; an error writes nothing."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain.errors import (
    InvalidEnumValueError,
    InvalidPayloadValueError,
    OccurredBeforeBirthError,
    OccurredInFutureError,
)
from domain.patient import Patient
from domain.rules.outcomes import UtilisationKind, UtilisationSource
from tests.unit.domain.domain_support import NOW, assert_replays, day, new_patient


def record(patient: Patient, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "kind": UtilisationKind.EMERGENCY_VISIT,
        "source": UtilisationSource.CLAIMS,
        "effective_on": date(2025, 6, 1),
        "occurred_at": day(2),
        "now": NOW,
    }
    args.update(overrides)
    return patient.record_utilisation(**args)


def test_a_visit_is_recorded_with_its_kind_source_and_day_and_replays() -> None:
    patient = new_patient()
    utilisation_id = record(patient, kind="hospitalisation", source="ehr")
    events = patient.collect_events()
    last = events[-1]
    assert isinstance(last, Patient.UtilisationRecorded)
    assert (last.utilisation_id, last.kind, last.source, last.effective_on) == (
        utilisation_id,
        "hospitalisation",
        "ehr",
        date(2025, 6, 1),
    )
    assert_replays(patient, events)


def test_before_enrollment_is_allowed_the_before_window_is_the_point() -> None:
    patient = new_patient()  # registered, not enrolled
    record(patient, effective_on=date(2024, 1, 1))
    assert isinstance(patient.collect_events()[-1], Patient.UtilisationRecorded)


@pytest.mark.parametrize(
    ("now", "day_given", "allowed"),
    [
        # 09:59 UTC is 23:59 at UTC+14: today there is still the UTC date.
        (datetime(2026, 12, 31, 9, 59, tzinfo=UTC), date(2026, 12, 31), True),
        (datetime(2026, 12, 31, 9, 59, tzinfo=UTC), date(2027, 1, 1), False),
        # 10:00 UTC is midnight at UTC+14: the next day has begun there.
        (datetime(2026, 12, 31, 10, 0, tzinfo=UTC), date(2027, 1, 1), True),
        (datetime(2026, 12, 31, 10, 0, tzinfo=UTC), date(2027, 1, 2), False),
    ],
)
def test_a_day_in_the_future_is_a_validation_error_on_effective_on(
    now: datetime, day_given: date, allowed: bool
) -> None:
    patient = new_patient()
    patient.collect_events()
    if allowed:
        record(patient, effective_on=day_given, occurred_at=now - timedelta(hours=1), now=now)
        assert len(patient.collect_events()) == 1
        return
    with pytest.raises(OccurredInFutureError) as raised:
        record(patient, effective_on=day_given, occurred_at=now - timedelta(hours=1), now=now)
    assert raised.value.field == "effectiveOn"
    assert patient.collect_events() == []


def test_a_day_before_birth_is_a_validation_error_the_birth_day_is_not() -> None:
    patient = new_patient()
    patient.collect_events()
    with pytest.raises(OccurredBeforeBirthError) as raised:
        record(patient, effective_on=date(1980, 5, 16))
    assert raised.value.field == "effectiveOn"
    assert patient.collect_events() == []
    record(patient, effective_on=date(1980, 5, 17))
    assert len(patient.collect_events()) == 1


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"kind": "clinic_visit"}, InvalidEnumValueError, "kind"),
        ({"source": "rumour"}, InvalidEnumValueError, "source"),
        (
            {"effective_on": datetime(2025, 6, 1, tzinfo=UTC)},
            InvalidPayloadValueError,
            "effectiveOn",
        ),
    ],
)
def test_a_code_outside_its_closed_set_or_a_non_date_is_refused(
    overrides: dict[str, Any], error: type[Exception], field: str
) -> None:
    patient = new_patient()
    patient.collect_events()
    with pytest.raises(error) as raised:
        record(patient, **overrides)
    assert getattr(raised.value, "field", None) == field
    assert patient.collect_events() == []
