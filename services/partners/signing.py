"""Webhook signatures: HMAC-SHA256 over a timestamp and the exact body, with a replay window.

Scheme (an open decision in docs/architecture.md, decided here; the shape Stripe and others use,
so partners know it): each POST carries

    X-Careteam-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A receiver recomputes the HMAC over the raw body bytes it received, compares in
constant time, and refuses a timestamp outside its tolerance (default five minutes):
a captured request cannot be replayed later, and a changed body or timestamp breaks the
signature. Every retry is signed afresh with a new timestamp. Several ``v1=`` entries
may appear (a receiver accepts any that matches), which leaves room to sign with an old
and a new secret while a partner rotates.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Careteam-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A webhook request is unsigned, wrongly signed or outside the replay window."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_secret() -> str:
    """A fresh webhook secret (256 bits), shown to the admin once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Checks a signature header; returns its timestamp or raises SignatureError."""
    if not header:
        raise SignatureError("MISSING_SIGNATURE")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("MALFORMED_SIGNATURE") from None
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("MALFORMED_SIGNATURE")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("OUTSIDE_REPLAY_WINDOW")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("BAD_SIGNATURE")
    return timestamp
