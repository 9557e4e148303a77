"""Every benchmark row, by number. A row is a module with a ``SPEC``; its ``available()``
says why it cannot run on this machine (None when it can)."""

from __future__ import annotations

from bench import (
    row1_appends,
    row2_rebuild,
    row3_caseload,
    row4_lag,
    row5_relay,
    row6_fanout,
    row7_scale,
    row8_search,
    row9_worklist,
)
from bench.base import RowSpec

ROWS: dict[int, RowSpec] = {
    1: row1_appends.SPEC,
    2: row2_rebuild.SPEC,
    3: row3_caseload.SPEC,
    4: row4_lag.SPEC,
    5: row5_relay.SPEC,
    6: row6_fanout.SPEC,
    7: row7_scale.SPEC,
    8: row8_search.SPEC,
    9: row9_worklist.SPEC,
}
