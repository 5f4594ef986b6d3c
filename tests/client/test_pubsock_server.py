"""The client against pubsock's own server: echo, compression, subprotocols, close codes, TLS, publish."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import trustme

import pubsock
from pubsock.client import (
    CloseEvent,
    ConnectionClosedError,
    ConnectionClosedOK,
    Event,
    InvalidStatus,
    MessageEvent,
    WebSocket,
    connect,
)


class Echo(pubsock.WebSocketHandler):
    per_message_deflate: Any = {"compress": "dedicated", "decompress": "dedicated"}

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe("room")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if message == "close please":
            ws.close(4000, "as you wish")
        elif message == "publish":
            ws.publish("room", "to the others")
        else:
            ws.send(message, compress=True)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/forbidden":
        return pubsock.Response("go away", status=403)
    protocol = request.headers.get("sec-websocket-protocol")
    headers = {"Sec-WebSocket-Protocol": protocol.split(",")[-1].strip()} if protocol else None
    if server.upgrade(request, headers=headers, data=request.headers.get("x-name")):
        return None
    return pubsock.Response("not a websocket", status=400)


async def test_echo_and_compression() -> None:
    async with pubsock.serve(fetch, websocket=Echo(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url) as ws:
            assert ws.extensions.startswith("permessage-deflate")
            messages: list[str | bytes] = ["text", b"\x00binary", "é" * 10_000, b"z" * 1_000_000]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
        async with connect(url, per_message_deflate=False) as ws:
            assert ws.extensions == ""
            await ws.send("plain")
            assert await ws.recv() == "plain"


async def test_subprotocol_close_code_and_status() -> None:
    async with pubsock.serve(fetch, websocket=Echo(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with connect(url, protocols=["a", "b"]) as ws:
            assert ws.protocol == "b"
            await ws.send("close please")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason, info.value.was_clean) == (4000, "as you wish", True)
        with pytest.raises(InvalidStatus) as status:
            await connect(url + "/forbidden")
        assert (status.value.status, status.value.body) == (403, b"go away")


async def test_publish_reaches_browser_style_clients() -> None:
    async with pubsock.serve(fetch, websocket=Echo(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        loop = asyncio.get_running_loop()
        opened: list[asyncio.Future[Event]] = [loop.create_future() for _ in range(3)]
        got: list[asyncio.Future[MessageEvent]] = [loop.create_future() for _ in range(3)]
        closed: list[asyncio.Future[CloseEvent]] = [loop.create_future() for _ in range(3)]
        sockets = []
        for i in range(3):
            ws = WebSocket(url, headers={"X-Name": f"client{i}"})
            ws.add_event_listener("open", opened[i].set_result)
            ws.add_event_listener("message", got[i].set_result)
            ws.add_event_listener("close", closed[i].set_result)
            sockets.append(ws)
        await asyncio.gather(*opened)
        sockets[0].send("publish")
        assert [(await got[1]).data, (await got[2]).data] == ["to the others", "to the others"]
        assert not got[0].done()
        for ws in sockets:
            ws.close()
        events = await asyncio.gather(*closed)
        assert all((e.code, e.was_clean) == (1000, True) for e in events)


async def test_tls() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with pubsock.serve(fetch, websocket=Echo(), port=0, tls=server_context) as server:
        url = f"wss://127.0.0.1:{server.port}/"
        async with connect(url, ssl=client_context) as ws:
            await ws.send("over tls")
            assert await ws.recv() == "over tls"
        received: asyncio.Future[MessageEvent] = asyncio.get_running_loop().create_future()
        browser = WebSocket(url, ssl=client_context)
        browser.onopen = lambda e: browser.send(b"bytes over tls")
        browser.onmessage = received.set_result
        assert (await received).data == b"bytes over tls"
        browser.close()


async def test_server_stop_closes_client() -> None:
    async with pubsock.serve(fetch, websocket=Echo(), port=0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}/")
        await server.stop(close_active=True)
        with pytest.raises(ConnectionClosedOK) as info:  # 1001 (going away) is a normal closure
            await ws.recv()
        assert (info.value.code, info.value.was_clean) == (1001, True)
