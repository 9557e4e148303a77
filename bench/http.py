"""A minimal HTTP/1.1 client for load generation against a loopback server.

httpx costs 1.2 ms of CPU per request here (2.7 ms with 16 in flight), so at a few
hundred requests per second an httpx load generator saturates its own core and measures
itself. This client keeps persistent connections, writes a request in one call and
reads a Content-Length (or chunked) body; it costs a small fraction of that. It speaks
only what a benchmark against ``careteam serve`` needs: POST/GET of JSON over HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server answered with something this client does not understand, or closed."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# uvicorn closes a keep-alive connection after 5 idle seconds; one idle for longer than
# this is not reused (the server may close it just as a request is written to it).
IDLE_SECONDS = 4.0


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class MiniHttpClient:
    """Up to ``connections`` keep-alive connections to one ``http://host:port`` origin;
    requests beyond that wait for a free connection."""

    def __init__(
        self, base_url: str, *, connections: int, headers: dict[str, str] | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http://host:port is supported: {base_url}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        # Last in, first out: the most recently used connections are reused first, so at
        # a low rate most connections stay unused instead of all going idle in turn.
        self._free: asyncio.LifoQueue[_Conn | None] = asyncio.LifoQueue()
        for _ in range(connections):
            self._free.put_nowait(None)  # a slot: connect on first use
        self._open: set[_Conn] = set()

    async def __aenter__(self) -> MiniHttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()

    async def post_json(self, path: str, payload: Any) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await self.request("POST", path, body, "application/json")

    async def get(self, path: str) -> Response:
        return await self.request("GET", path, b"", None)

    async def request(
        self, method: str, path: str, body: bytes, content_type: str | None
    ) -> Response:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._extra}"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        message = head.encode("latin-1") + body
        conn = await self._free.get()
        if conn is not None and time.monotonic() - conn.last_used > IDLE_SECONDS:
            conn.close()
            self._open.discard(conn)
            conn = None
        try:
            if conn is None:
                reader, writer = await asyncio.open_connection(self._host, self._port)
                conn = _Conn(reader, writer)
                self._open.add(conn)
            conn.writer.write(message)
            response, keep = await _read_response(conn.reader)
        except BaseException:
            if conn is not None:
                conn.close()
                self._open.discard(conn)
            self._free.put_nowait(None)
            raise
        if keep:
            conn.last_used = time.monotonic()
            self._free.put_nowait(conn)
        else:
            conn.close()
            self._open.discard(conn)
            self._free.put_nowait(None)
        return response


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise HttpError("connection closed before a response") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise HttpError(f"bad status line: {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.read()
        keep = False
    return Response(status, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            with contextlib.suppress(asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
