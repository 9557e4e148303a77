"""Authorisation: role x operation x relation, decided by SQL against rm_patient_access.

Relations:
- ``TEAM``: the caller is on the patient's care team (in the patient's organisation);
- ``ORG``: the caller belongs to the patient's organisation;
- ``OWN_ORG``: the operation creates something in the caller's own organisation.

The table below is the whole policy; tests/e2e/test_authorisation.py runs every row of
it against a live server, allowed and denied. Every denial is a typed error and a row in
``access_log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from services.auth import Principal, Role
from services.database import Conn

log = logging.getLogger("careteam.authz")


class Relation(Enum):
    TEAM = "team"
    ORG = "org"
    OWN_ORG = "own_org"
    # Break-the-glass: an unexpired emergency grant for this patient (reads only).
    EMERGENCY = "emergency"
    # A parent, guardian or other caregiver listed on the patient (projections/pcbh.py);
    # what they then see is limited further to the scopes granted (services/api/team/pcbh.py).
    CAREGIVER = "caregiver"


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    relation: Relation


def _g(relation: Relation, *roles: Role) -> Grant:
    return Grant(frozenset(roles), relation)


CM, PCP, PSY = Role.CARE_MANAGER, Role.PCP, Role.PSYCHIATRIST
COMP, ADMIN = Role.COMPLIANCE, Role.ADMIN
# The wider team (issue 18, docs/team-roles.md): on a patient's team through
# addWiderTeamMember, in the role the directory lists them in.
BHC, SW, THER = Role.BEHAVIORAL_HEALTH_CONSULTANT, Role.SOCIAL_WORKER, Role.THERAPIST
PEER, CHW, CARER = Role.PEER_SPECIALIST, Role.COMMUNITY_HEALTH_WORKER, Role.CAREGIVER
WIDER_TEAM_ROLES = frozenset({BHC, SW, THER, PEER, CHW})

# operation -> the grants that allow it (any one suffices).
POLICY: dict[str, tuple[Grant, ...]] = {
    # Care managers and PCPs bring patients into collaborative care; an admin may too.
    "registerPatient": (_g(Relation.OWN_ORG, CM, PCP, ADMIN),),
    # The organisation's name and calendar (its zone, in the log: domain/organisation.py).
    "setOrganisation": (_g(Relation.OWN_ORG, ADMIN),),
    # The care manager builds the team; an admin may fix it.
    "assignCareTeam": (_g(Relation.TEAM, CM), _g(Relation.ORG, ADMIN)),
    "enrollPatient": (_g(Relation.TEAM, CM, PCP),),
    "startTreatment": (_g(Relation.TEAM, CM, PCP),),
    "recordScreening": (_g(Relation.TEAM, CM, PCP),),
    # A historical total typed in (onboarding one patient): whoever records screenings.
    "importMeasureTotal": (_g(Relation.TEAM, CM, PCP),),
    "logContact": (_g(Relation.TEAM, CM),),
    # --- the episode: the clinicians who run it move it; compliance never writes ---
    # The PCP usually refers; the care manager may take the referral in.
    "referPatient": (_g(Relation.TEAM, CM, PCP),),
    # A relapse is noticed by whoever measures or sees the patient, as for startTreatment.
    "resumeTreatment": (_g(Relation.TEAM, CM, PCP),),
    # Ending an episode is a clinical decision of the care manager and the accountable PCP.
    "dischargePatient": (_g(Relation.TEAM, CM, PCP),),
    # Also administrative (entered in error, moved away, deceased): an admin may record it.
    "deactivatePatient": (_g(Relation.TEAM, CM, PCP), _g(Relation.ORG, ADMIN)),
    # Mirrors assignCareTeam: the care manager builds the team; an admin may fix it.
    "unassignCareTeamMember": (_g(Relation.TEAM, CM), _g(Relation.ORG, ADMIN)),
    # Consent is taken at enrollment by the care manager or the PCP.
    "grantConsent": (_g(Relation.TEAM, CM, PCP),),
    # A revocation must be honoured whoever receives it, the privacy office (admin) too.
    "revokeConsent": (_g(Relation.TEAM, CM, PCP), _g(Relation.ORG, ADMIN)),
    # "Flagged by a team member" (docs/clinical-rules.md): any of the three roles on the team.
    "raiseFlag": (_g(Relation.TEAM, CM, PCP, PSY),),
    "clearFlag": (_g(Relation.TEAM, CM, PCP, PSY),),
    # Tasks are the whole team's work list.
    "createTask": (_g(Relation.TEAM, CM, PCP, PSY),),
    "completeTask": (_g(Relation.TEAM, CM, PCP, PSY),),
    # The consultant's own review; the consultant id is the caller's.
    "recordCaseReview": (_g(Relation.TEAM, PSY),),
    # The billing practitioner's initiating visit (CoCM and general BHI billing): the PCP.
    "recordInitiatingVisit": (_g(Relation.TEAM, PCP),),
    # Written with the patient by the care manager, or by the PCP at a visit.
    "writeRelapsePreventionPlan": (_g(Relation.TEAM, CM, PCP),),
    # Psychotherapy notes: written by the team's behavioural health clinicians (the care
    # manager's brief therapy, the psychiatric consultant); each reads only their own
    # (services/api/patient/psychotherapy.py), so any team clinician may ask.
    "recordPsychotherapyNote": (_g(Relation.TEAM, CM, PSY),),
    "psychotherapyNotes": (_g(Relation.TEAM, CM, PCP, PSY),),
    # Hospital stays stop billable minutes; the care manager or PCP learns of them.
    "admitInpatient": (_g(Relation.TEAM, CM, PCP),),
    "dischargeInpatient": (_g(Relation.TEAM, CM, PCP),),
    # --- care plans: the PCP (accountable, prescribes) and the care manager manage them ---
    "createCarePlan": (_g(Relation.TEAM, CM, PCP),),
    "addGoal": (_g(Relation.TEAM, CM, PCP),),
    "closeGoal": (_g(Relation.TEAM, CM, PCP),),
    "setTarget": (_g(Relation.TEAM, CM, PCP),),
    "removeTarget": (_g(Relation.TEAM, CM, PCP),),
    # Medication is the PCP's, brief psychotherapy often the care manager's.
    "startIntervention": (_g(Relation.TEAM, CM, PCP),),
    "changeIntervention": (_g(Relation.TEAM, CM, PCP),),
    "stopIntervention": (_g(Relation.TEAM, CM, PCP),),
    # The consultant recommends through notes and case reviews, never edits the plan.
    "reviewCarePlan": (_g(Relation.TEAM, CM, PCP),),
    "reviseCarePlan": (_g(Relation.TEAM, CM, PCP),),
    "closeCarePlan": (_g(Relation.TEAM, CM, PCP),),
    # --- referrals: the care manager coordinates the loop; the accountable PCP may too.
    # The receiving organisation's answers are recorded by them (no partner writes).
    "requestReferral": (_g(Relation.TEAM, CM, PCP),),
    "sendReferral": (_g(Relation.TEAM, CM, PCP),),
    "acceptReferral": (_g(Relation.TEAM, CM, PCP),),
    "declineReferral": (_g(Relation.TEAM, CM, PCP),),
    "scheduleReferral": (_g(Relation.TEAM, CM, PCP),),
    "completeReferral": (_g(Relation.TEAM, CM, PCP),),
    "cancelReferral": (_g(Relation.TEAM, CM, PCP),),
    # --- the consultation loop (docs/clinical-rules.md): each step belongs to one role ---
    # The care manager asks (and may withdraw the question before it is answered).
    "requestConsultation": (_g(Relation.TEAM, CM),),
    "withdrawConsultation": (_g(Relation.TEAM, CM),),
    # The psychiatric consultant writes, recommends, signs and corrects the note.
    "draftConsultationNote": (_g(Relation.TEAM, PSY),),
    "addRecommendation": (_g(Relation.TEAM, PSY),),
    "removeRecommendation": (_g(Relation.TEAM, PSY),),
    "signConsultationNote": (_g(Relation.TEAM, PSY),),
    "addAddendum": (_g(Relation.TEAM, PSY),),
    # The accountable PCP acknowledges and answers each recommendation.
    "acknowledgeConsultationNote": (_g(Relation.TEAM, PCP),),
    "respondToRecommendation": (_g(Relation.TEAM, PCP),),
    # The PCP prescribes; the care manager puts behavioural recommendations into practice.
    "implementRecommendation": (_g(Relation.TEAM, PCP, CM),),
    # Reading a patient: the care team; compliance and admins across their organisation.
    "patient": (
        _g(Relation.TEAM, CM, PCP, PSY),
        _g(Relation.ORG, COMP, ADMIN),
        _g(Relation.EMERGENCY, CM, PCP, PSY),
    ),
    # What the team knew at an instant: the same readers as the patient itself.
    "patientAsOf": (
        _g(Relation.TEAM, CM, PCP, PSY),
        _g(Relation.ORG, COMP, ADMIN),
        _g(Relation.EMERGENCY, CM, PCP, PSY),
    ),
    # Any clinician of the organisation may break the glass, with a reason; it is audited
    # and reviewed (HIPAA 164.312(a)(2)(ii)).
    "breakTheGlass": (_g(Relation.ORG, CM, PCP, PSY),),
    # Erasure is irreversible: administrators of the patient's organisation only.
    "forgetPatient": (_g(Relation.ORG, ADMIN),),
    # Compliance reviews every emergency access.
    "reviewEmergencyAccess": (_g(Relation.ORG, COMP),),
    "emergencyAccessReviews": (_g(Relation.ORG, COMP),),
    # The registry as it was known at an instant: compliance and administrators.
    "caseloadAsOf": (_g(Relation.ORG, COMP, ADMIN),),
    # The intake queue (registered or referred, not enrolled) is the care managers' work
    # list across the organisation; admins see it too (services/api/patient/search.py).
    "intakeQueue": (_g(Relation.ORG, CM, ADMIN),),
    # The audit trail is compliance's: who did what, who looked.
    "auditTrail": (_g(Relation.ORG, COMP),),
    # --- the wider team and PCBH (issue 18; services/api/team/pcbh.py, docs/team-roles.md) ---
    # The wider-team roles reach a patient only through the operations below (minimum
    # necessary): none of the CoCM operations above is granted to them.
    # The care manager builds the team, as for assignCareTeam; an admin may fix it.
    "addWiderTeamMember": (_g(Relation.TEAM, CM), _g(Relation.ORG, ADMIN)),
    "removeWiderTeamMember": (_g(Relation.TEAM, CM), _g(Relation.ORG, ADMIN)),
    # Caregivers are recorded, and their access granted or withdrawn, by the care manager
    # or the PCP on the patient's (or guardian's) word; an admin may too. A caregiver never
    # grants access to anyone.
    "addCaregiver": (_g(Relation.TEAM, CM, PCP), _g(Relation.ORG, ADMIN)),
    "grantCaregiverAccess": (_g(Relation.TEAM, CM, PCP), _g(Relation.ORG, ADMIN)),
    "revokeCaregiverAccess": (_g(Relation.TEAM, CM, PCP), _g(Relation.ORG, ADMIN)),
    # PCBH: the PCP hands the patient to the BHC during the visit; the BHC accepts; either
    # may record that it was missed; the brief visit is the BHC's own.
    "offerWarmHandoff": (_g(Relation.TEAM, PCP),),
    "acceptWarmHandoff": (_g(Relation.TEAM, BHC),),
    "missWarmHandoff": (_g(Relation.TEAM, BHC, PCP),),
    "recordBriefVisit": (_g(Relation.TEAM, BHC),),
    # The patient's wider team, handoffs and brief visits: the whole team, the wider team
    # included; compliance and admins across their organisation.
    "integratedCare": (
        _g(Relation.TEAM, CM, PCP, PSY, BHC, SW, THER, PEER, CHW),
        _g(Relation.ORG, COMP, ADMIN),
    ),
    # The BHC's and the PCP's handoff list with the same-day measure (their patients).
    "warmHandoffs": (_g(Relation.TEAM, PCP, BHC, CM), _g(Relation.ORG, COMP, ADMIN)),
    # A caregiver's view: only the scopes granted, only for patients they are listed on.
    "caregiverView": (_g(Relation.CAREGIVER, CARER),),
    # Which community services close their loops and how fast (no patient data): those
    # who refer and coordinate, and the organisation's oversight.
    "communityServiceLoops": (_g(Relation.ORG, CM, PCP, SW, CHW, COMP, ADMIN),),
    # --- outcomes over time (issue #19 item 3; services/api/registry/outcomes.py) ---
    # Emergency visits, hospitalisations, specialty referrals: learned of by the care
    # manager or the PCP, as for admitInpatient.
    "recordUtilisation": (_g(Relation.TEAM, CM, PCP),),
    # The organisation's series per enrollment month (aggregate counts): compliance and
    # administrators (program managers), as for caseloadAsOf. Clinicians are left out: a
    # clinician's read of patients off their team is tagged as break-the-glass.
    "outcomesOverTime": (_g(Relation.ORG, COMP, ADMIN),),
    # The care-team measures per month (docs/outcomes.md): the same people. Care managers
    # do not read even their own series: their reach is their current care team, so their
    # past months would silently miss the patients handed to a colleague.
    "careTeamOverTime": (_g(Relation.ORG, COMP, ADMIN),),
}


def allowed_relations(operation: str, role: Role) -> set[Relation]:
    return {g.relation for g in POLICY[operation] if role in g.roles}


def patient_scope_sql(
    operation: str, principal: Principal, key: str, first: int
) -> tuple[str, list[object]]:
    """A SQL predicate restricting ``key`` (a patient id column) to what the caller may
    reach for ``operation``, and its parameters numbered from ``$first``."""
    relations = allowed_relations(operation, principal.role)
    org, user = f"${first}", f"${first + 1}"
    clauses = []
    if Relation.ORG in relations:
        clauses.append(f"a.organisation_id = {org}")
    if Relation.TEAM in relations:
        clauses.append(
            f"(a.organisation_id = {org} AND {user} IN "
            "(a.care_manager_id, a.pcp_id, a.psychiatric_consultant_id))"
        )
    wider = principal.role in WIDER_TEAM_ROLES and Relation.TEAM in relations
    if wider:
        # A wider-team member is on the team in the role their token carries.
        clauses.append(
            f"(a.organisation_id = {org} AND EXISTS (SELECT 1 FROM rm_pcbh w "
            f"WHERE w.key = a.patient_id "
            f"AND w.doc->'members'->>({user}::uuid::text) = ${first + 2}))"
        )
    if Relation.CAREGIVER in relations:
        clauses.append(
            f"(a.organisation_id = {org} AND EXISTS (SELECT 1 FROM rm_pcbh w "
            f"WHERE w.key = a.patient_id AND w.doc->'caregivers' ? ({user}::uuid::text)))"
        )
    if Relation.EMERGENCY in relations:
        clauses.append(
            f"(a.organisation_id = {org} AND EXISTS (SELECT 1 FROM rm_emergency_access g "
            f"WHERE g.patient_id = a.patient_id AND g.user_id = {user} "
            "AND g.granted_at <= now() AND g.expires_at > now()))"
        )
    if not clauses:
        return "FALSE", []
    predicate = (
        f"EXISTS (SELECT 1 FROM rm_patient_access a WHERE a.patient_id = {key} "
        f"AND ({' OR '.join(clauses)}))"
    )
    params: list[object] = [principal.organisation_id]
    if relations & {Relation.TEAM, Relation.EMERGENCY, Relation.CAREGIVER}:
        params.append(principal.user_id)
    if wider:
        params.append(principal.role.value)
    return predicate, params


class Denied(Exception):
    """The caller may not do this; ``not_found`` hides patients of other organisations."""

    def __init__(self, operation: str, reason: str, *, not_found: bool = False) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.not_found = not_found


NOT_IN_ORGANISATION = "PATIENT_NOT_IN_ORGANISATION"


def patient_operation_sql(
    principal: Principal, operation: str, first: int
) -> tuple[str, list[object]]:
    """A one-row SELECT of one text column ``refused``: NULL when the caller may perform
    ``operation`` on the patient ``$first``, else why not (``NOT_IN_ORGANISATION`` for a
    patient of another organisation, or none: hidden; ``NOT_ON_CARE_TEAM``). The
    parameters after the patient id are returned, numbered from ``$first + 1``."""
    predicate, params = patient_scope_sql(operation, principal, f"${first}", first + 2)
    sql = f"""SELECT CASE WHEN {predicate} THEN NULL
                   WHEN EXISTS (SELECT 1 FROM rm_patient_access a
                                WHERE a.patient_id = ${first} AND a.organisation_id = ${first + 1})
                   THEN 'NOT_ON_CARE_TEAM'
                   ELSE '{NOT_IN_ORGANISATION}' END AS refused"""
    return sql, [principal.organisation_id, *params]


async def check_patient_operation(
    conn: Conn, principal: Principal, operation: str, patient_id: UUID
) -> None:
    """Raises Denied unless the caller may perform ``operation`` on ``patient_id``."""
    if not allowed_relations(operation, principal.role):
        raise Denied(operation, "ROLE_NOT_PERMITTED")
    sql, params = patient_operation_sql(principal, operation, 1)
    refused: str | None = await conn.fetchval(sql, patient_id, *params)
    if refused is not None:
        raise Denied(operation, refused, not_found=refused == NOT_IN_ORGANISATION)


def check_role(principal: Principal, operation: str) -> None:
    if not allowed_relations(operation, principal.role):
        raise Denied(operation, "ROLE_NOT_PERMITTED")


async def record_access(
    conn: Conn,
    *,
    principal: Principal | None,
    operation: str,
    patient_id: UUID | None,
    outcome: str,
    reason: str | None,
    purpose_of_use: str | None,
    request_id: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO access_log (actor_id, role, organisation_id, patient_id, operation,
                                   outcome, reason, purpose_of_use, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        principal.user_id if principal else None,
        principal.role.value if principal else None,
        principal.organisation_id if principal else None,
        patient_id,
        operation,
        outcome,
        reason,
        purpose_of_use,
        request_id,
    )


# --- System actors (services/commands/handler.py, Actor.system) -----------------------
# In-process actors no token can produce, allowed the operations listed: ``careteam seed``
# writes its synthetic caseload through the same command path as every caller.
SYSTEM_OPERATIONS: dict[str, frozenset[str]] = {
    "seed": frozenset(
        {
            "registerPatient",
            "enrollPatient",
            "grantConsent",
            "startTreatment",
            "recordScreening",
            "logContact",
            "recordCaseReview",
            "writeRelapsePreventionPlan",
            "createCarePlan",
            "requestConsultation",
            "draftConsultationNote",
            "addRecommendation",
            "signConsultationNote",
            "requestReferral",
            "sendReferral",
        }
    ),
    # services/clinic_zones.py: puts the directory's zones into the log, once.
    "backfill-clinic-zones": frozenset({"setOrganisation"}),
}
