"""Role x operation x relation: every row of the policy, allowed and denied, over HTTP."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from services.api.authz import POLICY, Relation
from services.api.records.mutations import CLINICAL_MUTATIONS
from services.api.schema import PatientMutation, build_schema
from services.auth import Role
from tests.e2e.server import DEFAULT_ORG, ServerProcess

OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000ff")

# Every command is called with an effective time in the future: an authorised call
# reaches the domain, which refuses it with OCCURRED_IN_FUTURE, so the table writes
# nothing and the records under it never change; a refused call never gets that far.
FUTURE = "2999-01-01T00:00:00Z"
IN_FUTURE = ("ValidationError", "OCCURRED_IN_FUTURE")

LOOKUP = "__typename ... on ForbiddenError { code } ... on NotFoundError { code }"
RESULT = f"{LOOKUP} ... on ValidationError {{ code }}"

# Placeholders for the records the table acts on, filled in once they exist.
PATIENT, PLAN, REFERRAL, NOTE, PCP_ID = "$patient", "$plan", "$referral", "$note", "$pcp"


def _some_id() -> str:
    return str(uuid4())


# operation -> (input type, input) for every mutation.
COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "registerPatient": (
        "RegisterPatientInput",
        {"givenName": "A", "familyName": "B", "birthDate": "1990-01-01", "mrn": "M-1"},
    ),
    "assignCareTeam": ("AssignCareTeamInput", {"patientId": PATIENT, "pcpId": PCP_ID}),
    "enrollPatient": ("EnrollPatientInput", {"patientId": PATIENT}),
    "startTreatment": ("StartTreatmentInput", {"patientId": PATIENT}),
    "recordScreening": (
        "RecordScreeningInput",
        {"patientId": PATIENT, "instrument": "GAD7", "answers": [0] * 7},
    ),
    "importMeasureTotal": (
        "ImportMeasureTotalInput",
        {
            "patientId": PATIENT,
            "instrument": "PHQ9",
            "total": 12,
            "occurredAt": "2026-01-05T10:00:00+00:00",
        },
    ),
    "logContact": (
        "LogContactInput",
        {"patientId": PATIENT, "activity": "contact", "modality": "phone", "minutes": 5},
    ),
    "referPatient": ("ReferPatientInput", {"patientId": PATIENT}),
    "resumeTreatment": ("ResumeTreatmentInput", {"patientId": PATIENT}),
    "dischargePatient": ("DischargePatientInput", {"patientId": PATIENT, "reason": "COMPLETED"}),
    "deactivatePatient": (
        "DeactivatePatientInput",
        {"patientId": PATIENT, "reason": "ENTERED_IN_ERROR"},
    ),
    "unassignCareTeamMember": (
        "UnassignCareTeamMemberInput",
        {"patientId": PATIENT, "role": "PSYCHIATRIC_CONSULTANT"},
    ),
    "grantConsent": (
        "GrantConsentInput",
        {"patientId": PATIENT, "kind": "COCM_TREATMENT", "method": "VERBAL"},
    ),
    "revokeConsent": ("RevokeConsentInput", {"patientId": PATIENT, "consentId": _some_id()}),
    "raiseFlag": ("RaiseFlagInput", {"patientId": PATIENT, "kind": "TEAM_MEMBER"}),
    "clearFlag": ("ClearFlagInput", {"patientId": PATIENT, "flagId": _some_id()}),
    "createTask": (
        "CreateTaskInput",
        {"patientId": PATIENT, "kind": "OUTREACH", "dueOn": "2999-01-02"},
    ),
    "completeTask": ("CompleteTaskInput", {"patientId": PATIENT, "taskId": _some_id()}),
    "recordCaseReview": ("RecordCaseReviewInput", {"patientId": PATIENT, "decision": "KEEP"}),
    "recordInitiatingVisit": (
        "RecordInitiatingVisitInput",
        {"patientId": PATIENT, "visitKind": "ANNUAL_WELLNESS_VISIT"},
    ),
    "writeRelapsePreventionPlan": (
        "WriteRelapsePreventionPlanInput",
        {"patientId": PATIENT, "warningSigns": ["sleep"], "strategies": ["call"]},
    ),
    "admitInpatient": ("AdmitInpatientInput", {"patientId": PATIENT}),
    "dischargeInpatient": ("DischargeInpatientInput", {"patientId": PATIENT}),
    "createCarePlan": ("CreateCarePlanInput", {"patientId": PATIENT}),
    "addGoal": ("AddGoalInput", {"carePlanId": PLAN, "description": "walk daily"}),
    "closeGoal": (
        "CloseGoalInput",
        {"carePlanId": PLAN, "goalId": _some_id(), "outcome": "ACHIEVED"},
    ),
    "setTarget": (
        "SetTargetInput",
        {"carePlanId": PLAN, "instrument": "PHQ9", "kind": "SCORE_BELOW", "value": 5},
    ),
    "removeTarget": ("RemoveTargetInput", {"carePlanId": PLAN, "targetId": _some_id()}),
    "startIntervention": (
        "StartInterventionInput",
        {"carePlanId": PLAN, "kind": "MEDICATION", "name": "sertraline", "dose": "50 mg"},
    ),
    "changeIntervention": (
        "ChangeInterventionInput",
        {"carePlanId": PLAN, "interventionId": _some_id(), "dose": "100 mg"},
    ),
    "stopIntervention": (
        "StopInterventionInput",
        {"carePlanId": PLAN, "interventionId": _some_id()},
    ),
    "reviewCarePlan": ("ReviewCarePlanInput", {"carePlanId": PLAN, "decision": "KEEP"}),
    "reviseCarePlan": ("ReviseCarePlanInput", {"carePlanId": PLAN, "reason": "new goal"}),
    "closeCarePlan": ("CloseCarePlanInput", {"carePlanId": PLAN}),
    "requestReferral": (
        "RequestReferralInput",
        {
            "patientId": PATIENT,
            "service": "PSYCHOTHERAPY",
            "reason": "weekly therapy",
            "expectedBy": "2999-02-01",
        },
    ),
    "sendReferral": ("SendReferralInput", {"referralId": REFERRAL}),
    "acceptReferral": ("AcceptReferralInput", {"referralId": REFERRAL}),
    "declineReferral": ("DeclineReferralInput", {"referralId": REFERRAL, "reason": "full"}),
    "scheduleReferral": (
        "ScheduleReferralInput",
        {"referralId": REFERRAL, "appointmentAt": "2999-01-03T09:00:00Z"},
    ),
    "completeReferral": (
        "CompleteReferralInput",
        {"referralId": REFERRAL, "reportBackSummary": "seen"},
    ),
    "cancelReferral": ("CancelReferralInput", {"referralId": REFERRAL, "reason": "moved"}),
    "requestConsultation": (
        "RequestConsultationInput",
        {"patientId": PATIENT, "question": "next step?"},
    ),
    "draftConsultationNote": (
        "DraftConsultationNoteInput",
        {"consultationNoteId": NOTE, "content": "assessment"},
    ),
    "addRecommendation": (
        "AddRecommendationInput",
        {"consultationNoteId": NOTE, "text": "increase dose"},
    ),
    "removeRecommendation": (
        "RemoveRecommendationInput",
        {"consultationNoteId": NOTE, "recommendationId": _some_id()},
    ),
    "signConsultationNote": ("SignConsultationNoteInput", {"consultationNoteId": NOTE}),
    "withdrawConsultation": (
        "WithdrawConsultationInput",
        {"consultationNoteId": NOTE, "reason": "resolved"},
    ),
    "addAddendum": ("AddAddendumInput", {"consultationNoteId": NOTE, "text": "correction"}),
    "acknowledgeConsultationNote": (
        "AcknowledgeConsultationNoteInput",
        {"consultationNoteId": NOTE},
    ),
    "respondToRecommendation": (
        "RespondToRecommendationInput",
        {"consultationNoteId": NOTE, "recommendationId": _some_id(), "response": "ACCEPTED"},
    ),
    "recordPsychotherapyNote": (
        "RecordPsychotherapyNoteInput",
        {"patientId": PATIENT, "text": "session notes"},
    ),
    "implementRecommendation": (
        "ImplementRecommendationInput",
        {"consultationNoteId": NOTE, "recommendationId": _some_id()},
    ),
}

QUERIES = {"patient": f"query($id: UUID!) {{ patient(id: $id) {{ {LOOKUP} }} }}"}


def command_document(operation: str) -> str:
    input_type = COMMANDS[operation][0]
    return f"mutation($input: {input_type}!) {{ {operation}(input: $input) {{ {RESULT} }} }}"


def expected(operation: str, role: Role, relation: str) -> bool:
    """What the policy says for a caller of ``role`` standing in ``relation`` to the patient."""
    for grant in POLICY[operation]:
        if role not in grant.roles:
            continue
        if grant.relation is Relation.OWN_ORG:
            return True
        if grant.relation is Relation.ORG and relation in ("team", "org"):
            return True
        if grant.relation is Relation.TEAM and relation == "team":
            return True
    return False


class Caller:
    """One keep-alive HTTP client for the whole table (a new connection per call is slow)."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=30.0)

    def graphql(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body


def outcome(caller: Caller, operation: str, token: str, ids: dict[str, str]) -> tuple[str, str]:
    """The result's type name and code."""
    if operation in QUERIES:
        body = caller.graphql(QUERIES[operation], {"id": ids[PATIENT]}, token)
    else:
        fields = COMMANDS[operation][1]
        resolved = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
        variables = {"input": {**resolved, "occurredAt": FUTURE}}
        body = caller.graphql(command_document(operation), variables, token)
    data = body["data"][operation]
    return data["__typename"], data.get("code", "")


def denied(result: tuple[str, str]) -> bool:
    """Refused by authorisation: forbidden, or the patient hidden as not found."""
    return result[0] == "ForbiddenError" or result == ("NotFoundError", "PATIENT_NOT_FOUND")


def setup_records(server: ServerProcess, team: dict[Role, UUID]) -> dict[str, str]:
    """A patient with a full care team, enrolled, with a care plan, a referral and a note."""
    cm = server.token("care_manager", user=team[Role.CARE_MANAGER])
    pcp = server.token("pcp", user=team[Role.PCP])

    def run(document: str, variables: dict[str, Any], token: str, path: list[str]) -> str:
        data: Any = server.graphql(document, variables, token=token)["data"]
        for key in path:
            data = data[key]
        assert isinstance(data, str), data
        return data

    patient_id = run(
        'mutation { registerPatient(input: {givenName: "A", familyName: "B", '
        'birthDate: "1990-01-01", mrn: "M-0"}) { ... on PatientPayload { patient { id } } } }',
        {},
        cm,
        ["registerPatient", "patient", "id"],
    )
    status = run(
        "mutation($id: UUID!, $pcp: UUID!, $psy: UUID!) { assignCareTeam(input: {patientId: $id,"
        " pcpId: $pcp, psychiatricConsultantId: $psy}) { __typename } }",
        {"id": patient_id, "pcp": str(team[Role.PCP]), "psy": str(team[Role.PSYCHIATRIST])},
        cm,
        ["assignCareTeam", "__typename"],
    )
    assert status == "PatientPayload"
    status = run(
        "mutation($id: UUID!) { enrollPatient(input: {patientId: $id}) { __typename } }",
        {"id": patient_id},
        cm,
        ["enrollPatient", "__typename"],
    )
    assert status == "PatientPayload"
    plan_id = run(
        "mutation($id: UUID!) { createCarePlan(input: {patientId: $id}) "
        "{ ... on CarePlanPayload { carePlan { id } } } }",
        {"id": patient_id},
        pcp,
        ["createCarePlan", "carePlan", "id"],
    )
    referral_id = run(
        "mutation($id: UUID!) { requestReferral(input: {patientId: $id, service: PSYCHOTHERAPY,"
        ' reason: "therapy", expectedBy: "2999-01-01"}) '
        "{ ... on ReferralPayload { referral { id } } } }",
        {"id": patient_id},
        cm,
        ["requestReferral", "referral", "id"],
    )
    note_id = run(
        "mutation($id: UUID!) { requestConsultation(input: {patientId: $id, question: "
        '"next step?"}) { ... on ConsultationNotePayload { consultationNote { id } } } }',
        {"id": patient_id},
        cm,
        ["requestConsultation", "consultationNote", "id"],
    )
    return {
        PATIENT: patient_id,
        PLAN: plan_id,
        REFERRAL: referral_id,
        NOTE: note_id,
        PCP_ID: str(team[Role.PCP]),
    }


async def stream_versions(db_dsn: str) -> dict[str, int]:
    """Every stream's current version."""
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT stream_id, max(stream_version) AS v FROM events GROUP BY stream_id"
        )
    finally:
        await conn.close()
    return {str(r["stream_id"]): r["v"] for r in rows}


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def test_the_table_covers_every_command_mutation_and_each_has_a_policy() -> None:
    """A new command mutation without a policy entry or a row here fails before any server
    starts (mutations with their own authorisation tests, such as break-the-glass, aside)."""
    groups = (PatientMutation, *CLINICAL_MUTATIONS)
    names = {
        camel(field.python_name)
        for group in groups
        for field in group.__strawberry_definition__.fields  # type: ignore[attr-defined]
    }
    assert names == set(COMMANDS)
    assert set(COMMANDS) <= set(POLICY)
    mutation_type = build_schema()._schema.mutation_type
    assert mutation_type is not None and names <= set(mutation_type.fields)


async def test_every_role_operation_and_relation_is_allowed_or_denied_as_the_policy_says(
    server: ServerProcess, db_dsn: str
) -> None:
    """The care team acts; same-organisation outsiders and other organisations are refused."""
    team = {Role.CARE_MANAGER: uuid4(), Role.PCP: uuid4(), Role.PSYCHIATRIST: uuid4()}
    ids = setup_records(server, team)
    before = await stream_versions(db_dsn)
    assert set(before) == {ids[PATIENT], ids[PLAN], ids[REFERRAL], ids[NOTE]}
    tokens = {
        (role, relation): server.token(
            role.value,
            user=team.get(role, uuid4()) if relation == "team" else uuid4(),
            org=OTHER_ORG if relation == "other" else DEFAULT_ORG,
        )
        for role in Role
        for relation in ("team", "org", "other")
    }

    caller = Caller(server)
    mismatches = []
    refusals: dict[str, int] = {}
    try:
        for operation in [*COMMANDS, *QUERIES]:
            for (role, relation), token in tokens.items():
                want = expected(operation, role, relation)
                result = outcome(caller, operation, token, ids)
                refused = denied(result)
                refusals[operation] = refusals.get(operation, 0) + refused
                reached = result == IN_FUTURE if operation in COMMANDS else not refused
                if (want and not reached) or (not want and not refused):
                    mismatches.append(f"{operation} {role.value} {relation}: {result}, want {want}")
    finally:
        caller.client.close()
    assert mismatches == []

    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT operation, count(*) AS n FROM access_log WHERE outcome = 'denied' "
            "GROUP BY operation"
        )
    finally:
        await conn.close()
    assert {r["operation"]: r["n"] for r in rows} == {k: v for k, v in refusals.items() if v}
    # Nothing the table ran was written: the setup's records are as the setup left them.
    assert await stream_versions(db_dsn) == before


def test_requests_without_a_valid_token_get_401_and_a_typed_error(server: ServerProcess) -> None:
    """No token, a garbage token, and a token from a stranger's key are all refused."""
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        response = httpx.post(
            f"{server.url}/graphql", json={"query": "{ __typename }"}, headers=headers
        )
        assert response.status_code == 401
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
