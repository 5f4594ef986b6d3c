"""``ServerWebSocket`` over real loopback sockets, with the PyPI ``websockets`` client and raw frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from rawws import RawClient, build_frame, upgrade_request
from websockets.asyncio.client import connect

import pubsock
from pubsock import Request, Response, Server, ServerWebSocket
from pubsock.server import server as server_module

pytestmark = pytest.mark.timeout(20)

TIMEOUT = 5.0
Hook = Callable[..., Any]


def fetch(req: Request, server: Server) -> Response | None:
    if server.upgrade(req, data=req.query.get("data")):
        return None
    return Response("Upgrade failed", status=400)


class App:
    """Handlers that record every event; ``on_*`` hooks add behaviour (default for message: echo)."""

    def __init__(self, **hooks: Hook) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.sockets: list[ServerWebSocket] = []
        self.hooks = hooks
        self.closed = asyncio.Event()
        self.close_count = 0

    def _hook(self, name: str, *args: Any) -> Any:
        hook = self.hooks.get(name)
        return None if hook is None else hook(*args)

    def open(self, ws: ServerWebSocket) -> Any:
        self.sockets.append(ws)
        self.events.append(("open",))
        return self._hook("open", ws)

    def message(self, ws: ServerWebSocket, message: Any) -> Any:
        self.events.append(("message", message))
        if "message" in self.hooks:
            return self._hook("message", ws, message)
        ws.send(message)
        return None

    def ping(self, ws: ServerWebSocket, data: Any) -> Any:
        self.events.append(("ping", data))
        return self._hook("ping", ws, data)

    def pong(self, ws: ServerWebSocket, data: Any) -> Any:
        self.events.append(("pong", data))
        return self._hook("pong", ws, data)

    def close(self, ws: ServerWebSocket, code: int, reason: str) -> Any:
        self.events.append(("close", code, reason))
        self.close_count += 1
        self.closed.set()
        return self._hook("close", ws, code, reason)


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def wait_closed(app: App) -> None:
    await asyncio.wait_for(app.closed.wait(), TIMEOUT)


# Sending ---------------------------------------------------------------------------------------


async def test_send_return_values_and_frames() -> None:
    results: dict[str, Any] = {}

    def on_open(ws: ServerWebSocket) -> None:
        results["str"] = ws.send("héllo")
        results["bytes"] = ws.send(b"abc")
        results["bytearray"] = ws.send(bytearray(b"abcd"))
        results["memoryview"] = ws.send(memoryview(b"abcde")[1:3])
        results["empty str"] = ws.send("")
        results["empty bytes"] = ws.send(b"")
        results["send_text"] = ws.send_text("xyz")
        results["send_binary"] = ws.send_binary(memoryview(b"\x00\x01"))
        results["compress ignored"] = ws.send("zz", compress=True)
        results["ping"] = ws.ping(b"pp")
        results["empty ping"] = ws.ping()
        results["pong"] = ws.pong("q")
        big = b"B" * 70000
        results["big"] = ws.send(big)

    app = App(open=on_open)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            frames = [await client.recv_frame() for _ in range(13)]
        finally:
            await client.close()
    assert results == {
        "str": 6,
        "bytes": 3,
        "bytearray": 4,
        "memoryview": 2,
        "empty str": 0,
        "empty bytes": 0,
        "send_text": 3,
        "send_binary": 2,
        "compress ignored": 2,
        "ping": 2,
        "empty ping": 0,
        "pong": 1,
        "big": 70000,
    }
    assert [(f.opcode, f.payload) for f in frames] == [
        (1, "héllo".encode()),
        (2, b"abc"),
        (2, b"abcd"),
        (2, b"bc"),
        (1, b""),
        (2, b""),
        (1, b"xyz"),
        (2, b"\x00\x01"),
        (1, b"zz"),
        (9, b"pp"),
        (9, b""),
        (10, b"q"),
        (2, b"B" * 70000),
    ]
    assert all(f.fin and f.rsv == 0 and not f.masked for f in frames)


async def test_buffered_amount_in_open_counts_only_the_sockets_own_messages() -> None:
    amounts: list[int] = []

    def on_open(ws: ServerWebSocket) -> None:
        amounts.append(ws.buffered_amount)  # the 101 answer is queued, but not counted (Bun: 0)
        ws.send("hello")
        amounts.append(ws.buffered_amount)

    app = App(open=on_open)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            frame = await client.recv_frame()
        finally:
            await client.close()
    assert amounts == [0, 7]
    assert frame.payload == b"hello"


async def test_send_type_errors() -> None:
    errors: list[str] = []

    def on_open(ws: ServerWebSocket) -> None:
        calls: list[Callable[[], object]] = [
            lambda: ws.send(42),  # type: ignore[arg-type]
            lambda: ws.send(None),  # type: ignore[arg-type]
            lambda: ws.send(["a"]),  # type: ignore[arg-type]
            lambda: ws.send("x", compress=1),  # type: ignore[arg-type]
            lambda: ws.send("x", None),  # type: ignore[arg-type]
            lambda: ws.send_text(b"x"),  # type: ignore[arg-type]
            lambda: ws.send_binary("x"),  # type: ignore[arg-type]
            lambda: ws.send_text("x", compress="yes"),  # type: ignore[arg-type]
            lambda: ws.ping(1),  # type: ignore[arg-type]
        ]
        for call in calls:
            try:
                call()
            except TypeError:
                errors.append("TypeError")
        try:
            ws.ping(b"x" * 126)
        except ValueError:
            errors.append("ValueError")
        ws.send("done")

    app = App(open=on_open)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            frame = await client.recv_frame()  # nothing was sent by the failed calls
        finally:
            await client.close()
    assert errors == ["TypeError"] * 9 + ["ValueError"]
    assert (frame.opcode, frame.payload) == (1, b"done")


async def test_echo_with_websockets_client_text_binary_and_large() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/", max_size=None, compression=None) as ws:
            for message in ("text é", b"\x00binary", "", b"", b"L" * (1 << 20), "T" * 100000):
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
        await wait_closed(app)
    kinds = [(type(e[1]).__name__, len(e[1])) for e in app.events if e[0] == "message"]
    assert kinds == [("str", 6), ("bytes", 7), ("str", 0), ("bytes", 0), ("bytes", 1 << 20), ("str", 100000)]
    assert app.events[-1] == ("close", 1000, "")


async def test_fragmented_message_with_ping_in_between() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            text = "zoë café".encode()
            client.send_frame(1, text[:3], fin=False)  # splits the ë
            client.send_frame(9, b"mid")
            client.send_frame(0, text[3:7], fin=False)
            client.send_frame(0, text[7:], fin=True)
            pong = await client.recv_frame()
            echo = await client.recv_frame()
        finally:
            await client.close()
        await wait_closed(app)
    assert (pong.opcode, pong.payload) == (10, b"mid")
    assert (echo.opcode, echo.payload) == (1, "zoë café".encode())
    assert app.events[1:3] == [("ping", b"mid"), ("message", "zoë café")]


@pytest.mark.parametrize(
    "binary_type, expected",
    [("bytes", bytes), ("bytearray", bytearray), ("memoryview", memoryview)],
)
async def test_binary_type(binary_type: str, expected: Any) -> None:
    errors: list[Any] = []

    def on_open(ws: ServerWebSocket) -> None:
        assert ws.binary_type == "bytes"
        for bad in ("blob", "arraybuffer", None, bytes):
            try:
                ws.binary_type = bad  # type: ignore[assignment]
            except ValueError:
                errors.append(bad)
        ws.binary_type = binary_type  # type: ignore[assignment]

    def on_message(ws: ServerWebSocket, message: Any) -> None:
        ws.send(message)

    app = App(open=on_open, message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_frame(2, b"\x01\x02")
            client.send_frame(1, b"text")
            client.send_frame(9, b"pi")
            client.send_frame(10, b"po")
            frames = [await client.recv_frame() for _ in range(3)]
        finally:
            await client.close()
        await wait_closed(app)
    assert errors == ["blob", "arraybuffer", None, bytes]
    assert app.sockets[0].binary_type == binary_type
    message: Any
    text: Any
    ping: Any
    pong: Any
    message, text, ping, pong = (e[1] for e in app.events[1:5])
    assert type(message) is expected and bytes(message) == b"\x01\x02"
    assert type(text) is str and text == "text"
    assert type(ping) is expected and bytes(ping) == b"pi"
    assert type(pong) is expected and bytes(pong) == b"po"
    assert [(f.opcode, f.payload) for f in frames] == [(2, b"\x01\x02"), (1, b"text"), (10, b"pi")]


async def test_ping_is_answered_before_the_ping_handler_runs() -> None:
    app = App(ping=lambda ws, data: ws.send(b"handler saw " + data))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_frame(9, b"abc")
            first = await client.recv_frame()
            second = await client.recv_frame()
            client.send_frame(9)  # empty ping
            third = await client.recv_frame()
            fourth = await client.recv_frame()
        finally:
            await client.close()
    assert (first.opcode, first.payload) == (10, b"abc")
    assert (second.opcode, second.payload) == (2, b"handler saw abc")
    assert (third.opcode, third.payload, fourth.payload) == (10, b"", b"handler saw ")


async def test_server_ping_gets_pong_from_websockets_client() -> None:
    got_pong = asyncio.Event()
    app = App(pong=lambda ws, data: got_pong.set(), message=lambda ws, m: ws.ping(b"are you there"))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("ping me")
            await asyncio.wait_for(got_pong.wait(), TIMEOUT)
    assert ("pong", b"are you there") in app.events


# Closing ---------------------------------------------------------------------------------------


async def test_close_runs_handler_before_returning() -> None:
    order: list[Any] = []

    def on_message(ws: ServerWebSocket, message: str) -> None:
        order.append(("before", ws.ready_state, ws.remote_address))
        ws.close(4000, message)
        order.append(("after", ws.ready_state, ws.remote_address))
        ws.close(4001, "again")  # does nothing
        order.append(("send after close", ws.send("x")))

    def on_close(ws: ServerWebSocket, code: int, reason: str) -> None:
        order.append(("handler", code, reason, ws.ready_state, ws.subscriptions))

    app = App(message=on_message, close=on_close, open=lambda ws: ws.subscribe("room"))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("bye now")
            frame = await client.recv_frame()
            client.send_close(4000, "bye now")
            rest = await client.expect_eof()
        finally:
            await client.close()
    assert order == [
        ("before", 1, "127.0.0.1"),
        ("handler", 4000, "bye now", 3, []),
        ("after", 3, None),
        ("send after close", 0),
    ]
    assert (frame.opcode, frame.close_code, frame.close_reason) == (8, 4000, "bye now")
    assert rest == b""
    assert app.close_count == 1


@pytest.mark.parametrize(
    "reason, sent",
    [("a" * 200, "a" * 123), ("é" * 100, "é" * 61), ("€" * 41, "€" * 41), ("€" * 42, "€" * 41), ("", "")],
    ids=["ascii", "two-byte", "three-byte-fits", "three-byte-cut", "empty"],
)
async def test_close_reason_cut_to_123_bytes(reason: str, sent: str) -> None:
    app = App(message=lambda ws, m: ws.close(1000, reason))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("go")
            frame = await client.recv_frame()
        finally:
            await client.close()
        await wait_closed(app)
    assert (frame.close_code, frame.close_reason) == (1000, sent)
    assert len(frame.payload) <= 125
    assert app.events[-1] == ("close", 1000, sent)


async def test_close_argument_errors() -> None:
    outcomes: list[Any] = []

    def on_message(ws: ServerWebSocket, message: str) -> None:
        for code in (999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0, -1):
            try:
                ws.close(code)
            except ValueError:
                outcomes.append(code)
        bad_codes: tuple[Any, ...] = ("1000", 1000.0, None, True)
        for bad in bad_codes:
            try:
                ws.close(bad)
            except TypeError:
                outcomes.append(type(bad).__name__)
        try:
            ws.close(1000, b"reason")  # type: ignore[arg-type]
        except TypeError:
            outcomes.append("reason")
        outcomes.append(ws.ready_state)
        ws.close(3000)

    app = App(message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("go")
            frame = await client.recv_frame()
        finally:
            await client.close()
        await wait_closed(app)
    assert outcomes == [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0, -1, "str", "float", "NoneType", "bool", "reason", 1]
    assert frame.close_code == 3000
    assert app.events[-1] == ("close", 3000, "")


async def test_valid_close_codes_accepted() -> None:
    codes = [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]
    app = App(message=lambda ws, m: ws.close(int(m)))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        for code in codes:
            client, _ = await RawClient.open_websocket(server.port)
            try:
                client.send_text(str(code))
                frame = await client.recv_frame()
            finally:
                await client.close()
            assert frame.close_code == code
        await until(lambda: app.close_count == len(codes))
    assert [e[1] for e in app.events if e[0] == "close"] == codes


async def test_peer_close_with_code_and_reason_is_echoed() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_close(4001, "going ✓")
            frame = await client.recv_frame()
            rest = await client.expect_eof()
        finally:
            await client.close()
        await wait_closed(app)
        assert server.pending_websockets == 0
    assert (frame.opcode, frame.close_code, frame.close_reason) == (8, 4001, "going ✓")
    assert rest == b""
    assert app.events == [("open",), ("close", 4001, "going ✓")]


async def test_peer_close_with_empty_body() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_close(None)
            echo = await client.recv_raw(2)
            rest = await client.expect_eof()
        finally:
            await client.close()
        await wait_closed(app)
    assert echo == b"\x88\x00"
    assert rest == b""
    assert app.events == [("open",), ("close", 1005, "")]


async def test_peer_close_with_websockets_client() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.close(4321, "client done")
            assert ws.close_code == 4321
            assert ws.close_reason == "client done"
        await wait_closed(app)
    assert app.events == [("open",), ("close", 4321, "client done")]


async def test_server_close_seen_by_websockets_client() -> None:
    app = App(message=lambda ws, m: ws.close(4002, "server done"))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("close please")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 4002
            assert ws.close_reason == "server done"
        await wait_closed(app)
    assert app.events[-1] == ("close", 4002, "server done")


async def test_terminate() -> None:
    order: list[Any] = []

    def on_message(ws: ServerWebSocket, message: str) -> None:
        ws.send("lost or not")
        ws.terminate()
        order.append(("after", ws.ready_state, ws.remote_address, ws.send("x")))
        ws.terminate()
        ws.close()

    app = App(message=on_message, close=lambda ws, code, reason: order.append(("handler", code, reason, ws.ready_state)))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("go")
            rest = await client.expect_eof()
        finally:
            await client.close()
        await until(lambda: server.pending_websockets == 0)
    assert order == [("handler", 1006, "", 3), ("after", 3, None, 0)]
    assert b"\x88" not in rest  # no Close frame
    assert app.close_count == 1


async def test_tcp_loss_gives_1006() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        client.send_text("hello")
        await client.recv_frame()
        await client.close()
        await wait_closed(app)
        await until(lambda: server.pending_websockets == 0)
    assert app.events == [("open",), ("message", "hello"), ("close", 1006, "")]


async def test_close_handler_exactly_once_when_everything_happens() -> None:
    def on_message(ws: ServerWebSocket, message: str) -> None:
        ws.close(1000, "one")
        ws.close(1001, "two")
        ws.terminate()

    app = App(message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("x")
            client.send_close(1000)
            client.send_text("ignored")
            await client.expect_eof()
        finally:
            await client.close()
        await until(lambda: server.pending_websockets == 0)
        await asyncio.sleep(0.05)
    assert [e for e in app.events if e[0] == "close"] == [("close", 1000, "one")]
    assert app.events.count(("message", "ignored")) == 0


async def test_socket_properties() -> None:
    seen: list[Any] = []

    def on_open(ws: ServerWebSocket) -> None:
        seen.append((ws.ready_state, ws.remote_address, ws.data, ws.subscriptions))
        ws.data = {"changed": True}

    app = App(open=on_open, message=lambda ws, m: seen.append((ws.data, ws.buffered_amount)))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/?data=hello") as ws:
            await ws.send("x")
            await until(lambda: len(seen) == 2)
        await wait_closed(app)
    ws_ = app.sockets[0]
    assert seen == [(1, "127.0.0.1", "hello", []), ({"changed": True}, 0)]
    assert (ws_.ready_state, ws_.remote_address, ws_.data) == (3, None, {"changed": True})
    assert "ready_state=3" in repr(ws_)


# Handler errors -------------------------------------------------------------------------------


async def test_handler_exceptions_go_to_error_and_socket_stays_open() -> None:
    errors: list[Any] = []

    def on_message(ws: ServerWebSocket, message: str) -> None:
        if message == "boom":
            raise ValueError("boom")
        ws.send(message)

    class WithError(App):
        def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            errors.append((type(exc).__name__, str(exc), ws.ready_state))

    app = WithError(message=on_message, ping=lambda ws, data: 1 / 0)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("boom")
            client.send_frame(9, b"p")
            client.send_text("still here")
            pong = await client.recv_frame()
            echo = await client.recv_frame()
        finally:
            await client.close()
        await wait_closed(app)
    assert errors == [("ValueError", "boom", 1), ("ZeroDivisionError", "division by zero", 1)]
    assert (pong.opcode, echo.opcode, echo.payload) == (10, 1, b"still here")


async def test_handler_exceptions_without_error_handler_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def on_message(ws: ServerWebSocket, message: str) -> None:
        if message == "boom":
            raise KeyError("boom")
        ws.send(message)

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    app = App(message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("boom")
            client.send_text("ok")
            echo = await client.recv_frame()
        finally:
            await client.close()
        await wait_closed(app)
    assert echo.payload == b"ok"
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert len(records) == 1
    assert "message" in records[0].getMessage()


async def test_exception_in_error_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class WithBadError(App):
        def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            raise RuntimeError("error handler broke")

    def on_message(ws: ServerWebSocket, message: str) -> None:
        if message == "boom":
            raise ValueError("first")
        ws.send(message)

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    app = WithBadError(message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("boom")
            client.send_text("alive")
            echo = await client.recv_frame()
        finally:
            await client.close()
    assert echo.payload == b"alive"
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]


@pytest.mark.parametrize("with_error", [True, False], ids=["error-handler", "logged"])
async def test_exception_in_open_closes_with_1006(with_error: bool, caplog: pytest.LogCaptureFixture) -> None:
    order: list[Any] = []

    def on_open(ws: ServerWebSocket) -> None:
        ws.send("sent before raising")
        raise RuntimeError("open failed")

    class WithError(App):
        def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            self.events.append(("error", str(exc)))

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    app = (WithError if with_error else App)(open=on_open)

    def fetch_order(req: Request, server: Server) -> None:
        order.append(("upgrade", server.upgrade(req)))
        order.append(("pending", server.pending_websockets))
        return None

    async with pubsock.serve(fetch_order, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(upgrade_request())
            rest = await client.expect_eof()
        finally:
            await client.close()
        await until(lambda: server.pending_websockets == 0)
    expected: list[Any] = [("open",), ("error", "open failed"), ("close", 1006, "")]
    if not with_error:
        del expected[1]
        assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]
    assert app.events == expected
    assert order == [("upgrade", True), ("pending", 0)]
    assert b"\x88" not in rest.partition(b"\r\n\r\n")[2]  # no Close frame after the head


# Async handlers ---------------------------------------------------------------------------------


async def test_async_handlers_keep_start_order_and_report_errors() -> None:
    started: list[str] = []
    finished: list[str] = []
    errors: list[str] = []

    class Async:
        async def open(self, ws: ServerWebSocket) -> None:
            started.append("open")
            await asyncio.sleep(0.02)
            finished.append("open")

        async def message(self, ws: ServerWebSocket, message: str) -> None:
            started.append(message)
            await asyncio.sleep(0.03 if message == "1" else 0)
            if message == "3":
                raise ValueError("three")
            ws.send(f"done {message}")
            finished.append(message)

        async def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            await asyncio.sleep(0)
            errors.append(str(exc))

    async with pubsock.serve(fetch, websocket=Async(), port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            for i in range(1, 6):
                client.send_text(str(i))
            frames = [await client.recv_frame() for _ in range(4)]
        finally:
            await client.close()
    assert started == ["open", "1", "2", "3", "4", "5"]
    assert errors == ["three"]
    assert sorted(f.payload for f in frames) == [b"done 1", b"done 2", b"done 4", b"done 5"]
    assert set(finished) == {"open", "1", "2", "4", "5"}


async def test_async_open_exception_closes_with_1006() -> None:
    events: list[Any] = []

    class Async:
        async def open(self, ws: ServerWebSocket) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("late failure")

        def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            events.append(("error", str(exc)))

        def close(self, ws: ServerWebSocket, code: int, reason: str) -> None:
            events.append(("close", code, reason))

    async with pubsock.serve(fetch, websocket=Async(), port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            await client.expect_eof()
        finally:
            await client.close()
        await until(lambda: len(events) == 2)
    assert events == [("error", "late failure"), ("close", 1006, "")]


# Closed sockets (§5.12) -----------------------------------------------------------------------


def closed_members(ws: ServerWebSocket) -> dict[str, Any]:
    called: list[Any] = []

    def record(w: ServerWebSocket) -> str:
        called.append(w)
        return "result"

    members: dict[str, Any] = {
        "ready_state": ws.ready_state,
        "send": ws.send("x"),
        "send_text": ws.send_text("x"),
        "send_binary": ws.send_binary(b"x"),
        "ping": ws.ping(b"x"),
        "pong": ws.pong(),
        "subscribe": ws.subscribe("t"),
        "unsubscribe": ws.unsubscribe("room"),
        "is_subscribed": ws.is_subscribed("room"),
        "subscriptions": ws.subscriptions,
        "buffered_amount": ws.buffered_amount,
        "remote_address": ws.remote_address,
        "cork": ws.cork(record),
        "cork called": called,
    }
    ws.close()
    ws.terminate()
    members["still closed"] = (ws.ready_state, ws.send("z"))
    with ws.cork():
        members["send in cork"] = ws.send("y")
    ws.binary_type = "bytearray"
    members["binary_type"] = ws.binary_type
    return members


CLOSED = {
    "ready_state": 3,
    "send": 0,
    "send_text": 0,
    "send_binary": 0,
    "ping": 0,
    "pong": 0,
    "subscribe": False,
    "unsubscribe": False,
    "is_subscribed": False,
    "subscriptions": [],
    "buffered_amount": 0,
    "remote_address": None,
    "cork": None,
    "cork called": [],
    "still closed": (3, 0),
    "send in cork": 0,
    "binary_type": "bytearray",
}


async def test_closed_socket_members_never_raise() -> None:
    inside: list[Any] = []

    def on_close(ws: ServerWebSocket, code: int, reason: str) -> None:
        inside.append(closed_members(ws))
        # publishing from close reaches the other subscribers (server-wide)
        inside.append(ws.publish("room", "from close"))

    app = App(open=lambda ws: ws.subscribe("room"), close=on_close)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        leaving, _ = await RawClient.open_websocket(server.port)
        staying, _ = await RawClient.open_websocket(server.port)
        try:
            assert server.subscriber_count("room") == 2
            leaving.send_close(1000)
            await leaving.recv_frame()
            frame = await staying.recv_frame()
            after = closed_members(app.sockets[0])
            assert app.sockets[0].publish("room", "after close") == len("after close")
            late = await staying.recv_frame()
            assert server.subscriber_count("room") == 1
        finally:
            await leaving.close()
            await staying.close()
    assert inside[0] == CLOSED
    assert inside[1] == len("from close")
    assert (frame.opcode, frame.payload) == (1, b"from close")
    assert late.payload == b"after close"
    assert after == CLOSED


async def test_retained_socket_after_server_stop() -> None:
    app = App(open=lambda ws: ws.subscribe("room"))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        stopping = asyncio.ensure_future(server.stop(close_active=True))
        frame = await client.recv_frame()
        client.send_close(frame.close_code)
        await client.expect_eof()
        await client.close()
        await asyncio.wait_for(stopping, TIMEOUT)
        ws = app.sockets[0]
        assert (ws.ready_state, ws.publish("room", "x"), ws.send("x"), ws.subscribe("room")) == (3, 0, 0, False)
        assert server.publish("room", "x") == 0
        assert server.subscriber_count("room") == 0
        assert server.pending_websockets == 0
    assert frame.close_code == 1001


# Idle timeout (§5.10) -----------------------------------------------------------------------------


class Idle(App):
    idle_timeout = 8
    send_pings = False


class IdlePings(App):
    idle_timeout = 8
    send_pings = True


async def test_idle_tick_without_pings_times_out_at_idle_timeout() -> None:
    app = Idle()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            ws = app.sockets[0]
            ws._idle_tick(4)
            await client.expect_silence(0.05)
            assert ws.send("x") == 1  # a send resets the timer without send_pings
            await client.recv_frame()
            ws._idle_tick(4)
            ws._idle_tick(2)
            client.send_text("in")  # so does inbound data
            await client.recv_frame()
            ws._idle_tick(4)
            assert ws.ready_state == 1
            ws._idle_tick(4)
            assert ws.ready_state == 3
            assert app.events[-1] == ("close", 1006, "WebSocket timed out from inactivity")
            assert await client.expect_eof() == b""  # no ping, no Close frame
        finally:
            await client.close()
    assert app.close_count == 1


async def test_idle_tick_with_pings() -> None:
    app = IdlePings()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            ws = app.sockets[0]
            ws._idle_tick(4)  # idle_timeout - 4 s: a bare ping
            assert await client.recv_raw(2) == b"\x89\x00"
            client.send_frame(10)  # the pong is life
            await until(lambda: ("pong", b"") in app.events)
            ws._idle_tick(4)
            assert ws.ready_state == 1
            assert await client.recv_raw(2) == b"\x89\x00"
            # sends neither postpone the ping nor cancel its deadline (pubsock, §5.10)
            assert ws.send("busy") == 4
            await client.recv_frame()
            ws._idle_tick(4)
            assert ws.ready_state == 3
            assert await client.expect_eof() == b""
        finally:
            await client.close()
    assert app.events[-1] == ("close", 1006, "WebSocket timed out from inactivity")


async def test_idle_sweeper_runs_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "IDLE_TICK", 0.05)
    app = Idle()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            app.sockets[0]._idle = 7.9  # type: ignore[assignment]  # two real ticks from the timeout
            await wait_closed(app)
            assert await client.expect_eof() == b""
        finally:
            await client.close()
    assert app.events[-1] == ("close", 1006, "WebSocket timed out from inactivity")


async def test_idle_timeout_zero_never_times_out() -> None:
    class NoIdle(App):
        idle_timeout = 0

    app = NoIdle()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            for _ in range(300):
                app.sockets[0]._idle_tick(4)
            assert app.sockets[0].ready_state == 1
            await client.expect_silence(0.05)
        finally:
            await client.close()


# Stopping --------------------------------------------------------------------------------------


async def test_stop_waits_for_open_websockets() -> None:
    app = App()
    server = await pubsock.serve(fetch, websocket=app, port=0)
    client, _ = await RawClient.open_websocket(server.port)
    try:
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        # no new connections
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
        client.send_text("still works")
        assert (await client.recv_frame()).payload == b"still works"
        client.send_close(1000)
        await client.recv_frame()
        await asyncio.wait_for(stopping, TIMEOUT)
    finally:
        await client.close()
    assert app.events[-1] == ("close", 1000, "")


async def test_stop_close_active_sends_1001() -> None:
    app = App()
    server = await pubsock.serve(fetch, websocket=app, port=0)
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/") as first, connect(f"ws://127.0.0.1:{server.port}/") as second:
            await asyncio.wait_for(server.stop(close_active=True), TIMEOUT)
            for ws in (first, second):
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert ws.close_code == 1001
    finally:
        await server.stop()
    assert [e[1] for e in app.events if e[0] == "close"] == [1001, 1001]
    assert server.pending_websockets == 0


async def test_stop_close_active_terminates_unresponsive_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "STOP_GRACE", 0.2)
    app = App()
    server = await pubsock.serve(fetch, websocket=app, port=0)
    client, _ = await RawClient.open_websocket(server.port)
    try:
        await asyncio.wait_for(server.stop(close_active=True), TIMEOUT)
        frame = await client.recv_frame()  # the Close arrives, the client never answers
        assert await client.expect_eof() == b""
    finally:
        await client.close()
    assert frame.close_code == 1001
    assert app.events[-1][:2] == ("close", 1001)
    assert server.pending_websockets == 0


async def test_close_aborts_when_the_peer_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from pubsock.server import websocket as websocket_module

    monkeypatch.setattr(websocket_module, "CLOSE_TIMEOUT", 0.1)
    app = App(message=lambda ws, m: ws.close(1000, "bye"))
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("x")
            frame = await client.recv_frame()
            assert await client.expect_eof(2) == b""  # aborted, the client never sent its Close
        finally:
            await client.close()
        await until(lambda: server.pending_websockets == 0 and not server._live)
    assert frame.close_code == 1000
    assert app.events[-1] == ("close", 1000, "bye")
    assert app.close_count == 1


async def test_messages_after_close_call_are_not_delivered() -> None:
    def on_message(ws: ServerWebSocket, message: str) -> None:
        if message == "stop":
            ws.close()

    app = App(message=on_message)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.write(b"".join(build_frame(1, m.encode()) for m in ("a", "stop", "b", "c")))
            frame = await client.recv_frame()
            client.send_close(1000)
            await client.expect_eof()
        finally:
            await client.close()
    assert frame.close_code == 1000
    assert [e for e in app.events if e[0] == "message"] == [("message", "a"), ("message", "stop")]


async def test_exception_in_close_handler_goes_to_error_and_close_returns() -> None:
    order: list[Any] = []

    class WithError(App):
        def error(self, ws: ServerWebSocket, exc: BaseException) -> None:
            order.append(("error", str(exc)))

    def on_close(ws: ServerWebSocket, code: int, reason: str) -> None:
        raise RuntimeError(f"close {code}")

    def on_message(ws: ServerWebSocket, message: str) -> None:
        ws.close(4000)
        order.append("close returned")

    app = WithError(message=on_message, close=on_close)
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port)
        try:
            client.send_text("x")
            frame = await client.recv_frame()
            client.send_close(4000)
            await client.expect_eof()
        finally:
            await client.close()
    assert frame.close_code == 4000
    assert order == [("error", "close 4000"), "close returned"]


async def test_no_extension_without_per_message_deflate() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # offers permessage-deflate
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send("plain")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "plain"
