"""Webhook signatures: the Standard Webhooks scheme, so partners verify with a stock library.

Every POST carries three headers (https://www.standardwebhooks.com, version 1):

- ``webhook-id``: the message id (the CloudEvent ``id``); the same on every retry, so a
  receiver drops duplicates by it;
- ``webhook-timestamp``: when this attempt was signed, in unix seconds (every retry is
  signed afresh);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``; the
  key is the base64 text after ``whsec_`` in the secret, decoded. During a secret
  rotation's overlap the header holds two signatures separated by a space (new secret
  first); a receiver accepts the request if any one matches a secret it holds.

A receiver recomputes the signature over the raw body bytes it received, compares in
constant time, and refuses a timestamp more than ``DEFAULT_TOLERANCE_SECONDS`` (five
minutes) away from its own clock, which is also what the ``standardwebhooks`` libraries
do. ``verify`` here is the same check, for careteam's own tests and tools.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A webhook request is unsigned, wrongly signed or outside the replay window."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_secret() -> str:
    """A fresh webhook secret: ``whsec_`` and the base64 of 32 random bytes (shown once)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret, decoded exactly as the Standard Webhooks
    libraries decode it (base64, padding added, anything outside the alphabet ignored).

    Secrets issued before careteam used Standard Webhooks were URL-safe base64; about a
    quarter of them are not readable as standard base64 at all. Those are decoded as
    URL-safe base64 so that deliveries go on, but no stock library can verify them:
    their partners must rotate (docs/partners.md).
    """
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "==")
    except binascii.Error:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if not key:
        raise ValueError("empty webhook secret")
    return key


def _signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SCHEME},{base64.b64encode(digest).decode()}"


def sign(secrets_in_use: Iterable[str], message_id: str, body: bytes, timestamp: int) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    signatures = [_signature(secret_key(s), message_id, timestamp, body) for s in secrets_in_use]
    if not signatures:
        raise ValueError("no webhook secret to sign with")
    return " ".join(signatures)


def signed_headers(
    secrets_in_use: Iterable[str], message_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secrets_in_use, message_id, body, timestamp),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Checks a request's headers (any case); returns its timestamp or raises SignatureError."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get(ID_HEADER)
    raw_timestamp = lowered.get(TIMESTAMP_HEADER)
    header = lowered.get(SIGNATURE_HEADER)
    if not (message_id and raw_timestamp and header):
        raise SignatureError("MISSING_SIGNATURE")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("MALFORMED_SIGNATURE") from None
    candidates = [c for c in header.split(" ") if c.startswith(f"{SCHEME},")]
    if not candidates:
        raise SignatureError("MALFORMED_SIGNATURE")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("OUTSIDE_REPLAY_WINDOW")
    expected = _signature(secret_key(secret), message_id, timestamp, body)
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("BAD_SIGNATURE")
    return timestamp
