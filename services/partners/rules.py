"""Who may receive what: the disclosure rules of partner feeds, in one versioned module.

Sources: 45 CFR 164.508 (disclosure on the patient's authorisation) and 164.502(b)
(minimum necessary); 42 CFR Part 2 as amended by the 2024 final rule (89 FR 12472):
2.31 (a consent names its recipients), 2.32 (a notice accompanies each disclosure made
with consent), 2.11 and 2.12 (what a Part 2 record is); 45 CFR 164.528 (accounting of
disclosures). docs/clinical-rules.md, "Privacy rules that shape the backend".

Rules version ``partners.2026.1``:

1. **Consent at that point in the log.** A partner receives an event about a patient
   only if, at the event's place in the log, the patient had an active ``data_sharing``
   consent naming the partner's organisation: granted earlier in the log, not revoked
   earlier in the log, and not expired on the day the event was recorded. Log order,
   not the consent's clinical ``occurred_at``, decides: a backdated revocation does not
   recall what was lawfully sent before it was recorded.
2. **Revocation is honoured at once.** The consent must also still be active when the
   event is delivered (no revocation recorded since, not expired today). A feed that
   is behind, a replay and a dead-letter redelivery therefore never send, after a
   revocation, events from before it. (Policy choice: a delivery is a new disclosure.)
3. **42 CFR Part 2.** An event is Part 2 data when it belongs to a referral to
   substance use treatment (``referral.requested`` with service
   ``substance_use_treatment``, and every later event of that referral: a referral to
   a Part 2 program identifies the patient as having a substance use disorder), or
   when its payload or metadata carries the label ``part2`` in a ``labels`` list (the
   hook for segmented screenings or notes; nothing writes it yet). Part 2 data needs,
   besides rule 1 and 2, an active ``part2`` consent that names the partner's
   organisation under the same two conditions; a Part 2 consent without a named
   recipient covers the care team's own use, never a partner (2.31). Each Part 2
   disclosure carries ``REDISCLOSURE_NOTICE`` (2.32(a)(2), 2024 wording).
4. **Minimum necessary.** Only the partner's allowed public event types are sent, each
   as its public projection (services/partners/contract.py): no names, no MRN, no free
   text, no actor metadata; patients and records appear under partner-specific
   pseudonyms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from domain.common import ConsentKind, ReferralService
from domain.patient import Patient
from services.eventstore import RecordedEvent

RULES_VERSION = "partners.2026.1"

CONSENT_EVENT_TYPES: tuple[str, ...] = (
    Patient.ConsentGranted.EVENT_NAME,
    Patient.ConsentRevoked.EVENT_NAME,
)
PART2_LABEL = "part2"
PART2_CONFIDENTIALITY_CODE = "42-CFR-Part-2"
# 42 CFR 2.32(a)(2) as revised by the 2024 final rule (the abbreviated statement).
REDISCLOSURE_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."


@dataclass
class _Consent:
    kind: ConsentKind
    partner_organisation_id: UUID | None
    expires_on: date | None
    revoked: bool = False

    def covers(self, kind: ConsentKind, organisation_id: UUID, on: date) -> bool:
        return (
            self.kind is kind
            and not self.revoked
            and self.partner_organisation_id == organisation_id
            and (self.expires_on is None or on <= self.expires_on)
        )


@dataclass
class ConsentLedger:
    """One patient's consents as folded from the log up to some point."""

    consents: dict[UUID, _Consent] = field(default_factory=dict)

    def apply(self, event: RecordedEvent) -> None:
        """Folds one event in; anything but a consent event leaves the ledger as it is."""
        if event.event_type not in CONSENT_EVENT_TYPES:
            return
        decoded = event.to_domain_event()
        if isinstance(decoded, Patient.ConsentGranted):
            self.consents[decoded.consent_id] = _Consent(
                kind=ConsentKind(decoded.kind),
                partner_organisation_id=decoded.partner_organisation_id,
                expires_on=decoded.expires_on,
            )
        elif isinstance(decoded, Patient.ConsentRevoked):
            consent = self.consents.get(decoded.consent_id)
            if consent is not None:
                consent.revoked = True

    def basis(self, organisation_id: UUID, on: date, *, part2: bool) -> tuple[UUID, ...] | None:
        """The consents that permit a disclosure to ``organisation_id`` on ``on``, or None.

        A data sharing consent always; for Part 2 data a Part 2 consent too (rule 3).
        """
        needed = [ConsentKind.DATA_SHARING, *([ConsentKind.PART2] if part2 else [])]
        found: list[UUID] = []
        for kind in needed:
            ids = sorted(
                (cid for cid, c in self.consents.items() if c.covers(kind, organisation_id, on)),
                key=str,
            )
            if not ids:
                return None
            found.append(ids[0])
        return tuple(found)


def fold_consents(events: Iterable[RecordedEvent]) -> dict[UUID, ConsentLedger]:
    """Ledgers per patient from consent events in log order."""
    ledgers: dict[UUID, ConsentLedger] = {}
    for event in events:
        ledgers.setdefault(event.patient_id, ConsentLedger()).apply(event)
    return ledgers


def _labels(values: Mapping[str, Any]) -> set[str]:
    labels = values.get("labels")
    if isinstance(labels, list):
        return {label for label in labels if isinstance(label, str)}
    return set()


def is_part2(event: RecordedEvent, *, referral_service: str | None) -> bool:
    """Whether ``event`` is 42 CFR Part 2 data (rule 3).

    ``referral_service`` is the service its referral was requested for (None when the
    event is not part of a referral).
    """
    if referral_service == ReferralService.SUBSTANCE_USE_TREATMENT.value:
        return True
    return PART2_LABEL in _labels(event.payload) | _labels(event.metadata)


@dataclass(frozen=True)
class Decision:
    """Whether one event may go to one partner, and on which consents."""

    permitted: bool
    part2: bool
    consent_ids: tuple[UUID, ...] = ()
    reason: str = ""


def decide(
    *,
    organisation_id: UUID,
    part2: bool,
    at_event: ConsentLedger,
    at_delivery: ConsentLedger,
    event_day: date,
    today: date,
) -> Decision:
    """Rules 1 to 3 for one event of one patient."""
    then = at_event.basis(organisation_id, event_day, part2=part2)
    if then is None:
        return Decision(False, part2, reason="NO_CONSENT_AT_EVENT")
    if at_delivery.basis(organisation_id, today, part2=part2) is None:
        return Decision(False, part2, reason="CONSENT_REVOKED_SINCE")
    return Decision(True, part2, consent_ids=then)
