"""The registry's stored days in the clinic zone the log records, on real PostgreSQL
(docs/clinical-time.md, section 9): the organisation's zone is an event on its own
stream; the flag onset columns are derived in it, a new zone re-derives every row of the
organisation without any patient event, and a rebuild from the log gives the same rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from domain.organisation import Organisation
from projections.registry import all_projections, projection_tables
from services.clinic_zones import backfill
from services.projector.rebuild import rebuild
from tests.integration.readmodels_support import NOW, ORG, Clinic, open_clinic

LA = ZoneInfo("America/Los_Angeles")
# 20:00 PST on 21 February 2026 is 04:00 UTC on 22 February: the last contact is overdue
# (over 14 days) from 8 March in Los Angeles, from 9 March in UTC.
EVENING_CONTACT = datetime(2026, 2, 21, 20, 0, tzinfo=LA)
LOCAL_ONSET, UTC_ONSET = date(2026, 3, 8), date(2026, 3, 9)


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


def _contact(at: datetime) -> Any:
    return lambda p: p.log_contact(
        activity="contact", modality="phone", minutes=10, occurred_at=at, now=NOW
    )


async def _onsets(clinic: Clinic) -> dict[str, date | None]:
    """The stored onset day of Overdue contact of each row."""
    async with clinic.runtime.pool.acquire() as conn:
        rows = await conn.fetch("SELECT key, overdue_contact_on FROM rm_registry")
    return {str(r["key"]): r["overdue_contact_on"] for r in rows}


async def _zone(clinic: Clinic, name: str) -> None:
    async with clinic.runtime.pool.acquire() as conn:
        opened = await conn.fetchval("SELECT 1 FROM streams WHERE stream_id = $1", ORG)
    if opened:
        await clinic.run(
            Organisation,
            ORG,
            lambda o: o.set_time_zone(time_zone=name, occurred_at=NOW, now=NOW),
        )
    else:
        await clinic.create(
            Organisation.open_calendar(
                organisation_id=ORG, time_zone=name, occurred_at=NOW, now=NOW
            )
        )
    await clinic.catch_up()


async def _contact_then_first_zone(clinic: Clinic) -> tuple[Any, Any, Any]:
    """A patient whose contact and then the organisation's first zone are in the log, not
    yet applied: the patient's id and the two recorded events."""
    from services.eventstore import START

    pid = await clinic.patient(enrolled_at=datetime(2026, 2, 2, 10, tzinfo=LA))
    await clinic.catch_up()
    await clinic.on_patient(pid, _contact(EVENING_CONTACT))
    await clinic.create(
        Organisation.open_calendar(
            organisation_id=ORG, time_zone="America/Los_Angeles", occurred_at=NOW, now=NOW
        )
    )
    log = await clinic.runtime.store.read_log(START, limit=10_000)
    contact = next(e for e in log if e.event_type == "patient.contact_logged")
    zone = next(e for e in log if e.stream_type == Organisation.STREAM_TYPE)
    return pid, contact, zone


async def test_a_zone_in_the_log_re_derives_the_stored_days_and_a_rebuild_agrees(
    clinic: Clinic,
) -> None:
    pid = await clinic.patient(enrolled_at=datetime(2026, 2, 2, 10, tzinfo=LA))
    await clinic.on_patient(pid, _contact(EVENING_CONTACT))
    await clinic.catch_up()
    key = str(pid)
    # No zone in the log: UTC days.
    assert (await _onsets(clinic))[key] == UTC_ONSET

    # The organisation records Los Angeles: the row is derived again, no patient event.
    await _zone(clinic, "America/Los_Angeles")
    assert (await _onsets(clinic))[key] == LOCAL_ONSET

    # A patient's later event is derived in the organisation's zone too.
    later = await clinic.patient(enrolled_at=datetime(2026, 2, 2, 10, tzinfo=LA))
    await clinic.on_patient(later, _contact(EVENING_CONTACT))
    await clinic.catch_up()
    assert (await _onsets(clinic))[str(later)] == LOCAL_ONSET

    # Back to UTC and to Los Angeles again: each change re-derives, nothing is lost.
    await _zone(clinic, "UTC")
    assert set((await _onsets(clinic)).values()) == {UTC_ONSET}
    await _zone(clinic, "America/Los_Angeles")
    live = await _onsets(clinic)
    assert set(live.values()) == {LOCAL_ONSET}

    # A rebuild from the log gives the same rows and the same zone.
    registry = [p for p in all_projections() if "rm_registry" in projection_tables()[p.name]]
    await rebuild(clinic.runtime.store, registry, projection_tables())
    assert await _onsets(clinic) == live
    async with clinic.runtime.pool.acquire() as conn:
        zones = await conn.fetch("SELECT organisation_id, time_zone FROM rm_registry_zones")
    assert [(r["organisation_id"], r["time_zone"]) for r in zones] == [(ORG, "America/Los_Angeles")]


async def test_another_organisations_zone_leaves_the_rows_in_their_own_zone(
    clinic: Clinic,
) -> None:
    pid = await clinic.patient(enrolled_at=datetime(2026, 2, 2, 10, tzinfo=LA))
    await clinic.on_patient(pid, _contact(EVENING_CONTACT))
    await clinic.create(
        Organisation.open_calendar(
            organisation_id=uuid4(), time_zone="America/Los_Angeles", occurred_at=NOW, now=NOW
        )
    )
    await clinic.catch_up()
    assert (await _onsets(clinic))[str(pid)] == UTC_ONSET


async def test_a_zone_set_before_it_was_logged_is_backfilled_once(clinic: Clinic) -> None:
    """An organisation whose zone is only in the directory (set before the zone went into
    the log) counts its stored days in UTC until the backfill opens its calendar stream;
    a second run writes nothing."""
    async with clinic.runtime.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO organisations (organisation_id, name, time_zone)
               VALUES ($1, 'C', 'America/Los_Angeles')""",
            ORG,
        )
    pid = await clinic.patient(enrolled_at=datetime(2026, 2, 2, 10, tzinfo=LA))
    await clinic.on_patient(pid, _contact(EVENING_CONTACT))
    await clinic.catch_up()
    assert (await _onsets(clinic))[str(pid)] == UTC_ONSET

    assert await backfill(clinic.app, NOW) == [ORG]
    await clinic.catch_up()
    assert (await _onsets(clinic))[str(pid)] == LOCAL_ONSET
    assert await backfill(clinic.app, NOW) == []
    async with clinic.runtime.pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT event_type, metadata->>'channel' AS channel FROM events WHERE stream_id = $1",
            ORG,
        )
    assert [(e["event_type"], e["channel"]) for e in events] == [
        ("organisation.calendar_opened", "backfill-clinic-zones")
    ]


async def test_a_first_zone_applied_beside_another_partitions_write_loses_neither(
    clinic: Clinic,
) -> None:
    """Two projector transactions at once, as two partitions' workers run them: one
    applies a patient's contact to the registry, the other the organisation's first zone
    (which re-derives every row of the organisation). The zone change waits for the
    contact's transaction, so the row ends with the contact and in the new zone; without
    the zones table lock the zone change overwrote the row with the document it had read
    before the contact committed."""
    from projections.caseload import projection as registry

    pid, contact, zone = await _contact_then_first_zone(clinic)

    pool = clinic.runtime.pool
    async with pool.acquire() as first, pool.acquire() as second:
        patient_tx = first.transaction()
        await patient_tx.start()
        await registry.apply(first, [contact])

        async def zone_change() -> None:
            async with second.transaction():
                await registry.apply(second, [zone])

        running = asyncio.create_task(zone_change())
        await asyncio.sleep(0.5)  # the zone change reaches its lock (or, without it, its write)
        await patient_tx.commit()
        await asyncio.wait_for(running, 30)
        doc = await first.fetchval("SELECT doc FROM rm_registry WHERE key = $1", pid)
    assert doc["last_contact_at"] is not None, "the contact is not overwritten"
    assert (await _onsets(clinic))[str(pid)] == LOCAL_ONSET


@pytest.mark.parametrize("with_others", [False, True], ids=["alone", "with_patient_view"])
async def test_a_first_zone_waits_for_a_batched_registry_page_too(
    clinic: Clinic, with_others: bool
) -> None:
    """The same race when the contact goes through the runner's shared read and write
    (the registry batched, alone or with another read model in the ``UNION ALL``): the
    zones read ``FOR SHARE`` in the shared read holds the zone change back until the
    contact's transaction commits, so the row ends with the contact and in the new zone."""
    from projections.base import apply_batched_together
    from projections.caseload import projection as registry
    from projections.patient_view import projection as patient_view

    pid, contact, zone = await _contact_then_first_zone(clinic)

    pool = clinic.runtime.pool
    async with pool.acquire() as first, pool.acquire() as second:
        patient_tx = first.transaction()
        await patient_tx.start()
        pages: list[Any] = [(registry, [contact])]
        if with_others:
            pages.insert(0, (patient_view, [contact]))
        await apply_batched_together(first, pages)

        async def zone_change() -> None:
            async with second.transaction():
                await registry.lock_first(second, [zone])
                await registry.apply(second, [zone])

        running = asyncio.create_task(zone_change())
        await asyncio.sleep(0.7)  # the zone change reaches its table lock
        held_back = not running.done()
        await patient_tx.commit()
        await asyncio.wait_for(running, 30)
        doc = await first.fetchval("SELECT doc FROM rm_registry WHERE key = $1", pid)
    assert held_back, "the zone change did not wait for the batched page's transaction"
    assert doc["last_contact_at"] is not None, "the contact is not overwritten"
    assert (await _onsets(clinic))[str(pid)] == LOCAL_ONSET


async def test_two_pages_each_ending_in_a_zone_change_do_not_deadlock(clinic: Clinic) -> None:
    """Two partitions' workers, each applying a page whose first group is a patient's
    contact and whose second group is a zone change, in one transaction each, as the
    projector does (``lock_first`` with the whole page, then each group's ``apply``).
    Without ``lock_first`` each would hold the zones table's ROW SHARE lock from its
    first group and wait for the other's to take EXCLUSIVE: PostgreSQL would abort one
    with a deadlock."""
    from projections.caseload import projection as registry

    pid, contact, zone = await _contact_then_first_zone(clinic)

    applied = [asyncio.Event(), asyncio.Event()]

    async def worker(conn: Any, me: int) -> None:
        async with conn.transaction():
            await registry.lock_first(conn, [contact, zone])
            await registry.apply(conn, [contact])
            applied[me].set()
            # Give the other worker time to apply its first group too (without
            # lock_first it does; with it, it waits for this transaction's lock).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(applied[1 - me].wait(), 1.0)
            await registry.apply(conn, [zone])

    pool = clinic.runtime.pool
    async with pool.acquire() as first, pool.acquire() as second:
        await asyncio.wait_for(asyncio.gather(worker(first, 0), worker(second, 1)), 30)
    assert (await _onsets(clinic))[str(pid)] == LOCAL_ONSET
