"""The browser-style `WebSocket`: events, listeners, ``on<type>`` attributes, states."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from websockets.asyncio.server import ServerConnection

from pubsock.client import (
    CloseEvent,
    ErrorEvent,
    Event,
    InvalidStateError,
    InvalidStatus,
    InvalidURL,
    MessageEvent,
    WebSocket,
)
from pubsock.protocol.frames import OP_TEXT

from .servers import frame, raw_server, read_request, switch, websockets_server


def send_all(ws: WebSocket, *messages: str | bytes) -> None:
    for message in messages:
        ws.send(message)


def record(ws: WebSocket) -> tuple[list[Event], asyncio.Future[CloseEvent]]:
    """Record every event; the future resolves with the close event."""
    events: list[Event] = []
    closed: asyncio.Future[CloseEvent] = asyncio.get_running_loop().create_future()
    for type in ("open", "message", "error"):
        ws.add_event_listener(type, events.append)

    def on_close(event: CloseEvent) -> None:
        events.append(event)
        closed.set_result(event)

    ws.add_event_listener("close", on_close)
    return events, closed


async def test_lifecycle(echo_url: str) -> None:
    ws = WebSocket(echo_url + "/path?q=1")
    assert ws.ready_state == WebSocket.CONNECTING == 0
    assert ws.url == echo_url + "/path?q=1"
    assert (ws.protocol, ws.extensions, ws.buffered_amount, ws.binary_type) == ("", "", 0, "bytes")
    events, closed = record(ws)

    def on_open(event: Event) -> None:
        assert ws.ready_state == WebSocket.OPEN
        ws.send("text")
        ws.send(b"binary")

    def on_message(event: MessageEvent) -> None:
        if event.data == b"binary":
            ws.close(4000, "enough")
            assert ws.ready_state == WebSocket.CLOSING

    ws.onopen = on_open
    ws.onmessage = on_message
    close = await closed
    assert ws.ready_state == WebSocket.CLOSED
    assert [e.type for e in events] == ["open", "message", "message", "close"]
    assert all(e.target is ws for e in events)
    messages = [e.data for e in events if isinstance(e, MessageEvent)]
    assert messages == ["text", b"binary"]
    assert (close.code, close.reason, close.was_clean) == (4000, "enough", True)
    assert ws.extensions.startswith("permessage-deflate")
    ws.send("after close is discarded")
    ws.close()  # does nothing


async def test_attribute_handlers_keep_their_place(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    calls: list[str] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ws.add_event_listener("open", lambda e: calls.append("first"))
    ws.onopen = lambda e: calls.append("attribute-1")
    ws.add_event_listener("open", lambda e: calls.append("last"))
    replacement = lambda e: calls.append("attribute-2")  # noqa: E731
    ws.onopen = replacement  # replaces in place, does not move to the end
    assert ws.onopen is replacement
    ws.onclose = lambda e: done.set_result(None)
    ws.onmessage = lambda e: None
    ws.onmessage = None
    assert ws.onmessage is None
    ws.add_event_listener("open", lambda e: ws.close())
    await done
    assert calls == ["first", "attribute-2", "last"]
    with pytest.raises(TypeError):
        ws.onerror = "not callable"  # type: ignore[assignment]
    assert isinstance(WebSocket.onmessage, object)


async def test_add_remove_once(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    events, closed = record(ws)
    seen: list[object] = []

    def listener(event: MessageEvent) -> None:
        seen.append(("plain", event.data))

    ws.add_event_listener("message", listener)
    ws.add_event_listener("message", listener)  # a duplicate is ignored
    ws.add_event_listener("message", lambda e: seen.append(("once", e.data)), once=True)

    def remover(event: MessageEvent) -> None:
        seen.append(("remover", event.data))
        ws.remove_event_listener("message", listener)  # takes effect during this dispatch

    ws.add_event_listener("message", remover)
    ws.add_event_listener("message", listener)  # ignored: already there
    ws.onopen = lambda e: send_all(ws, "1", "2")
    ws.add_event_listener("message", lambda e: ws.close() if e.data == "2" else None)
    with pytest.raises(TypeError):
        ws.add_event_listener("message", 42)  # type: ignore[call-overload]
    ws.remove_event_listener("message", print)  # not registered: nothing happens
    ws.remove_event_listener("nothing", print)
    await closed
    assert seen == [("plain", "1"), ("once", "1"), ("remover", "1"), ("remover", "2")]


async def test_listener_errors_are_logged(echo_url: str, caplog: pytest.LogCaptureFixture) -> None:
    ws = WebSocket(echo_url)
    events, closed = record(ws)
    later: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    async def broken_async(event: Event) -> None:
        raise RuntimeError("async listener bug")

    ws.add_event_listener("open", broken)
    ws.add_event_listener("open", broken_async)
    ws.add_event_listener("open", lambda e: later.append("still called"))
    ws.add_event_listener("open", lambda e: ws.close())
    with caplog.at_level(logging.ERROR, logger="pubsock.client"):
        await closed
        await asyncio.sleep(0.01)
    assert later == ["still called"]
    messages = [record.getMessage() + str(record.exc_info and record.exc_info[1]) for record in caplog.records]
    assert any("listener bug" in message for message in messages)
    assert any("async listener bug" in message for message in messages)


async def test_async_listeners(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    events, closed = record(ws)
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_open(event: Event) -> None:
        await asyncio.sleep(0.01)
        ws.send("from a task")

    async def on_message(event: MessageEvent) -> None:
        assert isinstance(event.data, str)
        got.set_result(event.data)
        ws.close()

    ws.onopen = on_open
    ws.onmessage = on_message
    assert await got == "from a task"
    await closed


@pytest.mark.parametrize(("binary_type", "kind"), [("bytes", bytes), ("bytearray", bytearray), ("memoryview", memoryview)])
async def test_binary_type(echo_url: str, binary_type: str, kind: type) -> None:
    ws = WebSocket(echo_url)
    ws.binary_type = binary_type  # type: ignore[assignment]
    events, closed = record(ws)
    ws.onopen = lambda e: send_all(ws, b"\x01\x02", "text")
    ws.onmessage = lambda e: ws.close() if e.data == "text" else None
    await closed
    data = [e.data for e in events if isinstance(e, MessageEvent)]
    first = data[0]
    assert type(first) is kind and not isinstance(first, str) and bytes(first) == b"\x01\x02"
    assert data[1] == "text"
    with pytest.raises(ValueError):
        ws.binary_type = "blob"  # type: ignore[assignment]


async def test_send_while_connecting(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    with pytest.raises(InvalidStateError):
        ws.send("too early")
    events, closed = record(ws)
    ws.onopen = lambda e: ws.close()
    await closed
    with pytest.raises(TypeError):
        ws.send(1)  # type: ignore[arg-type]


async def test_close_while_connecting(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    events, closed = record(ws)
    ws.close()
    assert ws.ready_state == WebSocket.CLOSING
    ws.close()  # nothing more
    close = await closed
    assert [e.type for e in events] == ["error", "close"]
    assert (close.code, close.reason, close.was_clean) == (1006, "", False)
    assert ws.ready_state == WebSocket.CLOSED


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused() -> None:
    ws = WebSocket(f"ws://127.0.0.1:{closed_port()}/")
    events, closed = record(ws)
    close = await closed
    error = events[0]
    assert isinstance(error, ErrorEvent) and isinstance(error.error, ConnectionRefusedError)
    assert error.message
    assert (close.code, close.was_clean) == (1006, False)


async def test_non_101_fires_error_then_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nwho?")

    async with raw_server(handler) as url:
        ws = WebSocket(url)
        events, closed = record(ws)
        await closed
    error = events[0]
    assert isinstance(error, ErrorEvent) and isinstance(error.error, InvalidStatus)
    assert (error.error.status, error.error.body) == (401, b"who?")
    assert [e.type for e in events] == ["error", "close"]


async def test_server_close_and_protocol_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4000, "server says bye")

    async with websockets_server(handler) as url:
        ws = WebSocket(url)
        events, closed = record(ws)
        close = await closed
        assert [e.type for e in events] == ["open", "close"]
        assert (close.code, close.reason, close.was_clean) == (4000, "server says bye", True)

    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + frame(OP_TEXT, b"ok") + frame(OP_TEXT, b"\xc3"))
        await reader.read(1024)

    async with raw_server(raw) as url:
        ws = WebSocket(url, close_timeout=0.5)
        events, closed = record(ws)
        close = await closed
    assert [e.type for e in events] == ["open", "message", "error", "close"]
    assert (close.code, close.was_clean) == (1007, False)


async def test_messages_in_the_handshake_packet_follow_open() -> None:
    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader), "Sec-WebSocket-Protocol: chat") + frame(OP_TEXT, b"hi"))
        await reader.read(1024)
        writer.write(frame(0x8, b"\x03\xe8"))

    async with raw_server(raw) as url:
        ws = WebSocket(url, protocols=["chat"])
        events, closed = record(ws)
        ws.onmessage = lambda e: ws.close()
        await closed
    assert [e.type for e in events] == ["open", "message", "close"]
    assert ws.protocol == "chat"


async def test_close_arguments(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    with pytest.raises(ValueError):
        ws.close(1001)  # browsers allow only 1000 and 3000-4999
    with pytest.raises(ValueError):
        ws.close(1000, "x" * 124)
    with pytest.raises(TypeError):
        ws.close(True)
    with pytest.raises(TypeError):
        ws.close(1000, b"reason")  # type: ignore[arg-type]
    events, closed = record(ws)
    ws.onopen = lambda e: ws.close(3000)
    assert (await closed).code == 3000


async def test_buffered_amount(echo_url: str) -> None:
    ws = WebSocket(echo_url, per_message_deflate=False)
    events, closed = record(ws)
    amounts: list[int] = []

    def on_open(event: Event) -> None:
        ws.send(b"x" * (8 << 20))
        amounts.append(ws.buffered_amount)
        ws.close()

    ws.onopen = on_open
    await closed
    assert amounts[0] > 0
    assert ws.buffered_amount == 0


def test_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        WebSocket("ws://127.0.0.1:1/")


def test_invalid_arguments_raise_at_once() -> None:
    with pytest.raises(InvalidURL):
        WebSocket("wss://example.com/#fragment")
    with pytest.raises(ValueError, match="X-Bad"):
        WebSocket("ws://example.com/", headers={"X-Bad": "a\r\nb"})


async def test_repr(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    assert "ready_state=0" in repr(ws)
    events, closed = record(ws)
    ws.onopen = lambda e: ws.close()
    await closed


async def test_closing_state_when_the_server_closes() -> None:
    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + frame(0x8, b"\x03\xe8"))
        await reader.read()  # keeps the TCP connection open: the client gives up after close_timeout

    async with raw_server(raw) as url:
        ws = WebSocket(url, close_timeout=0.2)
        events, closed = record(ws)
        states: list[int] = []
        ws.onopen = lambda e: asyncio.get_running_loop().call_later(0.1, lambda: states.append(ws.ready_state))
        close = await closed
    assert states == [WebSocket.CLOSING]
    assert (close.code, close.was_clean) == (1000, True)
    assert ws.ready_state == WebSocket.CLOSED
