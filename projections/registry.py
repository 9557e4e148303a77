"""Every projection the projector runs, in the order it runs them."""

from __future__ import annotations

from projections.base import Projection
from projections.billing import projection as billing
from projections.care_team_months import projection as care_team_months  # issue #19
from projections.caseload import projection as registry
from projections.emergency_access import projection as emergency_access
from projections.outcomes_series import projection as outcomes_series  # issue #19
from projections.patient_access import projection as patient_access
from projections.patient_view import projection as patient_view
from projections.pcbh import projection as pcbh  # the wider team and PCBH
from projections.trackers import consultation_projection, referral_projection


def all_projections() -> list[Projection]:
    return [
        patient_access,
        emergency_access,
        patient_view,
        registry,
        billing,
        referral_projection,
        consultation_projection,
        pcbh,
        outcomes_series,
        care_team_months,
    ]


def projection_tables() -> dict[str, tuple[str, ...]]:
    """The tables each projection owns (what `careteam rebuild` rebuilds and swaps)."""
    return {
        patient_access.name: ("rm_patient_access",),
        emergency_access.name: ("rm_emergency_access",),
        patient_view.name: ("rm_patient_view",),
        registry.name: ("rm_registry", "rm_registry_zones"),
        billing.name: ("rm_billing_facts", "rm_billing_minutes"),
        referral_projection.name: ("rm_referral_tracker",),
        consultation_projection.name: ("rm_consultation_tracker",),
        pcbh.name: ("rm_pcbh",),
        outcomes_series.name: ("rm_outcomes_series",),
        care_team_months.name: ("rm_care_team_facts", "rm_care_team_months"),
    }
