"""The pure FHIR mappings from a patient view document, one resource type at a time."""

from __future__ import annotations

from typing import Any

import pytest

from domain.instruments import SPECS
from services.fhir import mapping
from services.fhir.capability import SEARCH_PARAMETERS, capability_statement

PID = "5f0c1c57-6a4e-4c4f-9d8e-0c1a4b9e7f10"
ORG = "00000000-0000-4000-8000-000000000001"
CM, PCP = "00000000-0000-4000-8000-0000000000c1", "00000000-0000-4000-8000-0000000000c2"


def screening(sid: str, instrument: str, answers: list[Any], total: int | None) -> dict[str, Any]:
    spec = SPECS[instrument]  # type: ignore[index]
    return {
        "id": sid,
        "instrument": instrument,
        "answers": answers,
        "complete": total is not None or instrument == "asq",
        "total": total,
        "severity": "moderate" if total is not None else None,
        "loinc_panel": spec.loinc_panel,
        "loinc_total": spec.loinc_total,
        "occurred_at": "2026-11-01T10:00:00+00:00",
        "recorded_at": "2026-11-01T10:05:00+00:00",
    }


def view(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": PID,
        "organisation_id": ORG,
        "given_name": "Given",
        "family_name": "Family",
        "birth_date": "1980-05-05",
        "sex": "female",
        "mrn": "MRN-1",
        "status": "active_treatment",
        "episode_number": 1,
        "enrolled_at": "2026-10-01T09:00:00+00:00",
        "care_team": {"care_manager_id": CM, "pcp_id": PCP, "psychiatric_consultant_id": None},
        "consents": [],
        "screenings": [],
    }
    doc.update(overrides)
    return doc


def test_a_patient_carries_identity_gender_and_organisation() -> None:
    """Name, MRN, birth date and gender map to their Patient elements."""
    patient = mapping.patient(view())
    assert patient["name"] == [{"use": "official", "family": "Family", "given": ["Given"]}]
    assert patient["identifier"][0]["value"] == "MRN-1"
    assert patient["birthDate"] == "1980-05-05"
    assert patient["gender"] == "female"
    assert patient["active"] is True
    assert patient["managingOrganization"]["identifier"]["value"] == f"urn:uuid:{ORG}"


def test_a_forgotten_patient_has_no_identity_elements() -> None:
    """Erased identity fields are absent, not empty."""
    patient = mapping.patient(
        view(given_name=None, family_name=None, birth_date=None, mrn=None, forgotten=True)
    )
    assert not {"name", "identifier", "birthDate"} & set(patient)
    assert patient["id"] == PID


@pytest.mark.parametrize(
    ("instrument", "answers", "total", "loinc"),
    [
        ("phq9", [1] * 9, 9, "44261-6"),
        ("phq2", [2, 1], 3, "55758-7"),
        ("gad7", [1] * 7, 7, "70274-6"),
        ("phq_a", [1] * 9 + [0, 1, 0, 0], 9, "89204-2"),
    ],
)
def test_a_complete_screening_is_a_survey_observation_with_its_loinc_total(
    instrument: str, answers: list[int], total: int, loinc: str
) -> None:
    """The total is valueInteger under the instrument's LOINC code, derived from the QR."""
    s = screening("a1", instrument, answers, total)
    observation = mapping.observation(view(screenings=[s]), s)
    assert observation is not None
    assert observation["category"][0]["coding"][0]["code"] == "survey"
    assert observation["code"]["coding"] == [{"system": "http://loinc.org", "code": loinc}]
    assert observation["valueInteger"] == total
    assert observation["derivedFrom"] == [{"reference": "QuestionnaireResponse/a1"}]
    assert observation["effectiveDateTime"] == s["occurred_at"]


def test_incomplete_and_asq_screenings_have_no_observation() -> None:
    """Without a total or a LOINC total code there is nothing to observe."""
    incomplete = screening("a2", "phq9", [1, None] + [0] * 7, None)
    asq = screening("a3", "asq", [0, 0, 0, 0, None], None)
    doc = view(screenings=[incomplete, asq])
    assert mapping.observations(doc) == []
    assert len(mapping.questionnaire_responses(doc)) == 2


def test_a_questionnaire_response_leaves_out_unanswered_items_and_uses_booleans_for_yes_no() -> (
    None
):
    """Items are numbered in order; 0-1 items are booleans; missing ones are absent."""
    asq = mapping.questionnaire_response(view(), screening("a3", "asq", [1, 0, 0, 0, None], None))
    assert "questionnaire" not in asq
    assert asq["item"] == [
        {"linkId": "1", "answer": [{"valueBoolean": True}]},
        {"linkId": "2", "answer": [{"valueBoolean": False}]},
        {"linkId": "3", "answer": [{"valueBoolean": False}]},
        {"linkId": "4", "answer": [{"valueBoolean": False}]},
    ]
    phq9 = mapping.questionnaire_response(
        view(), screening("a4", "phq9", [3, None] + [0] * 7, None)
    )
    assert phq9["questionnaire"] == "http://loinc.org/q/44249-1"
    assert [i["linkId"] for i in phq9["item"]] == ["1", "3", "4", "5", "6", "7", "8", "9"]
    assert phq9["item"][0]["answer"] == [{"valueInteger": 3}]


def test_the_care_team_lists_only_assigned_members_and_ends_with_the_episode() -> None:
    """An empty role is left out; a discharged patient's team is inactive."""
    team = mapping.care_team(view())
    assert team is not None
    assert [p["role"][0]["text"] for p in team["participant"]] == [
        "Behavioral health care manager",
        "Primary care provider",
    ]
    assert team["status"] == "active"
    discharged = mapping.care_team(view(status="discharged"))
    assert discharged is not None and discharged["status"] == "inactive"
    empty = {"care_manager_id": None, "pcp_id": None, "psychiatric_consultant_id": None}
    assert mapping.care_team(view(care_team=empty)) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("referred", "planned"),
        ("enrolled", "active"),
        ("active_treatment", "active"),
        ("relapse_prevention", "active"),
        ("discharged", "finished"),
        ("deactivated", "finished"),
    ],
)
def test_each_episode_status_maps_to_an_episode_of_care_status(status: str, expected: str) -> None:
    """The current episode's status is one of R4's EpisodeOfCare codes."""
    episode = mapping.episode_of_care(view(status=status, episode_number=2))
    assert episode is not None
    assert episode["status"] == expected
    assert episode["id"] == f"{PID}-2"


def test_a_registered_patient_without_an_episode_has_no_episode_of_care() -> None:
    """Before referral or enrollment there is no episode to export."""
    assert mapping.episode_of_care(view(status=None, episode_number=0)) is None


def test_consents_map_scope_status_period_and_partner() -> None:
    """Treatment versus privacy scope; revocation ends the period and deactivates it."""
    treatment = {
        "id": "c1",
        "kind": "cocm_treatment",
        "partner_organisation_id": None,
        "granted_at": "2026-10-01T09:00:00+00:00",
        "expires_on": None,
        "revoked_at": None,
    }
    sharing = {
        **treatment,
        "id": "c2",
        "kind": "data_sharing",
        "partner_organisation_id": ORG,
        "revoked_at": "2026-10-05T09:00:00+00:00",
    }
    first, second = mapping.consents(view(consents=[treatment, sharing]))
    assert first["scope"]["coding"][0]["code"] == "treatment"
    assert first["status"] == "active"
    assert "actor" not in first["provision"]
    assert second["scope"]["coding"][0]["code"] == "patient-privacy"
    assert second["status"] == "inactive"
    assert second["provision"]["period"]["end"] == "2026-10-05T09:00:00+00:00"
    assert second["provision"]["actor"][0]["reference"]["identifier"]["value"] == f"urn:uuid:{ORG}"


def test_everything_starts_with_the_patient_and_holds_every_resource_once() -> None:
    """$everything: the Patient first, then team, episode, responses, observations, consents."""
    s = screening("a1", "phq9", [1] * 9, 9)
    resources = mapping.everything(view(screenings=[s]))
    assert [r["resourceType"] for r in resources] == [
        "Patient",
        "CareTeam",
        "EpisodeOfCare",
        "QuestionnaireResponse",
        "Observation",
    ]


def test_an_empty_search_bundle_has_no_entry_array() -> None:
    """FHIR JSON forbids empty arrays, so a search without matches omits entry."""
    bundle = mapping.searchset("http://x/fhir", "http://x/fhir/Consent?patient=1", [])
    assert bundle["total"] == 0
    assert "entry" not in bundle


def test_the_capability_statement_lists_every_type_with_read_and_search() -> None:
    """Every served type reads and searches; Patient has $everything."""
    statement = capability_statement(
        date="2026-12-01T00:00:00+00:00", base_url="http://x/fhir", software_version="0"
    )
    resources = statement["rest"][0]["resource"]
    assert [r["type"] for r in resources] == list(SEARCH_PARAMETERS)
    patient = resources[0]
    assert patient["operation"][0]["name"] == "everything"
    assert statement["fhirVersion"] == "4.0.1"


def referral(status: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "r1",
        "patient_id": PID,
        "service": "psychotherapy",
        "receiving_organisation_id": ORG,
        "reason": "weekly sessions",
        "requested_by": CM,
        "status": status,
        "requested_at": "2026-10-02T09:00:00+00:00",
        "appointment_at": None,
        "closed_at": None,
        "report_back": False,
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("requested", "draft"),
        ("sent", "active"),
        ("accepted", "active"),
        ("scheduled", "active"),
        ("completed", "completed"),
        ("declined", "revoked"),
        ("cancelled", "revoked"),
    ],
)
def test_each_referral_status_maps_to_a_service_request_status(status: str, expected: str) -> None:
    """A referral's loop position is one of R4's request statuses."""
    request = mapping.service_request(referral(status))
    assert request["status"] == expected
    assert request["intent"] == "order"
    assert request["code"] == {"text": "Psychotherapy"}
    assert request["performer"][0]["identifier"]["value"] == f"urn:uuid:{ORG}"


def test_a_referral_that_reported_back_says_so_in_a_note() -> None:
    """Report back closes the loop: completed, with a dated note and the appointment."""
    request = mapping.service_request(
        referral(
            "completed",
            report_back=True,
            closed_at="2026-11-02T09:00:00+00:00",
            appointment_at="2026-10-20T09:00:00+00:00",
        )
    )
    assert request["note"][0]["time"] == "2026-11-02T09:00:00+00:00"
    assert request["occurrenceDateTime"] == "2026-10-20T09:00:00+00:00"


PLAN_ID = "11111111-2222-4333-8444-555555555555"
GOAL = "66666666-7777-4888-8999-aaaaaaaaaaaa"
TARGET = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"


def plan_doc(status: str = "active") -> dict[str, Any]:
    return {
        "id": PLAN_ID,
        "patient_id": PID,
        "episode_number": 1,
        "author_id": PCP,
        "status": status,
        "created_at": "2026-10-03T09:00:00+00:00",
        "closed_at": "2026-12-01T09:00:00+00:00" if status == "closed" else None,
        "goals": [
            {
                "id": GOAL,
                "description": "Sleep through the night",
                "status": "achieved",
                "added_at": "2026-10-03T09:00:00+00:00",
            }
        ],
        "targets": [
            {
                "id": TARGET,
                "instrument": "phq9",
                "kind": "score_below",
                "value": 5,
                "due_on": "2027-01-01",
                "set_at": "2026-10-03T09:00:00+00:00",
                "removed": False,
            }
        ],
        "interventions": [
            {
                "id": "i1",
                "kind": "medication",
                "name": "sertraline",
                "dose": "50 mg",
                "modality": None,
                "status": "stopped",
            }
        ],
    }


def test_goal_ids_join_plan_and_goal_within_fhirs_64_characters_and_split_back() -> None:
    """A Goal id carries its plan's id, so a read finds the plan; anything else is no id."""
    value = mapping.goal_id(plan_doc(), GOAL)
    assert len(value) == 64
    assert mapping.split_goal_id(value) == (PLAN_ID, GOAL)
    assert mapping.split_goal_id("not-a-goal") is None
    assert mapping.split_goal_id("G" * 64) is None


def test_goals_and_targets_are_goals_with_status_and_loinc_measure() -> None:
    """An achieved goal is completed and achieved; a PHQ-9 target measures LOINC 44261-6."""
    goal, target = mapping.goals(plan_doc())
    assert goal["lifecycleStatus"] == "completed"
    assert goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert goal["description"] == {"text": "Sleep through the night"}
    assert target["lifecycleStatus"] == "active"
    assert target["target"] == [
        {
            "measure": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "detailQuantity": {"value": 5, "comparator": "<"},
            "dueDate": "2027-01-01",
        }
    ]


def test_a_care_plan_references_its_goals_and_lists_its_treatments() -> None:
    """A closed plan is completed with a period end; a stopped medication is a stopped
    MedicationRequest activity."""
    plan = mapping.care_plan(plan_doc("closed"))
    assert plan["status"] == "completed"
    assert plan["period"] == {
        "start": "2026-10-03T09:00:00+00:00",
        "end": "2026-12-01T09:00:00+00:00",
    }
    assert [g["reference"] for g in plan["goal"]] == [
        f"Goal/{mapping.goal_id(plan_doc(), GOAL)}",
        f"Goal/{mapping.goal_id(plan_doc(), TARGET)}",
    ]
    (activity,) = plan["activity"]
    assert activity["detail"]["kind"] == "MedicationRequest"
    assert activity["detail"]["status"] == "stopped"
    assert activity["detail"]["description"] == "sertraline, 50 mg"


def test_an_allowed_read_and_a_refusal_become_audit_events_with_outcome_and_purpose() -> None:
    """A read succeeds (0) with its purpose of use; a refusal is a minor failure (4) with
    its reason; both name the reader and the patient."""
    row = {
        "id": 7,
        "at": "2026-11-01T10:00:00+00:00",
        "actor_id": CM,
        "role": "care_manager",
        "patient_id": PID,
        "operation": "fhir:read",
        "outcome": "allowed",
        "reason": None,
        "purpose_of_use": "EMERGENCY",
        "fields": ["Patient"],
    }
    read = mapping.audit_event(row)
    assert (read["id"], read["action"], read["outcome"]) == ("7", "R", "0")
    assert read["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert read["agent"][0]["who"]["identifier"]["value"] == f"urn:uuid:{CM}"
    assert read["entity"][0]["what"] == {"reference": f"Patient/{PID}"}
    assert "outcomeDesc" not in read
    refused = mapping.audit_event({**row, "outcome": "denied", "reason": "NOT_ON_CARE_TEAM"})
    assert (refused["outcome"], refused["outcomeDesc"]) == ("4", "NOT_ON_CARE_TEAM")


def event(kind: str, payload: dict[str, Any], version: int = 2) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "stream_id": PLAN_ID,
        "stream_version": version,
        "patient_id": PID,
        "event_type": kind,
        "payload": payload,
        "metadata": {"actor_id": CM, "role": "care_manager", "purpose_of_use": "TREATMENT"},
        "occurred_at": "2026-11-01T10:00:00+00:00",
        "recorded_at": "2026-11-01T10:00:01+00:00",
    }


def test_a_screening_event_is_the_provenance_of_its_response_and_observation() -> None:
    """The recorder is the author; only resources that are exported are targets."""
    recorded = event("patient.screening_recorded", {"screening_id": "s1"})
    both = mapping.provenance(recorded, {"QuestionnaireResponse/s1", "Observation/s1"})
    assert both is not None
    assert [t["reference"] for t in both["target"]] == [
        "QuestionnaireResponse/s1",
        "Observation/s1",
    ]
    assert both["agent"][0]["who"]["identifier"]["value"] == f"urn:uuid:{CM}"
    assert both["activity"]["coding"][0]["code"] == "UPDATE"
    only_response = mapping.provenance(recorded, {"QuestionnaireResponse/s1"})
    assert only_response is not None and len(only_response["target"]) == 1


def test_events_without_an_exported_resource_have_no_provenance() -> None:
    """Flags, tasks and contacts are not exported, so neither is their provenance."""
    assert mapping.provenance(event("patient.flag_raised", {}), {f"Patient/{PID}"}) is None


def test_a_care_plan_goal_event_targets_the_plan_and_the_goal() -> None:
    """A goal's event names the plan and the goal's composite id; creation is CREATE."""
    added = event("care_plan.goal_added", {"goal_id": GOAL}, version=1)
    goal = f"Goal/{mapping.goal_id(plan_doc(), GOAL)}"
    found = mapping.provenance(added, {f"CarePlan/{PLAN_ID}", goal})
    assert found is not None
    assert [t["reference"] for t in found["target"]] == [f"CarePlan/{PLAN_ID}", goal]
    assert found["activity"]["coding"][0]["code"] == "CREATE"


def test_an_imported_total_is_an_observation_without_derived_from_or_response() -> None:
    """A total imported without answers: its Observation has no derivedFrom, there is no
    QuestionnaireResponse, and its event's provenance names only the Observation."""
    alone = {**screening("t1", "phq9", [], 21), "total_only": True}
    scored = screening("s1", "gad7", [1] * 7, 7)
    doc = view(screenings=[alone, scored])
    observations = mapping.observations(doc)
    assert [o["id"] for o in observations] == ["t1", "s1"]
    assert observations[0]["valueInteger"] == 21 and "derivedFrom" not in observations[0]
    assert observations[0]["code"]["coding"] == [{"system": mapping.LOINC, "code": "44261-6"}]
    assert observations[1]["derivedFrom"] == [{"reference": "QuestionnaireResponse/s1"}]
    assert [r["id"] for r in mapping.questionnaire_responses(doc)] == ["s1"]
    recorded = event("patient.screening_recorded", {"screening_id": "t1", "total_only": True})
    assert mapping.provenance_targets(recorded) == ["Observation/t1"]
