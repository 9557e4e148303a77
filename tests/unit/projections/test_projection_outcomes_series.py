"""The outcomes-over-time read model: what a patient's document keeps (first enrollment
day, utilisation events, complete GAD-7 totals), the series computed from documents, and
its CSV and SVG forms (aggregate counts only)."""

from __future__ import annotations

from datetime import date

from domain.rules.outcomes import UtilisationKind, UtilisationSource
from projections.clinic_calendar import day_of
from projections.outcomes_series import evolve, gad7_series, utilisation_series
from services.api.registry.outcomes import Series
from services.api.registry.outcomes_page import CSV_COLUMNS, series_csv, series_svg
from tests.unit.projections.projection_support import (
    NOW,
    T0,
    Log,
    day,
    enrolled_patient,
    fold,
    gad7,
    phq9,
)


def test_the_document_keeps_first_enrollment_utilisation_and_complete_gad7_only() -> None:
    patient = enrolled_patient()
    patient.record_utilisation(
        kind=UtilisationKind.EMERGENCY_VISIT,
        source=UtilisationSource.CLAIMS,
        effective_on=date(2025, 3, 1),
        occurred_at=day(1),
        now=NOW,
    )
    patient.record_screening(instrument="gad7", answers=gad7(12), occurred_at=day(2), now=NOW)
    patient.record_screening(instrument="phq9", answers=phq9(12), occurred_at=day(2), now=NOW)
    log = Log()
    log.take(patient)
    doc = fold(evolve, log.records)
    assert doc["organisation_id"] and doc["patient_id"] == str(patient.id)
    assert doc["enrolled_on"] == day_of(T0).isoformat()
    assert doc["events"] == [["emergency_visit", "2025-03-01"]]
    assert doc["gad7"] == [[day_of(day(2)).isoformat(), 12]]


def _docs() -> list[dict[str, object]]:
    return [
        {"enrolled_on": "2025-01-15", "events": [["emergency_visit", "2024-12-01"]], "gad7": []},
        {
            "enrolled_on": "2025-01-20",
            "events": [["hospitalisation", "2025-02-01"]],
            "gad7": [["2025-01-20", 10], ["2025-03-01", 4]],
        },
        {"enrolled_on": None, "events": [["emergency_visit", "2024-12-01"]], "gad7": []},
    ]


def test_the_series_has_one_row_per_month_and_kind_and_skips_the_never_enrolled() -> None:
    as_of = date(2026, 6, 1)
    rows = utilisation_series(_docs(), as_of)  # type: ignore[arg-type]
    assert [(r.year, r.month, r.kind, r.enrolled) for r in rows] == [
        (2025, 1, kind, 2) for kind in UtilisationKind
    ]
    ed, hosp, _ = rows
    assert (ed.before_events, ed.after_patients, ed.after_events) == (1, 2, 0)
    assert (hosp.before_events, hosp.after_events) == (0, 1)
    gad = gad7_series(_docs(), as_of)  # type: ignore[arg-type]
    assert [(g.with_baseline, g.followed_up, g.response, g.remission) for g in gad] == [
        (1, 1, 1, 1)
    ]


def test_csv_and_svg_carry_the_rates_and_nothing_else() -> None:
    as_of = date(2026, 6, 1)
    docs = _docs()
    series = Series(as_of, utilisation_series(docs, as_of), gad7_series(docs, as_of))  # type: ignore[arg-type]
    lines = series_csv(series).splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1] == "2026-06-01,2025-01,emergency_visit,2,1,500.000,2,0,0.000,1,1,1,1"
    svg = series_svg(series, UtilisationKind.EMERGENCY_VISIT)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<script" not in svg
    assert 'data-month="2025-01" data-window="before" data-per-1000="500.000"' in svg
    empty = series_svg(Series(as_of, [], []), UtilisationKind.HOSPITALISATION)
    assert "No patients enrolled yet." in empty and 'class="bar"' not in empty
