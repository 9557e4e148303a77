"""Test data built through the same domain commands users call. Names are synthetic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from domain.patient import Patient

ORG = UUID("00000000-0000-4000-8000-000000000001")


def new_patient(
    *, id: UUID | None = None, now: datetime | None = None, **overrides: Any
) -> Patient:
    """A registered synthetic patient with no episode yet."""
    now = now or datetime.now(UTC)
    fields: dict[str, Any] = {
        "given_name": "Test",
        "family_name": "Person",
        "birth_date": date(1980, 1, 1),
        "mrn": "MRN-TEST",
        "organisation_id": ORG,
        "occurred_at": now,
        "now": now,
    }
    fields.update(overrides)
    return Patient.register(id=id, **fields)
