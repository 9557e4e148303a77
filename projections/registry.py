"""Every projection the projector runs, in the order it runs them."""

from __future__ import annotations

from projections.base import Projection
from projections.billing import projection as billing
from projections.caseload import projection as registry
from projections.emergency_access import projection as emergency_access
from projections.patient_access import projection as patient_access
from projections.patient_view import projection as patient_view
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
    ]
