"""The projector's partitions: which patient's events a partition holds, its checkpoints,
the partition count kept in the database, and the leases that give each partition one
worker at a time.

- **Partition of an event**: the last four bytes of its patient id as an unsigned
  integer, modulo the partition count (``partition_of``; ``PARTITION_SQL`` is the same
  in SQL). Every event has a patient (every stream belongs to one), and every read-model
  row belongs to one patient, so a partition's events touch only its own rows.
- **Checkpoints**: one row of ``checkpoints`` per read model and partition, named
  ``<read model>@<partition>``, moved in the transaction that applies the page.
- **Count**: fixed in ``projector_partitions`` by the first process that starts; a
  process configured with another count stops at start, naming the setting. When the
  table is first filled, the read models' unpartitioned checkpoints (the previous
  release's) are split into one per partition at the same position and set past any
  position, so a previous-release projector still running reads nothing more.
- **Leases**: session advisory locks on the worker's own connection: ``PROJECTOR_MEMBER``
  (a slot per live worker, so each worker knows how many there are and its rank) and
  ``PROJECTOR_PARTITION`` (one per partition). A worker wants the partitions ``p`` with
  ``p % workers == rank`` and, between pages, lets go of others and takes those it wants
  that are free. A killed worker's locks end with its connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from services import locks
from services.database import Conn, holds_session_state
from services.eventstore import LogPosition
from services.settings import StartupError

DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1024
# More worker slots than partitions would never get work: a worker beyond this stands by.
MAX_MEMBERS = MAX_PARTITIONS

# Past every real position (bigint's maximum fits both xid8 and the bigint it is read as).
RETIRED = LogPosition(2**63 - 1, 2**63 - 1)


def partition_of(patient_id: UUID, count: int) -> int:
    """The partition holding ``patient_id``'s events."""
    return int.from_bytes(patient_id.bytes[12:], "big") % count


# The same as ``partition_of`` in SQL, for a uuid expression and a count parameter.
def partition_sql(column: str, count: str) -> str:
    byte = [f"get_byte(uuid_send({column}), {i})::bigint" for i in range(12, 16)]
    # Parenthesised: PostgreSQL gives << and | the same precedence, left to right.
    return (
        f"((({byte[0]} << 24) | ({byte[1]} << 16) | ({byte[2]} << 8) | {byte[3]})"
        f" % {count})::integer"
    )


def checkpoint_name(projection: str, partition: int) -> str:
    return f"{projection}@{partition}"


def checkpoint_names(projections: Iterable[str], count: int) -> list[str]:
    return [checkpoint_name(name, p) for name in projections for p in range(count)]


class PartitionCountError(StartupError):
    """The configured partition count is not the one the read models are split in."""


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_PARTITIONS:
        raise PartitionCountError(
            f"CARETEAM_PROJECTOR_PARTITIONS must be between 1 and {MAX_PARTITIONS}"
        )


async def prepare(conn: Conn, count: int, projections: Sequence[str]) -> None:
    """Fixes the partition count on first use (splitting the unpartitioned checkpoints),
    or checks it; raises ``PartitionCountError`` naming the setting on a mismatch."""
    check_count(count)
    async with conn.transaction():
        await conn.execute("LOCK TABLE projector_partitions IN SHARE ROW EXCLUSIVE MODE")
        stored = await conn.fetchval("SELECT partitions FROM projector_partitions")
        if stored is not None:
            if stored != count:
                raise PartitionCountError(
                    f"CARETEAM_PROJECTOR_PARTITIONS is {count} but the read models are "
                    f"split in {stored} partitions; set it to {stored}"
                )
            return
        await conn.execute("INSERT INTO projector_partitions (partitions) VALUES ($1)", count)
        legacy = await conn.fetch(
            """SELECT name, tx_id::text AS tx_id, position FROM checkpoints
               WHERE name = ANY($1::text[]) FOR UPDATE""",
            list(projections),
        )
        for row in legacy:
            await conn.execute(
                """INSERT INTO checkpoints (name, tx_id, position)
                   SELECT $1 || '@' || p, $2::text::xid8, $3 FROM generate_series(0, $4 - 1) AS p
                   ON CONFLICT (name) DO NOTHING""",
                row["name"],
                row["tx_id"],
                row["position"],
                count,
            )
        await conn.execute(
            """UPDATE checkpoints SET tx_id = $2::text::xid8, position = $3, updated_at = now()
               WHERE name = ANY($1::text[])""",
            [r["name"] for r in legacy],
            str(RETIRED.tx_id),
            RETIRED.position,
        )


async def stored_count(conn: Conn) -> int | None:
    value = await conn.fetchval("SELECT partitions FROM projector_partitions")
    return None if value is None else int(value)


# --- leases ---------------------------------------------------------------------------


async def join(conn: Conn) -> int | None:
    """Takes the lowest free worker slot on ``conn``; None when every slot is taken."""
    holds_session_state(conn)
    for slot in range(MAX_MEMBERS):
        if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", locks.PROJECTOR_MEMBER, slot):
            return slot
    return None


async def members(conn: Conn) -> list[int]:
    """The worker slots held now in this database, in order."""
    rows = await conn.fetch(
        """SELECT objid::bigint AS slot FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = $1
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY 1""",
        locks.PROJECTOR_MEMBER,
    )
    return [int(r["slot"]) for r in rows]


def wanted(count: int, slots: Sequence[int], mine: int) -> set[int]:
    """The partitions the worker in slot ``mine`` should own among ``slots``."""
    if mine not in slots:
        return set()
    rank, workers = list(slots).index(mine), len(slots)
    return {p for p in range(count) if p % workers == rank}


async def rebalance(conn: Conn, count: int, mine: int, owned: set[int]) -> set[int]:
    """Lets go of partitions another worker should own and takes the free ones this one
    should; returns what it owns now."""
    want = wanted(count, await members(conn), mine)
    now = set(owned)
    for partition in sorted(now - want):
        await conn.execute(
            "SELECT pg_advisory_unlock($1, $2)", locks.PROJECTOR_PARTITION, partition
        )
        now.discard(partition)
    for partition in sorted(want - now):
        if await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", locks.PROJECTOR_PARTITION, partition
        ):
            now.add(partition)
    return now
