"""``connect()`` against the PyPI ``websockets`` server: messages, iteration, closing, pings, backpressure."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection

from pubsock.client import ClientConnection, ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, connect
from pubsock.protocol.frames import OP_TEXT

from .servers import frame, raw_server, read_request, switch, websockets_server



@pytest.mark.parametrize("deflate", [True, False])
async def test_echo(echo_url: str, deflate: bool) -> None:
    async with connect(echo_url, per_message_deflate=deflate) as ws:
        assert isinstance(ws, ClientConnection)
        assert ws.ready_state == 1
        assert ws.extensions.startswith("permessage-deflate") == deflate
        messages: list[str | bytes] = ["hello", "", "ünïcødé ✓", b"\x00\xff", b"", "x" * 100_000, bytes(range(256)) * 4096]
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
        await ws.send(bytearray(b"ba"))
        assert await ws.recv() == b"ba"
        await ws.send(memoryview(b"mv"))
        assert await ws.recv() == b"mv"
    assert ws.ready_state == 3
    assert (ws.close_code, ws.close_reason) == (1000, "")


async def test_await_form(echo_url: str) -> None:
    ws = await connect(echo_url)
    try:
        await ws.send("a")
        assert await ws.recv() == "a"
    finally:
        await ws.close()
    await ws.wait_closed()
    assert ws.close_code == 1000


async def test_iteration_ends_on_normal_close() -> None:
    async def handler(ws: ServerConnection) -> None:
        for i in range(3):
            await ws.send(str(i))
        await ws.close(1000, "done")

    async with websockets_server(handler) as url, connect(url) as ws:
        assert [message async for message in ws] == ["0", "1", "2"]
        assert (ws.close_code, ws.close_reason) == (1000, "done")
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason, info.value.was_clean) == (1000, "done", True)


async def test_iteration_raises_on_error_close() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"last")
        await ws.close(4000, "bye")

    async with websockets_server(handler) as url, connect(url) as ws:
        received = []
        with pytest.raises(ConnectionClosedError) as info:
            async for message in ws:
                received.append(message)
        assert received == [b"last"]
        assert (info.value.code, info.value.reason, info.value.was_clean) == (4000, "bye", True)
        with pytest.raises(ConnectionClosed):
            await ws.send("too late")


async def test_client_close_code_reaches_server() -> None:
    seen: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.set_result((ws.close_code, ws.close_reason))

    async with websockets_server(handler) as url:
        ws = await connect(url)
        await ws.close(4321, "see you")
        assert await seen == (4321, "see you")
        assert ws.close_code == 4321  # the server echoed it
        assert ws.ready_state == 3


async def test_request_path_query_and_headers() -> None:
    seen: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        seen.set_result(ws)
        await ws.wait_closed()

    async with websockets_server(handler) as url:
        headers = {"X-Token": "secret", "Host": "chat.example:1234", "Connection": "keep-alive"}
        async with connect(url + "/room/é?name=a b&x=1", headers=headers):
            server_ws = await seen
            request = server_ws.request
            assert request is not None
            assert request.path == "/room/%C3%A9?name=a%20b&x=1"
            assert request.headers["X-Token"] == "secret"
            assert request.headers["Host"] == "chat.example:1234"
            assert request.headers.get_all("Connection") == ["Upgrade"]
            assert request.headers["Sec-WebSocket-Version"] == "13"


async def test_subprotocol() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(ws.subprotocol or "none")

    async with websockets_server(handler, subprotocols=["b", "c"]) as url:
        async with connect(url, protocols=["a", "b"]) as ws:
            assert ws.protocol == "b"
            assert await ws.recv() == "b"
        async with connect(url, headers={"Sec-WebSocket-Protocol": "c"}, protocols=["b"]) as ws:
            assert ws.protocol == "c"

async def test_no_subprotocol(echo_url: str) -> None:
    async with connect(echo_url) as ws:
        assert ws.protocol == ""
        assert ws.response.status == 101
        assert ("Upgrade", "websocket") in ws.response.headers


async def test_message_too_big() -> None:
    closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.send("x" * 1000)
        await ws.send("y" * 1001)
        await ws.wait_closed()
        closed.set_result(ws.close_code)

    async with websockets_server(handler) as url, connect(url, max_payload_length=1000) as ws:
        assert await ws.recv() == "x" * 1000
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1009
        assert await closed == 1009


async def test_server_pings_are_answered() -> None:
    latency: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        waiter = await ws.ping(b"are you there")
        latency.set_result(await waiter)
        await ws.send("done")

    async with websockets_server(handler) as url, connect(url) as ws:
        assert await ws.recv() == "done"
        assert await latency >= 0


async def test_client_ping(echo_url: str) -> None:
    async with connect(echo_url) as ws:
        first = await ws.ping(b"1")
        second = await ws.ping()
        assert await first >= 0
        assert await second >= 0
        with pytest.raises(ValueError):
            await ws.ping(b"x" * 126)


async def test_pong_answers_earlier_pings() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        await reader.read(1024)  # the pings
        writer.write(frame(0xA, b"b"))
        await reader.read(1024)

    async with raw_server(handler) as url, connect(url) as ws:
        a, b = await ws.ping(b"a"), await ws.ping(b"b")
        with pytest.raises(ValueError):
            await ws.ping(b"b")
        assert await a >= 0 and await b >= 0


async def test_pending_ping_fails_on_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        await reader.read(1024)

    async with raw_server(handler) as url:
        ws = await connect(url, close_timeout=0.1)
        waiter = await ws.ping()
        await ws.close()
        with pytest.raises(ConnectionClosedError):
            await waiter


async def test_messages_before_close_are_delivered() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        writer.write(switch(request) + frame(OP_TEXT, b"a") + frame(OP_TEXT, b"b") + frame(0x8, b"\x03\xe8"))
        await reader.read(1024)  # the echoed Close; then the server closes first

    async with raw_server(handler) as url, connect(url) as ws:
        assert [m async for m in ws] == ["a", "b"]
        assert (ws.close_code, ws.close_reason) == (1000, "")


async def test_read_flow_control() -> None:
    async def handler(ws: ServerConnection) -> None:
        for i in range(50):
            await ws.send(str(i) * 1000)
        await ws.close()

    async with websockets_server(handler) as url, connect(url, max_queue=2) as ws:
        await asyncio.sleep(0.05)
        assert len(ws._messages) < 50  # reading paused
        assert [m async for m in ws] == [str(i) * 1000 for i in range(50)]


async def test_send_waits_under_backpressure() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        await release.wait()  # read nothing for now
        while await reader.read(1 << 20):
            pass

    async with raw_server(handler) as url:
        ws = await connect(url, close_timeout=1)
        big = b"x" * (16 << 20)
        send = asyncio.create_task(ws.send(big))
        await asyncio.sleep(0.2)
        assert not send.done()
        assert ws.buffered_amount > 0
        release.set()
        await asyncio.wait_for(send, 10)
        await ws.close()


async def test_concurrent_recv(echo_url: str) -> None:
    async with connect(echo_url) as ws:
        first = asyncio.create_task(ws.recv())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already"):
            await ws.recv()
        await ws.send("x")
        assert await first == "x"


async def test_argument_checks(echo_url: str) -> None:
    async with connect(echo_url) as ws:
        with pytest.raises(TypeError):
            await ws.send(123)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await ws.close(1005)
        with pytest.raises(ValueError):
            await ws.close(1000, "é" * 62)
        with pytest.raises(TypeError):
            await ws.close("1000")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        connect(echo_url, max_queue=1.5)  # type: ignore[arg-type]


async def test_close_is_idempotent(echo_url: str) -> None:
    ws = await connect(echo_url)
    await asyncio.gather(ws.close(), ws.close(4000))
    await ws.close()
    assert ws.close_code == 1000


async def test_server_drops_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + frame(OP_TEXT, b"hi"))
        await writer.drain()
        writer.transport.abort()

    async with raw_server(handler) as url, connect(url) as ws:
        assert await ws.recv() == "hi"
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason, info.value.was_clean) == (1006, "", False)
        assert ws.close_code == 1006


async def test_websockets_server_closing_on_exception() -> None:
    async def handler(ws: ServerConnection) -> None:
        raise RuntimeError("boom")

    async with websockets_server(handler) as url, connect(url) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1011



async def test_sending_while_closing() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        await reader.read()  # never answers the Close

    async with raw_server(handler) as url:
        ws = await connect(url, close_timeout=0.2)
        assert "ready_state=1" in repr(ws)
        closing = asyncio.create_task(ws.close())
        await asyncio.sleep(0.01)
        assert ws.ready_state == 2 and ws.close_code is None
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.send("while closing")
        assert (info.value.code, info.value.was_clean) == (1000, False)
        with pytest.raises(ConnectionClosedOK):
            await ws.ping()
        await closing
        assert ws.close_code == 1006
        with pytest.raises(TypeError):
            await ws.close(1000, 1000)  # type: ignore[arg-type]


async def test_unsolicited_pong_is_ignored(echo_url: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + frame(0xA, b"unsolicited") + frame(OP_TEXT, b"after"))
        await reader.read()

    async with raw_server(handler) as url, connect(url, close_timeout=0.1) as ws:
        waiter = await ws.ping(b"mine")
        assert await ws.recv() == "after"
        assert not waiter.done()
