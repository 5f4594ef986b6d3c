"""Clear exceptions when the connection cannot open: refused, non-101, bad answers, timeouts, bad URLs."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.server import ServerConnection

from pubsock.client import HandshakeError, InvalidStatus, InvalidURL, connect

from .servers import RawHandler, accept_key, raw_server, read_request, switch, websockets_server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused() -> None:
    with pytest.raises(ConnectionRefusedError):
        await connect(f"ws://127.0.0.1:{closed_port()}/")


def answer(response: bytes, *, close: bool = True) -> RawHandler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        await writer.drain()
        if not close:
            await reader.read()

    return handler


@pytest.mark.parametrize(
    ("response", "status", "body"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Why: token\r\n\r\nforbidden", 403, b"forbidden"),
        (b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfail\r\n0\r\n\r\n", 500, b"fail"),
        (b"HTTP/1.0 404 Not Found\r\n\r\nno such path", 404, b"no such path"),
        (b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", 302, b""),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, b"hi"),
    ],
)
async def test_non_101_status(response: bytes, status: int, body: bytes) -> None:
    async with raw_server(answer(response, close=b"Content-Length" not in response)) as url:
        with pytest.raises(InvalidStatus) as info:
            await connect(url)
    error = info.value
    assert isinstance(error, HandshakeError)
    assert (error.status, error.body) == (status, body)
    assert str(status) in str(error)
    if status == 403:
        assert error.reason == "Forbidden"
        assert ("X-Why", "token") in error.headers
    if status == 302:
        assert ("Location", "/elsewhere") in error.headers


async def test_websockets_server_rejects() -> None:
    async def handler(ws: ServerConnection) -> None:
        pass

    async with websockets_server(handler, subprotocols=["only"]) as url:
        with pytest.raises(InvalidStatus) as info:
            await connect(url)
        assert info.value.status == 400
        assert b"subprotocol" in info.value.body


def bad_switch(*lines: str) -> RawHandler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        writer.write(("\r\n".join(line.format(accept=accept_key(request["sec-websocket-key"])) for line in lines)
                      + "\r\n\r\n").encode())
        await reader.read()

    return handler


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ=="], "Sec-WebSocket-Accept"),
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade"], "Sec-WebSocket-Accept"),
        (["HTTP/1.1 101 Switching", "Connection: Upgrade", "Sec-WebSocket-Accept: {accept}"], "Upgrade"),
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Sec-WebSocket-Accept: {accept}"], "Connection"),
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: {accept}",
          "Sec-WebSocket-Protocol: unoffered"], "subprotocol"),
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: {accept}",
          "Sec-WebSocket-Extensions: x-unknown"], "x-unknown"),
        (["HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: {accept}",
          "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7"], "Extensions"),
        (["SSH-2.0-OpenSSH"], "HTTP"),
        (["HTTP/1.1 101 Switching", "Bad Header"], "header"),
    ],
)
async def test_invalid_101(lines: list[str], match: str) -> None:
    async with raw_server(bad_switch(*lines)) as url:
        with pytest.raises(HandshakeError, match=match):
            await connect(url)


async def test_extension_not_offered() -> None:
    handler = bad_switch(
        "HTTP/1.1 101 Switching", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: {accept}",
        "Sec-WebSocket-Extensions: permessage-deflate",
    )
    async with raw_server(handler) as url:
        with pytest.raises(HandshakeError, match="not offered"):
            await connect(url, per_message_deflate=False)
        async with connect(url, close_timeout=0.1) as ws:  # offered: accepted
            assert ws.extensions == "permessage-deflate"


async def test_closed_during_handshake() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 101 Swi")

    async with raw_server(handler) as url:
        with pytest.raises(ConnectionError, match="opening handshake"):
            await connect(url)


async def test_open_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    async with raw_server(handler) as url:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError, match="timed out after 0.2 s"):
            await connect(url + "/slow", open_timeout=0.2)
        assert loop.time() - start < 2


async def test_cancelled_while_connecting() -> None:
    accepted = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()

    async with raw_server(handler) as url:
        task = asyncio.create_task(connect(url)._open())  # noqa: SLF001
        await accepted.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("url", ["http//example.com", "ws://example.com/#x", "ftp://x/", "ws://:80/"])
def test_invalid_url_raises_at_once(url: str) -> None:
    with pytest.raises(InvalidURL):
        connect(url)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_literal() -> None:
    seen: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.append(ws.request.headers["Host"])
        await ws.send("six")

    from websockets.asyncio.server import serve

    async with serve(handler, "::1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://[::1]:{port}/v6") as ws:
            assert await ws.recv() == "six"
    assert seen == [f"[::1]:{port}"]


async def test_switch_helper_is_valid() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        await reader.read()

    async with raw_server(handler) as url, connect(url, close_timeout=0.1) as ws:
        assert ws.ready_state == 1


async def test_body_in_later_packets() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 10\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"slow ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"down!")
        await reader.read()

    async with raw_server(handler) as url:
        with pytest.raises(InvalidStatus) as info:
            await connect(url)
    assert (info.value.status, info.value.body) == (429, b"slow down!")
