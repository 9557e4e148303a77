"""Crypto-shredding: identifying fields are stored encrypted with a data key per patient.

Each patient's data key (AES-256-GCM) is kept in ``patient_keys`` wrapped by the master
key from settings. Event classes name their identifying fields in ``PERSONAL_FIELDS``;
the event store encrypts those values on append and decrypts them on read. Forgetting a
patient deletes the wrapped key in the same transaction as the ``patient.forgotten``
event: from then on the ciphertext in the log (and in Kafka, which only ever receives
ciphertext for these fields) cannot be read by anyone, the log still replays, and the
fields read as absent (None). No key is cached in memory, so every process stops
decrypting the moment the key row is gone.
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
VERSION = "v1"


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

    def blind_index_key(self) -> bytes:
        """The key of the MRN blind index (HKDF-SHA256 of the master key)."""
        return self._index_key

    def _wrap(self, patient_id: UUID, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, data_key, patient_id.bytes)

    def _unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:12], wrapped[12:], patient_id.bytes)

    async def data_key(self, conn: Conn, patient_id: UUID) -> bytes:
        """The patient's data key, created on first use; refuses a forgotten patient."""
        candidate = self._wrap(patient_id, AESGCM.generate_key(bit_length=256))
        await conn.execute(
            """INSERT INTO patient_keys (patient_id, wrapped_key) VALUES ($1, $2)
               ON CONFLICT (patient_id) DO NOTHING""",
            patient_id,
            candidate,
        )
        row = await conn.fetchrow(
            "SELECT wrapped_key FROM patient_keys WHERE patient_id = $1", patient_id
        )
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
    payload: Mapping[str, Any], fields: Iterable[str], patient_id: UUID, data_key: bytes
) -> dict[str, Any]:
    out = dict(payload)
    aead = AESGCM(data_key)
    for name in fields:
        if name in out and out[name] is not None:
            nonce = os.urandom(12)
            plain = json.dumps(out[name]).encode()
            blob = nonce + aead.encrypt(nonce, plain, _aad(patient_id, name))
            out[name] = {MARKER: f"{VERSION}:{base64.b64encode(blob).decode()}"}
    return out


def decrypt_fields(
    payload: Mapping[str, Any], patient_id: UUID, data_key: bytes | None
) -> dict[str, Any]:
    """Plaintext for every encrypted field; None where the key is gone (forgotten)."""
    out = dict(payload)
    for name, value in payload.items():
        if not is_encrypted(value):
            continue
        if data_key is None:
            out[name] = None
            continue
        _, _, text = value[MARKER].partition(":")
        blob = base64.b64decode(text)
        plain = AESGCM(data_key).decrypt(blob[:12], blob[12:], _aad(patient_id, name))
        out[name] = json.loads(plain)
    return out
