"""The caller's clinic calendar for one request: its organisation's zone and "today".

Every role view (registry and caseload, review queue, panel, trackers, worklist) counts
days in the clinic's calendar (docs/clinical-time.md, section 9): "today" is the injected
clock's instant (``runtime.clock()``) read in the caller's organisation's IANA zone, as
the directory keeps it (``organisations.time_zone``, set with ``setOrganisation``; UTC
until set). The zone is read once per resolver, one indexed row by primary key, and
handed to the pure derivations with "today"; nothing is looked up per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, tzinfo
from uuid import UUID

from projections.clinic_calendar import CLINIC_ZONE, today_in, zone_named
from services.api.context import CareteamContext
from services.database import Conn


@dataclass(frozen=True)
class ClinicDay:
    """The zone the caller's clinic counts days in, and today's date there."""

    zone: tzinfo
    today: date


async def organisation_zone(conn: Conn, organisation_id: UUID) -> tzinfo:
    """The organisation's recorded zone; UTC when the directory has none."""
    name = await conn.fetchval(
        "SELECT time_zone FROM organisations WHERE organisation_id = $1", organisation_id
    )
    return zone_named(name) if name else CLINIC_ZONE


async def clinic_day(ctx: CareteamContext, conn: Conn | None = None) -> ClinicDay:
    """The caller's clinic zone and today's date in it (one lookup)."""
    principal = ctx.require_principal()
    now = ctx.runtime.clock()
    if conn is None:
        async with ctx.runtime.pool.acquire() as own:
            zone = await organisation_zone(own, principal.organisation_id)
    else:
        zone = await organisation_zone(conn, principal.organisation_id)
    return ClinicDay(zone=zone, today=today_in(now, zone))
