"""Graceful stop and reload (reference/bun-semantics.md §4): ``stop()`` waits for the last socket,
``stop(close_active=True)`` sends 1001 after what was queued and terminates stragglers, ``reload``
swaps handlers and limits under open sockets."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import websockets
from _hardening import BINARY, TEXT, Echo, Raw, fetch, http_get, upgrade_request
from websockets.asyncio.client import connect

import pubsock
from pubsock import Request, Response, Server, ServerWebSocket

pytestmark = pytest.mark.timeout(30)


async def refused(port: int) -> bool:
    try:
        client = await Raw.connect(port)
    except OSError:
        return True
    await client.close()
    return False


async def test_stop_waits_for_the_last_socket_and_keeps_them_working() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        first = await Raw.websocket(server.port)
        second = await Raw.websocket(server.port)
        try:
            stopping = asyncio.ensure_future(server.stop())
            await asyncio.sleep(0.1)
            assert not stopping.done()
            assert await refused(server.port)  # no longer listening
            for client in (first, second):  # open sockets keep working (Bun's default)
                client.send(TEXT, b"still")
                assert (await client.recv()).payload == b"still"
            first.send_close(1000)
            await first.recv_close()
            await asyncio.sleep(0.1)
            assert not stopping.done()
            assert server.pending_websockets == 1
            second.send(TEXT, b"close me")  # the server closes the last one
            await second.recv_close()
            second.send_close(1000)
            await asyncio.wait_for(stopping, 5)
            assert server.pending_websockets == 0
            assert sorted(app.closes) == [(1000, ""), (1000, "as you wish")]
        finally:
            await first.close()
            await second.close()


async def test_stop_without_sockets_returns_at_once_and_closes_idle_http() -> None:
    async with pubsock.serve(fetch, websocket=Echo(), port=0) as server:
        idle = await Raw.connect(server.port)
        try:
            idle.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await idle.read_response()
            start = time.monotonic()
            await asyncio.wait_for(server.stop(), 5)
            assert time.monotonic() - start < 1
            assert await idle.expect_eof() == b""
        finally:
            await idle.close()


async def test_close_active_sends_1001_after_what_was_queued() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        clients = [await Raw.websocket(server.port) for _ in range(3)]
        try:
            for i, ws in enumerate(app.sockets):  # queued this iteration, not flushed yet
                for n in range(50):
                    ws.send(f"{i}:{n}")
                ws.send(b"\xff" * 100_000)
            start = time.monotonic()
            stopping = asyncio.ensure_future(server.stop(close_active=True))
            for i, client in enumerate(clients):
                before, close = await client.recv_close()
                assert [f.payload for f in before[:-1]] == [f"{i}:{n}".encode() for n in range(50)]
                assert (before[-1].opcode, len(before[-1].payload)) == (BINARY, 100_000)
                assert (close.close_code, close.close_reason) == (1001, "Server stopping")
                client.send_close(1001)
            await asyncio.wait_for(stopping, 5)
            assert time.monotonic() - start < 2  # peers that answer end the stop quickly
            assert app.closes == [(1001, "Server stopping")] * 3
        finally:
            for client in clients:
                await client.close()


async def test_close_active_with_the_websockets_client() -> None:
    app = Echo()
    async with (
        pubsock.serve(fetch, websocket=app, port=0) as server,
        connect(f"ws://127.0.0.1:{server.port}/ws") as ws,
    ):
        await ws.send("hi")
        assert await ws.recv() == "hi"
        app.sockets[0].send("last words")
        await asyncio.wait_for(server.stop(close_active=True), 5)
        assert await ws.recv() == "last words"
        with pytest.raises(websockets.ConnectionClosedOK):
            await ws.recv()
        assert ws.close_code == 1001


async def test_close_active_terminates_peers_that_never_answer_after_the_grace() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0, close_timeout=0.3) as server:
        polite = await Raw.websocket(server.port)
        silent = await Raw.websocket(server.port)
        stuck = await Raw.websocket(server.port)  # does not read at all, with a big backlog
        try:
            stuck.stop_reading()
            for _ in range(100):
                app.sockets[2].send(b"x" * 65536)
            start = time.monotonic()
            stopping = asyncio.ensure_future(server.stop(close_active=True))
            _, close = await polite.recv_close()
            polite.send_close(1001)
            assert close.close_code == 1001
            _, close = await silent.recv_close()  # and never answers
            assert close.close_code == 1001
            await asyncio.wait_for(stopping, 5)
            elapsed = time.monotonic() - start
            assert 0.25 <= elapsed < 2, elapsed
            assert await silent.expect_eof() == b""
            assert app.closes == [(1001, "Server stopping")] * 3  # every close handler ran once
            assert server.pending_websockets == 0
            assert not server._live
        finally:
            for client in (polite, silent, stuck):
                await client.close()


async def test_stop_refuses_upgrades_of_requests_in_flight() -> None:
    release = asyncio.Event()
    results: list[bool] = []

    async def slow_fetch(request: Request, server: Server) -> Response | None:
        await release.wait()
        results.append(server.upgrade(request))
        return Response("stopping", status=503)

    async with pubsock.serve(slow_fetch, websocket=Echo(), port=0) as server:
        client = await Raw.connect(server.port)
        try:
            client.write(upgrade_request())
            await asyncio.sleep(0.05)
            stopping = asyncio.ensure_future(server.stop())
            await asyncio.sleep(0.05)
            release.set()
            answer = await client.read_response()
            assert (answer.status, answer.headers.get("connection")) == (503, "close")
            assert results == [False]
            await asyncio.wait_for(stopping, 5)
        finally:
            release.set()
            await client.close()


async def test_reload_swaps_handlers_without_dropping_connections() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await Raw.websocket(server.port)
        try:
            client.send(TEXT, b"one")
            assert (await client.recv()).payload == b"one"

            class Shout(Echo):
                def message(self, ws: ServerWebSocket, message: str | bytes) -> None:
                    ws.send(message.upper() if isinstance(message, str) else message)

            async def fetch2(request: Request, server: Server) -> Response | None:
                if request.path == "/ws":
                    return None if server.upgrade(request) else Response("no", status=400)
                return Response("second fetch")

            shout = Shout()
            server.reload(fetch=fetch2, websocket=shout)
            client.send(TEXT, b"two")
            assert (await client.recv()).payload == b"TWO"  # same connection, new handler
            assert (await http_get(server.port)).body == b"second fetch"
            late = await Raw.websocket(server.port)
            try:
                late.send(TEXT, b"late")
                assert (await late.recv()).payload == b"LATE"
            finally:
                await late.close()
            client.send_close(1000)
            await client.recv_close()
            await shout.wait_closes(2)  # the old socket's close goes to the new handlers too
            assert app.closes == []
        finally:
            await client.close()


async def test_reload_without_open_or_message_keeps_the_handlers() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await Raw.websocket(server.port)
        try:
            server.reload(websocket={"close": lambda ws, code, reason: None, "max_payload_length": 10})
            client.send(TEXT, b"more than ten bytes")
            assert (await client.recv()).payload == b"more than ten bytes"  # nothing changed
        finally:
            await client.close()


async def test_reload_applies_a_lower_max_payload_length_to_open_sockets() -> None:
    app = Echo(max_payload_length=1 << 20)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await Raw.websocket(server.port)
        other = await Raw.websocket(server.port)
        try:
            client.send(BINARY, b"m" * 10_000)
            assert len((await client.recv()).payload) == 10_000
            smaller = Echo(max_payload_length=1024)
            server.reload(websocket=smaller)
            client.send(BINARY, b"m" * 1024)
            assert len((await client.recv()).payload) == 1024
            client.send(BINARY, b"m" * 10_000)
            _, close = await client.recv_close()
            assert (close.close_code, close.close_reason) == (1009, "Received too big message")
            assert await smaller.wait_closes(1) == [(1009, "Received too big message")]
            other.send(TEXT, b"fine")  # the other open socket is unaffected by the first one's failure
            assert (await other.recv()).payload == b"fine"
        finally:
            await client.close()
            await other.close()


async def test_reload_applies_a_new_backpressure_limit_to_open_sockets() -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await Raw.websocket(server.port)
        try:
            ws = app.sockets[0]
            server.reload(websocket=Echo(backpressure_limit=1024, close_on_backpressure_limit=True))
            client.stop_reading()
            ws._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            results = []
            for _ in range(200):
                results.append(ws.send(b"b" * 4096))
                await asyncio.sleep(0)
                if ws.ready_state != 1:
                    break
            assert ws.ready_state == 3  # closed by the new limit
            assert 0 in results
        finally:
            await client.close()
