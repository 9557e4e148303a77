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

The master key wraps keys only: the patients' data keys and the two keys derived from
the first master key (the MRN blind index key and the erasure-record key, in
``key_material``). A wrapped key names the master key that wrapped it, so the master key
can be rotated (``rotate_master_key``, ``careteam keys rotate-master``) while processes
given the new key and the previous one read both.

Values written before a field was declared stay as they were stored (plain JSON) and
read as they are; only new appends are encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.database import Conn
from services.settings import SettingsError, StartupError

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
        return _decode_master_key(secret, "CARETEAM_MASTER_KEY")
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
        raise SettingsError("the development master key in the data folder is not 32 bytes")
    return key


def load_previous_master_keys(secret: str | None) -> list[bytes]:
    """CARETEAM_MASTER_KEY_PREVIOUS: the master keys a rotation moves away from, newest
    first (base64, comma-separated)."""
    if secret is None:
        return []
    parts = [part.strip() for part in secret.split(",") if part.strip()]
    return [_decode_master_key(part, "CARETEAM_MASTER_KEY_PREVIOUS") for part in parts]


def _decode_master_key(text: str, setting: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise SettingsError(f"{setting} is not base64") from None
    if len(key) != 32:
        raise SettingsError(f"{setting} must be 32 bytes (base64)")
    return key


def _aad(patient_id: UUID, name: str) -> bytes:
    return patient_id.bytes + name.encode()


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARKER}


class UnknownMasterKeyError(StartupError):
    """A stored key was wrapped by a master key this process was not given."""


# A wrapped key names the master key that wrapped it: TAG, the key's id, nonce, ciphertext.
# Keys wrapped before master keys had ids (nonce and ciphertext only, 60 bytes) are tried
# against every known master key.
_TAG = b"\x01"
_ID_BYTES = 8
_LEGACY_LENGTH = 12 + 32 + 16
_INDEX_KEY_INFO = b"careteam mrn index v1"
# The keys derived from the first master key, kept in ``key_material`` wrapped by the
# current one, so rotating the master key changes neither the MRN blind index nor the
# erasure-record key (both sit in rows and events that are never rewritten).
_DERIVED = {"mrn_index": _INDEX_KEY_INFO, "erasure_record": _RECORD_KEY_INFO}


def master_key_id(master_key: bytes) -> bytes:
    """A master key's public name: 8 bytes of HMAC-SHA256 under the key itself."""
    return hmac.new(master_key, b"careteam master key id v1", hashlib.sha256).digest()[:_ID_BYTES]


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


def _derived_from(root: bytes) -> dict[str, bytes]:
    return {name: _derive(root, info) for name, info in _DERIVED.items()}


class KeyRing:
    """Creates, unwraps and destroys patients' data keys.

    ``master_key`` wraps new keys; ``previous`` master keys only unwrap keys they wrapped
    (during a rotation, see ``rotate_master_key``). The MRN index key and the
    erasure-record key are ``derived`` (as ``KeyRing.open`` reads them from
    ``key_material``), or, without it, derived from the oldest master key given."""

    def __init__(
        self,
        master_key: bytes,
        previous: Sequence[bytes] = (),
        derived: Mapping[str, bytes] | None = None,
    ) -> None:
        self._current_id = master_key_id(master_key)
        self._masters: dict[bytes, AESGCM] = {self._current_id: AESGCM(master_key)}
        self._raw: dict[bytes, bytes] = {self._current_id: master_key}
        for key in previous:
            self._masters.setdefault(master_key_id(key), AESGCM(key))
            self._raw.setdefault(master_key_id(key), key)
        root = previous[-1] if previous else master_key
        keys = {**_derived_from(root), **(derived or {})}
        # A separate key for the MRN blind index (services/mrn_index.py), so the master
        # key itself is only ever used to wrap keys.
        self._index_key = keys["mrn_index"]
        self._record_key = keys["erasure_record"]

    @classmethod
    async def open(cls, conn: Conn, master_key: bytes, previous: Sequence[bytes] = ()) -> KeyRing:
        """The key ring of a database: its derived keys from ``key_material``, stored there
        (derived from the oldest master key given) when the table has none yet.

        Refuses (``UnknownMasterKeyError``) when the stored keys were wrapped by a master
        key not given: a wrong ``CARETEAM_MASTER_KEY`` stops the start instead of failing
        at the first read of a name."""
        ring = cls(master_key, previous)
        sample = await conn.fetchrow(
            "SELECT patient_id, wrapped_key FROM patient_keys WHERE wrapped_key IS NOT NULL LIMIT 1"
        )
        if sample is not None:
            ring.unwrap(sample["patient_id"], bytes(sample["wrapped_key"]))
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM key_material)"):
            # The first start since the derived keys were stored: they must be derived
            # from the master key the database first met, the one that wrapped its
            # patients' keys (no rotation can have happened before this table existed),
            # not from whichever key is listed last in CARETEAM_MASTER_KEY_PREVIOUS.
            if sample is not None:
                root = ring._wrapping_key(sample["patient_id"].bytes, bytes(sample["wrapped_key"]))
                ring = cls(master_key, previous, derived=_derived_from(root))
            elif previous and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM patient_keys)"):
                raise UnknownMasterKeyError(
                    "cannot tell which master key this database first met (every patient "
                    "key is destroyed): start once with CARETEAM_MASTER_KEY set to that key "
                    "and CARETEAM_MASTER_KEY_PREVIOUS unset"
                )
        for name in _DERIVED:
            candidate = ring._wrap(name.encode(), ring._derived(name))
            await conn.execute(
                """INSERT INTO key_material (name, wrapped) VALUES ($1, $2)
                   ON CONFLICT (name) DO NOTHING""",
                name,
                candidate,
            )
        rows = await conn.fetch("SELECT name, wrapped FROM key_material")
        stored = {
            r["name"]: ring._unwrap_with(r["name"].encode(), bytes(r["wrapped"])) for r in rows
        }
        return cls(master_key, previous, derived=stored)

    @property
    def current_key_id(self) -> bytes:
        return self._current_id

    def _derived(self, name: str) -> bytes:
        return self._index_key if name == "mrn_index" else self._record_key

    def blind_index_key(self) -> bytes:
        """The key of the MRN blind index (HKDF-SHA256 of the first master key)."""
        return self._index_key

    @property
    def record_key(self) -> bytes:
        """The erasure-record key: derived from the first master key, never destroyed."""
        return self._record_key

    def _wrap(self, aad: bytes, key: bytes) -> bytes:
        nonce = os.urandom(12)
        sealed = self._masters[self._current_id].encrypt(nonce, key, aad)
        return _TAG + self._current_id + nonce + sealed

    def _unwrap_with(self, aad: bytes, wrapped: bytes) -> bytes:
        if len(wrapped) == _LEGACY_LENGTH:
            for candidate in self._masters.values():
                try:
                    return candidate.decrypt(wrapped[:12], wrapped[12:], aad)
                except InvalidTag:
                    continue
            raise UnknownMasterKeyError(
                "a stored key was wrapped by a master key this process was not given "
                "(CARETEAM_MASTER_KEY, CARETEAM_MASTER_KEY_PREVIOUS)"
            )
        key_id = wrapped[1 : 1 + _ID_BYTES]
        master = self._masters.get(key_id)
        if wrapped[:1] != _TAG or master is None:
            raise UnknownMasterKeyError(
                f"a stored key was wrapped by master key {key_id.hex()}, which this process "
                "was not given (CARETEAM_MASTER_KEY, CARETEAM_MASTER_KEY_PREVIOUS)"
            )
        body = wrapped[1 + _ID_BYTES :]
        return master.decrypt(body[:12], body[12:], aad)

    def _wrapping_key(self, aad: bytes, wrapped: bytes) -> bytes:
        """The master key (of those given) that wrapped ``wrapped``."""
        if len(wrapped) != _LEGACY_LENGTH:
            self._unwrap_with(aad, wrapped)  # refuses a key id not given
            return self._raw[wrapped[1 : 1 + _ID_BYTES]]
        for key_id, key in self._raw.items():
            try:
                self._masters[key_id].decrypt(wrapped[:12], wrapped[12:], aad)
            except InvalidTag:
                continue
            return key
        raise UnknownMasterKeyError(
            "a stored key was wrapped by a master key this process was not given "
            "(CARETEAM_MASTER_KEY, CARETEAM_MASTER_KEY_PREVIOUS)"
        )

    def wrapped_by_current(self, wrapped: bytes) -> bool:
        """Whether this wrapped key is already under the current master key."""
        return wrapped[:1] == _TAG and wrapped[1 : 1 + _ID_BYTES] == self._current_id

    def rewrap(self, aad: bytes, wrapped: bytes) -> bytes:
        """The same key wrapped by the current master key."""
        return self._wrap(aad, self._unwrap_with(aad, wrapped))

    def unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        """The data key from its wrapped form as ``patient_keys`` stores it."""
        return self._unwrap_with(patient_id.bytes, wrapped)

    def _unwrap(self, patient_id: UUID, wrapped: bytes) -> bytes:
        return self._unwrap_with(patient_id.bytes, wrapped)

    async def data_key(self, conn: Conn, patient_id: UUID) -> bytes:
        """The patient's data key, created on first use; refuses a forgotten patient.

        Every command that records free text asks for it, so an existing key costs one
        read; only a missing one is created (first, without overwriting a concurrent one)."""
        select = "SELECT wrapped_key FROM patient_keys WHERE patient_id = $1"
        row = await conn.fetchrow(select, patient_id)
        if row is None:
            candidate = self._wrap(patient_id.bytes, AESGCM.generate_key(bit_length=256))
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


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate_master_key`` did: keys re-wrapped by the current master key, keys
    that already were, and keys it left because they changed meanwhile (a patient
    forgotten, or another rotation ahead of it)."""

    rewrapped: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0

    def __add__(self, other: RotationReport) -> RotationReport:
        return RotationReport(
            self.rewrapped + other.rewrapped,
            self.already_current + other.already_current,
            self.changed_meanwhile + other.changed_meanwhile,
        )


async def rewrap_patient_keys(
    conn: Conn, keyring: KeyRing, rows: Sequence[tuple[UUID, bytes]]
) -> RotationReport:
    """Re-wraps these ``(patient_id, wrapped_key)`` rows by the current master key.

    Each row is written only if it still holds the wrapped key that was read (compare and
    set), so a patient forgotten after the read keeps a destroyed key: a rotation never
    brings a key back."""
    todo = [(pid, old) for pid, old in rows if not keyring.wrapped_by_current(old)]
    if not todo:
        return RotationReport(already_current=len(rows))
    new = [keyring.rewrap(pid.bytes, old) for pid, old in todo]
    status = await conn.execute(
        """UPDATE patient_keys AS k SET wrapped_key = u.new
           FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS u(id, old, new)
           WHERE k.patient_id = u.id AND k.wrapped_key = u.old""",
        [pid for pid, _ in todo],
        [old for _, old in todo],
        new,
    )
    written = int(status.rsplit(" ", 1)[1])
    return RotationReport(
        rewrapped=written,
        already_current=len(rows) - len(todo),
        changed_meanwhile=len(todo) - written,
    )


async def rotate_master_key(
    pool: Any, keyring: KeyRing, *, batch_size: int = 500
) -> RotationReport:
    """Re-wraps every stored key (the derived keys in ``key_material`` and each patient's
    data key) by the keyring's current master key, a batch per transaction.

    Safe to run while careteam serves (every process given both the new and the previous
    master keys reads keys wrapped by either), safe to interrupt and to run again: it
    starts over and skips what is already current."""
    async with pool.acquire() as conn:
        for row in await conn.fetch("SELECT name, wrapped FROM key_material"):
            old = bytes(row["wrapped"])
            if not keyring.wrapped_by_current(old):
                await conn.execute(
                    "UPDATE key_material SET wrapped = $2 WHERE name = $1 AND wrapped = $3",
                    row["name"],
                    keyring.rewrap(row["name"].encode(), old),
                    old,
                )
    report = RotationReport()
    after: UUID | None = None
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT patient_id, wrapped_key FROM patient_keys
                   WHERE wrapped_key IS NOT NULL
                     AND ($1::uuid IS NULL OR patient_id > $1)
                   ORDER BY patient_id LIMIT $2""",
                after,
                batch_size,
            )
            if not rows:
                return report
            async with conn.transaction():
                report += await rewrap_patient_keys(
                    conn, keyring, [(r["patient_id"], bytes(r["wrapped_key"])) for r in rows]
                )
            after = rows[-1]["patient_id"]


async def master_key_status(conn: Conn, keyring: KeyRing) -> dict[str, int]:
    """How many patients' keys the current master key wraps, how many another one does
    (to re-wrap), and how many are destroyed (forgotten patients)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE wrapped_key IS NULL) AS destroyed,
                  count(*) FILTER (WHERE substring(wrapped_key FROM 1 FOR 9) = $1) AS current,
                  count(*) FILTER (WHERE wrapped_key IS NOT NULL
                                     AND substring(wrapped_key FROM 1 FOR 9) <> $1) AS other
           FROM patient_keys""",
        _TAG + keyring.current_key_id,
    )
    assert row is not None  # an aggregate always returns a row
    material = await conn.fetch("SELECT wrapped FROM key_material")
    return {
        "current": row["current"],
        "other": row["other"],
        "destroyed": row["destroyed"],
        "derived_keys_other": sum(
            1 for r in material if not keyring.wrapped_by_current(bytes(r["wrapped"]))
        ),
    }
