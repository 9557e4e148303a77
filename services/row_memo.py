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
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

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

    def __len__(self) -> int:
        return len(self._rows)

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
