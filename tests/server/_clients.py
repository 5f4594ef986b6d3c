"""Test helpers for the server's topic, backpressure and cork tests.

``RawClient`` is a small WebSocket client on a plain asyncio protocol: it does
the opening handshake by hand, sends masked frames, parses the server's frames
itself (no pubsock code on the receiving side) and can stop reading on demand
(``pause_reading``) with a small ``SO_RCVBUF``, which is how the tests make the
server hit backpressure. ``App`` records what the server's handlers saw.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pubsock

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

Message = tuple[int, bytes]  # (opcode, payload) of one server message or control frame


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """Build one masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return head + mask + masked


class RawClient(asyncio.Protocol):
    """A WebSocket client that keeps every message the server sent, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: bytes | None = None
        self.messages: list[Message] = []  # data messages and control frames, in arrival order
        self.bytes_received = 0  # WebSocket bytes (frames) received after the handshake
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter: tuple[int, asyncio.Future[None]] | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.pause_at: int | None = None  # stop reading once bytes_received reaches this

    # connecting --------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, port: int, path: str = "/", rcvbuf: int | None = None) -> RawClient:
        """Open a connection to 127.0.0.1:port and complete the opening handshake.

        ``rcvbuf`` sets ``SO_RCVBUF`` before connecting (the kernel doubles it and
        applies its minimum), so that a client which stops reading fills up fast.
        """
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        _, client = await loop.create_connection(cls, sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        assert client.transport is not None
        client.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await asyncio.wait_for(asyncio.shield(client._handshake), 5)
        assert client.head is not None and client.head.startswith(b"HTTP/1.1 101 "), client.head
        return client

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if self.head is None:
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            self.bytes_received += len(buffer)
            self._handshake.set_result(None)
        else:
            buffer += data
            self.bytes_received += len(data)
        if self.pause_at is not None and self.bytes_received >= self.pause_at:
            self.pause_at = None
            self.pause_reading()
        self._parse()

    def _parse(self) -> None:
        buffer = self.buffer
        pos = 0
        end = len(buffer)
        messages = self.messages
        while end - pos >= 2:
            b0 = buffer[pos]
            n = buffer[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if end - start < 2:
                    break
                n = (buffer[start] << 8) | buffer[start + 1]
                start += 2
            elif n == 127:
                if end - start < 8:
                    break
                n = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            if end - start < n:
                break
            payload = bytes(buffer[start : start + n])
            pos = start + n
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode >= 0x8:
                messages.append((opcode, payload))
            elif opcode == OP_CONT or not fin:
                if opcode != OP_CONT:
                    self._fragment_opcode = opcode
                self._fragments.append(payload)
                if fin:
                    messages.append((self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments = []
            else:
                messages.append((opcode, payload))
        if pos:
            del buffer[:pos]
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and len(self.messages) >= self._waiter[0]:
            future = self._waiter[1]
            self._waiter = None
            if not future.done():
                future.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self._waiter is not None and not self._waiter[1].done():
            self._waiter[1].set_exception(ConnectionError(f"closed with {len(self.messages)} messages received"))
            self._waiter = None

    # receiving ---------------------------------------------------------------------------------

    async def until(self, count: int, timeout: float = 10.0) -> list[Message]:
        """Wait until ``count`` messages (including control frames) arrived; return them all."""
        if len(self.messages) < count:
            if self.lost.done():
                raise ConnectionError(f"closed with {len(self.messages)} of {count} messages received")
            future = asyncio.get_running_loop().create_future()
            self._waiter = (count, future)
            try:
                await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"received {len(self.messages)} of {count} messages") from None
        return self.messages

    def texts(self) -> list[str]:
        """The text messages received so far, decoded."""
        return [payload.decode() for opcode, payload in self.messages if opcode == OP_TEXT]

    def data(self) -> list[str | bytes]:
        """Text (decoded) and binary messages received so far, without control frames."""
        return [
            payload.decode() if opcode == OP_TEXT else payload
            for opcode, payload in self.messages
            if opcode in (OP_TEXT, OP_BINARY)
        ]

    # sending -----------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.send_frame(OP_TEXT, data.encode())
        else:
            self.send_frame(OP_BINARY, data)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(opcode, payload, fin))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode())

    # flow control and teardown -----------------------------------------------------------------

    def pause_reading(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        """Close the TCP connection and wait until it is gone."""
        if self.transport is not None and not self.lost.done():
            self.transport.abort()
        await asyncio.wait_for(asyncio.shield(self.lost), 5)


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every millisecond until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def next_iteration() -> None:
    """Let the event loop run a few iterations (end-of-iteration flushes, callbacks)."""
    for _ in range(3):
        await asyncio.sleep(0)


class App:
    """Handlers that record events; ``on_open``/``on_message``/``on_close``/``on_drain`` hooks add behaviour.

    Options are set as instance attributes before the server starts, e.g. ``App(backpressure_limit=1024)``.
    ``sndbuf`` (an int, or a dict from ``ws.data`` names to ints) sets the server socket's ``SO_SNDBUF``
    in ``open``, so that backpressure comes after kilobytes instead of megabytes.
    """

    def __init__(self, **options: Any) -> None:
        self.sockets: list[pubsock.ServerWebSocket] = []
        self.by_name: dict[str, pubsock.ServerWebSocket] = {}
        self.received: list[tuple[pubsock.ServerWebSocket, Any]] = []
        self.closes: list[tuple[pubsock.ServerWebSocket, int, str]] = []
        self.drains: list[pubsock.ServerWebSocket] = []
        self.errors: list[BaseException] = []
        self.on_open: Callable[[pubsock.ServerWebSocket], Any] | None = None
        self.on_message: Callable[[pubsock.ServerWebSocket, Any], Any] | None = None
        self.on_close: Callable[[pubsock.ServerWebSocket, int, str], Any] | None = None
        self.on_drain: Callable[[pubsock.ServerWebSocket], Any] | None = None
        self.options = options
        self.idle_timeout = 0
        for name, value in options.items():
            if name != "sndbuf":
                setattr(self, name, value)

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        sndbuf = self.options.get("sndbuf")
        if isinstance(sndbuf, dict):
            sndbuf = sndbuf.get(ws.data)
        if sndbuf is not None:  # a small kernel send buffer makes backpressure come fast (private access)
            ws._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sockets.append(ws)
        if isinstance(ws.data, str):
            self.by_name[ws.data] = ws
        if self.on_open is not None:
            self.on_open(ws)

    def message(self, ws: pubsock.ServerWebSocket, message: Any) -> None:
        self.received.append((ws, message))
        if self.on_message is not None:
            self.on_message(ws, message)

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        self.closes.append((ws, code, reason))
        if self.on_close is not None:
            self.on_close(ws, code, reason)

    def drain(self, ws: pubsock.ServerWebSocket) -> None:
        self.drains.append(ws)
        if self.on_drain is not None:
            self.on_drain(ws)

    def error(self, ws: pubsock.ServerWebSocket, exc: BaseException) -> None:
        self.errors.append(exc)


def _fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    name = request.query.get("name")
    if server.upgrade(request, data=name):
        return None
    return pubsock.Response("upgrade failed", status=400)


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[pubsock.Server]:
    """Run a server on a free loopback port with ``app``'s handlers; stop it (close_active) on exit."""
    async with pubsock.serve(_fetch, websocket=app, port=0) as server:
        yield server
    assert not app.errors, app.errors


@asynccontextmanager
async def connected(port: int, *names: str, rcvbuf: int | None = None) -> AsyncIterator[list[RawClient]]:
    """Open one RawClient per name (``?name=...``, which becomes ``ws.data``); abort them all on exit."""
    clients: list[RawClient] = []
    try:
        for name in names:
            clients.append(await RawClient.connect(port, f"/?name={name}", rcvbuf=rcvbuf))
        yield clients
    finally:
        for client in clients:
            await client.close()
