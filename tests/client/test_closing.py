"""Closing handshake, timeouts and protocol failures, against a raw server that misbehaves on purpose."""

from __future__ import annotations

import asyncio

import pytest

from pubsock.client import ConnectionClosedError, ConnectionClosedOK, connect
from pubsock.protocol.events import Close, Pong
from pubsock.protocol.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT

from .servers import RawHandler, frame, raw_server, read_frames, read_request, switch

def serving(after_open: bytes, *, answer_close: bool = True, hold: float = 0.0,
            seen: list[object] | None = None) -> RawHandler:
    """A raw server: 101, then ``after_open``; records the client's frames in ``seen``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + after_open)
        events = await read_frames(reader, 1)
        if seen is not None:
            seen.extend(events)
        if answer_close and events and isinstance(events[-1], Close):
            close = events[-1]
            writer.write(frame(OP_CLOSE, close.code.to_bytes(2, "big")))
        await asyncio.sleep(hold)

    return handler


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (frame(OP_TEXT, b"\xff\xfe"), 1007),
        (bytes([0x81 | 0x0, 0x80 | 2]) + b"\x00\x00\x00\x00ab", 1002),  # masked frame from a server
        (bytes([0x83, 0]), 1002),  # reserved opcode
        (frame(OP_TEXT, b"a", rsv1=True), 1002),  # RSV1 without permessage-deflate
        (frame(OP_PING, b"x" * 126), 1002),
        (frame(OP_CLOSE, b"\x03\xe7"), 1002),  # close code 999
        (frame(OP_BINARY, b"x" * 2000), 1009),
    ],
)
async def test_protocol_errors_fail_the_connection(frames: bytes, code: int) -> None:
    seen: list[object] = []
    async with raw_server(serving(frames, seen=seen)) as url:
        ws = await connect(url, per_message_deflate=False, max_payload_length=1000, close_timeout=1)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.was_clean) == (code, False)
        assert ws.close_code == code
    assert len(seen) == 1 and isinstance(seen[0], Close) and seen[0].code == code


async def test_close_timeout_without_answer() -> None:
    async with raw_server(serving(b"", answer_close=False, hold=5)) as url:
        ws = await connect(url, close_timeout=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close()
        assert 0.15 < loop.time() - start < 2
        assert ws.close_code == 1006
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert not info.value.was_clean


async def test_server_keeps_tcp_open_after_close() -> None:
    async with raw_server(serving(b"", answer_close=True, hold=5)) as url:
        ws = await connect(url, close_timeout=0.2)
        await ws.close(4000)
        assert ws.close_code == 4000
        with pytest.raises(ConnectionClosedError) as info:  # 4000 is not a "normal" code
            await ws.recv()
        assert info.value.was_clean


async def test_server_initiated_close_is_echoed() -> None:
    seen: list[object] = []
    async with raw_server(serving(frame(OP_CLOSE, b"\x0f\xa0bye"), answer_close=False, seen=seen)) as url:
        ws = await connect(url, close_timeout=1)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason, info.value.was_clean) == (4000, "bye", True)
    assert seen == [Close(4000, "bye")]


async def test_empty_close_body() -> None:
    seen: list[object] = []
    async with raw_server(serving(frame(OP_CLOSE), answer_close=False, seen=seen)) as url:
        ws = await connect(url)
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert (info.value.code, info.value.was_clean) == (1005, True)
    assert seen == [Close(1005, "")]


async def test_ping_is_answered_with_same_payload() -> None:
    seen: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)) + frame(OP_PING, b"payload") + frame(OP_PING))
        seen.extend(await read_frames(reader, 2))
        await reader.read()

    async with raw_server(handler) as url, connect(url, close_timeout=0.1) as ws:
        await asyncio.sleep(0.1)
        assert ws.ready_state == 1
    assert seen == [Pong(b"payload"), Pong(b"")]


async def test_client_frames_are_masked_and_compressed() -> None:
    raw: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request["sec-websocket-extensions"] == "permessage-deflate; client_max_window_bits"
        writer.write(switch(request, "Sec-WebSocket-Extensions: permessage-deflate"))
        raw.append(await reader.read(65536))

    async with raw_server(handler) as url, connect(url, close_timeout=0.1) as ws:
        await ws.send("a" * 1000)
        await asyncio.sleep(0.1)
    first = raw[0]
    assert first[0] == 0xC1  # FIN + RSV1 + text
    assert first[1] & 0x80  # masked
    assert (first[1] & 0x7F) < 100  # compressed


async def test_ping_during_closing_is_not_answered() -> None:
    seen: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(switch(await read_request(reader)))
        seen.extend(await read_frames(reader, 1))  # the client's Close
        writer.write(frame(OP_PING, b"late") + frame(OP_CLOSE, b"\x03\xe8"))
        seen.extend(await read_frames(reader, 1, timeout=0.3))

    async with raw_server(handler) as url:
        ws = await connect(url)
        await ws.close()
    assert seen == [Close(1000, "")]
