"""``services.eventstore.clone``, the copy of an aggregate kept between commands: the same
state as ``copy.deepcopy`` makes, nothing mutable shared with the original, aliases kept
as aliases, and anything it does not know copied by ``deepcopy``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from domain.patient import Patient
from services.eventstore import clone

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def a_patient_with_history() -> Patient:
    patient = Patient.register(
        given_name="Ann",
        family_name="Example",
        birth_date=date(1980, 1, 2),
        mrn="MRN-1",
        organisation_id=uuid4(),
        occurred_at=NOW - timedelta(days=40),
        now=NOW,
    )
    patient.enroll(occurred_at=NOW - timedelta(days=39), now=NOW)
    patient.record_screening(
        instrument="phq9", answers=[2, 2, 2, 2, 2, 2, 2, 2, 1], occurred_at=NOW, now=NOW
    )
    patient.log_contact(activity="contact", modality="phone", minutes=20, occurred_at=NOW, now=NOW)
    patient.assign_care_team(occurred_at=NOW, now=NOW, care_manager_id=uuid4())
    patient.collect_events()
    return patient


def test_a_clone_has_the_same_state_and_changing_it_leaves_the_original_as_it_was() -> None:
    original = a_patient_with_history()
    before = original.snapshot_state()
    copied = clone(original)
    assert copied.snapshot_state() == before == copy.deepcopy(original).snapshot_state()
    copied.log_contact(activity="contact", modality="phone", minutes=5, occurred_at=NOW, now=NOW)
    copied.assign_care_team(occurred_at=NOW, now=NOW, care_manager_id=uuid4())
    copied.episodes[-1].status = None  # type: ignore[assignment]
    copied.tasks.clear()
    assert original.snapshot_state() == before
    assert copied.version == original.version + 2


@dataclass
class Node:
    children: list[Node] = field(default_factory=list)


class Slotted:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = [1, 2]


def test_aliases_stay_aliases_and_unknown_objects_are_deep_copied() -> None:
    shared = Node()
    tree = {"a": [shared, shared], "b": (shared,)}
    copied = clone(tree)
    assert copied["a"][0] is copied["a"][1] is copied["b"][0]
    assert copied["a"][0] is not shared
    slotted = Slotted()
    other = clone([slotted])[0]
    assert other is not slotted and other.items == [1, 2] and other.items is not slotted.items


def test_container_subclasses_and_slotted_objects_are_deep_copied_keeping_aliases() -> None:
    from collections import OrderedDict

    ordered = OrderedDict([("b", [1]), ("a", [2])])
    copied = clone(ordered)
    assert type(copied) is OrderedDict and list(copied.items()) == [("b", [1]), ("a", [2])]
    assert copied["b"] is not ordered["b"]
    slotted = Slotted()
    pair = clone([slotted, slotted.items])
    assert pair[0].items is pair[1] and pair[1] is not slotted.items
