"""``server.upgrade()`` over real loopback sockets (bun-semantics.md §5.11, §5.9)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from rawws import DEFAULT_KEY, RawClient, accept_for, build_frame, upgrade_request
from websockets.asyncio.client import connect

import pubsock
from pubsock import Request, Response, Server, ServerWebSocket

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """Handlers that record what they see; ``open`` sends ``welcome`` when set."""

    def __init__(self, welcome: str | None = None) -> None:
        self.events: list[Any] = []
        self.sockets: list[ServerWebSocket] = []
        self.welcome = welcome
        self.closed = asyncio.Event()

    def open(self, ws: ServerWebSocket) -> None:
        self.sockets.append(ws)
        self.events.append(("open", ws.data))
        if self.welcome is not None:
            ws.send(self.welcome)

    def message(self, ws: ServerWebSocket, message: str | bytes) -> None:
        self.events.append(("message", message))
        ws.send(message)

    def ping(self, ws: ServerWebSocket, data: bytes) -> None:
        self.events.append(("ping", data))

    def close(self, ws: ServerWebSocket, code: int, reason: str) -> None:
        self.events.append(("close", code, reason))
        self.closed.set()


def upgrading(results: list[Any], headers: Any = None, data: Any = None) -> Any:
    def fetch(req: Request, server: Server) -> Response | None:
        ok = server.upgrade(req, headers=headers, data=data)
        results.append(ok)
        if ok:
            return None
        return Response("Upgrade failed", status=400)

    return fetch


# Success ---------------------------------------------------------------------------------------


async def test_101_with_extra_and_ignored_headers() -> None:
    results: list[Any] = []
    headers = [
        ("Set-Cookie", "sid=1"),
        ("Set-Cookie", "theme=dark"),
        ("X-Server", "pubsock"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Upgrade", "h2c"),
        ("Connection", "close"),
        ("Sec-WebSocket-Accept", "forged"),
        ("Content-Length", "12"),
        ("Transfer-Encoding", "chunked"),
    ]
    app = Recorder()
    async with pubsock.serve(upgrading(results, headers, {"user": 7}), websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request(extra=[("Sec-WebSocket-Protocol", "chat, superchat")]))
            response = await client.read_response(body=False)
            assert response.status == 101
            assert response.reason == "Switching Protocols"
            assert response.header_all("upgrade") == ["websocket"]
            assert response.header_all("connection") == ["Upgrade"]
            assert response.header_all("sec-websocket-accept") == [accept_for(DEFAULT_KEY)]
            assert response.header_all("set-cookie") == ["sid=1", "theme=dark"]
            assert response.header_all("x-server") == ["pubsock"]
            assert response.header_all("sec-websocket-protocol") == ["chat"]
            assert response.header("content-length") is None
            assert response.header("transfer-encoding") is None
            assert server.pending_websockets == 1
            client.send_close(1000)
            frame = await client.recv_frame()
            assert (frame.opcode, frame.close_code) == (8, 1000)
            await client.expect_eof()
        finally:
            await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert results == [True]
    assert app.events == [("open", {"user": 7}), ("close", 1000, "")]


async def test_subprotocol_with_websockets_client() -> None:
    app = Recorder()

    def fetch(req: Request, server: Server) -> Response | None:
        offered = req.headers.get("sec-websocket-protocol", "")
        if server.upgrade(req, headers={"Sec-WebSocket-Protocol": offered}, data=req.query.get("name")):
            return None
        return Response("no", status=400)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/?name=Alice", subprotocols=["v2", "v1"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "v2"
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi"
        await asyncio.wait_for(app.closed.wait(), 5)
    assert app.events == [("open", "Alice"), ("message", "hi"), ("close", 1000, "")]


async def test_upgrade_token_is_a_case_insensitive_list() -> None:
    results: list[Any] = []
    async with pubsock.serve(upgrading(results), websocket=Recorder(), port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request(upgrade="foo, WebSocket"))
            response = await client.read_response(body=False)
        finally:
            await client.close()
    assert response.status == 101
    assert results == [True]


async def test_upgrade_after_await_in_async_fetch() -> None:
    app = Recorder()
    results: list[Any] = []

    async def fetch(req: Request, server: Server) -> Response | None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        ok = server.upgrade(req, headers={"Sec-WebSocket-Protocol": "late"}, data="async")
        results.append(ok)
        return None if ok else Response("no", status=400)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["late"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "late"
            await ws.send(b"\x01\x02")
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x01\x02"
        await asyncio.wait_for(app.closed.wait(), 5)
    assert results == [True]
    assert app.events == [("open", "async"), ("message", b"\x01\x02"), ("close", 1000, "")]


async def test_open_runs_inside_upgrade_before_scheduled_work() -> None:
    order: list[str] = []

    class App:
        def open(self, ws: ServerWebSocket) -> None:
            order.append("open")
            asyncio.get_running_loop().call_soon(order.append, "scheduled in open")

        def message(self, ws: ServerWebSocket, message: str) -> None:
            order.append(f"message {message}")

    def fetch(req: Request, server: Server) -> Response | None:
        order.append("before")
        asyncio.get_running_loop().call_soon(order.append, "scheduled in fetch")
        ok = server.upgrade(req)
        order.append(f"after {ok}")
        return None

    async with pubsock.serve(fetch, websocket=App(), port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request() + build_frame(1, b"first"))
            await client.read_response(body=False)
            for _ in range(50):
                if "message first" in order:
                    break
                await asyncio.sleep(0.01)
        finally:
            await client.close()
    assert order[:6] == ["before", "open", "after True", "scheduled in fetch", "scheduled in open", "message first"]


async def test_frames_in_the_handshake_write_follow_open_in_order() -> None:
    app = Recorder(welcome="welcome")
    async with pubsock.serve(upgrading([]), websocket=app, port=0) as server:
        after = build_frame(1, b"a") + build_frame(2, b"bb") + build_frame(9, b"p") + build_frame(1, "ç".encode())
        client, _ = await RawClient.open_websocket(server.port, after=after)
        try:
            frames = [await client.recv_frame() for _ in range(5)]
        finally:
            await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert [(f.opcode, f.payload) for f in frames] == [
        (1, b"welcome"),
        (1, b"a"),
        (2, b"bb"),
        (10, b"p"),
        (1, "ç".encode()),
    ]
    assert all(f.fin and not f.masked and f.rsv == 0 for f in frames)
    assert app.events[:5] == [("open", None), ("message", "a"), ("message", b"bb"), ("ping", b"p"), ("message", "ç")]


async def test_request_body_is_dropped_and_request_stays_readable() -> None:
    app = Recorder()
    seen: list[Any] = []

    async def fetch(req: Request, server: Server) -> Response | None:
        ok = server.upgrade(req)
        seen.append((ok, req.path, req.headers.get("x-note"), req.query.get("q")))
        return None

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            request = upgrade_request("/room?q=1", extra=[("X-Note", "n")])
            client.write(request + build_frame(1, b"after"))
            response = await client.read_response(body=False)
            assert response.status == 101
            frame = await client.recv_frame()
            assert (frame.opcode, frame.payload) == (1, b"after")
        finally:
            await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert seen == [(True, "/room", "n", "1")]


# Refusals ---------------------------------------------------------------------------------------


async def test_second_upgrade_call_returns_false() -> None:
    app = Recorder()
    results: list[Any] = []

    def fetch(req: Request, server: Server) -> Response | None:
        results.append(server.upgrade(req))
        results.append(server.upgrade(req))
        return None

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert results == [True, False]
    assert [e[0] for e in app.events] == ["open", "close"]


async def test_reentrant_upgrade_inner_true_outer_false() -> None:
    results: list[Any] = []
    inner_in_open: list[bool] = []

    class App:
        def open(self, ws: ServerWebSocket) -> None:
            inner_in_open.append(ws.data["server"].upgrade(ws.data["req"]))

    class SneakyHeaders(Mapping[str, str]):
        """Headers whose reading upgrades the same request (the reentrant call)."""

        def __init__(self, req: Request, server: Server) -> None:
            self.req, self.server = req, server

        def __getitem__(self, key: str) -> str:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            results.append(("inner", self.server.upgrade(self.req, data={"req": self.req, "server": self.server})))
            return iter(())

        def __len__(self) -> int:
            return 0

    def fetch(req: Request, server: Server) -> Response | None:
        results.append(("outer", server.upgrade(req, headers=SneakyHeaders(req, server))))
        return None

    async with pubsock.serve(fetch, websocket=App(), port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        await client.close()
    assert results == [("inner", True), ("outer", False)]
    assert inner_in_open == [False]


@pytest.mark.parametrize(
    "request_bytes",
    [
        upgrade_request(key=None),
        upgrade_request(key="!!!!not*base64!!!!!!!!=="),
        upgrade_request(key=base64.b64encode(b"x" * 15).decode()),
        upgrade_request(key=base64.b64encode(b"x" * 17).decode()),
        upgrade_request(upgrade="h2c"),
        upgrade_request(upgrade=None),
        upgrade_request(extra=[("Sec-WebSocket-Key", DEFAULT_KEY)]),  # two keys
    ],
    ids=["no-key", "key-not-base64", "key-15-bytes", "key-17-bytes", "h2c", "no-upgrade", "two-keys"],
)
async def test_refused_upgrade_sends_the_apps_response(request_bytes: bytes) -> None:
    app = Recorder()
    results: list[Any] = []
    async with pubsock.serve(upgrading(results), websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            # the connection stays HTTP: a second request on it is answered
            client.write(request_bytes + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await client.read_response()
            assert (response.status, response.body) == (400, b"Upgrade failed")
            assert response.header("sec-websocket-accept") is None
            following = await client.read_response()
        finally:
            await client.close()
        assert server.pending_websockets == 0
    assert following.status == 400  # /next is no upgrade either
    assert results == [False, False]
    assert app.events == []


@pytest.mark.parametrize("version", [None, "8", "14", "13, 8"], ids=["missing", "8", "14", "list"])
async def test_bad_version_is_426_and_app_response_discarded(version: str | None) -> None:
    app = Recorder()
    results: list[Any] = []
    async with pubsock.serve(upgrading(results), websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request(version=version))
            response = await client.read_response()
            assert response.status == 426
            assert response.header_all("sec-websocket-version") == ["13"]
            assert response.body != b"Upgrade failed"
            assert await client.expect_eof() == b""
        finally:
            await client.close()
    assert results == [False]
    assert app.events == []


async def test_upgrade_without_websocket_handlers_raises() -> None:
    errors: list[BaseException] = []

    def fetch(req: Request, server: Server) -> Response:
        try:
            server.upgrade(req)
        except RuntimeError as exc:
            errors.append(exc)
        return Response("plain")

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request())
            response = await client.read_response()
        finally:
            await client.close()
    assert (response.status, response.body) == (200, b"plain")
    assert len(errors) == 1


async def test_bad_headers_type_raises_and_request_can_still_upgrade() -> None:
    app = Recorder()
    errors: list[Any] = []

    def fetch(req: Request, server: Server) -> Response | None:
        bad_headers: tuple[Any, ...] = (42, "Set-Cookie: a", b"x", [("a",)], [("a", 1)])
        for bad in bad_headers:
            try:
                server.upgrade(req, headers=bad)
            except TypeError:
                errors.append(type(bad).__name__)
        assert server.upgrade(req, headers={"X-Ok": "1"})
        return None

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, response = await RawClient.open_websocket(server.port)
        await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert errors == ["int", "str", "bytes", "list", "list"]
    assert response.header("x-ok") == "1"


async def test_upgrade_of_an_answered_request_returns_false() -> None:
    app = Recorder()
    kept: list[Request] = []
    results: list[bool] = []

    def fetch(req: Request, server: Server) -> Response | None:
        if req.path == "/first":
            kept.append(req)
            return Response("first")
        results.append(server.upgrade(kept[0]))
        return Response("second")

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request("/first"))
            assert (await client.read_response()).body == b"first"
            client.write(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.read_response()).body == b"second"
        finally:
            await client.close()
    assert results == [False]
    assert app.events == []


async def test_upgrade_refused_while_stopping() -> None:
    app = Recorder()
    results: list[bool] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def fetch(req: Request, server: Server) -> Response | None:
        entered.set()
        await release.wait()
        ok = server.upgrade(req)
        results.append(ok)
        return None if ok else Response("stopping", status=503)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request())
            await asyncio.wait_for(entered.wait(), 5)
            stopping = asyncio.ensure_future(server.stop())
            await asyncio.sleep(0.01)
            release.set()
            response = await client.read_response()
            await asyncio.wait_for(stopping, 5)
        finally:
            await client.close()
    assert results == [False]
    assert (response.status, response.body) == (503, b"stopping")


async def test_pending_websockets_counts_open_sockets() -> None:
    app = Recorder()
    async with pubsock.serve(upgrading([]), websocket=app, port=0) as server:
        assert server.pending_websockets == 0
        first, _ = await RawClient.open_websocket(server.port)
        second, _ = await RawClient.open_websocket(server.port)
        assert server.pending_websockets == 2
        app.sockets[0].close()
        assert server.pending_websockets == 1  # counted down as soon as close() returns
        await first.close()
        second.send_close(1000)
        await second.recv_frame()
        await second.expect_eof()
        await second.close()
        for _ in range(100):
            if server.pending_websockets == 0:
                break
            await asyncio.sleep(0.01)
        assert server.pending_websockets == 0


async def test_pipelined_request_then_upgrade_with_frames_in_one_write() -> None:
    app = Recorder(welcome="hi")
    results: list[Any] = []

    def fetch(req: Request, server: Server) -> Response | None:
        if req.path == "/plain":
            return Response("plain")
        return upgrading(results)(req, server)  # type: ignore[no-any-return]

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n" + upgrade_request("/ws") + build_frame(1, b"m1"))
            plain = await client.read_response()
            switching = await client.read_response(body=False)
            frames = [await client.recv_frame() for _ in range(2)]
        finally:
            await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert (plain.status, plain.body) == (200, b"plain")
    assert switching.status == 101
    assert [f.payload for f in frames] == [b"hi", b"m1"]
    assert results == [True]


async def test_response_returned_after_upgrade_is_ignored() -> None:
    app = Recorder()

    async def fetch(req: Request, server: Server) -> Response:
        server.upgrade(req)
        await asyncio.sleep(0)
        return Response("ignored", status=500)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("x")
            frame = await client.recv_frame()
        finally:
            await client.close()
    assert (frame.opcode, frame.payload) == (1, b"x")


async def test_upgrade_after_client_left_returns_false() -> None:
    app = Recorder()
    results: list[bool] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def fetch(req: Request, server: Server) -> Response | None:
        entered.set()
        await release.wait()
        results.append(server.upgrade(req))
        return Response("gone", status=400)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        client.write(upgrade_request())
        await asyncio.wait_for(entered.wait(), 5)
        await client.close()
        await asyncio.sleep(0.05)
        release.set()
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.01)
        assert server.pending_websockets == 0
    assert results == [False]
    assert app.events == []


async def test_close_inside_open() -> None:
    class App(Recorder):
        def open(self, ws: ServerWebSocket) -> None:
            super().open(ws)
            ws.close(4000, "not today")

    app = App()
    results: list[Any] = []
    async with pubsock.serve(upgrading(results), websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port, after=build_frame(1, b"ignored"))
        try:
            frame = await client.recv_frame()
            client.send_close(4000)
            await client.expect_eof()
        finally:
            await client.close()
        assert server.pending_websockets == 0
    assert results == [True]
    assert (frame.opcode, frame.close_code, frame.close_reason) == (8, 4000, "not today")
    assert app.events == [("open", None), ("close", 4000, "not today")]


async def test_upgrade_header_value_outside_latin1_raises_value_error() -> None:
    app = Recorder()
    errors: list[str] = []

    def fetch(req: Request, server: Server) -> Response | None:
        try:
            server.upgrade(req, headers={"X-Mark": "✓"})
        except ValueError:
            errors.append("ValueError")
        return Response("no", status=400)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request())
            response = await client.read_response()
        finally:
            await client.close()
    assert errors == ["ValueError"]
    assert response.status == 400


async def test_frames_sent_while_an_async_fetch_awaits_follow_open() -> None:
    app = Recorder(welcome="w")

    async def fetch(req: Request, server: Server) -> Response | None:
        await asyncio.sleep(0.05)
        return None if server.upgrade(req) else Response("no", status=400)

    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request())
            await client.writer.drain()
            await asyncio.sleep(0.01)
            client.write(build_frame(1, b"early") + build_frame(2, b"e2"))
            response = await client.read_response(body=False)
            frames = [await client.recv_frame() for _ in range(3)]
        finally:
            await client.close()
        await asyncio.wait_for(app.closed.wait(), 5)
    assert response.status == 101
    assert [f.payload for f in frames] == [b"w", b"early", b"e2"]
    assert app.events[:3] == [("open", None), ("message", "early"), ("message", b"e2")]
