"""The projector's partitions without a database: which partition a patient is in, how
workers share partitions, and the partition settings."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.registry import all_projections
from services.projector import partitions as parts
from services.settings import Settings, SettingsError


def test_a_patients_partition_is_the_last_four_bytes_of_its_id() -> None:
    patient = UUID("00000000-0000-4000-8000-0000000001ff")
    assert parts.partition_of(patient, 16) == 0x1FF % 16 == 15
    assert parts.partition_of(patient, 1) == 0
    assert parts.checkpoint_name("registry", 15) == "registry@15"


@given(
    slots=st.sets(st.integers(min_value=0, max_value=50), min_size=1, max_size=20),
    count=st.integers(min_value=1, max_value=64),
)
def test_live_workers_want_disjoint_shares_covering_every_partition_evenly(
    slots: set[int], count: int
) -> None:
    ordered = sorted(slots)
    shares = [parts.wanted(count, ordered, slot) for slot in ordered]
    assert set().union(*shares) == set(range(count))
    assert sum(len(s) for s in shares) == count
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_worker_whose_slot_is_not_live_wants_nothing() -> None:
    assert parts.wanted(8, [0, 2], 1) == set()


@pytest.mark.parametrize("count", [0, -1, parts.MAX_PARTITIONS + 1])
def test_a_partition_count_out_of_range_is_refused_naming_the_setting(count: int) -> None:
    with pytest.raises(parts.PartitionCountError, match="CARETEAM_PROJECTOR_PARTITIONS"):
        parts.check_count(count)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARETEAM_PROJECTOR_PARTITIONS", "0"),
        ("CARETEAM_PROJECTOR_PARTITIONS", "sixteen"),
        ("CARETEAM_PROJECTOR_LEASE_SECONDS", "0"),
    ],
)
def test_bad_partition_settings_stop_the_start_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_partition_settings_are_read() -> None:
    settings = Settings.from_env(
        {"CARETEAM_PROJECTOR_PARTITIONS": "32", "CARETEAM_PROJECTOR_LEASE_SECONDS": "0.5"}
    )
    assert (settings.projector_partitions, settings.projector_lease_seconds) == (32, 0.5)
    assert Settings().projector_partitions == parts.DEFAULT_PARTITIONS


def test_every_read_model_is_per_patient() -> None:
    """Partitioning by patient is right only for read models whose every row belongs to
    one patient (docs/architecture.md, 'Read models that are not per patient'). A new
    read model joins this list after that check, or runs as its own follower."""
    assert {p.name for p in all_projections()} == {
        "patient_access",
        "emergency_access",
        "patient_view",
        "registry",
        "billing",
        "referral_tracker",
        "consultation_tracker",
        "pcbh",
        "outcomes_series",
        "care_team_months",
    }


def test_random_patients_spread_over_every_partition() -> None:
    seen = {parts.partition_of(uuid4(), 16) for _ in range(2000)}
    assert seen == set(range(16))
