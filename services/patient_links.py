"""Single-use, expiring links through which a patient (or, for a minor, a guardian or
caregiver) answers one questionnaire (docs/patient-channel.md).

A link is an opaque random token (``secrets.token_urlsafe``, 256 bits); only its SHA-256
is stored, so a copy of the database cannot be used to answer. A link names one patient
and one instrument; it is used at most once (claimed with a conditional UPDATE, so two
concurrent submissions cannot both pass) and expires. Nothing here writes events: the
submission's screening is written by the caller through the Patient aggregate.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

# Default and longest validity of a link (policy choice, docs/patient-channel.md).
DEFAULT_VALID_HOURS = 72
MAX_VALID_HOURS = 14 * 24


@dataclass(frozen=True)
class PatientLink:
    """One issued link (the token is never stored)."""

    link_id: UUID
    organisation_id: UUID
    patient_id: UUID
    instrument: str
    reporter: str
    issued_by: UUID
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None

    def usable(self, at: datetime) -> bool:
        """Not used and not expired at ``at``."""
        return self.used_at is None and at < self.expires_at


def token_hash(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    """A fresh opaque token (URL-safe)."""
    return secrets.token_urlsafe(32)


async def issue(
    conn: Any,
    *,
    organisation_id: UUID,
    patient_id: UUID,
    instrument: str,
    reporter: str,
    issued_by: UUID,
    at: datetime,
    valid_hours: int,
) -> tuple[PatientLink, str]:
    """Stores a new link; returns it and its token (the only time the token exists)."""
    token = new_token()
    link = PatientLink(
        link_id=uuid4(),
        organisation_id=organisation_id,
        patient_id=patient_id,
        instrument=instrument,
        reporter=reporter,
        issued_by=issued_by,
        issued_at=at,
        expires_at=at + timedelta(hours=valid_hours),
        used_at=None,
    )
    await conn.execute(
        """INSERT INTO patient_links (link_id, token_hash, organisation_id, patient_id,
                                      instrument, reporter, issued_by, issued_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        link.link_id,
        token_hash(token),
        organisation_id,
        patient_id,
        instrument,
        reporter,
        issued_by,
        at,
        link.expires_at,
    )
    return link, token


async def find(conn: Any, token: str) -> PatientLink | None:
    """The link of a token, used or not; None for a token never issued."""
    row = await conn.fetchrow(
        """SELECT link_id, organisation_id, patient_id, instrument, reporter, issued_by,
                  issued_at, expires_at, used_at
           FROM patient_links WHERE token_hash = $1""",
        token_hash(token),
    )
    return None if row is None else PatientLink(**dict(row))


async def claim(conn: Any, link_id: UUID, at: datetime) -> bool:
    """Marks the link used at ``at``; False when it was used or expired meanwhile."""
    claimed = await conn.fetchval(
        """UPDATE patient_links SET used_at = $2
           WHERE link_id = $1 AND used_at IS NULL AND expires_at > $2
           RETURNING link_id""",
        link_id,
        at,
    )
    return claimed is not None


async def release(conn: Any, link_id: UUID) -> None:
    """Undoes a claim whose submission was refused (nothing was written)."""
    await conn.execute("UPDATE patient_links SET used_at = NULL WHERE link_id = $1", link_id)


async def record_screening(conn: Any, link_id: UUID, screening_id: UUID) -> None:
    """Notes which screening the link's submission recorded."""
    await conn.execute(
        "UPDATE patient_links SET screening_id = $2 WHERE link_id = $1", link_id, screening_id
    )


async def erase(conn: Any, patient_id: UUID) -> int:
    """Deletes every link of a patient being forgotten (docs/erasure.md): an unused one
    stops working at once (its token then reads as never issued) and no row keeps the
    patient id, instrument, reporter or issuer. Returns how many went."""
    deleted = await conn.fetch(
        "DELETE FROM patient_links WHERE patient_id = $1 RETURNING link_id", patient_id
    )
    return len(deleted)
