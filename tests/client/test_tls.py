"""``wss://`` with certificates the tests make themselves (trustme)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from websockets.asyncio.server import ServerConnection, serve

from pubsock.client import CloseEvent, MessageEvent, WebSocket, connect


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def wss_port(ca: trustme.CA) -> AsyncIterator[int]:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context(ca, "127.0.0.1", "localhost")) as server:
        yield server.sockets[0].getsockname()[1]


async def test_connect_over_tls(wss_port: int, client_context: ssl.SSLContext) -> None:
    async with connect(f"wss://127.0.0.1:{wss_port}/secure", ssl=client_context) as ws:
        await ws.send("secret")
        assert await ws.recv() == "secret"
        await ws.send(b"x" * 1_000_000)
        assert await ws.recv() == b"x" * 1_000_000
    assert (ws.close_code, ws.url) == (1000, f"wss://127.0.0.1:{wss_port}/secure")


async def test_host_name(wss_port: int, client_context: ssl.SSLContext) -> None:
    async with connect(f"wss://localhost:{wss_port}/", ssl=client_context) as ws:
        await ws.send("by name")
        assert await ws.recv() == "by name"


async def test_https_scheme_means_wss(wss_port: int, client_context: ssl.SSLContext) -> None:
    async with connect(f"https://127.0.0.1:{wss_port}/", ssl=client_context) as ws:
        assert ws.url.startswith("wss://")


async def test_default_context_verifies(wss_port: int) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(f"wss://127.0.0.1:{wss_port}/")


async def test_wrong_host_name(ca: trustme.CA, client_context: ssl.SSLContext) -> None:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context(ca, "example.org")) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError, match="127.0.0.1|match"):
            await connect(f"wss://127.0.0.1:{port}/", ssl=client_context)


async def test_plain_client_to_tls_server(wss_port: int) -> None:
    with pytest.raises(ConnectionError, match="opening handshake"):  # the TLS server hangs up
        await connect(f"ws://127.0.0.1:{wss_port}/", open_timeout=2)


async def test_websocket_over_tls(wss_port: int, client_context: ssl.SSLContext) -> None:
    ws = WebSocket(f"wss://127.0.0.1:{wss_port}/", ssl=client_context)
    closed: asyncio.Future[CloseEvent] = asyncio.get_running_loop().create_future()
    received: list[object] = []

    def on_message(event: MessageEvent) -> None:
        received.append(event.data)
        ws.close()

    ws.onopen = lambda event: ws.send("hello tls")
    ws.onmessage = on_message
    ws.onclose = closed.set_result
    close = await closed
    assert received == ["hello tls"]
    assert (close.code, close.was_clean) == (1000, True)
