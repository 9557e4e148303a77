"""Reading a QuestionnaireResponse back as a screening: what is accepted and what is named."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from services.fhir import mapping
from services.fhir.inbound import InboundError, screening_input

PID = "5f0c1c57-6a4e-4c4f-9d8e-0c1a4b9e7f10"


def exported(instrument: str, answers: list[Any], panel: str | None) -> dict[str, Any]:
    screening = {
        "id": "s1",
        "instrument": instrument,
        "answers": answers,
        "occurred_at": "2026-11-01T10:00:00+00:00",
    }
    resource = mapping.questionnaire_response({"id": PID}, screening)
    assert resource.get("questionnaire") == (
        None if panel is None else f"http://loinc.org/q/{panel}"
    )
    return resource


@pytest.mark.parametrize(
    ("instrument", "answers", "panel"),
    [
        ("phq9", [1, 2, None, 3, 0, 0, 1, 2, 1], "44249-1"),
        ("phq_a", [1] * 9 + [1, 2, 0, None], "89206-7"),
        ("phq2", [3, 0], "55757-9"),
        ("gad7", [0, 1, 2, 3, 0, 1, 2], "69737-5"),
    ],
)
def test_what_careteam_exports_reads_back_as_the_same_screening(
    instrument: str, answers: list[Any], panel: str
) -> None:
    """Export then import is the identity on instrument, answers, time and patient."""
    read = screening_input(exported(instrument, answers, panel))
    assert read.instrument == instrument
    assert list(read.answers) == answers
    assert read.patient_id == UUID(PID)
    assert read.occurred_at == datetime(2026, 11, 1, 10, tzinfo=UTC)


def phq9() -> dict[str, Any]:
    return exported("phq9", [1] * 9, "44249-1")


def broken(change: Any) -> dict[str, Any]:
    resource = deepcopy(phq9())
    change(resource)
    return resource


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Observation"}, "resourceType"),
        (broken(lambda r: r.pop("questionnaire")), "QuestionnaireResponse.questionnaire"),
        (
            broken(lambda r: r.update(questionnaire="http://loinc.org/q/1-1")),
            "QuestionnaireResponse.questionnaire",
        ),
        (broken(lambda r: r.update(status="in-progress")), "QuestionnaireResponse.status"),
        (
            broken(lambda r: r.update(subject={"reference": "Group/1"})),
            "QuestionnaireResponse.subject",
        ),
        (
            broken(lambda r: r.update(authored="2026-11-01T10:00:00")),
            "QuestionnaireResponse.authored",
        ),
        (broken(lambda r: r.update(authored="2026-11-01")), "QuestionnaireResponse.authored"),
        (
            broken(lambda r: r["item"][0].update(linkId="10")),
            "QuestionnaireResponse.item[0].linkId",
        ),
        (
            broken(lambda r: r["item"][1].update(linkId="1")),
            "QuestionnaireResponse.item[1].linkId",
        ),
        (
            broken(lambda r: r["item"][2].update(answer=[])),
            "QuestionnaireResponse.item[2].answer",
        ),
        (
            broken(lambda r: r["item"][3].update(answer=[{"valueBoolean": True}])),
            "QuestionnaireResponse.item[3].answer[0]",
        ),
        (
            broken(lambda r: r["item"][4].update(answer=[{"valueInteger": "2"}])),
            "QuestionnaireResponse.item[4].answer[0]",
        ),
    ],
)
def test_a_resource_that_is_not_a_screening_is_refused_naming_the_element(
    resource: dict[str, Any], expression: str
) -> None:
    """Each refusal names the FHIRPath of the element at fault."""
    with pytest.raises(InboundError) as refused:
        screening_input(resource)
    assert refused.value.expression == expression


def test_the_asq_has_no_loinc_form_and_cannot_be_imported() -> None:
    """An ASQ is exported without a questionnaire, so it cannot be read back."""
    resource = exported("asq", [0, 0, 0, 0, None], None)
    with pytest.raises(InboundError) as refused:
        screening_input(resource)
    assert refused.value.expression == "QuestionnaireResponse.questionnaire"
