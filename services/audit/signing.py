"""Signed checkpoints of the audit chain head, published outside the database.

A checkpoint says "on this date the chain had N links and its head hash was H". It is a
compact JWS signed with EdDSA over Ed25519 (``alg`` ``Ed25519``, the fully specified
name of RFC 9864) with a key id (``kid``) in its header, made with joserfc.

Keys: the signing key is a private OKP JWK kept outside the data folder
(``CARETEAM_AUDIT_SIGNING_KEY_FILE``, or the JWK itself in ``CARETEAM_AUDIT_SIGNING_KEY``
from a secret store). Verifiers never trust a key that comes with a checkpoint: they
check it against pinned public keys (``--public-key FILE`` or
``CARETEAM_AUDIT_PUBLIC_KEYS_FILE``, a JWK or a JWK set). Rotation: make a new key with a
new ``kid`` (``careteam audit keygen``), add its public half to the pinned set, switch the
signer; old checkpoints keep verifying with the old public key, which stays in the set.
In development only, without configuration, a key is generated in the data folder and
every command that uses it says so: such a key proves nothing against an administrator
of that machine.

Publication: each checkpoint is a new file in ``CARETEAM_AUDIT_CHECKPOINT_DIR``, created
exclusively and made read-only, never rewritten; point that folder at storage the
database's administrators cannot change (a WORM bucket mount, another host).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from services.audit.chain import head
from services.database import Conn
from services.settings import Settings

log = logging.getLogger("careteam.audit")

ALG = "Ed25519"
CHAIN_ID = "careteam-audit-v2"
_SUFFIX = ".jws"


class AuditKeyError(ValueError):
    """A key or key setting is missing or unusable; the message names it, never the key."""


@dataclass(frozen=True)
class SigningKey:
    key: OKPKey
    kid: str
    development: bool


@dataclass(frozen=True)
class PinnedKeys:
    keys: KeySet
    origin: str
    development: bool


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature was checked against a pinned key."""

    head_seq: int
    head_hash: str
    issued_at: datetime
    kid: str
    database: str | None
    origin: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "issued_at": self.issued_at.isoformat(),
            "kid": self.kid,
            "database": self.database,
            "file": self.origin,
        }


class CheckpointError(ValueError):
    """A checkpoint is malformed, signed by an unknown key, or its signature is wrong."""


def generate_key(kid: str) -> OKPKey:
    if not kid or not kid.isprintable() or len(kid) > 100:
        raise AuditKeyError("--kid must be 1-100 printable characters")
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})


def write_private_key(key: OKPKey, path: Path) -> None:
    """Writes the private JWK at ``path`` (mode 0600); never overwrites a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key.as_dict(private=True), f)


def public_jwk(key: OKPKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def _dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / "audit" / "dev-signing-key.jwk"


def _import_private(text: str, setting: str) -> OKPKey:
    try:
        key = OKPKey.import_key(json.loads(text))
    except (ValueError, JoseError, TypeError) as exc:
        raise AuditKeyError(f"{setting} is not an Ed25519 private JWK") from exc
    if not key.is_private or key.as_dict(private=False).get("crv") != "Ed25519":
        raise AuditKeyError(f"{setting} is not an Ed25519 private JWK")
    if not key.kid:
        raise AuditKeyError(f"{setting} has no kid (key id)")
    return key


def load_signing_key(settings: Settings, *, create: bool) -> SigningKey:
    """The configured signing key; in development, a generated one in the data folder."""
    if settings.audit_signing_key is not None:
        key = _import_private(settings.audit_signing_key.reveal(), "CARETEAM_AUDIT_SIGNING_KEY")
        return SigningKey(key, str(key.kid), development=False)
    if settings.audit_signing_key_file is not None:
        try:
            text = settings.audit_signing_key_file.read_text()
        except OSError as exc:
            raise AuditKeyError("CARETEAM_AUDIT_SIGNING_KEY_FILE cannot be read") from exc
        key = _import_private(text, "CARETEAM_AUDIT_SIGNING_KEY_FILE")
        return SigningKey(key, str(key.kid), development=False)
    if settings.is_production:
        raise AuditKeyError("CARETEAM_AUDIT_SIGNING_KEY_FILE is required in production")
    path = _dev_key_path(settings)
    if not path.exists():
        if not create:
            raise AuditKeyError(
                "no audit signing key: set CARETEAM_AUDIT_SIGNING_KEY_FILE (development: "
                "run careteam audit seal once to generate one in the data folder)"
            )
        write_private_key(generate_key("dev-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")), path)
    log.warning(
        "audit checkpoints are signed with a development key kept in the data folder; "
        "set CARETEAM_AUDIT_SIGNING_KEY_FILE to a key kept elsewhere"
    )
    key = _import_private(path.read_text(), "the development audit key")
    return SigningKey(key, str(key.kid), development=True)


def _key_set(text: str, origin: str) -> KeySet:
    try:
        data = json.loads(text)
        entries = data["keys"] if isinstance(data, dict) and "keys" in data else [data]
        keys: list[Any] = []
        for entry in entries:
            public = {k: v for k, v in entry.items() if k != "d"}
            key = OKPKey.import_key(public)
            if not key.kid or public.get("crv") != "Ed25519":
                raise AuditKeyError(f"{origin}: every key needs a kid and crv Ed25519")
            keys.append(key)
    except (ValueError, KeyError, TypeError, AttributeError, JoseError) as exc:
        raise AuditKeyError(f"{origin} is not an Ed25519 JWK or JWK set") from exc
    if not keys:
        raise AuditKeyError(f"{origin} holds no key")
    return KeySet(keys)


def load_pinned_keys(settings: Settings, explicit: Path | None) -> PinnedKeys:
    """The public keys checkpoints must be signed with: ``--public-key``, the configured
    set, or (development only) the development key's public half, said so."""
    for path, origin in (
        (explicit, "--public-key"),
        (settings.audit_public_keys_file, "CARETEAM_AUDIT_PUBLIC_KEYS_FILE"),
    ):
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise AuditKeyError(f"{origin} cannot be read") from exc
            return PinnedKeys(_key_set(text, origin), origin, development=False)
    if settings.is_production:
        raise AuditKeyError("CARETEAM_AUDIT_PUBLIC_KEYS_FILE is required in production")
    if settings.audit_signing_key is not None or settings.audit_signing_key_file is not None:
        own = load_signing_key(settings, create=False)
        log.warning("audit checkpoints are checked against the signing key's own public half")
        return PinnedKeys(
            KeySet([OKPKey.import_key(public_jwk(own.key))]),
            "the configured signing key's public half (development only: pin the public "
            "keys with CARETEAM_AUDIT_PUBLIC_KEYS_FILE)",
            development=True,
        )
    path = _dev_key_path(settings)
    if not path.exists():
        raise AuditKeyError(
            "no pinned audit public key: pass --public-key FILE or set "
            "CARETEAM_AUDIT_PUBLIC_KEYS_FILE"
        )
    return PinnedKeys(
        _key_set(path.read_text(), "the development audit key"),
        "the development key in the data folder (development only: not evidence against "
        "an administrator of this machine)",
        development=True,
    )


def checkpoint_dir(settings: Settings) -> Path:
    if settings.audit_checkpoint_dir is not None:
        return settings.audit_checkpoint_dir
    return settings.data_dir / "audit" / "checkpoints"


async def sign_head(conn: Conn, key: SigningKey) -> tuple[str, dict[str, Any]]:
    """A compact JWS over the chain's current head."""
    seq, link_hash = await head(conn)
    body = {
        "chain": CHAIN_ID,
        "database": await conn.fetchval("SELECT current_database()"),
        "head_seq": seq,
        "head_hash": link_hash.hex(),
        "issued_at": datetime.now(UTC).isoformat(),
    }
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    token = jws.serialize_compact(
        {"alg": ALG, "kid": key.kid, "typ": "careteam-audit-checkpoint+jws"},
        payload,
        key.key,
        algorithms=[ALG],
    )
    return token, body


def publish(directory: Path, token: str, body: dict[str, Any]) -> Path:
    """Writes the checkpoint as a new read-only file; an existing file is never touched."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(body["issued_at"]).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"checkpoint-{stamp}-{body['head_seq']:012d}{_SUFFIX}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def read_checkpoint(text: str, pinned: PinnedKeys, origin: str) -> Checkpoint:
    """Checks a checkpoint against the pinned keys only; raises CheckpointError."""
    token = text.strip()
    try:
        headers = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise CheckpointError(f"{origin}: not a compact JWS checkpoint") from exc
    if headers.get("alg") != ALG:
        raise CheckpointError(f"{origin}: algorithm {headers.get('alg')!r} is not {ALG}")
    kid = headers.get("kid")
    if not isinstance(kid, str) or not any(k.kid == kid for k in pinned.keys.keys):
        raise CheckpointError(f"{origin}: signed by key {kid!r}, which is not pinned")
    try:
        obj = jws.deserialize_compact(token, pinned.keys, algorithms=[ALG])
        body = json.loads(obj.payload)
        if body.get("chain") != CHAIN_ID:
            raise CheckpointError(f"{origin}: not a {CHAIN_ID} checkpoint")
        return Checkpoint(
            head_seq=int(body["head_seq"]),
            head_hash=str(body["head_hash"]),
            issued_at=datetime.fromisoformat(body["issued_at"]),
            kid=kid,
            database=body.get("database"),
            origin=origin,
        )
    except JoseError as exc:
        raise CheckpointError(f"{origin}: signature does not verify with key {kid!r}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{origin}: malformed checkpoint") from exc


def published(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(_SUFFIX))


def read_published(
    directory: Path, pinned: PinnedKeys
) -> tuple[list[Checkpoint], list[CheckpointError]]:
    """Every published checkpoint that verifies, oldest first, and the ones that do not."""
    good: list[Checkpoint] = []
    bad: list[CheckpointError] = []
    for path in published(directory):
        try:
            good.append(read_checkpoint(path.read_text(), pinned, path.name))
        except CheckpointError as exc:
            bad.append(exc)
    good.sort(key=lambda c: (c.issued_at, c.head_seq))
    return good, bad
