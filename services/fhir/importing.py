"""Onboarding import, the pure half: a registry CSV or a FHIR Bundle as patient records.

Each patient becomes one :class:`PatientRecord` (identity, enrollment, dated measures:
every item answer, or a total alone) or one :class:`Refused` with typed reasons naming
the field (a CSV column, or the FHIRPath of a Bundle element). Nothing here touches the
database; the commands and the report are services/fhir/import_job.py. docs/fhir.md
lists the columns.

Answers or a total: a CSV measure is a date and either every item answer (scored as a
screening) or one number, the total a registry kept (an imported total: no answers, so
no safety item, ``Patient.import_measure_total``). A Bundle's Observation with a known
LOINC total code is either the total of a QuestionnaireResponse of the Bundle
(``derivedFrom``, equal to its score) or, without ``derivedFrom``, an imported total.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final

from domain.errors import DomainError
from domain.instruments import SPECS, Instrument, InstrumentSpec, score
from services.fhir import inbound
from services.fhir.mapping import LOINC

# A date alone is taken at noon UTC: the same calendar day in every US time zone.
DATE_TIME: Final = time(12, 0, tzinfo=UTC)
REQUIRED_COLUMNS: Final = ("mrn", "given_name", "family_name", "birth_date")
OPTIONAL_COLUMNS: Final = ("sex", "enrolled_on")
# A measure column: the instrument's code and a number (phq9_1, phq9_2, gad7_1, ...).
MEASURE_COLUMN: Final = re.compile(r"^(phq9|phq_a|phq2|gad7|asq)_([1-9][0-9]{0,2})$")
SEXES: Final = frozenset({"female", "male", "other", "unknown"})
MRN_SYSTEM: Final = "urn:careteam:mrn"
BUNDLE_TYPES: Final = frozenset({"transaction", "batch", "collection"})
LOINC_TOTALS: Final = {spec.loinc_total: spec for spec in SPECS.values() if spec.loinc_total}
# A total alone in a measure cell (a sign is read, so -1 is out of range, not malformed).
TOTAL: Final = re.compile(r"^-?[0-9]{1,3}$")
# The statuses of an Observation that say its value stands.
OBSERVATION_STATUSES: Final = frozenset({"final", "amended", "corrected"})


@dataclass(frozen=True)
class Problem:
    """One typed reason: a code and the field (CSV column or FHIRPath) it is about."""

    code: str
    field: str


@dataclass(frozen=True)
class Measure:
    """A dated questionnaire with every item answer (None: unanswered), or a total alone
    (``total`` set, ``answers`` empty)."""

    instrument: str
    answers: tuple[int | None, ...]
    occurred_at: datetime
    field: str
    total: int | None = None


@dataclass(frozen=True)
class PatientRecord:
    ref: str
    mrn: str
    given_name: str
    family_name: str
    birth_date: date
    sex: str | None
    enrolled_at: datetime | None
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class Refused:
    ref: str
    problems: tuple[Problem, ...]


@dataclass
class _Draft:
    ref: str
    problems: list[Problem] = field(default_factory=list)


class FileError(ValueError):
    """The file as a whole cannot be read (not CSV, not a Bundle, a missing column)."""

    def __init__(self, code: str, field: str) -> None:
        super().__init__(f"{code} ({field})")
        self.code = code
        self.field = field


def _when(text: str) -> datetime | None:
    """A date (noon UTC) or a date-time with its offset; None when it is neither."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), DATE_TIME)
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None and "T" in text else None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        return None


def _total_problem(spec: InstrumentSpec, total: int) -> str | None:
    """Why a total alone cannot be imported for this instrument, or None. The domain
    checks again (``score_total``); this names the column before any command runs."""
    if spec.loinc_total is None or not spec.bands:
        return "INSTRUMENT_WITHOUT_TOTAL"
    if not 0 <= total <= spec.max_total:
        return "TOTAL_OUT_OF_RANGE"
    return None


def _answers(spec: InstrumentSpec, parts: list[str]) -> tuple[int | None, ...] | None:
    if len(parts) != spec.item_count:
        return None
    answers: list[int | None] = []
    for part in parts:
        if part == ".":
            answers.append(None)
        elif part.isdigit() and len(part) <= 2:
            answers.append(int(part))
        else:
            return None
    return tuple(answers)


# --- CSV ------------------------------------------------------------------------------


def parse_csv(text: str) -> list[PatientRecord | Refused]:
    """One record per data row; FileError for a missing or unknown column."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise FileError("EMPTY_FILE", "header")
    reader.fieldnames = header
    for name in REQUIRED_COLUMNS:
        if name not in header:
            raise FileError("MISSING_COLUMN", name)
    for name in header:
        if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and not MEASURE_COLUMN.match(name):
            raise FileError("UNKNOWN_COLUMN", name[:64])
    if len(set(header)) != len(header):
        raise FileError("DUPLICATE_COLUMN", "header")
    out: list[PatientRecord | Refused] = []
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        out.append(_csv_row(f"row {number}", header, row))
    return out


def _csv_row(ref: str, header: list[str], row: dict[str, Any]) -> PatientRecord | Refused:
    draft = _Draft(ref)
    if None in row:  # more cells than columns
        draft.problems.append(Problem("TOO_MANY_CELLS", "row"))
    cell = {k: (row.get(k) or "").strip() for k in header}
    for name in REQUIRED_COLUMNS:
        if not cell[name]:
            draft.problems.append(Problem("FIELD_REQUIRED", name))
    born = _day(cell["birth_date"]) if cell["birth_date"] else None
    if cell["birth_date"] and born is None:
        draft.problems.append(Problem("INVALID_DATE", "birth_date"))
    sex = cell.get("sex") or None
    if sex is not None and sex.lower() not in SEXES:
        draft.problems.append(Problem("INVALID_SEX", "sex"))
    enrolled = None
    if cell.get("enrolled_on"):
        enrolled = _when(cell["enrolled_on"])
        if enrolled is None:
            draft.problems.append(Problem("INVALID_DATE", "enrolled_on"))
    measures: list[Measure] = []
    for name in header:
        found = MEASURE_COLUMN.match(name)
        if found is None or not cell[name]:
            continue
        spec = SPECS[Instrument(found.group(1))]
        when_text, _, rest = cell[name].partition(" ")
        when = _when(when_text)
        if when is None:
            draft.problems.append(Problem("INVALID_DATE", name))
            continue
        parts = rest.replace(",", " ").split()
        if len(parts) == 1 and spec.item_count > 1 and TOTAL.match(parts[0]):
            # A lone number is a total from a totals-only registry (see above).
            problem = _total_problem(spec, int(parts[0]))
            if problem is not None:
                draft.problems.append(Problem(problem, name))
                continue
            measures.append(Measure(spec.instrument.value, (), when, name, int(parts[0])))
            continue
        answers = _answers(spec, parts)
        if answers is None:
            draft.problems.append(Problem("INVALID_ANSWERS", name))
            continue
        measures.append(Measure(spec.instrument.value, answers, when, name))
    if draft.problems:
        return Refused(ref, tuple(draft.problems))
    assert born is not None
    return PatientRecord(
        ref=ref,
        mrn=cell["mrn"],
        given_name=cell["given_name"],
        family_name=cell["family_name"],
        birth_date=born,
        sex=sex.lower() if sex else None,
        enrolled_at=enrolled,
        measures=tuple(measures),
    )


# --- FHIR Bundle ----------------------------------------------------------------------


def parse_bundle(bundle: Any) -> list[PatientRecord | Refused]:
    """One record per Patient entry, with the QuestionnaireResponses, Observations and
    EpisodeOfCare that refer to it; an entry that refers to no Patient of the Bundle, or
    is of another type, is refused on its own. FileError when it is not a Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FileError("NOT_A_BUNDLE", "resourceType")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise FileError("UNSUPPORTED_BUNDLE_TYPE", "Bundle.type")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FileError("INVALID_BUNDLE", "Bundle.entry")
    patients: dict[str, int] = {}  # fullUrl or Patient/id -> entry index
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            for key in (entry.get("fullUrl"), f"Patient/{resource.get('id')}"):
                if isinstance(key, str) and key != "Patient/None":
                    patients[key] = i
    linked: dict[int, list[tuple[int, dict[str, Any]]]] = {i: [] for i in patients.values()}
    out: list[PatientRecord | Refused] = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}].resource"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource, dict) or kind == "Patient":
            if not isinstance(resource, dict):
                out.append(Refused(f"entry {i}", (Problem("INVALID_ENTRY", where),)))
            continue
        if kind not in ("QuestionnaireResponse", "Observation", "EpisodeOfCare"):
            out.append(Refused(f"entry {i}", (Problem("UNSUPPORTED_RESOURCE", where),)))
            continue
        element = "patient" if kind == "EpisodeOfCare" else "subject"
        subject = resource.get(element)
        reference = subject.get("reference") if isinstance(subject, dict) else None
        owner = patients.get(reference) if isinstance(reference, str) else None
        if owner is None:
            out.append(Refused(f"entry {i}", (Problem("UNKNOWN_SUBJECT", f"{where}.{element}"),)))
            continue
        linked[owner].append((i, resource))
    for index in sorted(linked):
        out.append(_bundle_patient(entries, index, linked[index]))
    return sorted(out, key=lambda r: int(r.ref.split()[1]))


def _bundle_patient(
    entries: list[Any], index: int, related: list[tuple[int, dict[str, Any]]]
) -> PatientRecord | Refused:
    draft = _Draft(f"entry {index}")
    where = f"Bundle.entry[{index}].resource"
    patient = entries[index]["resource"]
    mrn = _mrn(patient)
    if mrn is None:
        draft.problems.append(Problem("FIELD_REQUIRED", f"{where}.identifier"))
    names = patient.get("name")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    family = name.get("family") if isinstance(name.get("family"), str) else None
    given_list = name.get("given")
    given = (
        " ".join(g for g in given_list if isinstance(g, str))
        if isinstance(given_list, list)
        else None
    )
    if not family:
        draft.problems.append(Problem("FIELD_REQUIRED", f"{where}.name.family"))
    if not given:
        draft.problems.append(Problem("FIELD_REQUIRED", f"{where}.name.given"))
    raw_birth = patient.get("birthDate")
    born = _day(raw_birth) if isinstance(raw_birth, str) else None
    if born is None:
        draft.problems.append(Problem("INVALID_DATE", f"{where}.birthDate"))
    sex = patient.get("gender")
    if sex is not None and sex not in SEXES:
        draft.problems.append(Problem("INVALID_SEX", f"{where}.gender"))
    enrolled: datetime | None = None
    totals: list[tuple[int, dict[str, Any]]] = []
    measures: dict[str, Measure] = {}  # by the QuestionnaireResponse's fullUrl
    for i, resource in related:
        at = f"Bundle.entry[{i}].resource"
        kind = resource["resourceType"]
        if kind == "EpisodeOfCare":
            period = resource.get("period")
            start = period.get("start") if isinstance(period, dict) else None
            enrolled = _when(start) if isinstance(start, str) else None
            if enrolled is None:
                draft.problems.append(Problem("INVALID_DATE", f"{at}.period.start"))
        elif kind == "Observation":
            totals.append((i, resource))
        else:
            measure = _questionnaire(resource, at, draft)
            if measure is not None:
                full_url = entries[i].get("fullUrl")
                measures[full_url if isinstance(full_url, str) else at] = measure
                if isinstance(resource.get("id"), str):
                    measures[f"QuestionnaireResponse/{resource['id']}"] = measure
    alone: list[Measure] = []
    for i, resource in totals:
        found = _check_total(resource, f"Bundle.entry[{i}].resource", measures, draft)
        if found is not None:
            alone.append(found)
    if draft.problems:
        return Refused(draft.ref, tuple(draft.problems))
    assert mrn is not None and family and given and born is not None
    unique = {id(m): m for m in [*measures.values(), *alone]}
    return PatientRecord(
        ref=draft.ref,
        mrn=mrn,
        given_name=given,
        family_name=family,
        birth_date=born,
        sex=sex,
        enrolled_at=enrolled,
        measures=tuple(unique.values()),
    )


def _mrn(patient: dict[str, Any]) -> str | None:
    """The identifier of system urn:careteam:mrn, or typed MR (v2-0203)."""
    identifiers = patient.get("identifier")
    for ident in identifiers if isinstance(identifiers, list) else []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        codings = (ident.get("type") or {}).get("coding") or []
        if ident.get("system") == MRN_SYSTEM or any(
            isinstance(c, dict) and c.get("code") == "MR" for c in codings
        ):
            return str(ident["value"]).strip() or None
    return None


def _questionnaire(resource: dict[str, Any], at: str, draft: _Draft) -> Measure | None:
    # The subject was resolved within the Bundle; inbound reads the rest.
    probe = {**resource, "subject": {"reference": "Patient/00000000-0000-0000-0000-000000000000"}}
    try:
        found = inbound.screening_input(probe)
    except inbound.InboundError as exc:
        draft.problems.append(
            Problem("INVALID_RESOURCE", exc.expression.replace("QuestionnaireResponse", at, 1))
        )
        return None
    return Measure(found.instrument, found.answers, found.occurred_at, at)


def _check_total(
    resource: dict[str, Any], at: str, measures: dict[str, Measure], draft: _Draft
) -> Measure | None:
    """An Observation is a questionnaire's total: a known LOINC total code and an integer
    in range. With ``derivedFrom`` it is the total of a QuestionnaireResponse of the
    Bundle and must equal its score (nothing new to record); without, it is an imported
    total (returned), which needs a final status and ``effectiveDateTime``."""
    codings = (resource.get("code") or {}).get("coding") or []
    spec = next(
        (
            LOINC_TOTALS[c["code"]]
            for c in codings
            if isinstance(c, dict) and c.get("system") == LOINC and c.get("code") in LOINC_TOTALS
        ),
        None,
    )
    if spec is None:
        draft.problems.append(Problem("UNKNOWN_CODE", f"{at}.code"))
        return None
    value = resource.get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool):
        draft.problems.append(Problem("FIELD_REQUIRED", f"{at}.valueInteger"))
        return None
    if not 0 <= value <= spec.max_total:
        draft.problems.append(Problem("TOTAL_OUT_OF_RANGE", f"{at}.valueInteger"))
        return None
    sources = resource.get("derivedFrom")
    if not sources:
        return _imported_total(resource, at, spec, value, draft)
    refs = [s.get("reference") for s in sources if isinstance(s, dict)]
    measure = next((measures[r] for r in refs if r in measures), None)
    if measure is None:  # derived from answers the Bundle does not hold
        draft.problems.append(Problem("TOTAL_WITHOUT_ANSWERS", f"{at}.derivedFrom"))
        return None
    if measure.instrument != spec.instrument.value:
        draft.problems.append(Problem("TOTAL_MISMATCH", f"{at}.code"))
        return None
    try:
        total = score(spec.instrument, list(measure.answers)).total
    except DomainError:  # the domain refuses the answers: reported with the measure
        return None
    if total != value:
        draft.problems.append(Problem("TOTAL_MISMATCH", f"{at}.valueInteger"))
    return None


def _imported_total(
    resource: dict[str, Any], at: str, spec: InstrumentSpec, value: int, draft: _Draft
) -> Measure | None:
    """An Observation without ``derivedFrom``: a total the source kept without answers."""
    if resource.get("status") not in OBSERVATION_STATUSES:
        draft.problems.append(Problem("INVALID_RESOURCE", f"{at}.status"))
        return None
    raw = resource.get("effectiveDateTime")
    when = _when(raw) if isinstance(raw, str) else None
    if when is None:
        draft.problems.append(Problem("INVALID_DATE", f"{at}.effectiveDateTime"))
        return None
    return Measure(spec.instrument.value, (), when, at, value)
