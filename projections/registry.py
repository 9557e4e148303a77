"""Every projection the projector runs, in the order it runs them."""

from __future__ import annotations

from projections.base import Projection
from projections.patient_access import projection as patient_access
from projections.patient_view import projection as patient_view


def all_projections() -> list[Projection]:
    return [patient_access, patient_view]
