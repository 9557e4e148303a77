"""What every projection is: a name, its tables, and a writer that applies a batch of events.

A projection's rules live in a pure ``evolve(state, event) -> state`` function; its writer
loads the states a batch touches, evolves them, and writes them back with SQL on the
connection it is handed, inside the transaction that also moves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg

from services.eventstore import RecordedEvent


class Projection(Protocol):
    """A read model kept up to date from the log."""

    name: str

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Writes the effect of ``events`` (in log order) using ``conn``'s open transaction."""
        ...

    async def reset(self, conn: asyncpg.Connection) -> None:
        """Empties the read model (for a rebuild from the start of the log)."""
        ...
