"""``careteam token``: a lifetime that is not positive, or longer than a day, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc import jwt

from services.auth import DevIssuer
from services.cli import MAX_TOKEN_TTL_SECONDS, main

USER = "00000000-0000-4000-8000-0000000000c1"
ORG = "00000000-0000-4000-8000-000000000001"


def _token(tmp_path: Path, ttl: str) -> int:
    return main(
        [
            "token",
            "--role",
            "care_manager",
            "--user",
            USER,
            "--org",
            ORG,
            "--ttl",
            ttl,
            "--data-dir",
            str(tmp_path),
        ]
    )


@pytest.fixture(autouse=True)
def _development(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CARETEAM_ENV", "CARETEAM_OIDC_JWKS_URL", "CARETEAM_OIDC_ISSUER"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("ttl", ["0", "-5", str(MAX_TOKEN_TTL_SECONDS + 1), "31536000"])
def test_a_lifetime_outside_one_second_to_a_day_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ttl: str
) -> None:
    """A zero, negative or over-long --ttl prints a clear error naming --ttl and no token."""
    assert _token(tmp_path, ttl) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "--ttl must be from 1 to 86400 seconds" in err


@pytest.mark.parametrize("ttl", ["1", "3600", str(MAX_TOKEN_TTL_SECONDS)])
def test_a_lifetime_within_the_limits_prints_a_token_that_expires_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ttl: str
) -> None:
    """A --ttl from 1 s to 24 h prints a token whose exp is iat plus the lifetime."""
    assert _token(tmp_path, ttl) == 0
    out, _ = capsys.readouterr()
    claims = jwt.decode(out.strip(), DevIssuer(tmp_path).public_key_set()).claims
    assert claims["exp"] - claims["iat"] == int(ttl)
