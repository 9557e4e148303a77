"""Every benchmark row, by number. A row is a module with a ``SPEC``; rows whose feature
is still being built are listed with the reason they cannot run yet."""

from __future__ import annotations

from services.bench import (
    row1_appends,
    row2_rebuild,
    row3_caseload,
    row4_lag,
    row5_relay,
    row6_fanout,
    row7_scale,
)
from services.bench.base import RowContext, RowSpec
from services.bench.results import RowResult


def _planned(number: int, slug: str, title: str, what: str) -> RowSpec:
    """A row whose module is not written yet: it reports itself skipped."""

    def available() -> str | None:
        return f"not built yet: {what}"

    async def run(_ctx: RowContext) -> RowResult:  # never called: never available
        raise NotImplementedError(what)

    return RowSpec(number=number, slug=slug, title=title, available=available, run=run)


ROWS: dict[int, RowSpec] = {
    1: row1_appends.SPEC,
    2: row2_rebuild.SPEC,
    3: row3_caseload.SPEC,
    4: row4_lag.SPEC,
    5: row5_relay.SPEC,
    6: row6_fanout.SPEC,
    7: row7_scale.SPEC,
}
