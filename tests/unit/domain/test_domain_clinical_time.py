"""Clinical time of a patient's record (docs/clinical-time.md): nothing before birth, an
instrument only within its age range on the day it was taken, and the intake look-back
that decides which scores belong to an episode."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.errors import InstrumentNotForAgeError, OccurredBeforeBirthError
from domain.patient import INTAKE_LOOKBACK, Patient, counts_for_episode
from tests.unit.domain.domain_support import NOW, T0, day, enrolled_patient, new_patient, replay

BORN = date(1980, 5, 17)  # the birth date of domain_support's patient
PHQ9_OF_12 = [3, 3, 3, 3, 0, 0, 0, 0, 0]
PHQA_OF_12 = [*PHQ9_OF_12, 0, 0, 0, 0]


def midnight(d: date, *, minus: timedelta = timedelta(0)) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC) - minus


def test_a_screening_dated_before_birth_is_refused_naming_occurred_at() -> None:
    """The last instant before the birth day is refused with a typed error that names the
    field and carries no patient data; nothing is recorded."""
    patient = enrolled_patient()
    patient.collect_events()
    with pytest.raises(OccurredBeforeBirthError) as refused:
        patient.record_screening(
            instrument="phq9",
            answers=PHQ9_OF_12,
            occurred_at=midnight(BORN, minus=timedelta(microseconds=1)),
            now=NOW,
        )
    assert refused.value.field == "occurredAt"
    assert refused.value.code == "OCCURRED_BEFORE_BIRTH"
    assert "1980" not in str(refused.value) and "05-17" not in str(refused.value)
    assert patient.collect_events() == [] and patient.screenings == []


def test_the_typo_of_the_issue_a_1990_score_of_a_patient_born_1980_is_history() -> None:
    """1990 is after the birth: it is accepted, but it is no part of the 2026 episode."""
    patient = enrolled_patient()
    patient.record_screening(
        instrument="phq9",
        answers=PHQ9_OF_12,
        occurred_at=datetime(1990, 1, 1, 9, tzinfo=UTC),
        now=NOW,
    )
    (kept,) = patient.screenings
    assert kept.episode_number is None


def test_the_birth_day_itself_is_allowed_for_every_dated_record() -> None:
    """On the birth day the record is accepted (the boundary); the day before is not, for
    any command with an effective time (here a task, a flag and an inpatient stay)."""
    patient = new_patient()
    patient.admit_inpatient(occurred_at=midnight(BORN), now=NOW)
    before = midnight(BORN, minus=timedelta(seconds=1))
    with pytest.raises(OccurredBeforeBirthError):
        patient.create_task(kind="other", due_on=T0.date(), occurred_at=before, now=NOW)
    with pytest.raises(OccurredBeforeBirthError):
        patient.raise_flag(
            kind="team_member",
            rule_id="r",
            rule_version="1",
            inputs={},
            occurred_at=before,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("taken_on", "allowed"),
    [
        (date(2021, 6, 9), False),  # the day before the 11th birthday
        (date(2021, 6, 10), True),  # the 11th birthday
        (date(2028, 6, 9), True),  # the last day aged 17
        (date(2028, 6, 10), False),  # the 18th birthday
    ],
)
def test_the_phq_a_is_taken_only_from_11_to_17_on_the_day_it_was_taken(
    taken_on: date, allowed: bool
) -> None:
    """PHQ-A (ages 11-17, domain/instruments.py): the age is the age on the day taken,
    not today's, so a late entry of a PHQ-A taken at 17 stays valid at 18."""
    born = date(2010, 6, 10)
    now = datetime(2028, 12, 1, tzinfo=UTC)
    patient = new_patient(birth_date=born, occurred_at=midnight(born), now=now)
    taken = datetime(taken_on.year, taken_on.month, taken_on.day, 12, tzinfo=UTC)
    if allowed:
        patient.record_screening(instrument="phq_a", answers=PHQA_OF_12, occurred_at=taken, now=now)
        assert len(patient.screenings) == 1
    else:
        with pytest.raises(InstrumentNotForAgeError) as refused:
            patient.record_screening(
                instrument="phq_a", answers=PHQA_OF_12, occurred_at=taken, now=now
            )
        assert refused.value.field == "occurredAt"


def test_the_intake_look_back_is_thirty_days_before_the_episode_began() -> None:
    """Taken exactly 30 days before the enrollment: the episode's (its baseline); one
    second earlier: kept, but in no episode."""
    assert timedelta(days=30) == INTAKE_LOOKBACK
    enrolled_at = day(1)
    assert counts_for_episode(enrolled_at - INTAKE_LOOKBACK, enrolled_at)
    assert not counts_for_episode(enrolled_at - INTAKE_LOOKBACK - timedelta(seconds=1), enrolled_at)
    patient = enrolled_patient()
    edge = enrolled_at - INTAKE_LOOKBACK
    patient.record_screening(instrument="phq9", answers=PHQ9_OF_12, occurred_at=edge, now=NOW)
    patient.record_screening(
        instrument="phq9",
        answers=PHQ9_OF_12,
        occurred_at=edge - timedelta(seconds=1),
        now=NOW,
    )
    assert [s.episode_number for s in patient.screenings] == [1, None]


def test_the_look_back_counts_from_the_referral_when_the_episode_began_with_one() -> None:
    """A referred-then-enrolled episode began at the referral."""
    patient = new_patient()
    patient.refer(occurred_at=day(1), now=NOW)
    patient.enroll(occurred_at=day(20), now=NOW)
    patient.record_screening(
        instrument="phq9", answers=PHQ9_OF_12, occurred_at=day(1) - INTAKE_LOOKBACK, now=NOW
    )
    assert patient.screenings[0].episode_number == 1


def test_late_entries_within_the_episode_still_belong_to_it() -> None:
    """A score recorded late but taken inside the episode keeps its episode number."""
    patient = enrolled_patient()
    patient.record_screening(instrument="phq9", answers=PHQ9_OF_12, occurred_at=day(40), now=NOW)
    patient.record_screening(instrument="phq9", answers=PHQ9_OF_12, occurred_at=day(2), now=NOW)
    assert [s.episode_number for s in patient.screenings] == [1, 1]


def test_a_stored_screening_dated_before_birth_still_replays() -> None:
    """Events stored before these rules existed are never refused on replay: the check is
    in the command, not in the event's apply method."""
    patient = enrolled_patient()
    # The apply method directly, as an old event that the command would now refuse.
    patient._screening_recorded(
        screening_id=patient.id,
        instrument="phq9",
        answers=list(PHQ9_OF_12),
        occurred_at=datetime(1970, 1, 1, tzinfo=UTC),
        episode_number=1,
        complete=True,
        total=12,
        severity="moderate",
        positive=None,
        safety_alert=False,
        needs_follow_up=False,
        rules_version="instruments-2026.1",
        loinc_panel="44249-1",
        loinc_total="44261-6",
        safety_items=[],
        timestamp=NOW,
    )
    again: Patient = replay(patient.collect_events())
    assert again.screenings[0].occurred_at.year == 1970
