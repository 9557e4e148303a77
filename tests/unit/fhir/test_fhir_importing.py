"""The import's parsing rules (services/fhir/importing.py): columns, cells, Bundle links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.fhir import importing
from services.fhir.importing import FileError, PatientRecord, Problem, Refused

HEADER = "mrn,given_name,family_name,birth_date,sex,enrolled_on,phq9_1,gad7_1\n"


def one(text: str) -> PatientRecord | Refused:
    (record,) = importing.parse_csv(HEADER + text)
    return record


def test_a_row_becomes_a_patient_with_dated_measures_a_date_at_noon_utc() -> None:
    record = one("M1,Ann,Lee,1980-02-03,female,2026-06-01,2026-06-02 1 2 . 0 1 0 0 0 0,\n")
    assert isinstance(record, PatientRecord)
    assert record.enrolled_at == datetime(2026, 6, 1, 12, tzinfo=UTC)
    (measure,) = record.measures
    assert measure.instrument == "phq9" and measure.field == "phq9_1"
    assert measure.answers == (1, 2, None, 0, 1, 0, 0, 0, 0)


def test_a_date_time_keeps_its_offset_and_commas_separate_answers_too() -> None:
    record = one('M1,Ann,Lee,1980-02-03,,,,"2026-06-02T09:30:00-05:00 1,1,1,1,1,1,1"\n')
    assert isinstance(record, PatientRecord)
    (measure,) = record.measures
    assert measure.occurred_at.utcoffset() == -timedelta(hours=5)
    assert measure.occurred_at.tzinfo != UTC
    assert record.sex is None and record.enrolled_at is None


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("M1,,Lee,1980-02-03,,,,\n", Problem("FIELD_REQUIRED", "given_name")),
        ("M1,Ann,Lee,1980-02-30,,,,\n", Problem("INVALID_DATE", "birth_date")),
        ("M1,Ann,Lee,1980-02-03,woman,,,\n", Problem("INVALID_SEX", "sex")),
        ("M1,Ann,Lee,1980-02-03,,2026-6-1,,\n", Problem("INVALID_DATE", "enrolled_on")),
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02T10:00 1 1 1 1 1 1 1 1 1,\n",
         Problem("INVALID_DATE", "phq9_1")),  # no offset
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02 1 1 1,\n", Problem("INVALID_ANSWERS", "phq9_1")),
        ("M1,Ann,Lee,1980-02-03,,,,2026-06-02 1 1 x 1 1 1 1\n",
         Problem("INVALID_ANSWERS", "gad7_1")),
        ("M1,Ann,Lee,1980-02-03,,,,,extra\n", Problem("TOO_MANY_CELLS", "row")),
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02 28,\n", Problem("TOTAL_OUT_OF_RANGE", "phq9_1")),
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02 -1,\n", Problem("TOTAL_OUT_OF_RANGE", "phq9_1")),
        ("M1,Ann,Lee,1980-02-03,,,,2026-06-02 22\n", Problem("TOTAL_OUT_OF_RANGE", "gad7_1")),
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02 1x,\n", Problem("INVALID_ANSWERS", "phq9_1")),
        ("M1,Ann,Lee,1980-02-03,,,2026-06-02,\n", Problem("INVALID_ANSWERS", "phq9_1")),
    ],
)  # fmt: skip
def test_a_bad_cell_refuses_its_row_naming_the_column(row: str, problem: Problem) -> None:
    assert one(row) == Refused("row 2", (problem,))


@pytest.mark.parametrize(
    ("header", "cell", "total"),
    [
        ("phq9_1", "2026-06-02 0", 0),
        ("phq9_1", "2026-06-02 27", 27),
        ("gad7_1", "2026-06-02 21", 21),
        ("phq2_1", "2026-06-02 6", 6),
        ("phq_a_1", "2026-06-02 27", 27),
    ],
)
def test_a_lone_number_is_a_total_in_the_instruments_range(
    header: str, cell: str, total: int
) -> None:
    """A totals-only registry: a date and one number is the total, no answers."""
    (record,) = importing.parse_csv(
        f"mrn,given_name,family_name,birth_date,{header}\nM1,Ann,Lee,1980-02-03,{cell}\n"
    )
    assert isinstance(record, PatientRecord)
    (measure,) = record.measures
    assert (measure.total, measure.answers, measure.field) == (total, (), header)
    assert measure.occurred_at == datetime(2026, 6, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "cell", "problem"),
    [
        ("phq2_1", "2026-06-02 7", "TOTAL_OUT_OF_RANGE"),
        ("phq_a_1", "2026-06-02 28", "TOTAL_OUT_OF_RANGE"),
        ("asq_1", "2026-06-02 1", "INSTRUMENT_WITHOUT_TOTAL"),
    ],
)
def test_a_total_the_instrument_cannot_have_names_the_column(
    header: str, cell: str, problem: str
) -> None:
    (record,) = importing.parse_csv(
        f"mrn,given_name,family_name,birth_date,{header}\nM1,Ann,Lee,1980-02-03,{cell}\n"
    )
    assert record == Refused("row 2", (Problem(problem, header),))


def test_answers_and_totals_mix_in_one_row() -> None:
    record = one("M1,Ann,Lee,1980-02-03,,,2026-06-02 1 1 1 1 1 1 1 0 0,2026-06-03 9\n")
    assert isinstance(record, PatientRecord)
    phq9, gad7 = record.measures
    assert phq9.total is None and len(phq9.answers) == 9
    assert (gad7.total, gad7.answers) == (9, ())


def test_one_bad_row_leaves_the_others_alone() -> None:
    records = importing.parse_csv(HEADER + "M1,,Lee,1980-02-03,,,,\nM2,Bo,Kim,1990-01-01,,,,\n")
    assert isinstance(records[0], Refused) and isinstance(records[1], PatientRecord)
    assert records[1].ref == "row 3"


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("given_name,family_name,birth_date\n", ("MISSING_COLUMN", "mrn")),
        ("mrn,given_name,family_name,birth_date,phq-9\n", ("UNKNOWN_COLUMN", "phq-9")),
        ("mrn,given_name,family_name,birth_date,phq9_1,phq9_1\n", ("DUPLICATE_COLUMN", "header")),
        ("", ("EMPTY_FILE", "header")),
    ],
)
def test_a_file_level_fault_names_the_column(header: str, error: tuple[str, str]) -> None:
    with pytest.raises(FileError) as caught:
        importing.parse_csv(header)
    assert (caught.value.code, caught.value.field) == error


def _bundle(*entries: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


PATIENT: dict[str, Any] = {
    "fullUrl": "urn:uuid:p",
    "resource": {
        "resourceType": "Patient",
        "identifier": [
            {"type": {"coding": [{"code": "MR"}]}, "value": "M9"},
        ],
        "name": [{"family": "Lee", "given": ["Ann", "B"]}],
        "birthDate": "1980-02-03",
    },
}
QR: dict[str, Any] = {
    "fullUrl": "urn:uuid:q",
    "resource": {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://loinc.org/q/55757-9",
        "status": "completed",
        "subject": {"reference": "urn:uuid:p"},
        "authored": "2026-05-02T10:00:00+00:00",
        "item": [
            {"linkId": "1", "answer": [{"valueInteger": 2}]},
            {"linkId": "2", "answer": [{"valueInteger": 1}]},
        ],
    },
}


def _total(code: str, value: Any, derived: str | None = "urn:uuid:q") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "urn:uuid:p"},
        "valueInteger": value,
    }
    if derived:
        resource["derivedFrom"] = [{"reference": derived}]
    return {"fullUrl": "urn:uuid:o", "resource": resource}


def test_a_bundle_patient_takes_its_questionnaires_and_a_matching_total() -> None:
    (record,) = importing.parse_bundle(_bundle(PATIENT, QR, _total("55758-7", 3)))
    assert isinstance(record, PatientRecord)
    assert (record.mrn, record.given_name, record.family_name) == ("M9", "Ann B", "Lee")
    (measure,) = record.measures
    assert measure.instrument == "phq2" and measure.answers == (2, 1)


@pytest.mark.parametrize(
    ("observation", "problem"),
    [
        (_total("99999-9", 3), Problem("UNKNOWN_CODE", "Bundle.entry[2].resource.code")),
        (_total("55758-7", 7),
         Problem("TOTAL_OUT_OF_RANGE", "Bundle.entry[2].resource.valueInteger")),
        (_total("55758-7", 2), Problem("TOTAL_MISMATCH", "Bundle.entry[2].resource.valueInteger")),
        (_total("44261-6", 3), Problem("TOTAL_MISMATCH", "Bundle.entry[2].resource.code")),
        (_total("55758-7", 3, "urn:uuid:elsewhere"),
         Problem("TOTAL_WITHOUT_ANSWERS", "Bundle.entry[2].resource.derivedFrom")),
    ],
)  # fmt: skip
def test_a_total_that_is_not_its_questionnaires_refuses_the_patient(
    observation: dict[str, Any], problem: Problem
) -> None:
    assert importing.parse_bundle(_bundle(PATIENT, QR, observation)) == [
        Refused("entry 0", (problem,))
    ]


def _alone(code: str, value: Any, **changes: Any) -> dict[str, Any]:
    entry = _total(code, value, None)
    resource = {**entry["resource"], "effectiveDateTime": "2026-04-01T09:00:00-04:00"}
    return {**entry, "resource": {**resource, **changes}}


def test_an_observation_without_derived_from_is_an_imported_total() -> None:
    """A known LOINC total without derivedFrom: a total alone, taken at its
    effectiveDateTime (a date alone at noon UTC)."""
    (record,) = importing.parse_bundle(
        _bundle(
            PATIENT, _alone("44261-6", 27), _alone("70274-6", 0, effectiveDateTime="2026-04-02")
        )
    )
    assert isinstance(record, PatientRecord)
    phq9, gad7 = record.measures
    assert (phq9.instrument, phq9.total, phq9.answers) == ("phq9", 27, ())
    assert phq9.occurred_at == datetime(2026, 4, 1, 13, tzinfo=UTC)
    assert phq9.field == "Bundle.entry[1].resource"
    assert (gad7.instrument, gad7.total) == ("gad7", 0)
    assert gad7.occurred_at == datetime(2026, 4, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("observation", "problem"),
    [
        (_alone("44261-6", 28),
         Problem("TOTAL_OUT_OF_RANGE", "Bundle.entry[1].resource.valueInteger")),
        (_alone("70274-6", 22),
         Problem("TOTAL_OUT_OF_RANGE", "Bundle.entry[1].resource.valueInteger")),
        (_alone("44261-6", 3, effectiveDateTime="2026-04-01T09:00:00"),
         Problem("INVALID_DATE", "Bundle.entry[1].resource.effectiveDateTime")),
        (_alone("44261-6", 3, effectiveDateTime=None),
         Problem("INVALID_DATE", "Bundle.entry[1].resource.effectiveDateTime")),
        (_alone("44261-6", 3, status="preliminary"),
         Problem("INVALID_RESOURCE", "Bundle.entry[1].resource.status")),
        (_alone("12345-6", 3), Problem("UNKNOWN_CODE", "Bundle.entry[1].resource.code")),
    ],
)  # fmt: skip
def test_an_imported_total_that_cannot_be_read_refuses_the_patient(
    observation: dict[str, Any], problem: Problem
) -> None:
    assert importing.parse_bundle(_bundle(PATIENT, observation)) == [Refused("entry 0", (problem,))]


def test_a_malformed_bundle_is_a_file_level_fault() -> None:
    for bad, where in (
        ({"resourceType": "Patient"}, "resourceType"),
        (_bundle(kind="searchset"), "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": {}}, "Bundle.entry"),
    ):
        with pytest.raises(FileError) as caught:
            importing.parse_bundle(bad)
        assert caught.value.field == where


def test_a_questionnaire_fault_names_the_bundle_element() -> None:
    broken = {**QR, "resource": {**QR["resource"], "status": "in-progress"}}
    assert importing.parse_bundle(_bundle(PATIENT, broken)) == [
        Refused("entry 0", (Problem("INVALID_RESOURCE", "Bundle.entry[1].resource.status"),))
    ]


def test_an_entry_about_nobody_or_of_another_type_is_refused_on_its_own() -> None:
    stray = {"resource": {**QR["resource"], "subject": {"reference": "urn:uuid:x"}}}
    other = {"resource": {"resourceType": "Condition"}}
    records = importing.parse_bundle(_bundle(PATIENT, stray, other))
    assert records[1:] == [
        Refused("entry 1", (Problem("UNKNOWN_SUBJECT", "Bundle.entry[1].resource.subject"),)),
        Refused("entry 2", (Problem("UNSUPPORTED_RESOURCE", "Bundle.entry[2].resource"),)),
    ]
    assert isinstance(records[0], PatientRecord) and records[0].measures == ()
