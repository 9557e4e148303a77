"""The organisation's calendar in the log: its zone is an IANA name, and recording the
same zone again records nothing (docs/clinical-time.md, section 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.organisation import Organisation, UnknownTimeZoneError

NOW = datetime(2026, 3, 9, 6, 30, tzinfo=UTC)


def test_the_zone_is_recorded_and_changed_and_the_same_zone_again_writes_nothing() -> None:
    org_id = uuid4()
    org = Organisation.open_calendar(
        organisation_id=org_id, time_zone="America/Los_Angeles", occurred_at=NOW, now=NOW
    )
    assert (org.id, org.patient_id, org.time_zone) == (org_id, org_id, "America/Los_Angeles")
    assert not org.set_time_zone(time_zone="America/Los_Angeles", occurred_at=NOW, now=NOW)
    assert org.set_time_zone(time_zone="UTC", occurred_at=NOW, now=NOW)
    names = [type(e).EVENT_NAME for e in org.collect_events()]
    assert names == ["organisation.calendar_opened", "organisation.time_zone_set"]
    assert org.time_zone == "UTC"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " UTC", "PST8PDT/Nowhere", "../etc"])
def test_a_name_that_is_not_an_iana_zone_is_refused_with_nothing_recorded(name: str) -> None:
    with pytest.raises(UnknownTimeZoneError) as refused:
        Organisation.open_calendar(
            organisation_id=uuid4(), time_zone=name, occurred_at=NOW, now=NOW
        )
    assert refused.value.field == "time_zone"
    org = Organisation.open_calendar(
        organisation_id=uuid4(), time_zone="UTC", occurred_at=NOW, now=NOW
    )
    org.collect_events()
    with pytest.raises(UnknownTimeZoneError):
        org.set_time_zone(time_zone=name, occurred_at=NOW, now=NOW)
    assert org.collect_events() == [] and org.time_zone == "UTC"


def test_a_zone_change_in_the_future_is_refused() -> None:
    org = Organisation.open_calendar(
        organisation_id=uuid4(), time_zone="UTC", occurred_at=NOW, now=NOW
    )
    with pytest.raises(Exception, match="future"):
        org.set_time_zone(time_zone="Europe/Paris", occurred_at=NOW + timedelta(days=2), now=NOW)
