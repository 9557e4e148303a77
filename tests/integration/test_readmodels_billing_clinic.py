"""The billing read model in the organisation's zone and program, on real PostgreSQL:
changing the zone or the program re-derives the months on the next read, nothing lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from projections import billing as billing_model
from tests.integration.readmodels_support import NOW, ORG, Clinic, open_clinic

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture
async def clinic(db_dsn: str) -> AsyncIterator[Clinic]:
    async with open_clinic(db_dsn) as opened:
        yield opened


async def _set_zone(clinic: Clinic, zone: str) -> None:
    async with clinic.runtime.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO organisations (organisation_id, name, time_zone) VALUES ($1, 'C', $2)
               ON CONFLICT (organisation_id) DO UPDATE SET time_zone = EXCLUDED.time_zone""",
            ORG,
            zone,
        )


async def test_a_zone_change_moves_an_evening_contact_between_months_on_read(
    clinic: Clinic,
) -> None:
    pid = await clinic.patient(enrolled_at=datetime(2025, 10, 1, 9, tzinfo=LA))
    evening = datetime(2025, 10, 31, 20, 0, tzinfo=LA)  # 03:00 UTC on 1 November
    await clinic.on_patient(
        pid,
        lambda p: p.log_contact(
            activity="contact",
            modality="phone",
            minutes=25,
            occurred_at=evening,
            now=NOW,
            performed_by=pid,
            performer_role="pcp",
        ),
    )
    await clinic.catch_up()
    october, november = date(2025, 10, 1), date(2025, 11, 1)
    async with clinic.runtime.pool.acquire() as conn:
        assert await billing_model.minutes_in_month(conn, [pid], october) == {}
        assert await billing_model.minutes_in_month(conn, [pid], november) == {pid: 25}
        await _set_zone(clinic, "America/Los_Angeles")
        assert await billing_model.minutes_in_month(conn, [pid], october) == {pid: 25}
        assert await billing_model.minutes_in_month(conn, [pid], november) == {}
        (row,) = await billing_model.fetch_billing_month(conn, october, patient_id=pid)
        assert row.time_zone == "America/Los_Angeles"
        assert [e.minutes for e in row.entries] == [25]
        assert row.non_qualifying_minutes == (("pcp", 25),)
        assert row.billing is not None and row.billing.counted_minutes == 0
        await _set_zone(clinic, "UTC")
        (row,) = await billing_model.fetch_billing_month(conn, november, patient_id=pid)
        assert [e.minutes for e in row.entries] == [25]


async def test_the_months_minutes_are_exact_at_the_widest_offsets_and_the_cut_edges(
    clinic: Clinic,
) -> None:
    """Entries around both month bounds, just inside and outside the instants where the sum
    moves from Python's cut to SQL's (15 hours inside the UTC month), counted for the
    month each falls in, in the zones furthest east and west and in between."""
    pid = await clinic.patient(enrolled_at=datetime(2025, 9, 1, 9, tzinfo=UTC))
    start, end = datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC)
    edge = timedelta(hours=15)
    tick = timedelta(microseconds=1)
    instants = [
        start - edge - tick, start - edge, start - timedelta(hours=12, microseconds=1),
        start - timedelta(hours=12), start - tick, start, start + timedelta(hours=14),
        start + timedelta(hours=14) - tick, start + edge - tick, start + edge,
        datetime(2025, 10, 15, 12, tzinfo=UTC),
        end - edge - tick, end - edge, end - timedelta(hours=14, microseconds=1),
        end - timedelta(hours=14), end - tick, end, end + timedelta(hours=12) - tick,
        end + timedelta(hours=12), end + edge - tick, end + edge,
    ]  # fmt: skip
    for n, at in enumerate(instants, start=1):
        await clinic.on_patient(
            pid,
            lambda p, at=at, n=n: p.log_contact(
                activity="contact", modality="phone", minutes=n, occurred_at=at, now=NOW
            ),
        )
    await clinic.catch_up()
    for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/Los_Angeles"):
        await _set_zone(clinic, zone)
        local = ZoneInfo(zone)
        for month in (date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1)):
            expected = sum(
                n
                for n, at in enumerate(instants, start=1)
                if (at.astimezone(local).year, at.astimezone(local).month)
                == (month.year, month.month)
            )
            async with clinic.runtime.pool.acquire() as conn:
                got = await billing_model.minutes_in_month(conn, [pid], month)
            assert got == ({pid: expected} if expected else {}), (zone, month)
