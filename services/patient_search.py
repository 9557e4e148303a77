"""Keyed blind indexes for finding patients by name and birth date (``searchPatients``).

Names and birth dates are identifying fields: stored only encrypted, with a data key per
patient (services/crypto.py), so the database cannot compare them. Each registration
therefore also stores, in ``patient_search_index``, ``HMAC-SHA256(search key,
organisation id || field || normalised value)`` for

- every prefix of every token of the given and family names, from ``MIN_PREFIX`` to
  ``MAX_PREFIX`` characters (a longer token is indexed by its first ``MAX_PREFIX``);
- the birth date (ISO 8601).

A search computes the same digests for its criteria and asks which patients hold all of
them. The search key is derived from the blind-index key (itself derived from the master
key, services/crypto.py) with its own label, so a search digest can never be confused with
an MRN digest. What the table reveals to someone who reads it without the key: how many
tokens and prefixes a patient has, and which patients of one organisation share a name
prefix or a birth date (equal digests) -- not the values themselves.

Normalisation: Unicode NFKD, combining marks removed, case folded, then split on anything
that is not a letter or a digit ("Zoë-Anne" gives the tokens "zoe" and "anne").

Identity is set only by the registration (no event changes a name or a birth date), so the
rows are written in the registration's transaction, with the MRN claim
(``Application.create``), and deleted in the erasure's (``services/erasure.py``).
Patients registered before migration 0052 are indexed by ``backfill`` (``careteam
backfill-search-index``).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from services.database import Conn
from services.eventstore import _COLUMNS, EventStore, row_to_event

MIN_PREFIX = 2
MAX_PREFIX = 20
NAME = "name"
BIRTH_DATE = "birth_date"
_LABEL = b"careteam patient search index v1"


def normalise_text(text: str) -> str:
    """NFKD, combining marks stripped, case folded: "ÉLODIE" and "elodie" are equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Case folding may itself produce decomposable characters; normalise once more.
    folded = unicodedata.normalize("NFKD", stripped.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def name_tokens(name: str) -> list[str]:
    """The normalised tokens of a name: runs of letters and digits."""
    tokens: list[str] = []
    current: list[str] = []
    for c in normalise_text(name):
        if c.isalnum():
            current.append(c)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def prefixes(token: str) -> list[str]:
    """The indexed prefixes of a token: MIN_PREFIX characters up to the whole token, capped."""
    capped = token[:MAX_PREFIX]
    return [capped[:n] for n in range(MIN_PREFIX, len(capped) + 1)]


def query_token(token: str) -> str:
    """The prefix a searched token is looked up by (a long token by its capped prefix)."""
    return token[:MAX_PREFIX]


class SearchIndex:
    """Computes the search digests with the server's key; writes and deletes the rows."""

    def __init__(self, blind_index_key: bytes) -> None:
        if len(blind_index_key) < 32:
            raise ValueError("the blind index key must be at least 32 bytes")
        self._key = hmac.new(blind_index_key, _LABEL, hashlib.sha256).digest()

    def digest(self, organisation_id: UUID, field: str, value: str) -> bytes:
        message = organisation_id.bytes + field.encode() + b"\x00" + value.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def name_digest(self, organisation_id: UUID, token: str) -> bytes:
        return self.digest(organisation_id, NAME, query_token(token))

    def birth_date_digest(self, organisation_id: UUID, birth_date: date) -> bytes:
        return self.digest(organisation_id, BIRTH_DATE, birth_date.isoformat())

    def digests(
        self, organisation_id: UUID, *, given_name: str, family_name: str, birth_date: date
    ) -> set[bytes]:
        """Every digest a patient with this identity is indexed under."""
        found = {self.birth_date_digest(organisation_id, birth_date)}
        for token in name_tokens(given_name) + name_tokens(family_name):
            for prefix in prefixes(token):
                found.add(self.digest(organisation_id, NAME, prefix))
        return found

    async def index(
        self,
        conn: Conn,
        *,
        organisation_id: UUID,
        patient_id: UUID,
        given_name: str,
        family_name: str,
        birth_date: date,
    ) -> None:
        """Writes the patient's rows; run it in the transaction that appends the identity."""
        digests = self.digests(
            organisation_id, given_name=given_name, family_name=family_name, birth_date=birth_date
        )
        await conn.executemany(
            """INSERT INTO patient_search_index (organisation_id, digest, patient_id)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            [(organisation_id, d, patient_id) for d in sorted(digests)],
        )


async def release(conn: Conn, patient_id: UUID) -> None:
    """Deletes the patient's rows (erasure): a forgotten patient is found by nothing."""
    await conn.execute("DELETE FROM patient_search_index WHERE patient_id = $1", patient_id)


@dataclass(frozen=True)
class BackfillReport:
    """What ``backfill`` did: patients indexed now, forgotten patients skipped."""

    indexed: int
    forgotten: int


async def backfill(store: EventStore, index: SearchIndex) -> BackfillReport:
    """Indexes every patient registered without search rows (before migration 0052).

    Idempotent. Reads each registration's identity with the patient's key, so it runs in
    a careteam process, not in SQL; a forgotten patient has no identity left and is
    skipped. Each patient is indexed in its own short transaction.
    """
    indexed, forgotten = 0, 0
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM events e
                WHERE e.event_type = 'patient.registered'
                  AND NOT EXISTS (SELECT 1 FROM patient_search_index i
                                  WHERE i.patient_id = e.stream_id)
                ORDER BY e.tx_id, e.position"""
        )
        for record in await store.decrypt([row_to_event(r) for r in rows], conn):
            payload = record.payload
            if payload.get("given_name") is None or payload.get("birth_date") is None:
                forgotten += 1
                continue
            birth = payload["birth_date"]
            async with conn.transaction():
                await index.index(
                    conn,
                    organisation_id=UUID(str(payload["organisation_id"])),
                    patient_id=record.stream_id,
                    given_name=str(payload["given_name"]),
                    family_name=str(payload["family_name"]),
                    birth_date=birth if isinstance(birth, date) else date.fromisoformat(birth),
                )
            indexed += 1
    return BackfillReport(indexed=indexed, forgotten=forgotten)
