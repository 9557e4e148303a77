"""Forgetting a patient: the ``patient.forgotten`` event, the key destruction, the
removal of cached snapshots, of the patient's MRN index row, of their search index
rows, of their patient-reported links and of their lines in FHIR exports commit in one
transaction, so there is no instant at which the log says "forgotten" while the key
still exists, or the other way round."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.patient import Patient
from services import patient_links
from services.eventstore import ConcurrencyConflictError, EventMetadata, EventStore, RecordedEvent
from services.mrn_index import release as release_mrn
from services.patient_search import release as release_search


class ErasureUnavailableError(RuntimeError):
    """The event store has no keyring, so there is no key to destroy."""


async def forget_patient(
    store: EventStore, patient_id: UUID, *, reason: str, metadata: EventMetadata, now: datetime
) -> list[RecordedEvent]:
    if store.keyring is None:
        raise ErasureUnavailableError("no keyring configured")
    for attempt in (1, 2):
        patient = await store.load(Patient, patient_id)
        patient.forget(reason=reason, occurred_at=now, now=now)
        events = patient.collect_events()
        try:
            async with store.pool.acquire() as conn, conn.transaction():
                recorded = await store.append(
                    stream_type=Patient.STREAM_TYPE,
                    stream_id=patient_id,
                    patient_id=patient_id,
                    expected_version=patient.version - len(events),
                    events=events,
                    metadata=metadata,
                    now=now,
                    conn=conn,
                )
                await store.keyring.destroy(conn, patient_id)
                # The forgotten patient's MRN is free again (docs/clinical-time.md).
                await release_mrn(conn, patient_id)
                # Nor is the patient found by name or birth date any more.
                await release_search(conn, patient_id)
                # Their links to questionnaires stop working and their details go.
                await patient_links.erase(conn, patient_id)
                # Nor is any Bulk Data export still holding their lines
                # (services/fhir/jobs.py; the lines were sealed with the destroyed key).
                await conn.execute(
                    "DELETE FROM fhir_export_lines WHERE patient_id = $1", patient_id
                )
                await conn.execute(
                    """DELETE FROM snapshots WHERE stream_id IN
                       (SELECT stream_id FROM streams WHERE patient_id = $1)""",
                    patient_id,
                )
        except ConcurrencyConflictError:
            if attempt == 2:
                raise
            continue
        store.forget_kept(patient_id)
        await store.notify_appended(recorded[-1].log_position)
        return recorded
    raise AssertionError("unreachable")
