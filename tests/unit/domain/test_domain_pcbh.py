"""The wider team and PCBH on the Patient aggregate: wider-team roles held in the
directory, caregivers as participants with scoped grants (default nothing), warm
handoffs to a BHC (accepted or missed) and brief visits of 15-30 minutes.
"""

from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.common import (
    CaregiverRelationship,
    CaregiverScope,
    WarmHandoffStatus,
    WiderTeamRole,
)
from domain.errors import (
    BriefVisitDurationError,
    CaregiverNotFoundError,
    CaregiverNotStaffError,
    InvalidEnumValueError,
    NotABehavioralHealthConsultantError,
    NotTheHandoffsConsultantError,
    OutOfOrderError,
    StaffRoleNotHeldError,
    WarmHandoffClosedError,
    WarmHandoffNotFoundError,
)
from domain.patient import BRIEF_VISIT_MAX_MINUTES, BRIEF_VISIT_MIN_MINUTES, Patient
from tests.unit.domain.domain_support import (
    NOW,
    PCP,
    assert_replays,
    day,
    enrolled_patient,
)

BHC = UUID("00000000-0000-4000-8000-0000000000d1")
SOCIAL_WORKER = UUID("00000000-0000-4000-8000-0000000000d2")
CAREGIVER = UUID("00000000-0000-4000-8000-0000000000e1")


def with_bhc() -> tuple[Patient, list[Any]]:
    patient = enrolled_patient()
    history = list(patient.collect_events())
    patient.add_wider_team_member(
        user_id=BHC,
        role=WiderTeamRole.BEHAVIORAL_HEALTH_CONSULTANT,
        held_roles=frozenset({"behavioral_health_consultant"}),
        occurred_at=day(2),
        now=NOW,
    )
    return patient, history


def test_wider_team_role_needs_the_directory_role() -> None:
    patient = enrolled_patient()
    with pytest.raises(StaffRoleNotHeldError) as caught:
        patient.add_wider_team_member(
            user_id=SOCIAL_WORKER,
            role="social_worker",
            held_roles=frozenset({"therapist"}),
            occurred_at=day(2),
            now=NOW,
        )
    assert caught.value.field == "userId"
    assert caught.value.code == "NOT_IN_ROLE"
    assert patient.wider_team_role_of(SOCIAL_WORKER) is None


@pytest.mark.parametrize("role", list(WiderTeamRole))
def test_every_wider_team_role_can_join(role: WiderTeamRole) -> None:
    patient = enrolled_patient()
    patient.add_wider_team_member(
        user_id=SOCIAL_WORKER,
        role=role.value,
        held_roles=frozenset({role.value}),
        occurred_at=day(2),
        now=NOW,
    )
    assert patient.wider_team_role_of(SOCIAL_WORKER) is role


@pytest.mark.parametrize("relationship", list(CaregiverRelationship))
def test_a_caregiver_relationship_is_not_a_staff_role(
    relationship: CaregiverRelationship,
) -> None:
    patient = enrolled_patient()
    with pytest.raises(CaregiverNotStaffError) as caught:
        patient.add_wider_team_member(
            user_id=CAREGIVER,
            role=relationship.value,
            held_roles=frozenset({relationship.value}),
            occurred_at=day(2),
            now=NOW,
        )
    assert caught.value.field == "role"


def test_a_caregiver_cannot_be_given_a_staff_role() -> None:
    patient = enrolled_patient()
    patient.add_caregiver(
        caregiver_id=CAREGIVER, relationship="guardian", occurred_at=day(2), now=NOW
    )
    with pytest.raises(CaregiverNotStaffError) as caught:
        patient.add_wider_team_member(
            user_id=CAREGIVER,
            role="peer_specialist",
            held_roles=frozenset({"peer_specialist"}),
            occurred_at=day(2),
            now=NOW,
        )
    assert caught.value.field == "userId"
    with pytest.raises(CaregiverNotStaffError) as staff_relationship:
        patient.add_caregiver(
            caregiver_id=uuid4(), relationship="therapist", occurred_at=day(2), now=NOW
        )
    assert staff_relationship.value.field == "relationship"
    with pytest.raises(CaregiverNotStaffError):
        patient.add_caregiver(caregiver_id=PCP, relationship="parent", occurred_at=day(2), now=NOW)


def test_a_caregiver_starts_with_no_access_and_scopes_are_granted_one_by_one() -> None:
    patient = enrolled_patient()
    patient.add_caregiver(
        caregiver_id=CAREGIVER, relationship="parent", occurred_at=day(2), now=NOW
    )
    assert patient.integrated_care.caregivers[CAREGIVER].scopes == []
    patient.grant_caregiver_access(
        caregiver_id=CAREGIVER, scope=CaregiverScope.VISITS, occurred_at=day(3), now=NOW
    )
    patient.grant_caregiver_access(
        caregiver_id=CAREGIVER, scope=CaregiverScope.VISITS, occurred_at=day(3), now=NOW
    )
    assert patient.integrated_care.caregivers[CAREGIVER].scopes == [CaregiverScope.VISITS]
    patient.revoke_caregiver_access(
        caregiver_id=CAREGIVER, scope="visits", occurred_at=day(4), now=NOW
    )
    assert patient.integrated_care.caregivers[CAREGIVER].scopes == []
    with pytest.raises(CaregiverNotFoundError):
        patient.grant_caregiver_access(
            caregiver_id=uuid4(), scope="visits", occurred_at=day(4), now=NOW
        )
    with pytest.raises(InvalidEnumValueError):
        patient.grant_caregiver_access(
            caregiver_id=CAREGIVER, scope="everything", occurred_at=day(4), now=NOW
        )


def test_a_warm_handoff_goes_only_to_a_bhc_on_the_team() -> None:
    patient = enrolled_patient()
    patient.add_wider_team_member(
        user_id=SOCIAL_WORKER,
        role="social_worker",
        held_roles=frozenset({"social_worker"}),
        occurred_at=day(2),
        now=NOW,
    )
    for target in (SOCIAL_WORKER, PCP, uuid4()):
        with pytest.raises(NotABehavioralHealthConsultantError) as caught:
            patient.offer_warm_handoff(
                from_user_id=PCP, to_user_id=target, occurred_at=day(3), now=NOW
            )
        assert caught.value.field == "toUserId"
    assert patient.integrated_care.handoffs == {}


def test_a_warm_handoff_is_accepted_or_missed_once() -> None:
    patient, _ = with_bhc()
    seen = patient.offer_warm_handoff(from_user_id=PCP, to_user_id=BHC, occurred_at=day(3), now=NOW)
    missed = patient.offer_warm_handoff(
        from_user_id=PCP, to_user_id=BHC, occurred_at=day(4), now=NOW
    )
    with pytest.raises(OutOfOrderError):
        patient.accept_warm_handoff(handoff_id=seen, accepted_by=BHC, occurred_at=day(2), now=NOW)
    # Only the BHC it was offered to accepts it: another user (even the PCP) is refused.
    for other in (PCP, uuid4()):
        with pytest.raises(NotTheHandoffsConsultantError) as refused:
            patient.accept_warm_handoff(
                handoff_id=seen, accepted_by=other, occurred_at=day(3, 1), now=NOW
            )
        assert refused.value.field == "handoffId"
    assert patient.integrated_care.handoffs[seen].status is WarmHandoffStatus.OFFERED
    patient.accept_warm_handoff(handoff_id=seen, accepted_by=BHC, occurred_at=day(3, 1), now=NOW)
    patient.miss_warm_handoff(handoff_id=missed, occurred_at=day(4, 8), now=NOW)
    assert patient.integrated_care.handoffs[seen].status is WarmHandoffStatus.ACCEPTED
    assert patient.integrated_care.handoffs[missed].status is WarmHandoffStatus.MISSED
    with pytest.raises(WarmHandoffClosedError):
        patient.miss_warm_handoff(handoff_id=seen, occurred_at=day(5), now=NOW)
    with pytest.raises(WarmHandoffNotFoundError):
        patient.accept_warm_handoff(
            handoff_id=uuid4(), accepted_by=BHC, occurred_at=day(5), now=NOW
        )


@pytest.mark.parametrize(
    ("minutes", "ok"),
    [
        (BRIEF_VISIT_MIN_MINUTES - 1, False),
        (BRIEF_VISIT_MIN_MINUTES, True),
        (BRIEF_VISIT_MAX_MINUTES, True),
        (BRIEF_VISIT_MAX_MINUTES + 1, False),
        (0, False),
        (True, False),
    ],
)
def test_a_brief_visit_lasts_15_to_30_minutes(minutes: int, ok: bool) -> None:
    assert (BRIEF_VISIT_MIN_MINUTES, BRIEF_VISIT_MAX_MINUTES) == (15, 30)
    patient, _ = with_bhc()
    if ok:
        patient.record_brief_visit(bhc_id=BHC, minutes=minutes, occurred_at=day(3), now=NOW)
        assert [v.minutes for v in patient.integrated_care.brief_visits] == [minutes]
    else:
        with pytest.raises(BriefVisitDurationError) as caught:
            patient.record_brief_visit(bhc_id=BHC, minutes=minutes, occurred_at=day(3), now=NOW)
        assert caught.value.field == "minutes"
        assert patient.integrated_care.brief_visits == []


def test_a_brief_visit_is_a_bhcs() -> None:
    patient, _ = with_bhc()
    with pytest.raises(NotABehavioralHealthConsultantError) as caught:
        patient.record_brief_visit(bhc_id=PCP, minutes=20, occurred_at=day(3), now=NOW)
    assert caught.value.field == "bhcId"
    with pytest.raises(WarmHandoffNotFoundError):
        patient.record_brief_visit(
            bhc_id=BHC, minutes=20, occurred_at=day(3), now=NOW, handoff_id=uuid4()
        )


def test_the_wider_team_replays_and_snapshots() -> None:
    patient, history = with_bhc()
    handoff = patient.offer_warm_handoff(
        from_user_id=PCP, to_user_id=BHC, occurred_at=day(3), now=NOW
    )
    patient.accept_warm_handoff(handoff_id=handoff, accepted_by=BHC, occurred_at=day(3, 1), now=NOW)
    patient.record_brief_visit(
        bhc_id=BHC, minutes=25, occurred_at=day(3, 1), now=NOW, handoff_id=handoff
    )
    patient.add_caregiver(
        caregiver_id=CAREGIVER, relationship="guardian", occurred_at=day(3), now=NOW
    )
    patient.grant_caregiver_access(
        caregiver_id=CAREGIVER, scope="care_team", occurred_at=day(3), now=NOW
    )
    history += patient.collect_events()
    assert_replays(patient, history)
    restored = Patient.from_snapshot_state(patient.snapshot_state())
    assert restored.integrated_care == patient.integrated_care
    assert restored.integrated_care.brief_visits[0].episode_number == 1
