"""Commands are data: each names a policy row, applies itself without a clock of its own,
and the seed's system actor may run only operations the policy knows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from domain.patient import Patient
from services.api.authz import POLICY, SYSTEM_OPERATIONS
from services.commands import commands, organisation, pcbh
from services.commands.commands import Command, Creation, EnrollPatient, RegisterPatient

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)


def concrete() -> list[type[Command]]:
    found = []
    for value in [*vars(commands).values(), *vars(pcbh).values(), *vars(organisation).values()]:
        if isinstance(value, type) and issubclass(value, Command):
            if isinstance(value.__dict__.get("operation"), str):
                found.append(value)
    return list(dict.fromkeys(found))


def test_every_command_names_a_policy_row_and_is_frozen() -> None:
    classes = concrete()
    assert len(classes) >= 55
    for cls in classes:
        assert cls.operation in POLICY, cls.__name__
        assert cls.__dataclass_params__.frozen, cls.__name__  # type: ignore[attr-defined]


def test_the_seed_may_run_only_known_operations() -> None:
    assert SYSTEM_OPERATIONS["seed"] <= set(POLICY)


def test_a_command_applies_itself_with_the_given_now() -> None:
    register = RegisterPatient(
        given_name="Ann",
        family_name="Example",
        birth_date=date(1980, 1, 2),
        mrn="MRN-1",
        organisation_id=uuid4(),
        care_manager_id=uuid4(),
    )
    assert isinstance(register, Creation) and register.stream_id is None
    patient = register.create(NOW)
    assert isinstance(patient, Patient)
    enroll = EnrollPatient(patient=patient.id)
    assert enroll.stream_id == enroll.patient_id == patient.id
    enroll.apply(patient, NOW)
    events = patient.collect_events()
    assert [type(e).__name__ for e in events][-1] == "Enrolled"
    assert events[-1].occurred_at == NOW
    with pytest.raises(dataclasses.FrozenInstanceError):
        enroll.patient = uuid4()  # type: ignore[misc]
