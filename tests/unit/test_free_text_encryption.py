"""Which event fields are encrypted, and how each stored form reads back."""

from __future__ import annotations

import base64
import os
import secrets
import typing
from uuid import uuid4

from domain.registry import EVENT_CLASSES
from services.crypto import (
    MARKER,
    RECORD_VERSION,
    KeyRing,
    decrypt_fields,
    encrypt_fields,
    patient_key_fields,
    record_key_fields,
)

# Text fields that are codes, not free text: each is validated against an enumeration
# or is a rule's identifier in the domain, so it cannot carry a clinician's words.
CODED_TEXT_FIELDS = frozenset(
    {
        ("patient.registered", "sex"),
        ("patient.discharged", "reason"),
        ("patient.deactivated", "reason"),
        ("patient.care_team_assigned", "changed_roles"),
        ("patient.care_team_member_unassigned", "role"),
        ("patient.consent_granted", "kind"),
        ("patient.consent_granted", "method"),
        ("patient.consent_revoked", "kind"),
        ("patient.consent_giver_recorded", "given_by"),
        ("patient.consent_giver_recorded", "relationship"),
        ("patient.measurement_reminder_due", "instrument"),
        ("patient.sdq_recorded", "informant"),
        ("patient.sdq_recorded", "impact"),
        ("patient.sdq_recorded", "scores"),
        ("patient.sdq_recorded", "bands"),
        ("patient.sdq_recorded", "rules_version"),
        ("patient.screening_recorded", "instrument"),
        ("patient.screening_recorded", "severity"),
        ("patient.screening_recorded", "rules_version"),
        ("patient.screening_recorded", "loinc_panel"),
        ("patient.screening_recorded", "loinc_total"),
        ("patient.contact_logged", "activity"),
        ("patient.contact_logged", "modality"),
        ("patient.flag_raised", "kind"),
        ("patient.flag_raised", "rule_id"),
        ("patient.flag_raised", "rule_version"),
        ("patient.flag_cleared", "kind"),
        ("patient.task_created", "kind"),
        ("patient.task_completed", "kind"),
        ("patient.psychiatric_case_review_recorded", "decision"),
        ("patient.emergency_access_granted", "role"),
        ("patient.emergency_access_reviewed", "outcome"),
        ("care_plan.goal_closed", "status"),
        ("care_plan.target_set", "instrument"),
        ("care_plan.target_set", "kind"),
        ("care_plan.intervention_started", "kind"),
        ("care_plan.intervention_started", "modality"),
        ("care_plan.intervention_changed", "modality"),
        ("care_plan.reviewed", "decision"),
        ("care_plan.reviewed", "suggested_decision"),
        ("care_plan.reviewed", "rules_version"),
        ("referral.requested", "service"),
        # billing programs (issue 18): the performer's staff role, a services.auth.Role code
        ("patient.contact_logged", "performer_role"),
        # the wider team and PCBH (issue 18): codes from domain.common enumerations
        ("patient.wider_team_member_added", "role"),
        ("patient.caregiver_added", "relationship"),
        ("patient.caregiver_access_granted", "scope"),
        ("patient.caregiver_access_revoked", "scope"),
        # the billing practitioner's initiating visit (issue 18): InitiatingVisitKind
        ("patient.initiating_visit_recorded", "visit_kind"),
        # the organisation's calendar (issue 18): an IANA zone name, checked against the
        # zone database (domain/organisation.py); no patient's, and no one's words
        ("organisation.calendar_opened", "time_zone"),
        ("organisation.time_zone_set", "time_zone"),
        # outcomes over time (issue #19): domain.rules.outcomes UtilisationKind / Source
        ("patient.utilisation_recorded", "kind"),
        ("patient.utilisation_recorded", "source"),
    }
)


def _payload_hints(cls: type) -> dict[str, object]:
    """The event's stored fields and their types (no class variables, no envelope)."""
    return {
        field: hint
        for field, hint in typing.get_type_hints(cls).items()
        if typing.get_origin(hint) is not typing.ClassVar
        and field not in ("originator_id", "originator_version", "timestamp", "originator_topic")
    }


def _holds_text(hint: object) -> bool:
    if hint is str:
        return True
    return any(_holds_text(arg) for arg in typing.get_args(hint))


def test_every_text_field_of_every_event_is_encrypted_or_a_code() -> None:
    """A text field is declared personal, free text or the erasure's record, or is a code."""
    undeclared = []
    for name, cls in EVENT_CLASSES.items():
        declared = patient_key_fields(cls) | record_key_fields(cls)
        for field, hint in _payload_hints(cls).items():
            if not _holds_text(hint):
                continue
            if field not in declared and (name, field) not in CODED_TEXT_FIELDS:
                undeclared.append(f"{name}.{field}")
    assert undeclared == []


def test_declared_fields_exist_on_their_event_class() -> None:
    """Every declared field is a field of the event it is declared on."""
    for cls in EVENT_CLASSES.values():
        hints = _payload_hints(cls)
        assert (patient_key_fields(cls) | record_key_fields(cls)) <= set(hints), cls


def test_free_text_is_unreadable_without_the_patients_key_but_the_erasure_record_is_not() -> None:
    """Patient-key ciphertext reads as None once the key is gone; record-key text still reads."""
    keyring = KeyRing(os.urandom(32))
    patient_id = uuid4()
    marker = secrets.token_hex(8)
    data_key = os.urandom(32)
    payload = {"question": marker, "reason": marker, "count": 3}
    stored = encrypt_fields(payload, {"question"}, patient_id, data_key)
    stored = encrypt_fields(
        stored, {"reason"}, patient_id, keyring.record_key, version=RECORD_VERSION
    )
    text = repr(stored)
    assert marker not in text
    assert base64.b64encode(marker.encode()).decode()[:8] not in text
    assert set(stored["question"]) == {MARKER} and set(stored["reason"]) == {MARKER}
    assert decrypt_fields(stored, patient_id, data_key, keyring.record_key) == payload
    assert decrypt_fields(stored, patient_id, None, keyring.record_key) == {
        "question": None,
        "reason": marker,
        "count": 3,
    }


def test_a_value_stored_in_clear_before_encryption_still_reads() -> None:
    """Old plaintext payloads pass through decryption unchanged."""
    payload = {"question": "plain " + secrets.token_hex(4), "count": 1}
    assert decrypt_fields(payload, uuid4(), os.urandom(32), None) == payload
    assert decrypt_fields(payload, uuid4(), None, None) == payload


def test_the_erasure_record_key_is_derived_from_the_master_key() -> None:
    """The same master key gives the same record key; another gives another."""
    master = os.urandom(32)
    assert KeyRing(master).record_key == KeyRing(master).record_key
    assert KeyRing(master).record_key != KeyRing(os.urandom(32)).record_key
