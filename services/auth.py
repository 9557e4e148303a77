"""Authentication: OIDC bearer JWTs verified against a JWKS, and a development issuer.

Verification pins the algorithms (RS256, ES256 by default; never ``none`` and never an
HMAC algorithm, so a public key can never be used as an HMAC secret), checks ``iss``,
``aud``, ``exp`` and ``nbf``, and chooses the key by ``kid``; an unknown ``kid`` makes
the verifier fetch the JWKS again (at most once per ``refresh_interval``) so issuers can
rotate keys. In development, careteam is its own issuer: an RSA key kept in the data
folder signs tokens that ``careteam token`` prints, so every role can be tried at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

log = logging.getLogger("careteam.auth")

DEV_ISSUER = "urn:careteam:dev-issuer"
DEV_AUDIENCE = "careteam"
DEFAULT_ALGORITHMS = ("RS256", "ES256")
ROLE_CLAIM = "careteam_role"
ORG_CLAIM = "careteam_org"


class Role(StrEnum):
    PCP = "pcp"
    CARE_MANAGER = "care_manager"
    PSYCHIATRIST = "psychiatrist"
    COMPLIANCE = "compliance"
    PARTNER = "partner"
    ADMIN = "admin"
    # The wider team (issue 18; docs/team-roles.md): staff who can be on a care team.
    BEHAVIORAL_HEALTH_CONSULTANT = "behavioral_health_consultant"
    SOCIAL_WORKER = "social_worker"
    THERAPIST = "therapist"
    PEER_SPECIALIST = "peer_specialist"
    COMMUNITY_HEALTH_WORKER = "community_health_worker"
    # A parent, guardian or other caregiver: a participant, never staff; reaches only the
    # scopes the patient or guardian granted (services/api/team/pcbh.py).
    CAREGIVER = "caregiver"


CLINICAL_ROLES = frozenset({Role.PCP, Role.CARE_MANAGER, Role.PSYCHIATRIST})


@dataclass(frozen=True)
class Principal:
    """Who is calling: verified from a token, never from request input."""

    user_id: UUID
    role: Role
    organisation_id: UUID

    @property
    def is_clinician(self) -> bool:
        return self.role in CLINICAL_ROLES


class AuthenticationError(Exception):
    """A token is missing, malformed, expired, not for us, or not signed by a trusted key.

    ``reason`` is a stable code for logs and clients; the message never echoes the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySource:
    """Where verification keys come from."""

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        raise NotImplementedError


class StaticKeySource(KeySource):
    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        return self._keys


class JwksKeySource(KeySource):
    """Fetches a JWKS over HTTPS (async), caches it, refetches on demand but not too often."""

    def __init__(self, url: str, *, refresh_interval: float = 30.0) -> None:
        self._url = url
        self._interval = refresh_interval
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at >= self._interval
            if self._keys is None or (refresh and stale):
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self._url)
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
                self._fetched_at = time.monotonic()
            return self._keys


# Tokens verified and not yet expired, remembered per verifier: a portal sends the same
# token with every request, and checking its RSA signature and claims again each time was
# about 3% of a caseload request's CPU. Bounded: past it the cache starts afresh.
MAX_VERIFIED_TOKENS: Final = 4096


class TokenVerifier:
    """Turns a bearer token into a Principal, or raises AuthenticationError.

    A token that verified is remembered (exactly its text) with its principal, expiry and
    the key object that verified it; it is accepted again without a signature check while
    it has not expired (the same test as the claims check, with the same leeway) and its
    kid still finds that same key object in the key set. An expired one, or one whose key
    was rotated out or replaced under the same kid (a refetched key set is new objects),
    is verified afresh, so it is refused with the same reason as a token never seen. Its
    ``nbf`` and ``iat`` were checked when it was first verified; time only moves past them
    (a wall clock stepping back could accept one the full check would refuse for being
    early, never a late one)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeySource,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        clock: Callable[[], float] = time.time,
        leeway_seconds: int = 30,
    ) -> None:
        if any(a.lower() == "none" or a.upper().startswith("HS") for a in algorithms):
            raise ValueError("only asymmetric signature algorithms may be configured")
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._algorithms = list(algorithms)
        self._clock = clock
        self._leeway = leeway_seconds
        self._verified: dict[str, tuple[Principal, int | float, str, Any]] = {}

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires, known_kid, known_key = known
            if expires > int(self._clock()) - self._leeway:
                if _find(await self._keys.key_set(), known_kid) is known_key:
                    return principal
            # Another request may have dropped it meanwhile (or the cache was cleared).
            self._verified.pop(token, None)
        header = _unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            raise AuthenticationError("ALGORITHM_NOT_ALLOWED")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("MISSING_KEY_ID")
        key = await self._key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=self._algorithms)
        except JoseError:
            raise AuthenticationError("BAD_SIGNATURE") from None
        except ValueError:
            raise AuthenticationError("MALFORMED_TOKEN") from None
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise AuthenticationError(_claim_reason(exc)) from None
        principal = _principal(claims)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (principal, claims["exp"], kid, key)
        return principal

    async def _key_for(self, kid: str) -> Any:
        keys = await self._keys.key_set()
        key = _find(keys, kid)
        if key is None:
            keys = await self._keys.key_set(refresh=True)
            key = _find(keys, kid)
        if key is None:
            raise AuthenticationError("UNKNOWN_KEY_ID")
        return key


def _find(keys: KeySet, kid: str) -> Any:
    for key in keys.keys:
        if key.kid == kid:
            return key
    return None


def _unverified_header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise AuthenticationError("MALFORMED_TOKEN")
    try:
        obj = jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError):
        raise AuthenticationError("MALFORMED_TOKEN") from None
    header: dict[str, Any] = dict(obj.protected)
    return header


def _claim_reason(exc: JoseError) -> str:
    text = f"{type(exc).__name__} {exc}".lower()
    for needle, reason in (
        ("expired", "TOKEN_EXPIRED"),
        ("exp", "TOKEN_EXPIRED"),
        ("aud", "WRONG_AUDIENCE"),
        ("iss", "WRONG_ISSUER"),
        ("nbf", "TOKEN_NOT_YET_VALID"),
        ("not yet", "TOKEN_NOT_YET_VALID"),
        ("sub", "MISSING_SUBJECT"),
    ):
        if needle in text:
            return reason
    return "INVALID_CLAIMS"


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        return Principal(
            user_id=UUID(str(claims["sub"])),
            role=Role(str(claims[ROLE_CLAIM])),
            organisation_id=UUID(str(claims[ORG_CLAIM])),
        )
    except (KeyError, ValueError):
        raise AuthenticationError("INVALID_CLAIMS") from None


# --- the development issuer -------------------------------------------------------------


class DevIssuer:
    """careteam's own issuer for development: one RSA key in ``<data_dir>/dev-issuer/``."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "dev-issuer" / "signing-key.json"
        self._key: RSAKey | None = None

    def key(self) -> RSAKey:
        if self._key is None:
            if self._path.exists():
                self._key = RSAKey.import_key(json.loads(self._path.read_text()))
            else:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                key = RSAKey.generate_key(2048, auto_kid=True)
                tmp = self._path.with_suffix(".tmp")
                tmp.write_text(json.dumps(key.as_dict(private=True)))
                tmp.chmod(0o600)
                tmp.replace(self._path)
                self._key = key
        return self._key

    def public_key_set(self) -> KeySet:
        return KeySet.import_key_set({"keys": [self.key().as_dict(private=False)]})

    def mint(
        self,
        *,
        role: Role,
        user_id: UUID,
        organisation_id: UUID,
        ttl_seconds: int = 8 * 3600,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        key = self.key()
        claims = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": str(user_id),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            ROLE_CLAIM: role.value,
            ORG_CLAIM: str(organisation_id),
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
