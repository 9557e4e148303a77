"""Community-service referrals: the same closed loop, closable from accepted (no
appointment), and only for community services."""

from datetime import date
from uuid import uuid4

import pytest

from domain.common import COMMUNITY_SERVICES, ReferralService, ReferralStatus
from domain.errors import InvalidReferralTransitionError, ReportBackRequiredError
from domain.referral import Referral
from tests.unit.domain.domain_support import NOW, T0, day


def accepted(service: ReferralService) -> Referral:
    referral = Referral.request(
        patient_id=uuid4(),
        service=service,
        reason="Social need",
        expected_by=date(2026, 4, 1),
        occurred_at=T0,
        now=NOW,
    )
    referral.send(occurred_at=day(1), now=NOW)
    referral.accept(occurred_at=day(2), now=NOW)
    return referral


@pytest.mark.parametrize("service", sorted(COMMUNITY_SERVICES))
def test_a_community_service_reports_back_after_accepting(service: ReferralService) -> None:
    referral = accepted(service)
    assert referral.is_community_service
    referral.complete(report_back_summary="Enrolled.", occurred_at=day(3), now=NOW)
    assert referral.status is ReferralStatus.COMPLETED


@pytest.mark.parametrize("service", sorted(set(ReferralService) - COMMUNITY_SERVICES))
def test_a_clinical_service_still_needs_its_appointment(service: ReferralService) -> None:
    referral = accepted(service)
    assert not referral.is_community_service
    with pytest.raises(InvalidReferralTransitionError):
        referral.complete(report_back_summary="Seen.", occurred_at=day(3), now=NOW)


def test_a_community_loop_still_needs_its_report_back_and_the_acceptance() -> None:
    referral = accepted(ReferralService.FOOD_ASSISTANCE)
    with pytest.raises(ReportBackRequiredError):
        referral.complete(report_back_summary=" ", occurred_at=day(3), now=NOW)
    sent_only = Referral.request(
        patient_id=uuid4(),
        service=ReferralService.HOUSING_SUPPORT,
        reason="Social need",
        expected_by=date(2026, 4, 1),
        occurred_at=T0,
        now=NOW,
    )
    sent_only.send(occurred_at=day(1), now=NOW)
    with pytest.raises(InvalidReferralTransitionError):
        sent_only.complete(report_back_summary="Housed.", occurred_at=day(3), now=NOW)
