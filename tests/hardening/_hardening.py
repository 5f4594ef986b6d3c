"""Helpers for the hardening tests: a raw client (plain or TLS), an echo app, a well-behaved-peer check.

The raw client speaks HTTP/1.1 and RFC 6455 by hand, so a test can misbehave
(trickle bytes, never answer a Close, send endless fragments) in ways no real
client library allows. Every read is bounded by a timeout. Loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import pubsock
from pubsock import Request, Response, Server, ServerWebSocket

TIMEOUT = 5.0
KEY = base64.b64encode(b"hardening-tests!").decode()
ACCEPT = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 0x10000:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    if n:
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return bytes(head) + mask + payload


def upgrade_request(path: str = "/ws", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


class Raw:
    """One client connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> Raw:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname=server_hostname if tls is not None else None),
            TIMEOUT,
        )
        return cls(reader, writer)

    @classmethod
    async def websocket(cls, port: int, path: str = "/ws", extra: str = "", tls: ssl.SSLContext | None = None) -> Raw:
        """Connect and complete the opening handshake."""
        client = await cls.connect(port, tls)
        client.write(upgrade_request(path, extra))
        answer = await client.read_response(body=False)
        assert answer.status == 101, answer
        assert answer.headers["sec-websocket-accept"] == ACCEPT
        return client

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def stop_reading(self) -> None:
        """Stop reading from the socket, so that the server's writes back up."""
        cast(asyncio.Transport, self.writer.transport).pause_reading()  # uvloop's is no asyncio.ReadTransport

    async def drain(self) -> None:
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> None:
        self.write(client_frame(opcode, payload, fin=fin, rsv1=rsv1))

    def send_close(self, code: int = 1000) -> None:
        self.send(CLOSE, code.to_bytes(2, "big"))

    async def read_response(self, *, body: bool = True, timeout: float = TIMEOUT) -> HttpAnswer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")[:-2]
        answer = HttpAnswer(int(lines[0].split(" ", 2)[1]))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            answer.headers[name.strip().lower()] = value.strip()
        if body and "content-length" in answer.headers:
            answer.body = await asyncio.wait_for(self.reader.readexactly(int(answer.headers["content-length"])), timeout)
        return answer

    async def recv(self, timeout: float = TIMEOUT) -> Frame:
        """Read one frame from the server (which never masks)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(2), timeout), "big")
        elif n == 127:
            n = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(8), timeout), "big")
        payload = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
        return Frame(bool(head[0] & 0x80), head[0] & 0x0F, payload)

    async def recv_close(self, timeout: float = TIMEOUT) -> tuple[list[Frame], Frame]:
        """Read frames until a Close; return the frames before it and the Close."""
        before: list[Frame] = []
        while True:
            frame = await self.recv(timeout)
            if frame.opcode == CLOSE:
                return before, frame
            before.append(frame)

    async def expect_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server closes the connection; return what arrived (a reset counts as EOF)."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass


class Echo:
    """WebSocket handlers that echo and record; options become attributes (``Echo(max_payload_length=1024)``)."""

    def __init__(self, **options: Any) -> None:
        self.idle_timeout = 0
        for name, value in options.items():
            setattr(self, name, value)
        self.sockets: list[ServerWebSocket] = []
        self.closes: list[tuple[int, str]] = []
        self.closed = asyncio.Event()

    def open(self, ws: ServerWebSocket) -> None:
        self.sockets.append(ws)

    def message(self, ws: ServerWebSocket, message: str | bytes) -> None:
        if message == "close me":
            ws.close(1000, "as you wish")
        else:
            ws.send(message)

    def close(self, ws: ServerWebSocket, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()

    async def wait_closes(self, count: int, timeout: float = TIMEOUT) -> list[tuple[int, str]]:
        deadline = time.monotonic() + timeout
        while len(self.closes) < count:
            assert time.monotonic() < deadline, f"{len(self.closes)} of {count} close handlers ran: {self.closes}"
            await asyncio.sleep(0.005)
        return self.closes


async def fetch(request: Request, server: Server) -> Response | None:
    if request.path == "/ws":
        if server.upgrade(request):
            return None
        return Response("not a websocket", status=400)
    body = await request.body()
    return Response(f"{request.method} {request.path} {len(body)} {request.url.split(':', 1)[0]}")


@asynccontextmanager
async def serving(app: Echo | None = None, **options: Any) -> AsyncIterator[Server]:
    """A server on a free loopback port with ``fetch`` above and ``app`` (an ``Echo`` by default)."""
    async with pubsock.serve(fetch, websocket=app if app is not None else Echo(), port=0, **options) as server:
        yield server


async def http_get(port: int, path: str = "/", tls: ssl.SSLContext | None = None) -> HttpAnswer:
    """One GET on a fresh connection."""
    client = await Raw.connect(port, tls)
    try:
        client.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return await client.read_response()
    finally:
        await client.close()


async def assert_still_works(port: int, bystander: Raw, tls: ssl.SSLContext | None = None) -> None:
    """A websocket opened before the abuse still echoes, and a fresh HTTP request is answered."""
    payload = os.urandom(8).hex().encode()
    bystander.send(TEXT, payload)
    frame = await bystander.recv()
    assert (frame.opcode, frame.payload) == (TEXT, payload)
    answer = await http_get(port, "/fresh", tls)
    assert answer.status == 200
    assert answer.body.startswith(b"GET /fresh 0 ")
