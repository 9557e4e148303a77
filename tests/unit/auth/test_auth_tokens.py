"""Bearer tokens: only well-signed, current tokens for our issuer and audience get through."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from services.auth import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    ORG_CLAIM,
    ROLE_CLAIM,
    AuthenticationError,
    DevIssuer,
    JwksKeySource,
    Role,
    StaticKeySource,
    TokenVerifier,
    bearer_token,
)

USER, ORG = uuid4(), uuid4()


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path)


@pytest.fixture
def verifier(issuer: DevIssuer) -> TokenVerifier:
    return TokenVerifier(
        issuer=DEV_ISSUER, audience=DEV_AUDIENCE, keys=StaticKeySource(issuer.public_key_set())
    )


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": str(USER),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        ROLE_CLAIM: "pcp",
        ORG_CLAIM: str(ORG),
    }
    claims.update(overrides)
    return claims


def _sign(key: RSAKey, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key)


async def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_a_token_from_the_dev_issuer_yields_its_principal(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """The happy path: role, user and organisation come from the verified claims."""
    token = issuer.mint(role=Role.CARE_MANAGER, user_id=USER, organisation_id=ORG)
    principal = await verifier.verify(token)
    assert (principal.user_id, principal.role, principal.organisation_id) == (
        USER,
        Role.CARE_MANAGER,
        ORG,
    )


async def test_an_expired_token_is_rejected(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    """exp an hour ago (beyond the 30 s leeway)."""
    token = _sign(issuer.key(), _claims(exp=int(time.time()) - 3600, iat=0, nbf=0))
    assert await _reason(verifier, token) == "TOKEN_EXPIRED"


async def test_a_token_not_yet_valid_is_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """nbf an hour ahead."""
    token = _sign(issuer.key(), _claims(nbf=int(time.time()) + 3600))
    assert await _reason(verifier, token) == "TOKEN_NOT_YET_VALID"


async def test_a_token_for_another_audience_is_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """aud names some other service."""
    token = _sign(issuer.key(), _claims(aud="someone-else"))
    assert await _reason(verifier, token) == "WRONG_AUDIENCE"


async def test_a_token_from_another_issuer_is_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """iss names some other issuer, even though our key signed it."""
    token = _sign(issuer.key(), _claims(iss="https://evil.example"))
    assert await _reason(verifier, token) == "WRONG_ISSUER"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_an_unsigned_alg_none_token_is_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """alg=none with an empty signature."""
    header = _b64(json.dumps({"alg": "none", "kid": issuer.key().kid}).encode())
    body = _b64(json.dumps(_claims()).encode())
    assert await _reason(verifier, f"{header}.{body}.") == "ALGORITHM_NOT_ALLOWED"


async def test_an_hmac_token_keyed_with_the_public_key_is_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """RS/HS confusion: HS256 signed with the issuer's public key as the secret."""
    import hashlib
    import hmac

    public_pem = issuer.key().as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "kid": issuer.key().kid}).encode())
    body = _b64(json.dumps(_claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{_b64(mac)}"
    assert await _reason(verifier, token) == "ALGORITHM_NOT_ALLOWED"


async def test_a_token_with_an_unknown_key_id_is_rejected(verifier: TokenVerifier) -> None:
    """A key we have never seen, even if the token is otherwise perfect."""
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    assert await _reason(verifier, _sign(stranger, _claims())) == "UNKNOWN_KEY_ID"


async def test_a_tampered_token_is_rejected(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    """The payload is swapped for one claiming the admin role; the signature no longer fits."""
    token = _sign(issuer.key(), _claims())
    header, _, signature = token.split(".")
    forged = _b64(json.dumps(_claims(**{ROLE_CLAIM: "admin"})).encode())
    assert await _reason(verifier, f"{header}.{forged}.{signature}") == "BAD_SIGNATURE"


@pytest.mark.parametrize("raw", ["", "abc", "a.b", "a.b.c", "x" * 9000])
async def test_garbage_tokens_are_rejected_as_malformed(verifier: TokenVerifier, raw: str) -> None:
    """Whatever the string, a typed AuthenticationError and never a crash."""
    assert await _reason(verifier, raw) in {"MALFORMED_TOKEN", "ALGORITHM_NOT_ALLOWED"}


async def test_claims_without_role_or_organisation_are_rejected(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """A valid signature is not enough: careteam's role and organisation claims are needed."""
    claims = _claims()
    del claims[ROLE_CLAIM]
    assert await _reason(verifier, _sign(issuer.key(), claims)) == "INVALID_CLAIMS"
    bad_role = _sign(issuer.key(), _claims(**{ROLE_CLAIM: "superuser"}))
    assert await _reason(verifier, bad_role) == "INVALID_CLAIMS"


def test_hmac_and_none_algorithms_cannot_be_configured() -> None:
    """The verifier refuses symmetric or absent algorithms at construction."""
    for algorithms in (["HS256"], ["none"], ["RS256", "HS512"]):
        with pytest.raises(ValueError):
            TokenVerifier(
                issuer="i", audience="a", keys=StaticKeySource(KeySet([])), algorithms=algorithms
            )


def test_bearer_header_parsing() -> None:
    """Only 'Bearer <token>' yields a token."""
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer", "Bearer   "):
        assert bearer_token(bad) is None


class _Jwks:
    """A real local HTTP server publishing a JWKS that the test can rotate."""

    def __init__(self) -> None:
        self.keys: list[RSAKey] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": [k.as_dict(private=False) for k in outer.keys]})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture
def jwks() -> Iterator[_Jwks]:
    server = _Jwks()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


async def test_a_rotated_key_is_fetched_when_an_unknown_kid_arrives(jwks: _Jwks) -> None:
    """The issuer rotates keys: the verifier refetches the JWKS once and accepts the new one."""
    old, new = RSAKey.generate_key(2048, auto_kid=True), RSAKey.generate_key(2048, auto_kid=True)
    jwks.keys = [old]
    verifier = TokenVerifier(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        keys=JwksKeySource(jwks.url, refresh_interval=0.0),
    )
    assert (await verifier.verify(_sign(old, _claims()))).user_id == USER
    assert jwks.fetches == 1
    jwks.keys = [old, new]
    assert (await verifier.verify(_sign(new, _claims()))).user_id == USER
    assert jwks.fetches == 2
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    assert await _reason(verifier, _sign(stranger, _claims())) == "UNKNOWN_KEY_ID"


# --- tokens remembered once verified ------------------------------------------------------


class _Keys(StaticKeySource):
    """A key source whose keys the test replaces (a rotation without any refetch)."""

    def __init__(self, keys: KeySet) -> None:
        super().__init__(keys)
        self.keys = keys

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        return self.keys


async def test_a_remembered_token_expires_as_a_fresh_one_would(issuer: DevIssuer) -> None:
    """Accepted again until exp (with the 30 s leeway), then refused as expired."""
    now = [float(int(time.time()))]
    verifier = TokenVerifier(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        keys=StaticKeySource(issuer.public_key_set()),
        clock=lambda: now[0],
    )
    token = _sign(issuer.key(), _claims(exp=int(now[0]) + 60))
    assert (await verifier.verify(token)).user_id == USER
    now[0] += 60 + 29  # within the leeway: still accepted, now from memory
    assert (await verifier.verify(token)).user_id == USER
    now[0] += 1  # exp + 30 s: expired, for a remembered token as for a new one
    assert await _reason(verifier, token) == "TOKEN_EXPIRED"
    fresh = TokenVerifier(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        keys=StaticKeySource(issuer.public_key_set()),
        clock=lambda: now[0],
    )
    assert await _reason(fresh, token) == "TOKEN_EXPIRED"


async def test_a_remembered_token_whose_key_left_the_key_set_is_refused(
    issuer: DevIssuer,
) -> None:
    """The key set no longer holds the token's key: verified afresh, so refused."""
    other = RSAKey.generate_key(2048, auto_kid=True)
    keys = _Keys(issuer.public_key_set())
    verifier = TokenVerifier(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, keys=keys)
    token = issuer.mint(role=Role.CARE_MANAGER, user_id=USER, organisation_id=ORG)
    assert (await verifier.verify(token)).user_id == USER
    keys.keys = KeySet([other])
    assert await _reason(verifier, token) == "UNKNOWN_KEY_ID"


async def test_only_the_exact_token_is_remembered(
    issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    """A token with its claims changed after a good one was verified is still refused."""
    token = issuer.mint(role=Role.PCP, user_id=USER, organisation_id=ORG)
    assert (await verifier.verify(token)).role is Role.PCP
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[ROLE_CLAIM] = "psychiatric_consultant"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert await _reason(verifier, f"{header}.{forged}.{signature}") == "BAD_SIGNATURE"
    assert (await verifier.verify(token)).role is Role.PCP


async def test_a_remembered_token_whose_kid_names_another_key_now_is_refused(
    issuer: DevIssuer,
) -> None:
    """The issuer replaces its key under the same kid: the remembered token is checked
    against the new key, and its signature no longer verifies."""
    keys = _Keys(issuer.public_key_set())
    verifier = TokenVerifier(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, keys=keys)
    token = issuer.mint(role=Role.CARE_MANAGER, user_id=USER, organisation_id=ORG)
    assert (await verifier.verify(token)).user_id == USER
    replacement = RSAKey.generate_key(2048, parameters={"kid": issuer.key().kid})
    keys.keys = KeySet([replacement])
    assert await _reason(verifier, token) == "BAD_SIGNATURE"


async def test_requests_racing_on_a_remembered_token_whose_key_left_are_each_refused(
    issuer: DevIssuer,
) -> None:
    """Two requests with the same remembered token find its key gone at once: both are
    refused as unknown key (neither fails because the other dropped the token first)."""
    gate = asyncio.Event()

    class _Slow(_Keys):
        async def key_set(self, *, refresh: bool = False) -> KeySet:
            await gate.wait()
            return self.keys

    keys = _Slow(issuer.public_key_set())
    verifier = TokenVerifier(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, keys=keys)
    token = issuer.mint(role=Role.CARE_MANAGER, user_id=USER, organisation_id=ORG)
    gate.set()
    assert (await verifier.verify(token)).user_id == USER
    gate.clear()
    keys.keys = KeySet([RSAKey.generate_key(2048, auto_kid=True)])
    racing = [asyncio.create_task(_reason(verifier, token)) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*racing) == ["UNKNOWN_KEY_ID", "UNKNOWN_KEY_ID"]
