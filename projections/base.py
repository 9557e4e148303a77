"""What every projection is: a name, its tables, and a writer that applies a batch of events.

A projection's rules live in a pure ``evolve(state, event) -> state`` function; its writer
loads the states a batch touches, evolves them, and writes them back with SQL on the
connection it is handed, inside the transaction that also moves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
