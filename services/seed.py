"""Demo data: a small synthetic caseload that shows every registry state, built through the
same command handler users' requests go through (services/commands/handler.py: a system
actor ``seed``, authorised and recorded like any caller), so every read model fills in
through the projector.

``seed_demo`` writes, relative to ``now``: a patient with a safety answer, one not
improving after eleven weeks, one newly enrolled, one improving and reviewed, one in
relapse prevention, one whose minutes last month sit just under and one just over the
first-month threshold, a consultation waiting for a draft, one signed and waiting for
the PCP, and an overdue referral. Names are synthetic ("Demo" + a letter); no real
person's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from uuid import UUID

from services.api.access import PolicyAccess
from services.application import Application
from services.commands.commands import (
    AddRecommendation,
    Command,
    CreateCarePlan,
    DraftConsultationNote,
    EnrollPatient,
    GrantConsent,
    LogContact,
    RecordCaseReview,
    RecordScreening,
    RegisterPatient,
    RequestConsultation,
    RequestReferral,
    SendReferral,
    SignConsultationNote,
    StartTreatment,
    WriteRelapsePreventionPlan,
)
from services.commands.handler import Actor, Written, handle


@dataclass(frozen=True)
class DemoTeam:
    """The users the demo patients are assigned to."""

    organisation_id: UUID
    care_manager_id: UUID
    pcp_id: UUID
    psychiatric_consultant_id: UUID


@dataclass
class SeedSummary:
    """What ``seed_demo`` created, by scenario name."""

    patients: dict[str, UUID] = field(default_factory=dict)
    consultations: list[UUID] = field(default_factory=list)
    referrals: list[UUID] = field(default_factory=list)


def _phq9(total: int, item9: int = 0) -> list[int | None]:
    answers: list[int | None] = [0] * 9
    answers[8] = item9
    rest = total - item9
    for i in range(8):
        answers[i] = min(3, rest)
        rest -= min(3, rest)
    return answers


def seed_actor(team: DemoTeam) -> Actor:
    """The seed's system actor: it writes as the team's care manager on channel ``seed``
    and is authorised by ``SYSTEM_OPERATIONS["seed"]`` (services/api/authz.py)."""
    return Actor(
        user_id=team.care_manager_id,
        role="care_manager",
        organisation_id=team.organisation_id,
        channel="seed",
        system="seed",
    )


class _Seeder:
    def __init__(self, app: Application, team: DemoTeam, now: datetime) -> None:
        self.app = app
        self.team = team
        self.now = now
        self.actor = seed_actor(team)
        self.access = PolicyAccess(app.store.pool)

    def ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    async def run(self, command: Command) -> Written:
        """Every seed write goes through the command handler (authorised, audited)."""
        outcome = await handle(command, self.actor, self.now, app=self.app, access=self.access)
        if not isinstance(outcome, Written):
            raise RuntimeError(f"seed command {command.operation} refused: {outcome.code}")
        return outcome

    async def patient(self, letter: str, enrolled_days_ago: int, mrn: int) -> UUID:
        enrolled = self.ago(enrolled_days_ago)
        written = await self.run(
            RegisterPatient(
                given_name="Demo",
                family_name=f"Patient {letter}",
                birth_date=date(1970 + mrn % 30, 1 + mrn % 12, 1 + mrn % 28),
                mrn=f"DEMO-{mrn:04d}",
                organisation_id=self.team.organisation_id,
                care_manager_id=self.team.care_manager_id,
                pcp_id=self.team.pcp_id,
                psychiatric_consultant_id=self.team.psychiatric_consultant_id,
                occurred_at=enrolled - timedelta(days=7),
            )
        )
        pid = written.stream_id
        await self.run(EnrollPatient(patient=pid, occurred_at=enrolled))
        await self.run(
            GrantConsent(
                patient=pid,
                kind="cocm_treatment",
                method="verbal",
                cost_sharing_explained=True,
                occurred_at=enrolled,
            )
        )
        await self.run(StartTreatment(patient=pid, occurred_at=enrolled))
        return pid

    async def score(self, patient_id: UUID, days_ago: int, total: int, item9: int = 0) -> None:
        await self.run(
            RecordScreening(
                patient=patient_id,
                instrument="phq9",
                answers=tuple(_phq9(total, item9)),
                occurred_at=self.ago(days_ago),
            )
        )

    async def contact(self, patient_id: UUID, when: datetime, minutes: int) -> None:
        await self.run(
            LogContact(
                patient=patient_id,
                activity="contact",
                modality="phone",
                minutes=minutes,
                occurred_at=when,
            )
        )

    async def review(self, patient_id: UUID, days_ago: int) -> None:
        await self.run(
            RecordCaseReview(
                patient=patient_id,
                consultant_id=self.team.psychiatric_consultant_id,
                occurred_at=self.ago(days_ago),
            )
        )


async def seed_demo(app: Application, team: DemoTeam, *, now: datetime) -> SeedSummary:
    """Writes the demo caseload for ``team`` with effective times before ``now``."""
    s = _Seeder(app, team, now)
    out = SeedSummary()

    safety = await s.patient("A", 30, 1)
    await s.score(safety, 29, 14)
    await s.review(safety, 20)
    await s.score(safety, 1, 16, item9=1)
    await s.contact(safety, s.ago(1), 25)
    out.patients["safety_risk"] = safety

    slow = await s.patient("B", 80, 2)
    await s.score(slow, 79, 20)
    await s.review(slow, 70)
    await s.score(slow, 6, 16)
    await s.contact(slow, s.ago(6), 30)
    out.patients["not_improving"] = slow

    new = await s.patient("C", 3, 3)
    await s.score(new, 3, 17)
    await s.contact(new, s.ago(3), 45)
    out.patients["new_enrollment"] = new

    improving = await s.patient("D", 60, 4)
    await s.score(improving, 59, 18)
    await s.review(improving, 50)
    await s.score(improving, 5, 8)
    await s.contact(improving, s.ago(5), 20)
    out.patients["improving"] = improving

    remitted = await s.patient("E", 120, 5)
    await s.score(remitted, 119, 15)
    await s.review(remitted, 100)
    await s.score(remitted, 10, 3)
    await s.run(
        WriteRelapsePreventionPlan(
            patient=remitted,
            warning_signs=("poor sleep",),
            strategies=("daily walk",),
            occurred_at=s.ago(9),
        )
    )
    out.patients["relapse_prevention"] = remitted

    # Two first months last month: 35 minutes (G2214) and 36 minutes (99492).
    last_month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    start = datetime(last_month.year, last_month.month, 2, 10, tzinfo=now.tzinfo)
    for letter, mrn, minutes in (("F", 6, 35), ("G", 7, 36)):
        pid = await s.patient(letter, (now - start).days, mrn)
        await s.score(pid, (now - start).days, 16)
        await s.contact(pid, start + timedelta(days=1), 20)
        await s.contact(pid, start + timedelta(days=8), minutes - 20)
        await s.run(CreateCarePlan(patient=pid, episode_number=1, occurred_at=start))
        out.patients[f"billing_{minutes}_minutes"] = pid

    asked = await s.run(
        RequestConsultation(
            patient=slow,
            requested_by=team.care_manager_id,
            question="No response after ten weeks: change medication?",
            occurred_at=s.ago(9),
        )
    )
    signed = await s.run(
        RequestConsultation(
            patient=safety,
            requested_by=team.care_manager_id,
            consultant_id=team.psychiatric_consultant_id,
            question="Safety answer: adjust the plan?",
            occurred_at=s.ago(5),
        )
    )
    note = signed.stream_id
    consultant = team.psychiatric_consultant_id
    for command in (
        DraftConsultationNote(
            consultation_note_id=note,
            author_id=consultant,
            content="Reviewed with the care manager.",
            occurred_at=s.ago(4),
        ),
        AddRecommendation(
            consultation_note_id=note, text="Weekly contact for a month.", occurred_at=s.ago(4)
        ),
        SignConsultationNote(consultation_note_id=note, signed_by=consultant, occurred_at=s.ago(4)),
    ):
        await s.run(command)
    referral = await s.run(
        RequestReferral(
            patient=slow,
            service="psychotherapy",
            reason="Add weekly psychotherapy.",
            expected_by=(now - timedelta(days=2)).date(),
            occurred_at=s.ago(30),
        )
    )
    await s.run(SendReferral(referral_id=referral.stream_id, occurred_at=s.ago(29)))
    out.consultations.extend([asked.stream_id, signed.stream_id])
    out.referrals.append(referral.stream_id)
    return out


async def seed_caseload(
    app: Application,
    team: DemoTeam,
    *,
    patients: int,
    now: datetime,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> list[UUID]:
    """A realistic synthetic caseload of ``patients`` made through the domain commands:
    enrollment over the last six months, a baseline PHQ-9 then follow-ups every two to
    four weeks that mostly improve, weekly contacts with minutes, occasional psychiatric
    case reviews and, rarely, a positive item 9. Names are synthetic."""
    import random

    rnd = random.Random(seed)
    s = _Seeder(app, team, now)
    made: list[UUID] = []
    for i in range(patients):
        enrolled_days_ago = rnd.randint(1, 180)
        pid = await s.patient(f"S{i:05d}", enrolled_days_ago, 1000 + i)
        total = rnd.randint(10, 24)
        day = enrolled_days_ago
        while day > 0:
            item9 = 1 if rnd.random() < 0.03 else 0
            await s.score(pid, day, max(total, item9), item9=item9)
            total = max(0, min(27, total - rnd.randint(-2, 5)))
            day -= rnd.randint(14, 28)
        for contact_day in range(enrolled_days_ago, 0, -rnd.randint(6, 10)):
            await s.contact(pid, s.ago(contact_day), rnd.randint(10, 45))
        if enrolled_days_ago > 7 and rnd.random() < 0.7:
            await s.review(pid, rnd.randint(1, enrolled_days_ago - 1))
        made.append(pid)
        if progress is not None:
            progress(i + 1, patients)
    return made
