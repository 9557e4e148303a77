"""FHIR in: a QuestionnaireResponse of a LOINC form as careteam's ``recordScreening`` (pure).

Only what careteam itself exports is accepted back: ``questionnaire`` one of the LOINC
forms of domain/instruments.py (``http://loinc.org/q/<panel>``), ``status`` completed,
``subject`` ``Patient/<id>``, ``authored`` a date-time with its offset, and one ``item``
per answered question with ``linkId`` its number ("1".."n") and one answer:
``valueInteger``, or ``valueBoolean`` for a yes/no question. An item left out is an
unanswered question. Scoring and range checks stay the domain's (its typed errors name
the answers); this module refuses what is not a screening at all, naming the element.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.instruments import SPECS, InstrumentSpec
from services.fhir.mapping import LOINC


class InboundError(ValueError):
    """The resource cannot be a screening; ``expression`` is the FHIRPath of the element."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(f"{expression}: {message}")
        self.expression = expression
        self.message = message


@dataclass(frozen=True)
class ScreeningInput:
    """The ``recordScreening`` command's input, read from a QuestionnaireResponse."""

    patient_id: UUID
    instrument: str
    answers: tuple[int | None, ...]
    occurred_at: datetime


FORMS: dict[str, InstrumentSpec] = {
    f"{LOINC}/q/{spec.loinc_panel}": spec for spec in SPECS.values() if spec.loinc_panel
}


def _require(resource: dict[str, Any], name: str) -> Any:
    if name not in resource:
        raise InboundError(f"QuestionnaireResponse.{name}", "required")
    return resource[name]


def screening_input(resource: Any) -> ScreeningInput:
    """The screening a QuestionnaireResponse records, or InboundError naming the element."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "QuestionnaireResponse":
        raise InboundError("resourceType", "must be QuestionnaireResponse")
    questionnaire = _require(resource, "questionnaire")
    spec = FORMS.get(questionnaire) if isinstance(questionnaire, str) else None
    if spec is None:
        raise InboundError(
            "QuestionnaireResponse.questionnaire",
            "must be one of " + ", ".join(sorted(FORMS)),
        )
    if _require(resource, "status") != "completed":
        raise InboundError("QuestionnaireResponse.status", "must be completed")
    subject = _require(resource, "subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    try:
        if not isinstance(reference, str) or not reference.startswith("Patient/"):
            raise ValueError
        patient_id = UUID(reference.removeprefix("Patient/"))
    except ValueError:
        raise InboundError("QuestionnaireResponse.subject", "must be Patient/<id>") from None
    authored = _require(resource, "authored")
    try:
        occurred_at = datetime.fromisoformat(authored) if isinstance(authored, str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None or occurred_at.tzinfo is None or "T" not in authored:
        raise InboundError(
            "QuestionnaireResponse.authored", "must be a date-time with a time zone offset"
        )
    return ScreeningInput(
        patient_id=patient_id,
        instrument=spec.instrument.value,
        answers=_answers(spec, resource.get("item", [])),
        occurred_at=occurred_at,
    )


def _answers(spec: InstrumentSpec, items: Any) -> tuple[int | None, ...]:
    if not isinstance(items, list):
        raise InboundError("QuestionnaireResponse.item", "must be a list")
    answers: list[int | None] = [None] * spec.item_count
    for index, item in enumerate(items):
        where = f"QuestionnaireResponse.item[{index}]"
        link = item.get("linkId") if isinstance(item, dict) else None
        if not isinstance(link, str) or not link.isdigit() or not 1 <= int(link) <= spec.item_count:
            raise InboundError(f"{where}.linkId", f"must be 1 to {spec.item_count}")
        number = int(link)
        if answers[number - 1] is not None:
            raise InboundError(f"{where}.linkId", "answered twice")
        given = item.get("answer")
        if not isinstance(given, list) or len(given) != 1 or not isinstance(given[0], dict):
            raise InboundError(f"{where}.answer", "must hold exactly one answer")
        value = given[0]
        yes_no = spec.item_max[number - 1] == 1
        if yes_no and isinstance(value.get("valueBoolean"), bool):
            answers[number - 1] = 1 if value["valueBoolean"] else 0
        elif isinstance(value.get("valueInteger"), int) and not isinstance(
            value.get("valueInteger"), bool
        ):
            answers[number - 1] = value["valueInteger"]
        else:
            kind = "valueBoolean or valueInteger" if yes_no else "valueInteger"
            raise InboundError(f"{where}.answer[0]", f"must be a {kind}")
    return tuple(answers)
