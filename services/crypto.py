"""Crypto-shredding: identifying fields and free text are stored encrypted with a data key
per patient.

Each patient's data key (AES-256-GCM) is kept in ``patient_keys`` wrapped by the master
key from settings. Event classes name their identifying fields in ``PERSONAL_FIELDS`` and
their free text (notes, questions, reasons, report backs, plan text) in
``FREE_TEXT_FIELDS``; the event store encrypts those values with the patient's key on
append and decrypts them on read (``patient_key_fields``). Forgetting a patient deletes
the wrapped key in the same transaction as the ``patient.forgotten`` event: from then on
the ciphertext in the log (and in Kafka, which only ever receives ciphertext for these
fields) cannot be read by anyone, the log still replays, and the fields read as absent
(None). No patient key is cached in memory, so every process stops decrypting the moment
the key row is gone.

The erasure's own record (the ``patient.forgotten`` reason, ``ERASURE_RECORD_FIELDS``) is
encrypted with the erasure-record key instead: derived from the master key (HKDF), never
shredded, so the reason for an erasure stays readable to careteam after the patient's key
is gone, and is never stored or published in clear.

Values written before a field was declared stay as they were stored (plain JSON) and
read as they are; only new appends are encrypted.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.database import Conn

MARKER = "$enc"
# The prefix of a ciphertext names its key: the patient's data key, or the erasure-record key.
VERSION = "v1"
RECORD_VERSION = "r1"
_RECORD_KEY_INFO = b"careteam erasure-record key v1"


def patient_key_fields(event_cls: type) -> frozenset[str]:
    """The fields of an event class encrypted with the patient's data key (shredded on
    forget): its identifying fields and its free text."""
    personal: frozenset[str] = getattr(event_cls, "PERSONAL_FIELDS", frozenset())
    free_text: frozenset[str] = getattr(event_cls, "FREE_TEXT_FIELDS", frozenset())
    return personal | free_text


def record_key_fields(event_cls: type) -> frozenset[str]:
    """The fields of an event class encrypted with the erasure-record key (never shredded)."""
    fields: frozenset[str] = getattr(event_cls, "ERASURE_RECORD_FIELDS", frozenset())
    return fields


class PatientForgottenError(Exception):
    """The patient was forgotten: no new identifying data may be stored for them."""

    code = "PATIENT_FORGOTTEN"


def load_master_key(secret: str | None, data_dir: Path) -> bytes:
    """The master key: CARETEAM_MASTER_KEY (base64, 32 bytes), else a development key kept
    in the data folder (created on first use, mode 0600)."""
    if secret is not None:
        key = base64.b64decode(secret)
    else:
        path = data_dir / "keys" / "master-key"
        if path.exists():
            key = base64.b64decode(path.read_text())
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = AESGCM.generate_key(bit_length=256)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(base64.b64encode(key).decode())
            tmp.chmod(0o600)
            tmp.replace(path)
    if len(key) != 32:
        raise ValueError("the master key must be 32 bytes (base64)")
    return key


def _aad(patient_id: UUID, name: str) -> bytes:
    return patient_id.bytes + name.encode()


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARKER}


class KeyRing:
    """Creates, unwraps and destroys patients' data keys."""

    def __init__(self, master_key: bytes) -> None:
        self._master = AESGCM(master_key)
        # A separate key for the MRN blind index (services/mrn_index.py), derived so the
        # master key itself is only ever used to wrap data keys.
        self._index_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"careteam mrn index v1"
        ).derive(master_key)
        self._record_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_RECORD_KEY_INFO
        ).derive(master_key)

    def blind_index_key(self) -> bytes:
        """The key of the MRN blind index (HKDF-SHA256 of the master key)."""
        return self._index_key

    @property
    def record_key(self) -> bytes:
        """The erasure-record key: derived from the master key, never destroyed."""
        return self._record_key

    def _wrap(self, patient_id: UUID, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, data_key, patient_id.bytes)

    def unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        """The data key from its wrapped form as ``patient_keys`` stores it."""
        return self._unwrap(patient_id, wrapped)

    def _unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:12], wrapped[12:], patient_id.bytes)

    async def data_key(self, conn: Conn, patient_id: UUID) -> bytes:
        """The patient's data key, created on first use; refuses a forgotten patient.

        Every command that records free text asks for it, so an existing key costs one
        read; only a missing one is created (first, without overwriting a concurrent one)."""
        select = "SELECT wrapped_key FROM patient_keys WHERE patient_id = $1"
        row = await conn.fetchrow(select, patient_id)
        if row is None:
            candidate = self._wrap(patient_id, AESGCM.generate_key(bit_length=256))
            await conn.execute(
                """INSERT INTO patient_keys (patient_id, wrapped_key) VALUES ($1, $2)
                   ON CONFLICT (patient_id) DO NOTHING""",
                patient_id,
                candidate,
            )
            row = await conn.fetchrow(select, patient_id)
        if row is None or row["wrapped_key"] is None:
            raise PatientForgottenError(str(patient_id))
        return self._unwrap(patient_id, bytes(row["wrapped_key"]))

    async def data_keys(self, conn: Conn, patient_ids: Iterable[UUID]) -> dict[UUID, bytes]:
        """Existing keys of these patients; a forgotten patient has none."""
        ids = list(set(patient_ids))
        rows = await conn.fetch(
            """SELECT patient_id, wrapped_key FROM patient_keys
               WHERE patient_id = ANY($1::uuid[]) AND wrapped_key IS NOT NULL""",
            ids,
        )
        return {
            r["patient_id"]: self._unwrap(r["patient_id"], bytes(r["wrapped_key"])) for r in rows
        }

    async def destroy(self, conn: Conn, patient_id: UUID) -> None:
        """Forgets the key for good (the row stays, so the key is never re-created)."""
        await conn.execute(
            """INSERT INTO patient_keys (patient_id, wrapped_key, destroyed_at)
               VALUES ($1, NULL, now())
               ON CONFLICT (patient_id) DO UPDATE SET wrapped_key = NULL, destroyed_at = now()""",
            patient_id,
        )


def encrypt_fields(
    payload: Mapping[str, Any],
    fields: Iterable[str],
    patient_id: UUID,
    data_key: bytes,
    *,
    version: str = VERSION,
) -> dict[str, Any]:
    """The payload with each of ``fields`` (when present and not None) as ciphertext;
    ``version`` names the key (``VERSION``: the patient's, ``RECORD_VERSION``: the
    erasure-record key)."""
    out = dict(payload)
    aead = AESGCM(data_key)
    for name in fields:
        if name in out and out[name] is not None:
            nonce = os.urandom(12)
            plain = json.dumps(out[name]).encode()
            blob = nonce + aead.encrypt(nonce, plain, _aad(patient_id, name))
            out[name] = {MARKER: f"{version}:{base64.b64encode(blob).decode()}"}
    return out


def decrypt_fields(
    payload: Mapping[str, Any],
    patient_id: UUID,
    data_key: bytes | None,
    record_key: bytes | None = None,
) -> dict[str, Any]:
    """Plaintext for every encrypted field; None where its key is gone (forgotten) or not
    given."""
    out = dict(payload)
    for name, value in payload.items():
        if not is_encrypted(value):
            continue
        version, _, text = value[MARKER].partition(":")
        key = record_key if version == RECORD_VERSION else data_key
        if key is None:
            out[name] = None
            continue
        blob = base64.b64decode(text)
        plain = AESGCM(key).decrypt(blob[:12], blob[12:], _aad(patient_id, name))
        out[name] = json.loads(plain)
    return out
