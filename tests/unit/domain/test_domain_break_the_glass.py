"""Break-the-glass: emergency access needs a reason, has a bounded window, is reviewed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.errors import (
    AlreadyOnCareTeamError,
    BlankValueError,
    EmergencyGrantAlreadyReviewedError,
    EmergencyGrantNotFoundError,
    InvalidEmergencyWindowError,
    InvalidEnumValueError,
)
from domain.patient import MAX_EMERGENCY_MINUTES, Patient
from tests.factories import new_patient

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _patient() -> Patient:
    return new_patient(now=NOW, occurred_at=NOW - timedelta(days=1))


def test_a_grant_with_a_reason_opens_a_window_of_the_given_minutes() -> None:
    """The grant's expiry is occurred_at plus the minutes; it is active only inside it."""
    patient = _patient()
    user = uuid4()
    grant_id = patient.grant_emergency_access(
        user_id=user, role="pcp", reason="unconscious in ED", minutes=60, occurred_at=NOW, now=NOW
    )
    grant = patient.emergency_grants[grant_id]
    assert grant.expires_at == NOW + timedelta(minutes=60)
    assert grant.active(NOW + timedelta(minutes=59))
    assert not grant.active(NOW + timedelta(minutes=60))


@pytest.mark.parametrize("minutes", [0, -5, MAX_EMERGENCY_MINUTES + 1])
def test_a_window_outside_the_policy_is_refused(minutes: int) -> None:
    """1..MAX_EMERGENCY_MINUTES minutes only."""
    with pytest.raises(InvalidEmergencyWindowError):
        _patient().grant_emergency_access(
            user_id=uuid4(), role="pcp", reason="x", minutes=minutes, occurred_at=NOW, now=NOW
        )


def test_the_longest_allowed_window_is_accepted() -> None:
    """Exactly MAX_EMERGENCY_MINUTES is allowed (boundary)."""
    _patient().grant_emergency_access(
        user_id=uuid4(),
        role="pcp",
        reason="x",
        minutes=MAX_EMERGENCY_MINUTES,
        occurred_at=NOW,
        now=NOW,
    )


def test_a_grant_without_a_reason_is_refused() -> None:
    """A blank reason is a validation error and nothing is recorded."""
    patient = _patient()
    with pytest.raises(BlankValueError):
        patient.grant_emergency_access(
            user_id=uuid4(), role="pcp", reason="  ", minutes=10, occurred_at=NOW, now=NOW
        )
    assert patient.emergency_grants == {}


def test_a_grant_is_reviewed_once_with_a_known_outcome() -> None:
    """Review records the outcome; a second review or an unknown grant is refused."""
    patient = _patient()
    grant_id = patient.grant_emergency_access(
        user_id=uuid4(), role="pcp", reason="x", minutes=10, occurred_at=NOW, now=NOW
    )
    with pytest.raises(InvalidEnumValueError):
        patient.review_emergency_access(
            grant_id=grant_id, reviewer_id=uuid4(), outcome="fine", occurred_at=NOW, now=NOW
        )
    patient.review_emergency_access(
        grant_id=grant_id, reviewer_id=uuid4(), outcome="appropriate", occurred_at=NOW, now=NOW
    )
    with pytest.raises(EmergencyGrantAlreadyReviewedError):
        patient.review_emergency_access(
            grant_id=grant_id, reviewer_id=uuid4(), outcome="appropriate", occurred_at=NOW, now=NOW
        )
    with pytest.raises(EmergencyGrantNotFoundError):
        patient.review_emergency_access(
            grant_id=uuid4(), reviewer_id=uuid4(), outcome="appropriate", occurred_at=NOW, now=NOW
        )


def test_grants_replay_and_survive_a_snapshot() -> None:
    """Replaying the events and restoring a snapshot both give the same grants."""
    patient = _patient()
    grant_id = patient.grant_emergency_access(
        user_id=uuid4(), role="pcp", reason="x", minutes=10, occurred_at=NOW, now=NOW
    )
    events = patient.collect_events()
    replayed = None
    for ev in events:
        replayed = ev.mutate(replayed)
    assert isinstance(replayed, Patient)
    assert replayed.emergency_grants == patient.emergency_grants
    restored = Patient.from_snapshot_state(patient.snapshot_state())
    assert restored.emergency_grants[grant_id] == patient.emergency_grants[grant_id]


@pytest.mark.parametrize("role", ["care_manager", "pcp", "psychiatric_consultant"])
def test_a_care_team_member_cannot_break_the_glass_on_their_own_patient(role: str) -> None:
    """Whoever is on the team in any role has access already: refused, nothing recorded.
    Once they are off the team, the same user may break the glass."""
    patient = _patient()
    member = uuid4()
    patient.assign_care_team(**{f"{role}_id": member}, occurred_at=NOW, now=NOW)
    patient.collect_events()
    with pytest.raises(AlreadyOnCareTeamError):
        patient.grant_emergency_access(
            user_id=member, role="pcp", reason="ED", minutes=10, occurred_at=NOW, now=NOW
        )
    assert patient.collect_events() == [] and patient.emergency_grants == {}
    patient.unassign_care_team_member(role=role, occurred_at=NOW, now=NOW)
    patient.grant_emergency_access(
        user_id=member, role="pcp", reason="ED", minutes=10, occurred_at=NOW, now=NOW
    )
    assert len(patient.emergency_grants) == 1
