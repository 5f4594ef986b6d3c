"""Clients, handlers and waits shared by the scale-out tests."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import pubsock
import pubsock.brokers


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 5 ms until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


async def wait_until_async(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """As ``wait_until`` for a predicate that blocks (run in a thread), polled every 20 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Client:
    """A websockets client that reads everything in the background into ``messages``."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self.messages: list[str | bytes] = []
        self.arrivals: list[float] = []  # loop.time() of each message
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, port: int, name: str, path: str | None = None) -> Client:
        ws = await connect(f"ws://127.0.0.1:{port}{path or f'/?name={name}'}", max_size=None, compression=None)
        return cls(ws, name)

    async def _read(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            async for message in self.ws:
                self.messages.append(message)
                self.arrivals.append(loop.time())
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    def texts(self) -> list[str]:
        return [m for m in self.messages if isinstance(m, str)]

    async def until(self, count: int, timeout: float = 5.0) -> list[str | bytes]:
        await wait_until(lambda: len(self.messages) >= count or self.closed.is_set(), timeout, f"{self.name}: {count} messages")
        assert len(self.messages) >= count, f"{self.name} closed ({self.close_code}) after {len(self.messages)} of {count}"
        return self.messages

    async def send(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._reader, 5)


class StalledClient:
    """A raw WebSocket client that completes the handshake and then never reads (tiny receive buffer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, port: int, path: str) -> StalledClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(sock)

    def close(self) -> None:
        self.sock.close()


class Node:
    """Handlers for one test node: ``/?name=N&sub=a,b&pub=t`` subscribes to a and b; messages publish to t.

    Each node records what its handlers saw; ``publish_to_self`` and other options are attributes.
    """

    def __init__(self, **options: Any) -> None:
        self.idle_timeout = 0
        self.closes: list[tuple[str, int]] = []
        self.sockets: dict[str, pubsock.ServerWebSocket] = {}
        self.on_close: Callable[[pubsock.ServerWebSocket], None] | None = None
        for name, value in options.items():
            setattr(self, name, value)

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        self.sockets[ws.data["name"]] = ws
        for topic in ws.data["sub"]:
            ws.subscribe(topic)

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if ws.data["pub"]:
            ws.publish(ws.data["pub"], message)

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        self.closes.append((ws.data["name"], code))
        if self.on_close is not None:
            self.on_close(ws)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/health":
        return pubsock.Response("ok")
    data = {
        "name": request.query.get("name", ""),
        "sub": [t for t in request.query.get("sub", "").split(",") if t],
        "pub": request.query.get("pub", ""),
    }
    if server.upgrade(request, data=data):
        return None
    return pubsock.Response("upgrade failed", status=400)


@asynccontextmanager
async def node(broker: str | pubsock.brokers.Broker | None, handlers: Node | None = None, **options: Any) -> AsyncIterator[pubsock.Server]:
    """A server on a free loopback port with ``Node`` handlers and ``broker``."""
    async with pubsock.serve(fetch, websocket=handlers or Node(), port=0, broker=broker, **options) as server:
        yield server


def path(name: str, sub: str = "", pub: str = "") -> str:
    return f"/?name={name}&sub={sub}&pub={pub}"


def sequence(messages: list[str | bytes], publisher: str) -> list[int]:
    """The sequence numbers of ``publisher``'s messages (``"publisher:N"``), in arrival order."""
    prefix = f"{publisher}:"
    return [int(m[len(prefix) :]) for m in messages if isinstance(m, str) and m.startswith(prefix)]
