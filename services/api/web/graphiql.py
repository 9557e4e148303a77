"""GraphiQL from assets careteam ships itself, so it works on a network with no way out.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from a CDN. We
serve the very same files (``static/graphiql/``, refreshed by ``deploy/graphiql/vendor.sh``)
and point the page at them; the page keeps its Subresource Integrity hashes, so the
browser still checks every byte against what strawberry pinned.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

ASSETS_PATH = "/graphiql/assets"
ASSETS_DIR = Path(__file__).parent.parent / "static" / "graphiql"

_CDN_ASSET = re.compile(r'"https://unpkg\.com/(@?[^@"]+)@([^/"]+)/([^"]+)"')


def _local_name(match: re.Match[str]) -> str:
    name, version, path = match.group(1), match.group(2), match.group(3)
    file = f"{name.replace('/', '-').lstrip('@')}-{version}-{path.rsplit('/', 1)[-1]}"
    if not (ASSETS_DIR / file).is_file():
        raise FileNotFoundError(f"GraphiQL asset missing: {file} (run deploy/graphiql/vendor.sh)")
    return f'"{ASSETS_PATH}/{file}"'


@cache
def local_graphiql_html() -> str:
    """Strawberry's GraphiQL page with every CDN asset replaced by careteam's own copy."""
    html = _CDN_ASSET.sub(_local_name, get_graphql_ide_html(graphql_ide="graphiql"))
    if "https://unpkg.com" in html:
        raise RuntimeError("GraphiQL page still names a CDN asset")
    return html
