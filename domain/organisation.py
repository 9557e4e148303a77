"""The Organisation aggregate: a clinic's calendar, in the log.

A clinic counts its days in its own IANA zone (docs/clinical-time.md, section 9). The
zone is a fact every read model that stores days needs while it projects, so it is an
event in the log, not only a row of the directory: the registry stores its flag onset
days in the zone this stream last recorded, and a new zone re-derives them (a rebuild
from the log gives the same rows).

The stream's id is the organisation's id. Every stream of the log belongs to one
patient (``events.patient_id``); an organisation's stream belongs to no patient, so its
``patient_id`` is the organisation's own id, which is never a patient's: nothing that
reads by patient (access, consent, erasure, partner feeds) ever matches it.
"""

from datetime import datetime
from typing import ClassVar, Self
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate

from domain.codec import Snapshotting
from domain.common import Problems, applies, check_occurred_at, require_aware, require_uuid
from domain.errors import ValidationError


class UnknownTimeZoneError(ValidationError):
    """The name is not an IANA time zone."""

    code = "UNKNOWN_TIME_ZONE"


def _ts(now: datetime) -> datetime:
    require_aware(now, "now")
    return now


def _check_zone(name: str) -> str:
    """``name`` when it is an IANA zone this system knows, else UnknownTimeZoneError."""
    try:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(name)
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise UnknownTimeZoneError(
            "time_zone must be an IANA time zone name", field="time_zone"
        ) from exc
    return name


class Organisation(Snapshotting, Aggregate):
    """A clinic (an organisation of the directory) and the zone it counts days in."""

    STREAM_TYPE: ClassVar[str] = "organisation"
    TOPIC: ClassVar[str] = STREAM_TYPE

    # --- state -------------------------------------------------------------------------

    time_zone: str
    zone_since: datetime

    class Event(Aggregate.Event):
        """Base of the organisation's events."""

        # Inherited by the library's unused ``Organisation.Created`` (explicit topics
        # need one).
        TOPIC: ClassVar[str] = "organisation.created"

    class CalendarOpened(Aggregate.Created):
        """The organisation's calendar was first recorded in the log, with its zone."""

        EVENT_NAME: ClassVar[str] = "organisation.calendar_opened"
        TOPIC: ClassVar[str] = EVENT_NAME
        time_zone: str
        occurred_at: datetime

    class TimeZoneSet(Aggregate.Event):
        """The organisation now counts its days in another zone."""

        EVENT_NAME: ClassVar[str] = "organisation.time_zone_set"
        TOPIC: ClassVar[str] = EVENT_NAME
        time_zone: str
        occurred_at: datetime

    @classmethod
    def open_calendar(
        cls, *, organisation_id: UUID, time_zone: str, occurred_at: datetime, now: datetime
    ) -> Self:
        """Records the organisation's zone for the first time (its stream's creation)."""
        problems = Problems()
        problems.check(check_occurred_at, occurred_at, now)
        problems.check(require_uuid, organisation_id, "organisation_id")
        problems.raise_any()
        return cls._create(
            cls.CalendarOpened,
            id=organisation_id,
            timestamp=_ts(now),
            time_zone=_check_zone(time_zone),
            occurred_at=occurred_at,
        )

    @property
    def patient_id(self) -> UUID:
        """No patient: the organisation's own id (see the module docstring)."""
        return self.id

    def set_time_zone(self, *, time_zone: str, occurred_at: datetime, now: datetime) -> bool:
        """Records a new zone; the same zone again records nothing (returns False)."""
        check_occurred_at(occurred_at, now)
        zone = _check_zone(time_zone)
        if zone == self.time_zone:
            return False
        self._set_time_zone(time_zone=zone, occurred_at=occurred_at, timestamp=_ts(now))
        return True

    def __init__(self) -> None:
        """Nothing: the state is set from the creation event by :meth:`_opened`."""

    @applies(CalendarOpened)
    def _opened(self, e: CalendarOpened) -> None:
        self.time_zone = e.time_zone
        self.zone_since = e.occurred_at

    @applies(TimeZoneSet)
    def _set_time_zone(self, e: TimeZoneSet) -> None:
        self.time_zone = e.time_zone
        self.zone_since = e.occurred_at
