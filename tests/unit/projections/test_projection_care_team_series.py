"""The care-team facts the outcomes read model keeps per patient (care manager history,
episodes, contacts, reviews, PHQ screens), the series per care manager and month built
from them, the default month range, and the CSV's small-cell blanking."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from projections.care_team_series import care_team_series
from projections.clinic_calendar import day_of
from projections.outcomes_series import evolve
from services.api.registry.care_team import (
    CareTeamResult,
    RangeError,
    SeriesDimension,
    month_range,
)
from services.api.registry.care_team_charts import care_team_csv_text, care_team_svg
from tests.unit.projections.projection_support import (
    CARE_MANAGER,
    NOW,
    PSYCHIATRIST,
    T0,
    Log,
    day,
    enrolled_patient,
    fold,
    phq9,
)

OTHER = UUID("00000000-0000-4000-8000-0000000000d4")


def test_the_document_keeps_care_team_facts_without_names() -> None:
    patient = enrolled_patient()
    patient.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=day(1), now=NOW
    )
    patient.log_contact(
        activity="outreach", modality="phone", minutes=5, occurred_at=day(2), now=NOW
    )
    patient.record_case_review(consultant_id=PSYCHIATRIST, occurred_at=day(3), now=NOW)
    patient.record_screening(instrument="phq2", answers=[2, 2], occurred_at=day(4), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(14), occurred_at=day(4), now=NOW)
    patient.assign_care_team(care_manager_id=OTHER, occurred_at=day(5), now=NOW)
    patient.discharge(reason="completed", occurred_at=day(6), now=NOW)
    log = Log()
    log.take(patient)
    doc = fold(evolve, log.records)
    assert doc["birth_date"] == "1980-05-17"
    assert doc["managers"] == [
        [day_of(day(-7)).isoformat(), str(CARE_MANAGER)],
        [day_of(day(5)).isoformat(), str(OTHER)],
    ]
    assert doc["episodes"] == [
        {
            "number": 1,
            "started_at": T0.isoformat(),
            "enrolled_on": day_of(T0).isoformat(),
            "ended_on": day_of(day(6)).isoformat(),
        }
    ]
    assert doc["contacts"] == [[day_of(day(1)).isoformat(), 1]]  # not the outreach
    assert doc["reviews"] == [[day_of(day(3)).isoformat(), 1]]
    assert [s[1:] for s in doc["screens"]] == [["phq2", 4, True, 1], ["phq9", 14, False, 1]]
    assert "given_name" not in doc and "mrn" not in doc


def _doc(**facts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "patient_id": "00000000-0000-4000-8000-000000000001",
        "organisation_id": "00000000-0000-4000-8000-00000000000a",
        "enrolled_on": None,
        "events": [],
        "gad7": [],
        "birth_date": "1980-01-01",
        "managers": [],
        "episodes": [],
        "contacts": [],
        "reviews": [],
        "screens": [],
    }
    return base | facts


def test_a_patient_handed_over_mid_month_counts_under_the_new_care_manager() -> None:
    doc = _doc(
        managers=[["2026-01-05", str(CARE_MANAGER)], ["2026-02-20", str(OTHER)]],
        episodes=[
            {
                "number": 1,
                "started_at": "2026-01-05T12:00:00+00:00",
                "enrolled_on": "2026-01-05",
                "ended_on": None,
            }
        ],
        contacts=[["2026-02-03", 1]],
    )
    series, counted = care_team_series(
        [doc], [(2026, 1), (2026, 2)], date(2026, 6, 1), by_care_manager=True
    )
    by_manager = {s.care_manager_id: s.months for s in series}
    assert by_manager[CARE_MANAGER][0].caseload == 1 and by_manager[CARE_MANAGER][0].enrolled == 1
    assert by_manager[CARE_MANAGER][1].caseload == 0  # February is the new manager's
    assert by_manager[OTHER][1].caseload == 1 and by_manager[OTHER][1].contacted == 1
    assert counted == {UUID(doc["patient_id"])}


def test_a_positive_screen_still_within_30_days_is_open_and_later_months_are_not_shown() -> None:
    doc = _doc(screens=[["2026-03-20T12:00:00+00:00", "phq2", 3, True, None]])
    months = [(2026, 3), (2026, 4), (2026, 5)]
    series, _ = care_team_series([doc], months, date(2026, 4, 1), by_care_manager=False)
    (organisation,) = series
    assert organisation.care_manager_id is None
    assert [(m.year, m.month) for m in organisation.months] == [(2026, 3), (2026, 4)]
    march = organisation.months[0]
    assert (march.dsf_e.eligible, march.dsf_e.met, march.dsf_e.open) == (1, 0, 1)
    assert march.dsf_e.not_met == 0


def test_a_document_stored_before_the_care_team_facts_reads_as_empty() -> None:
    old = {
        "patient_id": "00000000-0000-4000-8000-000000000001",
        "organisation_id": "00000000-0000-4000-8000-00000000000a",
        "enrolled_on": "2026-01-05",
        "events": [],
        "gad7": [],
    }
    series, counted = care_team_series([old], [(2026, 1)], date(2026, 2, 1), by_care_manager=False)
    assert series[0].months[0].caseload == 0 and counted == set()


def test_the_default_range_is_the_twelve_months_ending_with_as_of() -> None:
    months = month_range(None, None, date(2026, 12, 1))
    assert months[0] == (2026, 1) and months[-1] == (2026, 12) and len(months) == 12
    assert month_range(None, None, date(2026, 3, 31))[0] == (2025, 4)


def test_a_reversed_or_too_long_range_is_refused() -> None:
    with pytest.raises(RangeError) as reversed_range:
        month_range(date(2026, 5, 1), date(2026, 4, 30), date(2026, 12, 1))
    assert (reversed_range.value.code, reversed_range.value.field) == (
        "RANGE_REVERSED",
        "fromMonth",
    )
    assert len(month_range(date(2023, 2, 1), date(2026, 1, 1), date(2026, 12, 1))) == 36
    with pytest.raises(RangeError) as too_long:
        month_range(date(2023, 1, 1), date(2026, 1, 1), date(2026, 12, 1))
    assert (too_long.value.code, too_long.value.field) == ("RANGE_TOO_LONG", "toMonth")


def _result() -> CareTeamResult:
    doc = _doc(
        managers=[["2026-01-05", str(CARE_MANAGER)]],
        episodes=[
            {
                "number": 1,
                "started_at": "2026-01-05T12:00:00+00:00",
                "enrolled_on": "2026-01-05",
                "ended_on": None,
            }
        ],
        contacts=[["2026-01-06", 1]],
        reviews=[["2026-01-12", 1]],
    )
    series, _ = care_team_series([doc], [(2026, 1)], date(2026, 6, 1), by_care_manager=True)
    return CareTeamResult(date(2026, 6, 1), SeriesDimension.CARE_MANAGER, series)


def test_the_csv_blanks_counts_below_the_threshold_and_what_is_computed_from_them() -> None:
    plain = care_team_csv_text(_result()).splitlines()[1].split(",")
    blanked = care_team_csv_text(_result(), 2).splitlines()[1].split(",")
    assert plain[4:10] == ["1", "1", "1.000", "1", "1", "7"]
    assert blanked[4:10] == ["", "", "", "", "", ""]
    assert blanked[10] == "0"  # a zero is never blanked
    assert care_team_csv_text(_result(), 1) == care_team_csv_text(_result())


def test_the_chart_has_a_point_per_month_with_a_value_and_says_when_there_is_none() -> None:
    svg = care_team_svg(_result(), "median_days_to_psychiatric_review")
    assert f'data-series="{CARE_MANAGER}" data-month="2026-01" data-value="7.000"' in svg
    empty = CareTeamResult(date(2026, 6, 1), SeriesDimension.ORGANISATION, [])
    assert "No values for these months yet." in care_team_svg(empty, "dsf_e")
