"""``ws.cork``: return value, exceptions, closed sockets, and one write per corked batch.

bun-semantics.md §3 (cork) and §5.6. The "one write" tests use a ServerWebSocket
on a spy transport (no network); the others run over loopback sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from _clients import OP_BINARY, OP_TEXT, App, client_frame, connected, serving, wait_for

import pubsock
from pubsock.protocol.frames import OP_PING, build_frame
from pubsock.server.topics import Hub
from pubsock.server.websocket import ServerWebSocket

# spy transport ---------------------------------------------------------------------------------


class SpyTransport:
    """Records each ``write``; takes everything at once."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.aborted = False
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.aborted or self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Spy:
    """A ServerWebSocket on a SpyTransport; ``end_iteration()`` runs the hub's scheduled flush."""

    def __init__(self, app: App) -> None:
        self.scheduled: list[Callable[[], None]] = []
        self.server = pubsock.Server(websocket=app)
        self.server._hub = Hub(self.scheduled.append)
        self.transport = SpyTransport()
        assert self.server._config is not None
        self.ws = ServerWebSocket(self.server, self.server._config, self.transport, None, "127.0.0.1")  # type: ignore[arg-type]
        self.server._sockets[self.ws] = None
        self.server._live[self.ws] = None

    def end_iteration(self) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for callback in scheduled:
            callback()


def text(payload: str) -> bytes:
    return build_frame(OP_TEXT, payload.encode())


def test_cork_callback_writes_go_out_in_one_write_at_its_end() -> None:
    spy = Spy(App())
    ws = spy.ws
    ws.subscribe("room")

    def batch(sock: pubsock.ServerWebSocket) -> str:
        assert sock is ws
        assert sock.send("a") == 1
        assert sock.send(b"bc") == 2
        assert spy.server.publish("room", "d") == 1
        assert sock.ping(b"p") == 1
        assert spy.transport.writes == []  # nothing written yet
        return "result"

    assert ws.cork(batch) == "result"
    assert spy.transport.writes == [text("a") + build_frame(OP_BINARY, b"bc") + text("d") + build_frame(OP_PING, b"p")]
    spy.end_iteration()
    assert len(spy.transport.writes) == 1


def test_cork_context_manager_writes_once_at_exit() -> None:
    spy = Spy(App())
    ws = spy.ws
    with ws.cork():
        for i in range(5):
            ws.send(str(i))
        assert spy.transport.writes == []
    assert spy.transport.writes == [b"".join(text(str(i)) for i in range(5))]


def test_cork_flushes_and_reraises_when_the_callback_raises() -> None:
    spy = Spy(App())
    ws = spy.ws

    def failing(sock: pubsock.ServerWebSocket) -> None:
        sock.send("before")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        ws.cork(failing)
    assert spy.transport.writes == [text("before")]

    with pytest.raises(ZeroDivisionError):
        with ws.cork():
            ws.send("inside")
            1 / 0  # noqa: B018
    assert spy.transport.writes == [text("before"), text("inside")]


def test_writes_inside_one_handler_call_go_out_in_one_write() -> None:
    app = App()

    def on_message(ws: pubsock.ServerWebSocket, message: Any) -> None:
        ws.send(f"1:{message}")
        ws.send(f"2:{message}")
        ws.ping(b"x")
        ws.send(f"3:{message}")

    app.on_message = on_message
    spy = Spy(app)
    spy.ws.data_received(client_frame(OP_TEXT, b"m"))
    assert app.received == [(spy.ws, "m")]
    # the handler ran corked: its writes leave in one write when the read is done (uncork)
    assert spy.transport.writes == [text("1:m") + text("2:m") + build_frame(OP_PING, b"x") + text("3:m")]
    spy.end_iteration()
    assert len(spy.transport.writes) == 1


def test_messages_of_one_read_are_answered_in_one_write() -> None:
    app = App()
    app.on_message = lambda ws, message: ws.send(message.upper())
    spy = Spy(app)
    spy.ws.data_received(b"".join(client_frame(OP_TEXT, w.encode()) for w in ("a", "b", "c")))
    spy.end_iteration()
    assert spy.transport.writes == [text("A") + text("B") + text("C")]


def test_cork_on_a_closed_socket_does_not_call_the_callback() -> None:
    app = App()
    spy = Spy(app)
    ws = spy.ws
    ws.terminate()
    assert app.closes == [(ws, 1006, "")]
    calls: list[object] = []
    assert ws.cork(calls.append) is None
    assert calls == []
    with ws.cork():
        assert ws.send("x") == 0
    spy.end_iteration()
    assert spy.transport.writes == []


@pytest.mark.parametrize("bad", [1, "fn", b"fn", 1.5, object()])
def test_cork_needs_a_callable(bad: object) -> None:
    spy = Spy(App())
    with pytest.raises(TypeError):
        spy.ws.cork(bad)  # type: ignore[call-overload]
    assert spy.transport.writes == []


def test_cork_type_error_also_on_a_closed_socket() -> None:
    spy = Spy(App())
    spy.ws.terminate()
    with pytest.raises(TypeError):
        spy.ws.cork(42)  # type: ignore[call-overload]


# over loopback ----------------------------------------------------------------------------------

network = pytest.mark.timeout(30)


@network
async def test_cork_returns_the_callbacks_value_and_sends() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        value = ws.cork(lambda sock: [sock.send("one"), sock.send(b"two"), sock])
        assert value == [3, 3, ws]
        assert ws.cork(lambda sock: None) is None
        assert await a.until(2) == [(OP_TEXT, b"one"), (OP_BINARY, b"two")]


@network
async def test_cork_reraises_and_keeps_what_was_sent() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]

        def failing(sock: pubsock.ServerWebSocket) -> None:
            sock.send("kept")
            raise RuntimeError("inside cork")

        with pytest.raises(RuntimeError, match="inside cork"):
            ws.cork(failing)
        assert ws.ready_state == 1
        assert await a.until(1) == [(OP_TEXT, b"kept")]
        with pytest.raises(TypeError):
            ws.cork("not callable")  # type: ignore[call-overload]


@network
async def test_with_cork_after_await_in_a_task() -> None:
    """Outside handlers (a task resumed after ``await``) ``with ws.cork():`` batches and sends."""
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        ws = app.by_name["a"]
        app.by_name["b"].subscribe("room")

        async def later() -> None:
            await asyncio.sleep(0.001)
            with ws.cork():
                ws.send("x")
                ws.publish("room", "y")
                ws.send("z")

        await asyncio.create_task(later())
        assert await a.until(2) == [(OP_TEXT, b"x"), (OP_TEXT, b"z")]
        assert await b.until(1) == [(OP_TEXT, b"y")]


@network
async def test_cork_inside_handlers() -> None:
    app = App()
    corked: list[object] = []
    app.on_open = lambda ws: corked.append(ws.cork(lambda sock: sock.send("hello")))
    app.on_message = lambda ws, message: corked.append(ws.cork(lambda sock: sock.send(f"echo {message}")))
    async with serving(app) as server, connected(server.port, "a") as (a,):
        a.send("hi")
        assert await a.until(2) == [(OP_TEXT, b"hello"), (OP_TEXT, b"echo hi")]
        assert corked == [5, 7]


@network
async def test_cork_is_not_called_after_the_socket_closed() -> None:
    app = App()
    results: list[object] = []
    calls: list[object] = []
    app.on_close = lambda ws, code, reason: results.append(ws.cork(calls.append))
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        a.send_close(1000, "done")
        await wait_for(lambda: app.closes, what="close handler")
        assert app.closes == [(ws, 1000, "done")]
        assert results == [None]  # inside close: the socket is no longer open
        assert ws.cork(calls.append) is None
        assert calls == []
        with ws.cork():
            assert ws.send("late") == 0
