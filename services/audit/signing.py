"""Signed checkpoints of the audit chain head (Ed25519), exportable and checkable elsewhere.

A checkpoint says "on this date the chain had N links and its head hash was H", signed
with careteam's audit key. Anyone with the public key can check the signature offline;
``verify`` checks that the chain still passes through the checkpoint's head.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.database import Conn


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The audit signing key kept at ``path`` (created on first use, mode 0600)."""
    if path.exists():
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(base64.b64encode(raw).decode())
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


def _message(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


async def make_checkpoint(conn: Conn, key: Ed25519PrivateKey) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT seq, link_hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    body = {
        "chain": "careteam-audit-v1",
        "head_seq": 0 if row is None else row["seq"],
        "head_hash": ("00" * 32) if row is None else bytes(row["link_hash"]).hex(),
        "signed_at": datetime.now(UTC).isoformat(),
        "public_key": base64.b64encode(key.public_key().public_bytes_raw()).decode(),
    }
    return {**body, "signature": base64.b64encode(key.sign(_message(body))).decode()}


def signature_ok(checkpoint: dict[str, Any]) -> bool:
    """Checks a checkpoint's signature against the public key it names."""
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(body["public_key"]))
        public.verify(base64.b64decode(checkpoint["signature"]), _message(body))
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True


async def chain_passes_through(conn: Conn, checkpoint: dict[str, Any]) -> bool:
    """True when the chain's link at the checkpoint's sequence still has its hash."""
    if checkpoint["head_seq"] == 0:
        return True
    stored = await conn.fetchval(
        "SELECT link_hash FROM audit_chain WHERE seq = $1", checkpoint["head_seq"]
    )
    return stored is not None and bytes(stored).hex() == checkpoint["head_hash"]
