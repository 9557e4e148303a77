"""The load generator's small HTTP/1.1 client against a tiny loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from bench import http
from bench.http import MiniHttpClient


async def test_it_posts_json_reuses_connections_and_reads_every_body_framing() -> None:
    connections = 0
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = 0
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            body = await reader.readexactly(length)
            seen.append(head.split(b"\r\n")[0] + b" " + body)
            if b"/chunked" in head:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
                )
            elif b"/close" in head:
                writer.write(
                    b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"
                )
                await writer.drain()
                writer.close()
                return
            else:
                reply = json.dumps({"echo": json.loads(body or b"null")}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MiniHttpClient(
            f"http://127.0.0.1:{port}", connections=2, headers={"Authorization": "Bearer t"}
        ) as client:
            answers = await asyncio.gather(*(client.post_json("/x", {"n": i}) for i in range(10)))
            assert [a.json() for a in answers] == [{"echo": {"n": i}} for i in range(10)]
            assert connections <= 2, "connections are kept alive and reused"
            chunked = await client.get("/chunked")
            assert chunked.status == 200 and chunked.json() == {"a": 1}
            closed = await client.get("/close")
            assert (closed.status, closed.body) == (503, b"no")
            again = await client.post_json("/x", {"after": "close"})
            assert again.json() == {"echo": {"after": "close"}}
    finally:
        server.close()
        await server.wait_closed()
    assert seen[0].startswith(b"POST /x HTTP/1.1")


async def test_a_connection_idle_longer_than_the_server_keeps_it_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server closes idle keep-alive connections; the client opens a new one instead
    of writing into one that may be closing ("connection closed before a response")."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MiniHttpClient(f"http://127.0.0.1:{port}", connections=4) as client:
            await client.get("/a")
            await client.get("/b")
            assert connections == 1, "the last used connection is reused first"
            monkeypatch.setattr(http, "IDLE_SECONDS", 0.0)
            await asyncio.sleep(0.01)
            await client.get("/c")
            assert connections == 2, "an idle connection is replaced"
    finally:
        server.close()
        await server.wait_closed()
