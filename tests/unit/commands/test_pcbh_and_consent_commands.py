"""The wider-team, PCBH, consent-giver and measurement-reminder commands: each is a
frozen dataclass naming its policy row (the operation the caller is authorised for),
applies itself to the loaded patient at ``now`` and leaves the domain's validation to
refuse bad input with a typed error naming the field, writing nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain import errors
from domain.minors import GuardianConsentRequiredError, GuardianDetailsRequiredError
from domain.patient import Patient
from services.api.authz import POLICY
from services.commands.commands import (
    Command,
    GrantConsent,
    PatientCommand,
    RecordScreening,
    RemindMeasurement,
)
from services.commands.pcbh import (
    AcceptWarmHandoff,
    AddCaregiver,
    AddWiderTeamMember,
    GrantCaregiverAccess,
    MissWarmHandoff,
    OfferWarmHandoff,
    RecordBriefVisit,
    RemoveWiderTeamMember,
    RevokeCaregiverAccess,
)
from tests.unit.domain.domain_support import NOW, day, enrolled_patient, new_patient

BHC = uuid4()
PCP_USER = uuid4()
CAREGIVER = uuid4()

OPERATIONS: dict[type[Command], str] = {
    AddWiderTeamMember: "addWiderTeamMember",
    RemoveWiderTeamMember: "removeWiderTeamMember",
    AddCaregiver: "addCaregiver",
    GrantCaregiverAccess: "grantCaregiverAccess",
    RevokeCaregiverAccess: "revokeCaregiverAccess",
    OfferWarmHandoff: "offerWarmHandoff",
    AcceptWarmHandoff: "acceptWarmHandoff",
    MissWarmHandoff: "missWarmHandoff",
    RecordBriefVisit: "recordBriefVisit",
    GrantConsent: "grantConsent",
    # Whoever may record a screening may remind the patient of one.
    RemindMeasurement: "recordScreening",
}


@pytest.mark.parametrize("cls", list(OPERATIONS), ids=lambda c: c.__name__)
def test_each_command_is_authorised_as_its_operation(cls: type[Command]) -> None:
    assert cls.operation == OPERATIONS[cls]
    assert cls.operation in POLICY
    assert issubclass(cls, PatientCommand)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_a_command_is_data_it_compares_by_value_and_cannot_change() -> None:
    patient = uuid4()
    one = AddWiderTeamMember(
        patient=patient, user_id=BHC, role="behavioral_health_consultant",
        held_roles=frozenset({"behavioral_health_consultant"}),
    )  # fmt: skip
    two = AddWiderTeamMember(
        patient=patient, user_id=BHC, role="behavioral_health_consultant",
        held_roles=frozenset({"behavioral_health_consultant"}),
    )  # fmt: skip
    assert one == two and one.stream_id == one.patient_id == patient
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.role = "therapist"  # type: ignore[misc]


def with_bhc() -> Patient:
    patient = enrolled_patient()
    AddWiderTeamMember(
        patient=patient.id,
        user_id=BHC,
        role="behavioral_health_consultant",
        held_roles=frozenset({"behavioral_health_consultant"}),
    ).apply(patient, NOW)
    patient.collect_events()
    return patient


def test_a_wider_team_role_the_directory_does_not_list_is_refused_on_user_id() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    command = AddWiderTeamMember(
        patient=patient.id, user_id=BHC, role="therapist", held_roles=frozenset({"social_worker"})
    )
    with pytest.raises(errors.StaffRoleNotHeldError) as refused:
        command.apply(patient, NOW)
    assert refused.value.field == "userId"
    assert patient.collect_events() == []


def test_the_pcbh_route_offer_accept_and_a_brief_visit_at_now() -> None:
    patient = with_bhc()
    offer = OfferWarmHandoff(patient=patient.id, from_user_id=PCP_USER, to_user_id=BHC)
    handoff = offer.apply(patient, NOW)
    assert isinstance(handoff, UUID)
    AcceptWarmHandoff(patient=patient.id, handoff_id=handoff, accepted_by=BHC).apply(patient, NOW)
    visit = RecordBriefVisit(patient=patient.id, bhc_id=BHC, minutes=20, handoff_id=handoff)
    visit_id = visit.apply(patient, NOW)
    events = patient.collect_events()
    assert [type(e).__name__ for e in events] == [
        "WarmHandoffOffered",
        "WarmHandoffAccepted",
        "BriefVisitRecorded",
    ]
    assert all(e.occurred_at == NOW for e in events)
    assert visit_id == events[-1].visit_id
    # A handoff already accepted cannot also be missed.
    with pytest.raises(errors.DomainError):
        MissWarmHandoff(patient=patient.id, handoff_id=handoff).apply(patient, NOW)
    RemoveWiderTeamMember(patient=patient.id, user_id=BHC, occurred_at=day(3)).apply(patient, NOW)
    assert type(patient.collect_events()[-1]).__name__ == "WiderTeamMemberRemoved"


def test_a_handoff_goes_only_to_a_bhc_and_a_brief_visit_lasts_15_to_30_minutes() -> None:
    patient = with_bhc()
    with pytest.raises(errors.NotABehavioralHealthConsultantError) as to_other:
        OfferWarmHandoff(patient=patient.id, from_user_id=PCP_USER, to_user_id=uuid4()).apply(
            patient, NOW
        )
    assert to_other.value.field == "toUserId"
    with pytest.raises(errors.BriefVisitDurationError) as too_long:
        RecordBriefVisit(patient=patient.id, bhc_id=BHC, minutes=31).apply(patient, NOW)
    assert too_long.value.field == "minutes"
    assert patient.collect_events() == []


def test_caregiver_access_is_granted_and_revoked_one_scope_at_a_time() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    AddCaregiver(patient=patient.id, caregiver_id=CAREGIVER, relationship="parent").apply(
        patient, NOW
    )
    GrantCaregiverAccess(patient=patient.id, caregiver_id=CAREGIVER, scope="visits").apply(
        patient, NOW
    )
    assert patient.integrated_care.caregivers[CAREGIVER].scopes
    RevokeCaregiverAccess(patient=patient.id, caregiver_id=CAREGIVER, scope="visits").apply(
        patient, NOW
    )
    assert not patient.integrated_care.caregivers[CAREGIVER].scopes
    with pytest.raises(errors.DomainError) as bad_scope:
        GrantCaregiverAccess(patient=patient.id, caregiver_id=CAREGIVER, scope="x").apply(
            patient, NOW
        )
    assert bad_scope.value.field == "scope"


def test_one_grant_consent_command_with_or_without_who_gave_it() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    plain = GrantConsent(patient=patient.id, kind="cocm_treatment", method="verbal")
    consent = plain.apply(patient, NOW)
    (granted,) = patient.collect_events()
    assert type(granted).__name__ == "ConsentGranted" and granted.consent_id == consent
    by_patient = GrantConsent(
        patient=patient.id, kind="cocm_treatment", method="written", given_by="patient"
    )
    given = by_patient.apply(patient, NOW)
    events = patient.collect_events()
    assert [type(e).__name__ for e in events] == ["ConsentGranted", "ConsentGiverRecorded"]
    assert events[-1].consent_id == given and events[-1].given_by == "patient"


def test_a_minors_consent_needs_a_guardian_by_the_organisations_age_rule() -> None:
    # Sixteen on the day of the consent: a minor under 18, an adult under a rule of 16.
    minor = new_patient(birth_date=(NOW - timedelta(days=16 * 366)).date())
    minor.collect_events()
    by_minor = GrantConsent(
        patient=minor.id, kind="cocm_treatment", method="verbal", given_by="patient"
    )
    with pytest.raises(GuardianConsentRequiredError) as refused:
        by_minor.apply(minor, NOW)
    assert refused.value.field == "given_by"
    assert minor.collect_events() == []
    dataclasses.replace(by_minor, guardian_consent_under=16).apply(minor, NOW)
    assert type(minor.collect_events()[-1]).__name__ == "ConsentGiverRecorded"
    unnamed = GrantConsent(
        patient=minor.id,
        kind="cocm_treatment",
        method="verbal",
        given_by="guardian",
        relationship="parent",
    )
    with pytest.raises(GuardianDetailsRequiredError) as nameless:
        unnamed.apply(minor, NOW)
    assert nameless.value.field == "giver_name"
    dataclasses.replace(unnamed, giver_name="A Parent").apply(minor, NOW)
    assert minor.collect_events()[-1].relationship == "parent"


def test_a_reminder_is_due_only_after_the_measurement_interval() -> None:
    patient = enrolled_patient()
    patient.collect_events()
    remind = RemindMeasurement(patient=patient.id, instrument="phq9")
    reminder = remind.apply(patient, NOW)
    (due,) = patient.collect_events()
    assert due.reminder_id == reminder and due.occurred_at == NOW
    RecordScreening(patient=patient.id, instrument="phq9", answers=[1] * 9).apply(patient, NOW)
    patient.collect_events()
    with pytest.raises(errors.DomainError) as not_due:
        remind.apply(patient, NOW)
    assert not_due.value.code == "MEASUREMENT_NOT_DUE"
    assert patient.collect_events() == []
