"""What every projection is: a name, its tables, and a writer that applies a batch of events.

A projection's rules live in a pure ``evolve(state, event) -> state`` function; its writer
loads the states a batch touches, evolves them, and writes them back with SQL on the
connection it is handed, inside the transaction that also moves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from projections.source import Conn, RecordedEvent


class Projection(Protocol):
    """A read model kept up to date from the log."""

    @property
    def name(self) -> str:
        """Stable name: the checkpoint's key."""
        ...

    async def apply(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        """Writes the effect of ``events`` (in log order) using ``conn``'s open transaction."""
        ...

    async def reset(self, conn: Conn) -> None:
        """Empties the read model (for a rebuild from the start of the log)."""
        ...


@runtime_checkable
class LocksFirst(Protocol):
    """A projection that takes table locks for a whole page before any of it is applied.

    The projector reads a page as one or more groups (partitions at different
    checkpoints) and applies them one after another in one transaction. A projection
    whose ``apply`` may need a strong lock for some events (the registry's zone change)
    takes it here, with every event of the page, before any group's ``apply`` has taken
    a weaker lock on the same table: two transactions that each held the weaker lock and
    then asked for the stronger one would deadlock."""

    async def lock_first(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        """Takes, in ``conn``'s open transaction, the locks ``events`` will need."""
        ...


@dataclass(frozen=True)
class Statement:
    """One SQL statement whose parameters are numbered from ``$first`` (``sql(first)``),
    so that the runner can put several in one statement."""

    sql: Callable[[int], str]
    args: list[Any]

    def render(self, first: int = 1) -> str:
        return self.sql(first)


@runtime_checkable
class Batched(Protocol):
    """A projection whose page is one read of ``(key, doc)`` rows of its own tables, pure
    work, and writes to its own tables. The runner reads the rows of every such
    projection of a page in one statement (``UNION ALL``) and writes what they all
    change in one more (``WITH`` parts), instead of two or more statements each, in the
    page's transaction. ``apply`` must do the same on its own (tools, tests)."""

    def reads(self, events: Sequence[RecordedEvent]) -> Statement | None:
        """A SELECT of ``key`` and ``doc`` columns, or None: nothing to read."""
        ...

    def writes(self, events: Sequence[RecordedEvent], rows: Sequence[Any]) -> list[Statement]:
        """What ``events`` change, given the rows ``reads`` found: plain INSERT, UPDATE or
        DELETE statements (no ``WITH``, no ``RETURNING``; at most one per table and row),
        empty when nothing changes."""
        ...


@runtime_checkable
class BatchedMostly(Batched, Protocol):
    """A ``Batched`` projection that some pages cannot go through ``reads`` and
    ``writes`` (the registry's zone change, which locks a table and derives rows again):
    for those the runner calls its ``apply`` instead, in the same transaction."""

    def batches(self, events: Sequence[RecordedEvent]) -> bool:
        """Whether ``events`` can be applied through ``reads`` and ``writes``."""
        ...


async def apply_batched(conn: Conn, projection: Batched, events: Sequence[RecordedEvent]) -> None:
    """``projection``'s page on its own: its read, then its writes in one statement."""
    read = projection.reads(events)
    rows = [] if read is None else await conn.fetch(read.render(), *read.args)
    await execute_together(conn, projection.writes(events, rows))


async def execute_together(
    conn: Conn, statements: Sequence[Statement], *, counted: Statement | None = None
) -> int | None:
    """Runs ``statements`` (plain data-modifying statements) as one: the others as
    ``WITH`` parts of the last. They see the same snapshot, none the others' changes.

    ``counted`` (a plain UPDATE, INSERT or DELETE too) runs in the same statement, and
    how many rows it changed is returned (None without it): the projector's conditional
    move of its checkpoints, which must find every one where the page started."""
    if not statements and counted is None:
        return None
    parts: list[str] = []
    args: list[Any] = []
    for statement in statements:
        parts.append(statement.render(len(args) + 1))
        args.extend(statement.args)
    if counted is not None:
        sql = counted.render(len(args) + 1)
        args.extend(counted.args)
        withs = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
        prefix = f"WITH {withs}, " if parts else "WITH "
        found: int = await conn.fetchval(
            f"{prefix}counted AS ({sql} RETURNING 1) SELECT count(*) FROM counted", *args
        )
        return found
    *first, last = parts
    prefix = "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first)) if first else ""
    await conn.execute(f"{prefix}\n{last}", *args)
    return None


async def apply_batched_together(
    conn: Conn,
    pages: Sequence[tuple[Batched, Sequence[RecordedEvent]]],
    *,
    counted: Statement | None = None,
) -> int | None:
    """Each projection's page (its own events), all at once: every read in one statement,
    every write in one more. Each projection reads and writes only its own tables, so
    none depends on another's changes. ``counted`` rides in the write statement
    (``execute_together``), whose count of changed rows is returned."""
    reads = [(i, r) for i, (p, events) in enumerate(pages) if (r := p.reads(events)) is not None]
    rows: dict[int, list[Any]] = {i: [] for i in range(len(pages))}
    if len(reads) == 1:
        ((i, read),) = reads
        rows[i] = list(await conn.fetch(read.render(), *read.args))
    elif reads:
        parts: list[str] = []
        args: list[Any] = []
        for i, read in reads:
            parts.append(f"SELECT {i} AS part, r.key, r.doc FROM ({read.render(len(args) + 1)}) r")
            args.extend(read.args)
        for row in await conn.fetch("\nUNION ALL\n".join(parts), *args):
            rows[row["part"]].append(row)
    return await execute_together(
        conn,
        [s for i, (p, events) in enumerate(pages) for s in p.writes(events, rows[i])],
        counted=counted,
    )
