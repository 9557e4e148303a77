"""A bounded memo of derived read-model rows, for the role views' large lists.

A caseload row for a day is a pure function of the stored registry document, the day,
the clinic's zone and the month's minutes (``projections.caseload.caseload_row``), and a
row changes only when its patient's next event arrives. Colleagues opening the same
caseload, a portal refreshing it, the next page: each would derive the same rows again.
The memo keeps the derived rows keyed by exactly those inputs, least recently used out
first: the caseload names the document by its patient and its row version (PostgreSQL's
``xmin``, a new one for every write of the row: projections.caseload.fetch_documents says
why that pair names one document), so the page is read without the documents and only
the missing ones are read. A changed document, another day or another month's minutes is
another key: the memo cannot serve a stale row, it can only miss.

Entries also expire ``ttl_seconds`` after they were made: an expired entry is never
served, and expired entries at the old end are dropped whenever a row is added. A row
superseded by an erasure (the forgotten patient's document changes, so its old row is
never served again) therefore leaves the process's memory once it has expired and the
memo is next used, if the capacity has not pushed it out before.

A row version (``xmin``) names one document only while the server's transaction ids are
never issued again. A database restored to an earlier point in time, or a failover to a
standby that lost transactions, issues them again, under a process that may still hold
rows by those versions. Both mean a new postmaster, so every new pooled connection reads
the server's start time (services.database) and reports it to ``note_server``: when it
differs from what that pool saw before, every memo of the process is emptied
(``forget_all``) before the connection is used, so nothing read from the old server is
served as a version of the new one.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

log = logging.getLogger("careteam.memo")

V = TypeVar("V")

# Rows kept per process: a few full caseloads of a busy clinic for one day. A document
# is a few kilobytes of text; the memo stays within a few tens of megabytes.
DEFAULT_CAPACITY: Final = 2048
# How long a row may be kept after it was derived.
DEFAULT_TTL_SECONDS: Final = 600.0


class RowMemo(Generic[V]):
    """Least-recently-used memo of derived rows (one per process, on the Runtime)."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._rows: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        _MEMOS.add(self)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()

    def get(self, key: Hashable) -> V | None:
        found = self.get_expiring(key)
        return None if found is None else found[0]

    def get_expiring(self, key: Hashable) -> tuple[V, float] | None:
        """The row and when its entry expires (on this memo's clock), or None."""
        entry = self._rows.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._rows[key]
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return entry[1], entry[0]

    def take(self, key: Hashable) -> tuple[V, float] | None:
        """The row and when its entry expires, removed from the memo (its taker has it
        alone until it puts one back, with ``expires_at`` to keep that expiry), or None."""
        found = self.get_expiring(key)
        if found is not None:
            del self._rows[key]
        return found

    def drop_expired(self) -> int:
        """Removes every expired entry now (not only when the memo is next used);
        returns how many."""
        now = self._clock()
        gone = [key for key, (at, _) in self._rows.items() if at <= now]
        for key in gone:
            del self._rows[key]
        return len(gone)

    def discard_where(self, drop: Callable[[V], bool]) -> int:
        """Removes every entry whose row ``drop`` accepts; returns how many."""
        gone = [key for key, (_, row) in self._rows.items() if drop(row)]
        for key in gone:
            del self._rows[key]
        return len(gone)

    def put(self, key: Hashable, row: V, *, expires_at: float | None = None) -> float:
        """Keeps ``row``; returns when its entry expires. ``expires_at`` makes it expire
        sooner than the memo's own period (an entry holding rows of another memo expires
        with the first of them); such entries may sit anywhere in the order, so every
        expired entry is dropped then, not only the least recently used ones."""
        now = self._clock()
        expiry = now + self.ttl_seconds
        if expires_at is not None:
            expiry = min(expiry, expires_at)
        self._rows[key] = (expiry, row)
        self._rows.move_to_end(key)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
        if expires_at is not None:
            for gone in [k for k, (at, _) in self._rows.items() if at <= now]:
                del self._rows[gone]
            return expiry
        # The least recently used entries are the oldest-used; drop those expired.
        while self._rows:
            oldest = next(iter(self._rows.values()))
            if oldest[0] > now:
                break
            self._rows.popitem(last=False)
        return expiry


# Every memo of the process (weakly: a runtime closed and dropped takes its memos along).
_MEMOS: weakref.WeakSet[RowMemo[Any]] = weakref.WeakSet()
# The start time of the server behind each pool, as its connections last reported it.
_SERVERS: dict[str, datetime] = {}


def note_server(pool_key: str, started_at: datetime) -> bool:
    """Records the start time of the server a new connection of pool ``pool_key`` reached;
    when it differs from the one that pool's connections saw before (a restart, a restore,
    a failover), empties every memo first (``forget_all``). Returns whether it did."""
    before = _SERVERS.get(pool_key)
    _SERVERS[pool_key] = started_at
    if before is None or before == started_at:
        return False
    log.warning("database server restarted or replaced; row memos emptied")
    forget_all()
    return True


def forget_all() -> None:
    """Empties every row memo of this process and the caseload's page cursors."""
    from projections.caseload import forget_page_cursors

    for memo in list(_MEMOS):
        memo.clear()
    forget_page_cursors()
