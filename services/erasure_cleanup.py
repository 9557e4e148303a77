"""After a patient is forgotten: no copy of their plaintext left in dead rows.

Destroying the key makes the log's ciphertext unreadable, and the read models rewrite
(or drop) what they had copied in clear when they apply ``patient.forgotten``. PostgreSQL
keeps the superseded row versions (dead rows) in the table files until a VACUUM removes
them, and so do the cached snapshots the erasure deleted and the destroyed key's old row
in ``patient_keys``. The projector calls ``vacuum_after_erasure`` once it has committed a
page holding a ``patient.forgotten`` event, before a waiting ``forgetPatient`` returns.

VACUUM removes dead rows no open transaction can still see; one that began before the
erasure keeps them until it ends (autovacuum removes them later). The log itself
(``events``) is append-only, so erasure leaves no dead rows there. What remains in the
write-ahead log and in backups: see docs/erasure.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from services.database import Conn

log = logging.getLogger("careteam.erasure")

# The tables whose rows held a patient's identity or free text in clear (read models
# that copy them, cached aggregate snapshots) or their data key (``patient_keys``).
PLAINTEXT_TABLES: Final = (
    "rm_patient_view",
    "rm_registry",
    "rm_referral_tracker",
    "rm_consultation_tracker",
    "rm_emergency_access",
    "snapshots",
    "patient_keys",
)

FORGOTTEN_EVENT: Final = "patient.forgotten"


def holds_erasure(event_types: Iterable[str]) -> bool:
    """Whether a page of the log holds a ``patient.forgotten`` event."""
    return any(t == FORGOTTEN_EVENT for t in event_types)


async def vacuum_after_erasure(conn: Conn, tables: Iterable[str] = PLAINTEXT_TABLES) -> None:
    """VACUUMs the tables that held plaintext of a forgotten patient (outside any
    transaction: VACUUM cannot run inside one). A table that does not exist is skipped."""
    existing = await conn.fetch(
        """SELECT c.relname FROM pg_class c
           WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'
             AND pg_table_is_visible(c.oid)""",
        list(tables),
    )
    names = sorted(r["relname"] for r in existing)
    if not names:
        return
    # Table names come from the constant above (checked against pg_class), never input.
    await conn.execute("VACUUM " + ", ".join(f'"{n}"' for n in names))
    log.info("vacuumed %d tables after an erasure", len(names))
