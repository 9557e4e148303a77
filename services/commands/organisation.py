"""Commands on an organisation's own stream (domain/organisation.py): its calendar.

An organisation's stream belongs to no patient, so these commands are authorised by the
caller's role alone (``patient_scoped`` False: the handler looks up no patient and
checks no care team); the stream addressed is always the caller's own organisation's,
taken from the verified token by the resolver, never from the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from domain.organisation import Organisation
from services.commands.commands import Command, Creation


@dataclass(frozen=True, kw_only=True)
class OpenOrganisationCalendar(Creation):
    """Records the organisation's zone in the log for the first time."""

    operation: ClassVar[str] = "setOrganisation"
    aggregate: ClassVar[type[Any]] = Organisation
    patient_scoped: ClassVar[bool] = False
    organisation: UUID
    time_zone: str

    def create(self, now: datetime) -> Any:
        return Organisation.open_calendar(
            organisation_id=self.organisation,
            time_zone=self.time_zone,
            occurred_at=self.at(now),
            now=now,
        )


@dataclass(frozen=True, kw_only=True)
class SetOrganisationTimeZone(Command):
    """Records a new zone on the organisation's stream (the same zone writes nothing)."""

    operation: ClassVar[str] = "setOrganisation"
    aggregate: ClassVar[type[Any]] = Organisation
    patient_scoped: ClassVar[bool] = False
    organisation: UUID
    time_zone: str

    @property
    def stream_id(self) -> UUID | None:
        return self.organisation

    def apply(self, aggregate: Any, now: datetime) -> object:
        aggregate.set_time_zone(time_zone=self.time_zone, occurred_at=self.at(now), now=now)
        return None
