"""Partner feed rules, public projections and messages, on log rows built by domain commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate
from jsonschema import Draft202012Validator

from domain import codec
from domain.care_plan import CarePlan
from domain.consultation import ConsultationNote
from domain.patient import Patient
from domain.referral import Referral
from services.application import patient_id_of
from services.eventstore import RecordedEvent
from services.partners.contract import (
    BY_KEY,
    CATALOGUE,
    ContractViolationError,
    Pseudonyms,
    Publisher,
    public_type,
    validate,
)
from services.partners.messages import PartnerMessage
from services.partners.rules import (
    REDISCLOSURE_NOTICE,
    ConsentLedger,
    decide,
    fold_consents,
    is_part2,
)

ORG = UUID("00000000-0000-4000-8000-00000000000a")
PARTNER_ORG = UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_ORG = UUID("00000000-0000-4000-8000-0000000000b2")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
SCHEMAS = Path(__file__).resolve().parents[3] / "services" / "partners" / "schemas"
GIVEN, FAMILY, MRN = "Zebulon", "Quixworth", "MRN-7734119"
KEY = b"k" * 32
PUBLISHER = Publisher("https://care.example.org")
OWNER = UUID("00000000-0000-4000-8000-0000000000a1")


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


class Log:
    """Pending events of aggregates as the store records them, in log order."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []

    def take(self, aggregate: Aggregate) -> list[RecordedEvent]:
        taken = []
        for event in aggregate.collect_events():
            n = len(self.records) + 1
            record = RecordedEvent(
                position=n,
                tx_id=n,
                event_id=uuid4(),
                stream_id=aggregate.id,
                stream_type=type(aggregate).STREAM_TYPE,  # type: ignore[attr-defined]
                stream_version=event.originator_version,
                patient_id=patient_id_of(aggregate),
                event_type=codec.event_name(event),
                event_version=codec.event_version(event),
                payload=json.loads(json.dumps(codec.encode_payload(event))),
                metadata={"actor_id": "cm-1", "role": "care_manager"},
                occurred_at=event.occurred_at,
                recorded_at=event.timestamp,
            )
            self.records.append(record)
            taken.append(record)
        return taken

    def last(self, event_type: str) -> RecordedEvent:
        return [r for r in self.records if r.event_type == event_type][-1]


def patient() -> Patient:
    p = Patient.register(
        given_name=GIVEN,
        family_name=FAMILY,
        birth_date=date(1980, 5, 17),
        mrn=MRN,
        organisation_id=ORG,
        occurred_at=day(-7),
        now=day(-7),
    )
    p.enroll(occurred_at=T0, now=T0)
    return p


def ledger_of(log: Log, patient_id: UUID) -> ConsentLedger:
    return fold_consents(log.records).get(patient_id, ConsentLedger())


# --- consent ------------------------------------------------------------------------


def test_an_active_data_sharing_consent_naming_the_partner_permits_disclosure() -> None:
    """A granted, unrevoked consent for the partner organisation is a basis."""
    log, p = Log(), patient()
    consent = p.grant_consent(
        kind="data_sharing", partner_organisation_id=PARTNER_ORG, occurred_at=T0, now=T0
    )
    log.take(p)
    assert ledger_of(log, p.id).basis(PARTNER_ORG, T0.date(), part2=False) == (consent,)


def test_a_consent_for_another_organisation_permits_nothing() -> None:
    """Consent is per recipient organisation."""
    log, p = Log(), patient()
    p.grant_consent(kind="data_sharing", partner_organisation_id=OTHER_ORG, occurred_at=T0, now=T0)
    log.take(p)
    assert ledger_of(log, p.id).basis(PARTNER_ORG, T0.date(), part2=False) is None


def test_a_revoked_consent_permits_nothing() -> None:
    """Revocation ends the basis."""
    log, p = Log(), patient()
    consent = p.grant_consent(
        kind="data_sharing", partner_organisation_id=PARTNER_ORG, occurred_at=T0, now=T0
    )
    p.revoke_consent(consent_id=consent, occurred_at=day(1), now=day(1))
    log.take(p)
    assert ledger_of(log, p.id).basis(PARTNER_ORG, day(1).date(), part2=False) is None


def test_an_expired_consent_permits_nothing_after_its_last_day() -> None:
    """expires_on is the last day the consent covers."""
    log, p = Log(), patient()
    p.grant_consent(
        kind="data_sharing",
        partner_organisation_id=PARTNER_ORG,
        expires_on=day(10).date(),
        occurred_at=T0,
        now=T0,
    )
    log.take(p)
    ledger = ledger_of(log, p.id)
    assert ledger.basis(PARTNER_ORG, day(10).date(), part2=False) is not None
    assert ledger.basis(PARTNER_ORG, day(11).date(), part2=False) is None


def test_part2_data_needs_a_part2_consent_naming_the_partner_too() -> None:
    """Data sharing alone, or a Part 2 consent without a recipient, is not enough."""
    log, p = Log(), patient()
    sharing = p.grant_consent(
        kind="data_sharing", partner_organisation_id=PARTNER_ORG, occurred_at=T0, now=T0
    )
    p.grant_consent(kind="part2", occurred_at=T0, now=T0)
    log.take(p)
    assert ledger_of(log, p.id).basis(PARTNER_ORG, T0.date(), part2=True) is None
    part2 = p.grant_consent(
        kind="part2", partner_organisation_id=PARTNER_ORG, occurred_at=T0, now=T0
    )
    log.take(p)
    assert ledger_of(log, p.id).basis(PARTNER_ORG, T0.date(), part2=True) == (sharing, part2)


def test_an_event_is_withheld_when_consent_was_revoked_after_it_but_before_delivery() -> None:
    """Rule 2: a revocation recorded since the event stops its delivery."""
    p = patient()
    p.grant_consent(
        kind="data_sharing", partner_organisation_id=PARTNER_ORG, occurred_at=T0, now=T0
    )
    then = Log()
    then.take(p)
    consent = next(iter(p.consents))
    p.revoke_consent(consent_id=consent, occurred_at=day(1), now=day(1))
    now = Log()
    now.take(p)
    decision = decide(
        organisation_id=PARTNER_ORG,
        part2=False,
        at_event=ledger_of(then, p.id),
        at_delivery=fold_consents([*then.records, *now.records])[p.id],
        event_day=T0.date(),
        today=day(1).date(),
    )
    assert not decision.permitted
    assert decision.reason == "CONSENT_REVOKED_SINCE"


def test_a_referral_to_substance_use_treatment_is_part2_data_and_others_are_not() -> None:
    """Rule 3 labels referrals by their requested service."""
    log = Log()
    sud = Referral.request(
        patient_id=uuid4(),
        service="substance_use_treatment",
        reason="x",
        expected_by=day(30).date(),
        occurred_at=T0,
        now=T0,
    )
    (requested,) = log.take(sud)
    assert is_part2(requested, referral_service="substance_use_treatment")
    assert not is_part2(requested, referral_service="psychotherapy")


def test_an_event_labelled_part2_in_its_metadata_is_part2_data() -> None:
    """The label hook: ``labels`` containing ``part2``."""
    log, p = Log(), patient()
    (registered, _) = log.take(p)
    labelled = RecordedEvent(**{**registered.__dict__, "metadata": {"labels": ["part2"]}})
    assert is_part2(labelled, referral_service=None)
    assert not is_part2(registered, referral_service=None)


# --- the public contract ------------------------------------------------------------


def test_every_public_type_has_its_schema_file_and_every_schema_file_a_type() -> None:
    """The schemas folder is the contract: nothing missing, nothing stale."""
    files = {f.name.removesuffix(".json") for f in SCHEMAS.glob("*.json")}
    assert files == set(BY_KEY)


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_every_schema_is_valid_json_schema_and_closed_to_extra_fields(key: str) -> None:
    """Draft 2020-12, with additionalProperties false, and its id matching its type."""
    schema = json.loads((SCHEMAS / f"{key}.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["$id"] == public_type(key).schema_id


def _every_public_event() -> Log:
    """One log holding at least one event of every public type."""
    log, p = Log(), patient()
    p.start_treatment(occurred_at=day(1), now=day(1))
    p.record_screening(instrument="phq9", answers=[1] * 8 + [0], occurred_at=day(2), now=day(2))
    p.record_screening(
        instrument="gad7", answers=[1, 1, 0, None, 1, 1, 1], occurred_at=day(2), now=day(2)
    )
    # A measurement reminder (patient channel, issue #19): no PHQ-2 yet, so it is due.
    p.remind_measurement(instrument="phq2", due_after_days=30, occurred_at=day(2), now=day(2))
    p.write_relapse_prevention_plan(
        warning_signs=["sleep"], strategies=["walk"], occurred_at=day(3), now=day(3)
    )
    p.resume_treatment(occurred_at=day(4), now=day(4))
    p.discharge(reason="completed", occurred_at=day(5), now=day(5))
    p.refer(occurred_at=day(6), now=day(6))
    p.deactivate(reason="moved_away", occurred_at=day(7), now=day(7))
    log.take(p)
    for service, end in (("psychotherapy", "complete"), ("other", "decline"), ("other", "cancel")):
        r = Referral.request(
            patient_id=p.id,
            service=service,
            reason="free text reason",
            expected_by=day(30).date(),
            receiving_organisation_id=PARTNER_ORG,
            occurred_at=T0,
            now=T0,
        )
        r.send(occurred_at=T0, now=T0)
        if end == "complete":
            r.accept(occurred_at=T0, now=T0)
            r.schedule(appointment_at=day(9), occurred_at=T0, now=T0)
            r.complete(report_back_summary="free text report", occurred_at=day(9), now=day(9))
        elif end == "decline":
            r.decline(reason="free text", occurred_at=T0, now=T0)
        else:
            r.cancel(reason="free text", occurred_at=T0, now=T0)
        log.take(r)
    plan = CarePlan.create(patient_id=p.id, episode_number=1, occurred_at=T0, now=T0)
    plan.review(decision="keep", baseline_total=18, latest_total=8, occurred_at=day(1), now=day(1))
    log.take(plan)
    note = ConsultationNote.request(
        patient_id=p.id, requested_by=uuid4(), question="free text", occurred_at=T0, now=T0
    )
    note.draft(author_id=uuid4(), content="free text", occurred_at=T0, now=T0)
    note.add_recommendation(text="free text", occurred_at=T0, now=T0)
    note.sign(signed_by=uuid4(), occurred_at=T0, now=T0)
    log.take(note)
    return log


def _messages(log: Log, *, part2: bool = False) -> list[PartnerMessage]:
    out = []
    for record in log.records:
        for public in CATALOGUE:
            if public.source == record.event_type:
                out.append(
                    PartnerMessage.build(
                        record,
                        public,
                        Pseudonyms(KEY),
                        part2=part2,
                        consent_ids=(),
                        publisher=PUBLISHER,
                        organisation_id=OWNER,
                    )
                )
    return out


def test_every_public_type_projects_data_that_validates_against_its_schema() -> None:
    """Each catalogue entry is exercised by a real event and checked by jsonschema itself."""
    messages = _messages(_every_public_event(), part2=True)
    assert {m.public.key for m in messages} == set(BY_KEY)
    for m in messages:
        schema = json.loads((SCHEMAS / f"{m.public.key}.json").read_text())
        assert list(Draft202012Validator(schema).iter_errors(m.data)) == [], m.public.key
        # A FHIR payload (fhir.*) carries the notice as a note and a security label.
        notice = m.data["note"][0]["text"] if m.public.fhir else m.data["confidentiality"]["notice"]
        assert notice == REDISCLOSURE_NOTICE


def test_no_projection_carries_names_mrn_free_text_internal_ids_or_actors() -> None:
    """Minimum necessary: only codes, numbers, dates and pseudonyms leave."""
    log = _every_public_event()
    internal = {str(r.patient_id) for r in log.records} | {str(r.stream_id) for r in log.records}
    for m in _messages(log):
        text = json.dumps(m.data) + m.webhook_body().decode()
        record = m.kafka_record()
        text += record.key.decode() + record.value.decode()
        text += "".join(v.decode() for _, v in record.headers)
        for secret in (GIVEN, FAMILY, MRN, "free text", "cm-1", "care_manager", *internal):
            assert secret not in text, (m.public.key, secret)


def test_a_projection_with_an_extra_field_fails_validation() -> None:
    """additionalProperties false catches a leak before it is sent."""
    message = _messages(_every_public_event())[0]
    with pytest.raises(ContractViolationError):
        validate(message.public, {**message.data, "given_name": GIVEN})


def test_pseudonyms_are_stable_per_partner_and_differ_between_partners() -> None:
    """The same patient is one id at one partner and unlinkable across partners."""
    patient_id = uuid4()
    a, b = Pseudonyms(b"a" * 32), Pseudonyms(b"b" * 32)
    assert a.patient(patient_id) == a.patient(patient_id)
    assert a.patient(patient_id) != b.patient(patient_id)
    assert patient_id.hex not in a.patient(patient_id)


# --- messages -----------------------------------------------------------------------


def test_a_kafka_record_is_keyed_by_the_pseudonym_and_carries_cloudevent_headers() -> None:
    """Binary mode: ce_ headers, data as the value, the partner's patient pseudonym as key."""
    log = _every_public_event()
    message = next(m for m in _messages(log) if m.public.key == "patient.enrolled.v1")
    record = message.kafka_record()
    headers = {k: v.decode() for k, v in record.headers}
    assert record.key.decode() == Pseudonyms(KEY).patient(message.event.patient_id)
    assert headers["ce_type"] == "org.careteam.partner.patient.enrolled.v1"
    assert headers["ce_id"] == message.id and headers["ce_subject"] == message.subject
    assert "ce_confidentiality" not in headers
    assert json.loads(record.value) == message.data
    assert headers["ce_source"] == f"https://care.example.org/organisations/{OWNER}/partner-feed"
    assert headers["ce_dataschema"] == (
        "https://care.example.org/schemas/partners/patient.enrolled.v1.json"
    )


def test_a_webhook_body_is_a_structured_cloudevent_marked_when_part2() -> None:
    """Structured mode carries the attributes and the data in one document."""
    message = _messages(_every_public_event(), part2=True)[0]
    body: dict[str, Any] = json.loads(message.webhook_body())
    assert body["specversion"] == "1.0"
    assert body["confidentiality"] == "42-CFR-Part-2"
    assert body["data"] == message.data
