"""Which events of a page of the log go to one partner, and as what (rules.py, contract.py).

For each page the selector looks up, for the patients and referrals the page mentions
and only for events of the partner's allowed types: the patient's organisation (only
the owner organisation's patients are in its feeds), the service each referral was
requested for (Part 2 labelling), and the patients' consent events. The consent events
are folded in log order alongside the page, so every event is judged by the consents
recorded before it (rule 1) and by all consents recorded so far (rule 2). Nothing is
carried from page to page except immutable facts (organisations, referral services), so
a feed can start, restart or replay at any position and decide exactly the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from services.database import Conn
from services.eventstore import RecordedEvent, row_to_event
from services.partners.contract import (
    ContractViolationError,
    Pseudonyms,
    PublicEventType,
    Publisher,
    public_types_for,
    validate,
)
from services.partners.messages import PartnerMessage
from services.partners.registry import Partner
from services.partners.rules import (
    CONSENT_EVENT_TYPES,
    ConsentLedger,
    decide,
    fold_consents,
    is_part2,
)

_EVENT_COLUMNS = """position, tx_id::text::bigint AS tx_id, event_id, stream_id, stream_type,
    stream_version, patient_id, event_type, event_version, payload, metadata,
    occurred_at, recorded_at"""

# The event types are literals, not parameters, so the planner can use the partial index
# events_consents_by_patient (migration 0030).
_CONSENT_TYPES_SQL = ", ".join(f"'{t}'" for t in CONSENT_EVENT_TYPES)
_CONSENTS_SQL = f"""SELECT {_EVENT_COLUMNS} FROM events
    WHERE patient_id = ANY($1::uuid[]) AND event_type IN ({_CONSENT_TYPES_SQL})
    ORDER BY events.tx_id, events.position"""

# Immutable facts remembered per selector; bounded so a long-running feed stays small.
_FACT_CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class Violation:
    """A projection that failed its schema: never sent, dead-lettered for a fix."""

    event: RecordedEvent
    public: PublicEventType
    error: ContractViolationError


@dataclass
class Selection:
    """What one page holds for one partner."""

    messages: list[PartnerMessage] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    withheld: int = 0


class Selector:
    """Turns pages of the log into the messages one partner may receive."""

    def __init__(
        self,
        partner: Partner,
        pseudonyms: Pseudonyms,
        clock: Callable[[], datetime],
        publisher: Publisher,
    ) -> None:
        self.partner = partner
        self._pseudonyms = pseudonyms
        self._clock = clock
        self._publisher = publisher
        self._organisation_of: dict[UUID, UUID | None] = {}
        self._service_of: dict[UUID, str | None] = {}

    async def select(
        self,
        conn: Conn,
        events: Sequence[RecordedEvent],
        *,
        only: str | None = None,
    ) -> Selection:
        """The messages for ``events`` (log order); ``only`` restricts to one public type."""
        allowed = self.partner.allowed_event_types
        if only is not None:
            allowed = allowed & {only}
        candidates = [
            (e, types) for e in events if (types := public_types_for(e.event_type, allowed))
        ]
        selection = Selection()
        if not candidates:
            return selection
        await self._learn_facts(conn, [e for e, _ in candidates])
        owner = self.partner.owner_organisation_id
        candidates = [
            (e, t) for e, t in candidates if self._organisation_of.get(e.patient_id) == owner
        ]
        if not candidates:
            return selection
        consents = await _consent_events(conn, {e.patient_id for e, _ in candidates})
        at_delivery = fold_consents(consents)
        at_event: dict[UUID, ConsentLedger] = {}
        today = self._clock().date()
        folded = 0
        for event, types in candidates:
            while folded < len(consents) and consents[folded].log_position < event.log_position:
                consent = consents[folded]
                at_event.setdefault(consent.patient_id, ConsentLedger()).apply(consent)
                folded += 1
            part2 = is_part2(event, referral_service=self._service_of.get(event.stream_id))
            decision = decide(
                organisation_id=self.partner.organisation_id,
                part2=part2,
                at_event=at_event.get(event.patient_id, ConsentLedger()),
                at_delivery=at_delivery.get(event.patient_id, ConsentLedger()),
                event_day=event.recorded_at.date(),
                today=today,
            )
            if not decision.permitted:
                selection.withheld += 1
                continue
            for public in types:
                message = PartnerMessage.build(
                    event,
                    public,
                    self._pseudonyms,
                    part2=decision.part2,
                    consent_ids=decision.consent_ids,
                    publisher=self._publisher,
                    organisation_id=self.partner.owner_organisation_id,
                )
                try:
                    validate(public, message.data)
                except ContractViolationError as exc:
                    selection.violations.append(Violation(event, public, exc))
                    continue
                selection.messages.append(message)
        return selection

    async def still_permitted(self, conn: Conn, message: PartnerMessage) -> bool:
        """Rule 2 again, now: no revocation recorded since the message was selected."""
        consents = await _consent_events(conn, {message.event.patient_id})
        ledger = fold_consents(consents).get(message.event.patient_id, ConsentLedger())
        basis = ledger.basis(
            self.partner.organisation_id, self._clock().date(), part2=message.part2
        )
        return basis is not None

    async def _learn_facts(self, conn: Conn, events: Sequence[RecordedEvent]) -> None:
        patients = {e.patient_id for e in events} - self._organisation_of.keys()
        referrals = {
            e.stream_id for e in events if e.stream_type == "referral"
        } - self._service_of.keys()
        if not patients and not referrals:
            return
        if len(self._organisation_of) + len(self._service_of) > _FACT_CACHE_LIMIT:
            self._organisation_of.clear()
            self._service_of.clear()
        rows = await conn.fetch(
            """SELECT stream_id, event_type, payload->>'organisation_id' AS organisation_id,
                      payload->>'service' AS service
               FROM events WHERE stream_id = ANY($1::uuid[]) AND stream_version = 1""",
            list(patients | referrals),
        )
        found = {r["stream_id"]: r for r in rows}
        for patient_id in patients:
            row = found.get(patient_id)
            org = row["organisation_id"] if row is not None else None
            self._organisation_of[patient_id] = UUID(org) if org else None
        for referral_id in referrals:
            row = found.get(referral_id)
            self._service_of[referral_id] = row["service"] if row is not None else None


async def _consent_events(conn: Conn, patients: set[UUID]) -> list[RecordedEvent]:
    """Every consent event of ``patients`` visible now, in log order."""
    rows = await conn.fetch(_CONSENTS_SQL, list(patients))
    return [row_to_event(r) for r in rows]


async def load_event(conn: Conn, event_id: UUID) -> RecordedEvent | None:
    row = await conn.fetchrow(f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id = $1", event_id)
    return None if row is None else row_to_event(row)
