"""The PCP's panel: the collaborative care patients this PCP stays accountable for.

Answers "what do I need to act on?": each patient on the PCP's caseload with the latest
PHQ-9 and GAD-7, any safety alert (the safety flag, from domain.rules.flags or recorded
and not yet cleared), the psychiatric recommendations waiting for the PCP (signed notes
to acknowledge, recommendations to accept, modify or decline, accepted ones to put in
practice) and the referrals still open, with those overdue. Reads the registry rows
(projections.caseload) and the trackers (projections.trackers) for the query's "today".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final
from uuid import UUID

from projections.caseload import TABLE, CaseloadRow
from projections.document import Doc
from projections.keyset import Scope, unrestricted
from projections.source import Conn

# A PCP's collaborative care panel is tens of patients; the cap keeps one query bounded.
MAX_PANEL_PATIENTS: Final = 500


@dataclass(frozen=True)
class PanelPatient:
    """One patient on the panel with what is open for the PCP."""

    row: CaseloadRow
    safety_risk: bool
    recommendations_awaiting: int
    open_referrals: int
    overdue_referrals: int


async def fetch_panel_docs(
    conn: Conn, *, today: date, pcp_id: UUID, scope: Scope = unrestricted
) -> list[Doc]:
    """Registry facts of the PCP's patients on the caseload, safety alerts first."""
    scope_sql, scope_args = scope("key", 3)
    rows = await conn.fetch(
        f"""SELECT doc FROM {TABLE}
            WHERE pcp_id = $1 AND on_caseload AND {scope_sql}
            ORDER BY (safety_risk_on IS NOT NULL AND safety_risk_on <= $2) DESC,
                     lower(family_name), key
            LIMIT {MAX_PANEL_PATIENTS}""",
        pcp_id,
        today,
        *scope_args,
    )
    return [r["doc"] for r in rows]
