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
from uuid import UUID

import asyncpg

from services.database import Conn

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
