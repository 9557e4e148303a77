"""Synthetic but real workloads: domain events made by the same commands users call.

Every event comes out of a ``Patient`` command (register, enroll, assign the care team,
start treatment, log contacts, record screenings), so payload sizes, event types and
stream lengths are those careteam stores. Names are synthetic; a seeded random source
makes a workload the same from run to run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.patient import Patient
from services.eventstore import EventMetadata

ORG = UUID("00000000-0000-4000-8000-00000000b0b0")
META = EventMetadata(
    actor_id="bench-writer", role="care_manager", organisation_id=str(ORG), channel="bench"
)
STREAM_TYPE = "patient"
EVENTS_PER_STREAM = 20


@dataclass(frozen=True)
class Command:
    """One command's output: the events to append to a stream after ``expected_version``."""

    stream_id: UUID
    expected_version: int
    events: tuple[Any, ...]

    @property
    def patient_id(self) -> UUID:
        return self.stream_id


def _uuid(rnd: random.Random) -> UUID:
    return UUID(int=rnd.getrandbits(128), version=4)


# A care team for one patient: (care manager, PCP, psychiatric consultant or None).
Team = Callable[[], tuple[UUID, UUID, UUID | None]]


def patient_journey(
    rnd: random.Random,
    *,
    length: int,
    now: datetime,
    single_event: bool,
    team: Team | None = None,
) -> list[Command]:
    """Commands for one patient: registration, enrollment, care team, treatment, then
    contacts and screenings. With ``single_event`` every command emits exactly one event
    (screenings that would raise a flag or a task are left out); otherwise about one
    screening in six raises a safety flag and tasks, as real caseloads do. ``team``
    chooses the care team (default: new random members for every patient)."""
    start = now - timedelta(days=300)
    clock = start

    def tick() -> datetime:
        nonlocal clock
        clock += timedelta(hours=rnd.randint(1, 48))
        return min(clock, now)

    patient = Patient.register(
        id=_uuid(rnd),
        given_name=rnd.choice(("Ana", "Ben", "Chen", "Dee", "Eli", "Fatima", "Goran")),
        family_name=rnd.choice(("Rivera", "Okafor", "Nguyen", "Smith", "Kowalski", "Haddad")),
        birth_date=date(1940 + rnd.randint(0, 60), rnd.randint(1, 12), rnd.randint(1, 28)),
        mrn=f"MRN-{rnd.randint(1, 10**9):09d}",
        organisation_id=ORG,
        sex=rnd.choice(("female", "male", "other", None)),
        occurred_at=start,
        now=now,
    )
    commands: list[Command] = []

    def emit() -> None:
        events = tuple(patient.collect_events())
        if events:
            commands.append(Command(patient.id, events[0].originator_version - 1, events))

    emit()
    manager, pcp, psychiatrist = team() if team else (_uuid(rnd), _uuid(rnd), None)
    steps: list[Callable[[], object]] = [
        lambda: patient.enroll(occurred_at=tick(), now=now),
        lambda: patient.assign_care_team(
            care_manager_id=manager,
            pcp_id=pcp,
            psychiatric_consultant_id=psychiatrist,
            occurred_at=tick(),
            now=now,
        ),
        lambda: patient.start_treatment(occurred_at=tick(), now=now),
    ]
    for step in steps:
        if sum(len(c.events) for c in commands) >= length:
            break
        step()
        emit()
    while (written := sum(len(c.events) for c in commands)) < length:
        if rnd.random() < 0.6:
            patient.log_contact(
                activity=rnd.choice(("contact", "outreach", "registry_review")),
                modality=rnd.choice(("phone", "video", "in_person")),
                minutes=rnd.randint(5, 45),
                occurred_at=tick(),
                now=now,
            )
        else:
            answers: list[int | None] = [rnd.randint(0, 2) for _ in range(8)]
            risky = not single_event and rnd.random() < 1 / 6 and length - written > 4
            answers.append(rnd.randint(1, 3) if risky else 0)
            patient.record_screening(
                instrument="phq9", answers=answers, occurred_at=tick(), now=now
            )
        emit()
    if single_event:
        assert all(len(c.events) == 1 for c in commands), "a command emitted several events"
    return _truncate(commands, length)


def _truncate(commands: list[Command], length: int) -> list[Command]:
    out: list[Command] = []
    total = 0
    for c in commands:
        if total >= length:
            break
        take = c.events[: length - total]
        out.append(Command(c.stream_id, c.expected_version, take))
        total += len(take)
    return out


def make_streams(
    total_events: int,
    *,
    seed: int = 1,
    events_per_stream: int = EVENTS_PER_STREAM,
    single_event: bool = True,
    now: datetime | None = None,
) -> list[list[Command]]:
    """Journeys of ``events_per_stream`` events (the last one shorter) adding up to exactly
    ``total_events`` events."""
    rnd = random.Random(seed)
    now = now or datetime.now(UTC)
    streams: list[list[Command]] = []
    left = total_events
    while left > 0:
        length = min(events_per_stream, left)
        journey = patient_journey(rnd, length=length, now=now, single_event=single_event)
        streams.append(journey)
        left -= sum(len(c.events) for c in journey)
    return streams


def interleave(streams: Sequence[Sequence[Command]]) -> Iterator[Command]:
    """Round-robin over streams, keeping each stream's own order."""
    iters = [iter(s) for s in streams]
    while iters:
        alive = []
        for it in iters:
            nxt = next(it, None)
            if nxt is not None:
                yield nxt
                alive.append(it)
        iters = alive


def split_among_writers(streams: Sequence[Sequence[Command]], writers: int) -> list[list[Command]]:
    """Each writer owns whole streams (so writers never conflict) and cycles through them."""
    owned: list[list[Sequence[Command]]] = [[] for _ in range(writers)]
    for i, stream in enumerate(streams):
        owned[i % writers].append(stream)
    return [list(interleave(mine)) for mine in owned]


def count_events(commands: Sequence[Command]) -> int:
    return sum(len(c.events) for c in commands)
