"""Browser origins: a development front end on localhost is allowed, others are not."""

from __future__ import annotations

from dataclasses import replace

import httpx

from services.settings import Environment, Settings
from tests.e2e.server import ServerProcess


def preflight(server: ServerProcess, origin: str) -> httpx.Response:
    return httpx.options(
        f"{server.url}/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=30,
    )


LOOPBACK = ["http://localhost:3000", "http://127.0.0.1:5173", "https://localhost"]
OTHERS = ["http://localhost.example.org:3000", "http://evil.test", "http://10.0.0.1:3000"]


def test_in_development_loopback_origins_pass_cors_and_others_do_not(
    server: ServerProcess,
) -> None:
    """A portal on a localhost dev server may call the API; any other origin needs the setting."""
    for origin in LOOPBACK:
        answer = preflight(server, origin)
        assert answer.status_code == 200, origin
        assert answer.headers["access-control-allow-origin"] == origin
    for origin in OTHERS:
        assert "access-control-allow-origin" not in preflight(server, origin).headers, origin


def test_production_allows_no_origin_it_was_not_given() -> None:
    """In production the loopback default is off; only CARETEAM_ALLOWED_ORIGINS counts."""
    development = Settings.from_env({})
    assert development.allowed_origin_regex is not None
    production = replace(development, environment=Environment.PRODUCTION)
    assert production.allowed_origin_regex is None
