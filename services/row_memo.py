"""A bounded memo of derived read-model rows, for the role views' large lists.

A caseload row for a day is a pure function of the stored registry document, the day,
the clinic's zone and the month's minutes (``projections.caseload.caseload_row``), and a
row changes only when its patient's next event arrives. Colleagues opening the same
caseload, a portal refreshing it, the next page: each would derive the same rows again.
The memo keeps the derived rows keyed by exactly those inputs (the document's JSON text
itself, not a version number, so a key can never match a different document), least
recently used out first. A changed document, another day or another month's minutes is
another key: the memo cannot serve a stale row, it can only miss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

V = TypeVar("V")

# Rows kept per process: a few full caseloads of a busy clinic for one day. A document
# is a few kilobytes of text; the memo stays within a few tens of megabytes.
DEFAULT_CAPACITY: Final = 2048


class RowMemo(Generic[V]):
    """Least-recently-used memo of derived rows (one per process, on the Runtime)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._rows: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: Hashable) -> V | None:
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return row

    def put(self, key: Hashable, row: V) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
