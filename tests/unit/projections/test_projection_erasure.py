"""Read models after an erasure: the rewrite at ``patient.forgotten`` leaves exactly what a
rebuild after the erasure leaves (free text and identity read as null then)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any
from uuid import UUID

from domain.consultation import ConsultationNote
from domain.referral import Referral
from domain.registry import EVENT_CLASSES
from projections import caseload, patient_view
from projections.trackers import (
    erase_consultation,
    erase_referral,
    evolve_consultation,
    evolve_referral,
)
from services.crypto import decrypt_fields, encrypt_fields, patient_key_fields
from services.eventstore import RecordedEvent
from tests.unit.projections.projection_support import (
    CARE_MANAGER,
    NOW,
    PCP,
    PSYCHIATRIST,
    Log,
    day,
    enrolled_patient,
    fold,
    on,
)


def _after_key_destroyed(records: list[RecordedEvent]) -> list[RecordedEvent]:
    """The records as a rebuild reads them once the patient's key is gone: every declared
    field encrypted on append, then decrypted without a key."""
    key = os.urandom(32)
    out = []
    for r in records:
        fields = patient_key_fields(EVENT_CLASSES[r.event_type])
        stored = encrypt_fields(r.payload, fields, r.patient_id, key)
        out.append(replace(r, payload=decrypt_fields(stored, r.patient_id, None)))
    return out


def _texts(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def test_an_erased_referral_document_equals_its_rebuild_after_the_erasure() -> None:
    """Reason and close reason are gone, the loop's facts stay."""
    log = Log()
    for close in ("decline", "cancel"):
        referral = Referral.request(
            patient_id=UUID(int=7),
            service="substance_use_treatment",
            reason="marker-reason",
            expected_by=on(30),
            occurred_at=day(0),
            now=NOW,
        )
        if close == "decline":
            referral.send(occurred_at=day(1), now=NOW)
            referral.decline(reason="marker-close", occurred_at=day(2), now=NOW)
        else:
            referral.cancel(reason="marker-close", occurred_at=day(2), now=NOW)
        log.take(referral)
        live = fold(evolve_referral, log.records, referral.id)
        assert "marker" in _texts(live)
        erased = erase_referral(live)
        assert "marker" not in _texts(erased)
        rebuilt = fold(evolve_referral, _after_key_destroyed(log.records), referral.id)
        assert erased == rebuilt
        assert erased["status"] == live["status"] and erased["closed_at"] == live["closed_at"]


def test_an_erased_consultation_document_equals_its_rebuild_after_the_erasure() -> None:
    """The question and every recommendation's text are gone, the steps stay."""
    log = Log()
    note = ConsultationNote.request(
        patient_id=UUID(int=7),
        requested_by=CARE_MANAGER,
        question="marker-question",
        occurred_at=day(0),
        now=NOW,
    )
    note.draft(author_id=PSYCHIATRIST, content="marker-content", occurred_at=day(1), now=NOW)
    first = note.add_recommendation(text="marker-one", occurred_at=day(1), now=NOW)
    note.add_recommendation(text="marker-two", occurred_at=day(1), now=NOW)
    note.sign(signed_by=PSYCHIATRIST, occurred_at=day(2), now=NOW)
    note.add_addendum(author_id=PSYCHIATRIST, text="marker-addendum", occurred_at=day(3), now=NOW)
    note.acknowledge(pcp_id=PCP, occurred_at=day(4), now=NOW)
    note.decline_recommendation(
        recommendation_id=first, responded_by=PCP, reason="marker-why", occurred_at=day(5), now=NOW
    )
    log.take(note)
    live = fold(evolve_consultation, log.records)
    assert "marker" in _texts(live)
    erased = erase_consultation(live)
    assert "marker" not in _texts(erased)
    assert erased == fold(evolve_consultation, _after_key_destroyed(log.records))


def test_a_forgotten_patients_documents_equal_their_rebuild_after_the_erasure() -> None:
    """Patient view and registry: identity and a team member's flag note are gone."""
    patient = enrolled_patient()
    patient.raise_flag(
        kind="team_member",
        rule_id="team",
        rule_version="1",
        inputs={"note": "marker-note"},
        occurred_at=day(1),
        now=NOW,
    )
    patient.forget(reason="request 1", occurred_at=day(2), now=NOW)
    log = Log()
    log.take(patient)
    rebuilt_records = _after_key_destroyed(log.records)
    for evolve in (patient_view.evolve, caseload.evolve):
        before = fold(evolve, log.records[:-1])
        assert "marker" in _texts(before) and "Person" in _texts(before)
        live = fold(evolve, log.records)
        assert "marker" not in _texts(live) and "Person" not in _texts(live)
        assert live == fold(evolve, rebuilt_records)
