"""A keyed blind index that makes a medical record number unique per organisation.

The MRN is an identifying field: it is stored only encrypted, with a data key per
patient (services/crypto.py), so the database cannot compare two MRNs. Each
registration therefore also stores ``HMAC-SHA256(index key, organisation id ||
normalised MRN)`` in ``patient_mrn_index``, whose unique constraint on (organisation,
digest) refuses a second patient with the same MRN in the same organisation, in the
registration's own transaction (two concurrent registrations cannot both win). The
digest reveals nothing without the index key, which is derived from the master key
(HKDF-SHA256, its own purpose label), so it never leaves the server; the organisation
is inside the HMAC, so equal MRNs of two organisations give unrelated digests.

Normalisation (docs/clinical-time.md, 'Unique medical record numbers'): Unicode NFKC,
every whitespace character removed, case folded. "ab 123" and "AB123" are the same
record number typed twice; punctuation is kept, since in some numbering schemes it is
significant.

Forgetting a patient deletes their row in the erasure's transaction: the MRN is then
free to be registered again (the forgotten record keeps no readable MRN to clash with).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from services.database import Conn
from services.eventstore import _COLUMNS, EventStore, row_to_event

UNIQUE_CONSTRAINT = "patient_mrn_index_org_mrn_unique"


class DuplicateMrnError(Exception):
    """Another patient of the organisation has this MRN (the message holds no MRN)."""

    code = "DUPLICATE_MRN"
    field = "mrn"

    def __init__(self) -> None:
        super().__init__("mrn is registered already for another patient of this organisation")


def normalise_mrn(mrn: str) -> str:
    """The form compared: NFKC, no whitespace, case folded."""
    return "".join(unicodedata.normalize("NFKC", mrn).split()).casefold()


class MrnIndex:
    """Computes digests with the server's index key and claims or releases them."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the MRN index key must be at least 32 bytes")
        self._key = key

    def digest(self, organisation_id: UUID, mrn: str) -> bytes:
        """HMAC-SHA256 of the organisation and the normalised MRN."""
        message = organisation_id.bytes + normalise_mrn(mrn).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def claim(self, conn: Conn, *, organisation_id: UUID, mrn: str, patient_id: UUID) -> None:
        """Records the patient's MRN digest; DuplicateMrnError if the organisation has it.

        Run it in the transaction that appends the registration: a refusal aborts both.
        """
        try:
            await conn.execute(
                """INSERT INTO patient_mrn_index (organisation_id, mrn_digest, patient_id)
                   VALUES ($1, $2, $3)""",
                organisation_id,
                self.digest(organisation_id, mrn),
                patient_id,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == UNIQUE_CONSTRAINT:
                raise DuplicateMrnError() from None
            raise


async def release(conn: Conn, patient_id: UUID) -> None:
    """Frees the patient's MRN (erasure): the same MRN may be registered again."""
    await conn.execute("DELETE FROM patient_mrn_index WHERE patient_id = $1", patient_id)


@dataclass(frozen=True)
class BackfillReport:
    """What ``backfill`` did: patients indexed now, duplicates left out (their ids, the
    earlier registration keeps the MRN), forgotten patients skipped (no MRN to read)."""

    indexed: int
    duplicates: list[UUID] = field(default_factory=list)
    forgotten: int = 0


async def backfill(store: EventStore, index: MrnIndex) -> BackfillReport:
    """Indexes every patient registered without an index row (before migration 0045).

    Idempotent. Registrations are taken in log order, so of two patients with one MRN
    the earlier keeps it; the later is reported by id (never by MRN) for the
    organisation to merge or correct. Reads each registration's MRN with the patient's
    key, so it runs in a careteam process, not in SQL.
    """
    indexed, duplicates, forgotten = 0, [], 0
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM events e
                WHERE e.event_type = 'patient.registered'
                  AND NOT EXISTS (SELECT 1 FROM patient_mrn_index i
                                  WHERE i.patient_id = e.stream_id)
                ORDER BY e.tx_id, e.position"""
        )
        for record in await store.decrypt([row_to_event(r) for r in rows], conn):
            mrn = record.payload.get("mrn")
            if mrn is None:
                forgotten += 1
                continue
            organisation_id = UUID(str(record.payload["organisation_id"]))
            claimed = await conn.fetchval(
                """INSERT INTO patient_mrn_index (organisation_id, mrn_digest, patient_id)
                   VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING patient_id""",
                organisation_id,
                index.digest(organisation_id, str(mrn)),
                record.stream_id,
            )
            if claimed is None:
                duplicates.append(record.stream_id)
            else:
                indexed += 1
    return BackfillReport(indexed=indexed, duplicates=duplicates, forgotten=forgotten)
