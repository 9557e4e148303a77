"""Builders for projection unit tests: domain commands in, stored-looking log rows out.

Events are produced by the same domain commands users call, encoded exactly as the
event store stores them (stable name, version, JSON payload) and decoded again by the
projection, so the tests exercise the real codec path without a database. Documents are
passed through JSON between events, as jsonb would, so a projection that keeps a
non-JSON value fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain import codec
from domain.patient import Patient
from services.application import patient_id_of
from services.eventstore import RecordedEvent

ORG = UUID("00000000-0000-4000-8000-00000000000a")
CARE_MANAGER = UUID("00000000-0000-4000-8000-0000000000c1")
PCP = UUID("00000000-0000-4000-8000-0000000000c2")
PSYCHIATRIST = UUID("00000000-0000-4000-8000-0000000000c3")

# Enrollment day of the standard patient (a Monday, noon UTC).
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)


def day(n: int, hours: int = 0) -> datetime:
    """``n`` days (and ``hours``) after T0."""
    return T0 + timedelta(days=n, hours=hours)


def on(n: int) -> date:
    """The calendar day ``n`` days after T0."""
    return day(n).date()


def phq9(total: int, item9: int = 0) -> list[int | None]:
    """Nine PHQ-9 answers adding up to ``total`` with item 9 answered ``item9``."""
    answers = [0] * 9
    answers[8] = item9
    rest = total - item9
    for i in range(8):
        answers[i] = min(3, rest)
        rest -= answers[i]
    assert rest == 0, "total not reachable"
    return list(answers)


def gad7(total: int) -> list[int | None]:
    """Seven GAD-7 answers adding up to ``total``."""
    answers: list[int | None] = []
    rest = total
    for _ in range(7):
        answers.append(min(3, rest))
        rest -= min(3, rest)
    return answers


class Log:
    """Turns the pending events of aggregates into log rows, in order."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []

    def take(self, aggregate: Aggregate, *, recorded_at: datetime | None = None) -> None:
        """Appends ``aggregate``'s pending events as the store would record them."""
        for event in aggregate.collect_events():
            position = len(self.records) + 1
            payload = json.loads(json.dumps(codec.encode_payload(event)))
            self.records.append(
                RecordedEvent(
                    position=position,
                    tx_id=position,
                    event_id=uuid4(),
                    stream_id=aggregate.id,
                    stream_type=type(aggregate).STREAM_TYPE,  # type: ignore[attr-defined]
                    stream_version=event.originator_version,
                    patient_id=patient_id_of(aggregate),
                    event_type=codec.event_name(event),
                    event_version=codec.event_version(event),
                    payload=payload,
                    metadata={},
                    occurred_at=getattr(event, "occurred_at", None) or event.timestamp,
                    recorded_at=recorded_at or event.timestamp,
                )
            )


def fold(
    evolve: Callable[[dict[str, Any] | None, RecordedEvent], dict[str, Any] | None],
    records: Iterable[RecordedEvent],
    key: UUID | None = None,
) -> dict[str, Any]:
    """The document after every record (of stream ``key`` if given), JSON round-tripped."""
    doc: dict[str, Any] | None = None
    for record in records:
        if key is not None and record.stream_id != key and record.patient_id != key:
            continue
        doc = evolve(doc, record)
        doc = None if doc is None else json.loads(json.dumps(doc))
    assert doc is not None
    return doc


def enrolled_patient(
    *, birth_date: date = date(1980, 5, 17), treatment: bool = True, team: bool = True
) -> Patient:
    """A patient registered a week before T0, enrolled on T0, in active treatment."""
    patient = Patient.register(
        given_name="Test",
        family_name="Person",
        birth_date=birth_date,
        mrn="MRN-1",
        organisation_id=ORG,
        occurred_at=day(-7),
        now=NOW,
    )
    if team:
        patient.assign_care_team(
            care_manager_id=CARE_MANAGER,
            pcp_id=PCP,
            psychiatric_consultant_id=PSYCHIATRIST,
            occurred_at=day(-7),
            now=NOW,
        )
    patient.enroll(occurred_at=T0, now=NOW)
    if treatment:
        patient.start_treatment(occurred_at=T0, now=NOW)
    return patient
