"""What a projection is handed: a recorded event and a connection to write with.

Projections depend on these shapes, never on the event store or the database plumbing
in ``services/`` (CI checks it, see ``[tool.importlinter]`` in ``pyproject.toml``). The
event store's rows satisfy ``RecordedEvent``; the domain event inside a record is
decoded by whoever reads the log and handed over through ``to_domain_event()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection to write read-model rows with: a plain one or one borrowed from a pool.
Conn = asyncpg.Connection | PoolConnectionProxy


class RecordedEvent(Protocol):
    """One event of the log as a projection sees it: where it is, whose, and what."""

    @property
    def stream_id(self) -> UUID: ...

    @property
    def stream_type(self) -> str: ...

    @property
    def stream_version(self) -> int: ...

    @property
    def patient_id(self) -> UUID: ...

    @property
    def event_type(self) -> str: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    @property
    def occurred_at(self) -> datetime: ...

    @property
    def recorded_at(self) -> datetime: ...

    def to_domain_event(self) -> Any:
        """The decoded domain event (one of ``domain``'s event classes)."""
        ...
