"""Puts into the log the clinic zones set before the zone was kept there.

`setOrganisation` records an organisation's zone on its own stream (domain/organisation.py)
and in the directory (``organisations.time_zone``). An organisation whose zone was set
before that kept it only in the directory, so its registry rows count their stored days
in UTC (docs/clinical-time.md, section 9). ``backfill`` opens the calendar stream of each
such organisation with the directory's zone, through the command handler with the system
actor ``backfill-clinic-zones`` (``SYSTEM_OPERATIONS``, services/api/authz.py), so the
projector re-derives their rows. Running it again writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.api.access import PolicyAccess
from services.application import Application
from services.commands.handler import Actor, Written, handle
from services.commands.organisation import OpenOrganisationCalendar

SYSTEM = "backfill-clinic-zones"
# The system actor has no user: its events carry this id as the actor.
SYSTEM_USER = UUID(int=0)


async def backfill(app: Application, now: datetime) -> list[UUID]:
    """Opens the calendar stream of every organisation with a directory zone and no
    stream; returns the organisations written (in id order)."""
    pool = app.store.pool
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT o.organisation_id, o.time_zone FROM organisations o
               WHERE NOT EXISTS (SELECT 1 FROM streams s WHERE s.stream_id = o.organisation_id)
               ORDER BY o.organisation_id"""
        )
    access = PolicyAccess(pool)
    written: list[UUID] = []
    for row in rows:
        organisation_id: UUID = row["organisation_id"]
        actor = Actor(
            user_id=SYSTEM_USER,
            role="system",
            organisation_id=organisation_id,
            channel=SYSTEM,
            system=SYSTEM,
        )
        command = OpenOrganisationCalendar(organisation=organisation_id, time_zone=row["time_zone"])
        outcome = await handle(command, actor, now, app=app, access=access)
        if not isinstance(outcome, Written):
            raise RuntimeError(f"{SYSTEM}: refused with {outcome.code}")
        written.append(organisation_id)
    return written
