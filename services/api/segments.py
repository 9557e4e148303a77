"""Labelled segments and minimum-necessary masks, for everyone who reads a record.

Two tables, beside the relation rules of ``authz.POLICY``:

- ``FIELD_READERS``: for each free-text field of a record, the roles that may read it
  (minimum necessary, HIPAA 45 CFR 164.502(b) and 164.514(d)). Clinicians treating the
  patient read the clinical text; compliance and administrators see that a record exists,
  its status, dates and actors, never its clinical text.
- ``SEGMENTS``: 42 CFR Part 2. A referral to substance use treatment is Part 2 data; its
  free text (reason, report back, decline and cancel reasons) is shown to a clinician only
  with an active Part 2 consent that covers their organisation (one with no named
  recipient is the patient's consent for treatment, payment and operations, as the 2024
  Part 2 rule allows, 42 CFR 2.33(a)(2)), or under break-the-glass (the medical emergency
  exception, 42 CFR 2.51), in which case the read is recorded with purpose ETREAT.

Whether the caller may read the record at all is decided before, in SQL, by the policy.
The consent and emergency checks here are SQL too. Every withheld field is recorded in
the access log: the read record of the request says which fields were returned, and an
extra record with reason ``MASKED`` or ``PART2_WITHHELD`` says which were withheld; a
Part 2 read on consent or in an emergency is recorded with reason ``PART2_CONSENT`` or
``PART2_EMERGENCY``.

Psychotherapy notes (45 CFR 164.508(a)(2)) are a segment of their own, read only by their
author (``services/api/patient/psychotherapy.py``); the care event subscription drops their text
here. The masks apply to care plans, referrals,
consultation notes, the care event subscription and the audit trail; the FHIR face
applies them to the free text it exports (a ServiceRequest's reason, goal descriptions,
intervention names and doses).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from domain.registry import EVENT_CLASSES
from services.api.context import CareteamContext
from services.api.record_types import (
    CarePlanView,
    ConsultationNoteView,
    ReferralView,
)
from services.audit.reads import ReadRecord
from services.auth import CLINICAL_ROLES, Role

CLINICIANS = frozenset(CLINICAL_ROLES)

# field -> the roles that may read it. A field not listed here is not clinical text.
FIELD_READERS: dict[str, frozenset[Role]] = {
    "Referral.reason": CLINICIANS,
    "Referral.reportBackSummary": CLINICIANS,
    "Referral.declineReason": CLINICIANS,
    "Referral.cancelReason": CLINICIANS,
    "ConsultationNote.question": CLINICIANS,
    "ConsultationNote.content": CLINICIANS,
    "ConsultationNote.withdrawReason": CLINICIANS,
    "ConsultationNote.addenda.text": CLINICIANS,
    "ConsultationNote.recommendations.text": CLINICIANS,
    "ConsultationNote.recommendations.responseText": CLINICIANS,
    "CarePlan.closeReason": CLINICIANS,
    "CarePlan.goals.description": CLINICIANS,
    "CarePlan.goals.closeReason": CLINICIANS,
    "CarePlan.interventions.name": CLINICIANS,
    "CarePlan.interventions.dose": CLINICIANS,
    "CarePlan.interventions.stopReason": CLINICIANS,
    "CarePlan.revisions.reason": CLINICIANS,
}


class Segment(enum.StrEnum):
    PART2 = "part2"


# The referral services whose records are Part 2 data, and the fields the segment covers.
PART2_SERVICES = frozenset({"substance_use_treatment"})
SEGMENTS: dict[Segment, frozenset[str]] = {
    Segment.PART2: frozenset(
        {
            "Referral.reason",
            "Referral.reportBackSummary",
            "Referral.declineReason",
            "Referral.cancelReason",
        }
    ),
}
# The free-text keys of referral events that the Part 2 segment covers (care events).
PART2_EVENT_KEYS = frozenset(
    {"reason", "report_back_summary", "decline_reason", "cancel_reason", "summary"}
)


# Psychotherapy notes (services/api/patient/psychotherapy.py): only their author reads the text.
PSYCHOTHERAPY_NOTE_EVENT = "patient.psychotherapy_note_recorded"


# The keys of event data that hold clinical free text (care plans, referrals, notes).
CLINICAL_TEXT_KEYS = PART2_EVENT_KEYS | frozenset(
    {
        "question",
        "content",
        "text",
        "response_text",
        "description",
        "withdraw_reason",
        "stop_reason",
        "close_reason",
        "name",
        "dose",
        "change",
    }
)


def without_clinical_text(payload: dict[str, Any], event_type: str = "") -> dict[str, Any]:
    """Event data as a reader outside ``CLINICIANS`` may see it: none of the event class's
    declared free text (``FREE_TEXT_FIELDS``), nor any key known to hold clinical text."""
    declared: frozenset[str] = getattr(
        EVENT_CLASSES.get(event_type), "FREE_TEXT_FIELDS", frozenset()
    )
    hidden = CLINICAL_TEXT_KEYS | declared
    return {k: v for k, v in payload.items() if k not in hidden}


class Basis(enum.StrEnum):
    CONSENT = "PART2_CONSENT"
    EMERGENCY = "PART2_EMERGENCY"


@dataclass(frozen=True)
class Decision:
    """What one reader may see of one record, and why."""

    withheld: frozenset[str]
    masked_by_role: frozenset[str]
    part2_basis: Basis | None = None


async def part2_basis(ctx: CareteamContext, patient_id: UUID) -> Basis | None:
    """Why the caller may read this patient's Part 2 data, or None when they may not."""
    principal = ctx.require_principal()
    if principal.role not in CLINICIANS:
        return None
    now = ctx.runtime.clock()
    async with ctx.runtime.pool.acquire() as conn:
        # A consent's last day is a day of the patient's clinic (the caller's organisation,
        # whose zone the directory keeps; UTC until set): today is read there, in the
        # same statement (docs/clinical-time.md, section 9).
        row = await conn.fetchrow(
            """SELECT
                 EXISTS (SELECT 1 FROM rm_patient_view v,
                                jsonb_array_elements(v.doc->'consents') c
                         WHERE v.key = $1 AND c->>'kind' = 'part2'
                           AND c->>'revoked_at' IS NULL
                           AND (c->>'expires_on' IS NULL
                                OR (c->>'expires_on')::date >= ($2::timestamptz
                                    AT TIME ZONE COALESCE((SELECT o.time_zone
                                        FROM organisations o
                                        WHERE o.organisation_id = $3), 'UTC'))::date)
                           AND (c->>'partner_organisation_id' IS NULL
                                OR (c->>'partner_organisation_id')::uuid = $3)) AS consent,
                 EXISTS (SELECT 1 FROM rm_emergency_access g
                         WHERE g.patient_id = $1 AND g.user_id = $4
                           AND g.granted_at <= now() AND g.expires_at > now()) AS emergency""",
            patient_id,
            now,
            principal.organisation_id,
            principal.user_id,
        )
    assert row is not None
    if row["consent"]:
        return Basis.CONSENT
    if row["emergency"]:
        return Basis.EMERGENCY
    return None


async def decide(ctx: CareteamContext, patient_id: UUID, segments: set[Segment]) -> Decision:
    """The fields withheld from the caller for a record carrying ``segments``."""
    role = ctx.require_principal().role
    masked = frozenset(f for f, readers in FIELD_READERS.items() if role not in readers)
    withheld = set(masked)
    basis = None
    if Segment.PART2 in segments:
        basis = await part2_basis(ctx, patient_id)
        if basis is None:
            withheld |= SEGMENTS[Segment.PART2]
    return Decision(frozenset(withheld), masked, basis if Segment.PART2 in segments else None)


def segments_of(view: Any) -> set[Segment]:
    if isinstance(view, ReferralView) and view.service.value in PART2_SERVICES:
        return {Segment.PART2}
    return set()


def _apply(view: Any, withheld: frozenset[str]) -> Any:
    def hidden(name: str) -> bool:
        return name in withheld

    if isinstance(view, ReferralView):
        return replace(
            view,
            reason=None if hidden("Referral.reason") else view.reason,
            report_back_summary=None
            if hidden("Referral.reportBackSummary")
            else view.report_back_summary,
            decline_reason=None if hidden("Referral.declineReason") else view.decline_reason,
            cancel_reason=None if hidden("Referral.cancelReason") else view.cancel_reason,
        )
    if isinstance(view, ConsultationNoteView):
        return replace(
            view,
            question=None if hidden("ConsultationNote.question") else view.question,
            content=None if hidden("ConsultationNote.content") else view.content,
            withdraw_reason=None
            if hidden("ConsultationNote.withdrawReason")
            else view.withdraw_reason,
            addenda=[
                replace(a, text=None) if hidden("ConsultationNote.addenda.text") else a
                for a in view.addenda
            ],
            recommendations=[
                replace(
                    r,
                    text=None if hidden("ConsultationNote.recommendations.text") else r.text,
                    response_text=None
                    if hidden("ConsultationNote.recommendations.responseText")
                    else r.response_text,
                )
                for r in view.recommendations
            ],
        )
    if isinstance(view, CarePlanView):
        return replace(
            view,
            close_reason=None if hidden("CarePlan.closeReason") else view.close_reason,
            goals=[
                replace(
                    g,
                    description=None if hidden("CarePlan.goals.description") else g.description,
                    close_reason=None if hidden("CarePlan.goals.closeReason") else g.close_reason,
                )
                for g in view.goals
            ],
            interventions=[
                replace(
                    i,
                    name=None if hidden("CarePlan.interventions.name") else i.name,
                    dose=None if hidden("CarePlan.interventions.dose") else i.dose,
                    stop_reason=None
                    if hidden("CarePlan.interventions.stopReason")
                    else i.stop_reason,
                )
                for i in view.interventions
            ],
            revisions=[
                replace(r, reason=None) if hidden("CarePlan.revisions.reason") else r
                for r in view.revisions
            ],
        )
    return view


def _prefix(view: Any) -> str:
    return {
        ReferralView: "Referral.",
        ConsultationNoteView: "ConsultationNote.",
        CarePlanView: "CarePlan.",
    }.get(type(view), "")


async def enforce(ctx: CareteamContext, operation: str, view: Any) -> Any:
    """The view with every field the caller may not read set to null; each decision that
    withheld or unlocked something is recorded in the access log."""
    prefix = _prefix(view)
    if not prefix:
        return view
    patient_id: UUID = view.patient_id
    decision = await decide(ctx, patient_id, segments_of(view))
    relevant = sorted(f for f in decision.withheld if f.startswith(prefix))
    records: list[tuple[str, tuple[str, ...], str | None]] = []
    if relevant:
        reason = (
            "PART2_WITHHELD"
            if any(f in SEGMENTS[Segment.PART2] for f in relevant)
            and not set(relevant) <= decision.masked_by_role
            else "MASKED"
        )
        records.append((reason, tuple(relevant), None))
    if decision.part2_basis is not None:
        purpose = "ETREAT" if decision.part2_basis is Basis.EMERGENCY else None
        records.append(
            (decision.part2_basis.value, tuple(sorted(SEGMENTS[Segment.PART2])), purpose)
        )
    await record_decisions(ctx, operation, patient_id, records)
    return _apply(view, frozenset(relevant))


async def record_decisions(
    ctx: CareteamContext,
    operation: str,
    patient_id: UUID,
    records: list[tuple[str, tuple[str, ...], str | None]],
) -> None:
    """One access-log row per (reason, fields, purpose) decision."""
    if not records:
        return
    principal = ctx.require_principal()
    await ctx.runtime.audit.record(
        [
            ReadRecord(
                at=ctx.runtime.clock(),
                actor_id=principal.user_id,
                role=principal.role.value,
                organisation_id=principal.organisation_id,
                patient_ids=(patient_id,),
                operation=operation,
                purpose_of_use=purpose or ctx.purpose_of_use,
                request_id=ctx.request_id,
                fields=fields,
                reason=reason,
            )
            for reason, fields, purpose in records
        ]
    )


async def referral_document(
    ctx: CareteamContext, operation: str, doc: dict[str, Any]
) -> dict[str, Any]:
    """A referral tracker document (the FHIR face's source) with its reason removed when
    the caller may not read it, by the same rules and with the same audit as ``enforce``."""
    if not doc.get("reason"):
        return doc
    patient_id = UUID(doc["patient_id"])
    role = ctx.require_principal().role
    if role not in FIELD_READERS["Referral.reason"]:
        await record_decisions(ctx, operation, patient_id, [("MASKED", ("Referral.reason",), None)])
        return {**doc, "reason": None}
    if doc.get("service") not in PART2_SERVICES:
        return doc
    basis = await part2_basis(ctx, patient_id)
    if basis is None:
        await record_decisions(
            ctx, operation, patient_id, [("PART2_WITHHELD", ("Referral.reason",), None)]
        )
        return {**doc, "reason": None}
    purpose = "ETREAT" if basis is Basis.EMERGENCY else None
    await record_decisions(
        ctx, operation, patient_id, [(basis.value, ("Referral.reason",), purpose)]
    )
    return doc


async def enforce_payload(ctx: CareteamContext, operation: str, payload: Any) -> Any:
    """``enforce`` on the record a command's payload carries (referral, note or plan)."""
    for attribute in ("referral", "consultation_note", "care_plan"):
        view = getattr(payload, attribute, None)
        if view is not None:
            setattr(payload, attribute, await enforce(ctx, operation, view))
    return payload


async def care_event_payload(
    ctx: CareteamContext,
    stream_type: str,
    stream_id: UUID,
    patient_id: UUID,
    payload: Any,
    *,
    event_type: str = "",
) -> Any:
    """A care event's data with the free text the subscriber may not read removed (a
    psychotherapy note's text always: its author reads it through psychotherapyNotes)."""
    if not isinstance(payload, dict):
        return payload
    if event_type == PSYCHOTHERAPY_NOTE_EVENT:
        return {k: v for k, v in payload.items() if k != "text"}
    role = ctx.require_principal().role
    if role not in CLINICIANS:
        return without_clinical_text(payload, event_type)
    if stream_type != "referral" or not PART2_EVENT_KEYS & payload.keys():
        return payload
    async with ctx.runtime.pool.acquire() as conn:
        service = await conn.fetchval(
            "SELECT doc->>'service' FROM rm_referral_tracker WHERE key = $1", stream_id
        )
    if service is None and "service" in payload:
        service = payload["service"]
    # An unknown service (the tracker row not written yet) is treated as Part 2: fail closed.
    if service is not None and service not in PART2_SERVICES:
        return payload
    if await part2_basis(ctx, patient_id) is not None:
        return payload
    return {k: v for k, v in payload.items() if k not in PART2_EVENT_KEYS}


async def care_plan_document(
    ctx: CareteamContext, operation: str, doc: dict[str, Any]
) -> dict[str, Any]:
    """A care plan document (the FHIR face's source) without the clinical text a reader
    outside ``FIELD_READERS`` may not see, recorded as ``MASKED`` like ``enforce``."""
    if ctx.require_principal().role in CLINICIANS:
        return doc
    masked = (
        "CarePlan.goals.description",
        "CarePlan.interventions.name",
        "CarePlan.interventions.dose",
    )
    await record_decisions(ctx, operation, UUID(doc["patient_id"]), [("MASKED", masked, None)])
    return {
        **doc,
        "goals": [{**g, "description": None} for g in doc.get("goals", [])],
        "interventions": [{**i, "name": None, "dose": None} for i in doc.get("interventions", [])],
    }
