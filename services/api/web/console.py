"""The compliance console: a small read-only page careteam serves at ``/console/``.

It is static (``static/console/``: HTML, a stylesheet and a script, no CDN, a strict
Content-Security-Policy) and talks to the GraphQL API with the compliance officer's own
bearer token, so it has no privileges of its own: the API authorises every view (only the
compliance role; the page says so to anyone else) and records each read in the audit
trail. It shows the audit chain's status (from ``/readyz``), emergency accesses awaiting
review, and for one patient the access history as a timeline and the accounting of
disclosures (45 CFR 164.528) as a printable page, with names from the staff directory
next to every actor id.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

CONSOLE_PATH = "/console"
CONSOLE_DIR = Path(__file__).parent.parent / "static" / "console"


def console_route() -> Mount:
    """``/console/`` serving the page and its two assets."""
    return Mount(CONSOLE_PATH, StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
