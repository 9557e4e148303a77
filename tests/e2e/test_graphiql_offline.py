"""GraphiQL renders from careteam's own assets with the network to the outside cut off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from strawberry.http.ides import get_graphql_ide_html

from services.api.web.graphiql import local_graphiql_html
from tests.e2e.browser import dump_dom
from tests.e2e.server import ServerProcess

# What only GraphiQL's React app puts on the page (the static page has a 'Loading...' div).
RENDERED = "graphiql-editors"


def test_graphiql_renders_in_a_browser_that_cannot_reach_the_internet(
    server: ServerProcess,
) -> None:
    """The page, its scripts and styles all come from careteam; GraphiQL's editor appears."""
    page = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert "unpkg.com" not in page.text and "/graphiql/assets/" in page.text
    dom = dump_dom(f"{server.url}/graphql")
    assert RENDERED in dom
    assert "Loading..." not in dom


@pytest.fixture
def cdn_page(tmp_path: Path) -> Iterator[str]:
    """Strawberry's own GraphiQL page (assets on a CDN), served from loopback."""
    (tmp_path / "index.html").write_text(get_graphql_ide_html(graphql_ide="graphiql"))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_cdn_page_does_not_render_under_the_same_cut_off(cdn_page: str) -> None:
    """The control: with the same browser flags, a page needing the CDN stays empty."""
    assert RENDERED not in dump_dom(cdn_page)


def test_every_asset_the_page_names_is_served_by_careteam(server: ServerProcess) -> None:
    """Each local asset URL on the page answers 200 from careteam itself."""
    html = local_graphiql_html()
    names = [part.split('"', 1)[0] for part in html.split('"/graphiql/assets/')[1:]]
    assert len(names) == 7
    for name in names:
        got = httpx.get(f"{server.url}/graphiql/assets/{name}", timeout=30)
        assert got.status_code == 200, name
