"""What every projection is: a name, its tables, and a writer that applies a batch of events.

A projection's rules live in a pure ``evolve(state, event) -> state`` function; its writer
loads the states a batch touches, evolves them, and writes them back with SQL on the
connection it is handed, inside the transaction that also moves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
