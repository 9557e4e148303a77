"""Shared builders for the domain unit tests: fixed times, replay and JSON round trips."""

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, CanMutateAggregate

from domain.codec import decode_payload, encode_payload, event_version
from domain.patient import Patient

A = TypeVar("A", bound=Aggregate)

ORG = UUID("00000000-0000-4000-8000-00000000000a")
CARE_MANAGER = UUID("00000000-0000-4000-8000-0000000000c1")
PCP = UUID("00000000-0000-4000-8000-0000000000c2")
PSYCHIATRIST = UUID("00000000-0000-4000-8000-0000000000c3")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def day(n: int, hours: int = 0) -> datetime:
    """``n`` days (and ``hours``) after T0."""
    return T0 + timedelta(days=n, hours=hours)


def new_patient(**overrides: Any) -> Patient:
    """A registered adult patient with no episode."""
    fields: dict[str, Any] = {
        "given_name": "Test",
        "family_name": "Person",
        "birth_date": date(1980, 5, 17),
        "mrn": "MRN-1",
        "organisation_id": ORG,
        "occurred_at": T0,
        "now": NOW,
    }
    fields.update(overrides)
    return Patient.register(**fields)


def enrolled_patient(**overrides: Any) -> Patient:
    """A registered patient enrolled on day 1 with a full care team."""
    patient = new_patient(**overrides)
    patient.enroll(occurred_at=day(1), now=NOW)
    patient.assign_care_team(
        care_manager_id=CARE_MANAGER,
        pcp_id=PCP,
        psychiatric_consultant_id=PSYCHIATRIST,
        occurred_at=day(1),
        now=NOW,
    )
    return patient


def replay(events: Iterable[CanMutateAggregate[Any]]) -> Any:
    """Rebuild an aggregate by applying events to None, as the store does on load."""
    aggregate: Any = None
    for ev in events:
        aggregate = ev.mutate(aggregate)
    return aggregate


def json_round_trip(events: Sequence[CanMutateAggregate[Any]]) -> list[CanMutateAggregate[Any]]:
    """Events through JSON and back by their type hints, the way a store decodes them."""
    out: list[CanMutateAggregate[Any]] = []
    for ev in events:
        cls = type(ev)
        payload = json.loads(json.dumps(encode_payload(ev)))
        decoded = decode_payload(cls, event_version(ev), payload)
        for k in _ENVELOPE:
            if k in vars(ev):
                decoded[k] = vars(ev)[k]
        out.append(cls(**decoded))
    return out


def names(events: Iterable[object]) -> list[str]:
    """The EVENT_NAME of each event."""
    return [type(e).EVENT_NAME for e in events]  # type: ignore[attr-defined]


def assert_replays(aggregate: A, history: Sequence[CanMutateAggregate[Any]]) -> None:
    """The history rebuilds an equal aggregate, directly and after a JSON round trip."""
    assert replay(history) == aggregate
    assert replay(json_round_trip(history)) == aggregate
