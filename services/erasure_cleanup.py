"""After a patient is forgotten: no copy of their plaintext left in the table files.

Destroying the key makes the log's ciphertext unreadable, and the read models rewrite
(or drop) what they had copied in clear when they apply ``patient.forgotten``. PostgreSQL
keeps the superseded row versions (dead rows) in the table files, and so do the cached
snapshots the erasure deleted and the destroyed key's old row in ``patient_keys``. The
projector calls ``vacuum_after_erasure`` after it has applied a ``patient.forgotten``
event and reached the end of the log (once per catch-up, not per page of a replay),
before a waiting ``forgetPatient`` returns.

Why VACUUM FULL: a plain VACUUM frees a dead row's space but leaves its bytes in the page
until a later row overwrites them (a deleted row was still in the file after a plain
VACUUM and a CHECKPOINT on PostgreSQL 18); VACUUM FULL writes the table and its indexes
and TOAST into new files and drops the old ones. ANALYZE replaces the column statistics
(``pg_statistic`` samples column values, e.g. ``rm_registry.family_name``). VACUUM FULL
holds an exclusive lock on each table while it copies it (reads of that read model wait;
these tables are small next to the log). So that an erasure never stalls the API behind
a long transaction, each table waits at most ``LOCK_TIMEOUT`` for its lock; a table that
could not be locked gets a plain VACUUM instead (its dead rows' bytes then stay until
overwritten or the next VACUUM FULL) and a warning. Either VACUUM keeps dead rows that a
transaction begun before the rewrite can still see, so it first waits (bounded) for such
transactions to end. The log itself (``events``) is append-only, so erasure leaves no
dead rows there. What remains in the write-ahead log and in backups: docs/erasure.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Final

import asyncpg

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
    # The birth date (for the DRR-E age), set to null on erasure.
    "rm_outcomes_series",
    "rm_care_team_facts",
    "snapshots",
    "patient_keys",
    # Keyed digests only, but a deleted digest should not outlive the erasure either.
    "patient_mrn_index",
    "patient_search_index",
    # Token digests and the patient id of their questionnaire links, deleted on erasure.
    "patient_links",
)

FORGOTTEN_EVENT: Final = "patient.forgotten"
# How long VACUUM FULL may wait for a table's exclusive lock before a plain VACUUM.
LOCK_TIMEOUT: Final = "2s"
# How long to wait for transactions older than the erasure's rewrite to end.
OLDER_TRANSACTIONS_WAIT_SECONDS: Final = 5.0


def holds_erasure(event_types: Iterable[str]) -> bool:
    """Whether a page of the log holds a ``patient.forgotten`` event."""
    return any(t == FORGOTTEN_EVENT for t in event_types)


async def _wait_for_older_transactions(conn: Conn) -> None:
    """Waits (at most ``OLDER_TRANSACTIONS_WAIT_SECONDS``) until no other transaction of
    this database that began before now is still open: until then it may see the old row
    versions, and VACUUM (FULL too) keeps what any snapshot can still see."""
    started = await conn.fetchval("SELECT clock_timestamp()")
    deadline = asyncio.get_running_loop().time() + OLDER_TRANSACTIONS_WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        older = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_xmin IS NOT NULL AND xact_start < $1""",
            started,
        )
        if older == 0:
            return
        await asyncio.sleep(0.05)
    log.warning("transactions older than an erasure still open; VACUUM may keep dead rows")


async def vacuum_after_erasure(conn: Conn, tables: Iterable[str] = PLAINTEXT_TABLES) -> None:
    """Rewrites the tables that held plaintext of a forgotten patient (VACUUM FULL, or a
    plain VACUUM where the lock was not granted in time); outside any transaction, as
    VACUUM cannot run inside one. A table that does not exist is skipped."""
    existing = await conn.fetch(
        """SELECT c.relname FROM pg_class c
           WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'
             AND pg_table_is_visible(c.oid)""",
        list(tables),
    )
    names = sorted(r["relname"] for r in existing)
    await _wait_for_older_transactions(conn)
    previous = await conn.fetchval("SHOW lock_timeout")
    await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        for name in names:
            # Table names come from the constant above, checked against pg_class.
            try:
                await conn.execute(f'VACUUM (FULL, ANALYZE) "{name}"')
            except asyncpg.LockNotAvailableError:
                log.warning("VACUUM FULL of %s not granted its lock; plain VACUUM", name)
                await conn.execute("SET lock_timeout = 0")
                await conn.execute(f'VACUUM (ANALYZE) "{name}"')
                await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    finally:
        await conn.execute("SELECT set_config('lock_timeout', $1, false)", previous)
    log.info("vacuumed %d tables after an erasure", len(names))
