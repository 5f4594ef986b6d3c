"""Small loopback servers that misbehave on purpose, and raw frame helpers for them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pubsock.protocol.frames import FrameReader, build_frame
from pubsock.protocol.events import Event
from websockets.asyncio.server import ServerConnection, serve

__all__ = [
    "RawHandler",
    "accept_key",
    "frame",
    "raw_server",
    "read_frames",
    "read_request",
    "switch",
    "websockets_server",
]

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """Serve ``handler`` on a loopback port; yield ``ws://127.0.0.1:PORT``."""
    tasks: set[asyncio.Task[object]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()




async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read a request head; return its headers (lower-case names) plus ``:path``."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {":path": lines[0].split(" ")[1]}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answer to ``key``."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def switch(request: dict[str, str], *extra: str) -> bytes:
    """A valid 101 answer to ``request``, with ``extra`` header lines."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(request['sec-websocket-key'])}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    """An unmasked frame, as a server sends it."""
    return build_frame(opcode, payload, fin, rsv1)


async def read_frames(reader: asyncio.StreamReader, count: int = 1, timeout: float = 5) -> list[Event]:
    """Read and decode ``count`` events from the client (masked frames)."""
    parser = FrameReader(True, 1 << 24)
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            data = await reader.read(65536)
            if not data:
                break
            events += parser.feed(data)
    return events


@contextlib.asynccontextmanager
async def websockets_server(
    handler: Callable[[ServerConnection], Awaitable[None]], **options: Any
) -> AsyncIterator[str]:
    """Serve ``handler`` with the PyPI ``websockets`` server on loopback; yield its ``ws://`` URL."""
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
