"""WebSocket limits over loopback: message size (single, fragmented, inflated), fragment count, UTF-8
across fragments, and peers that never finish the Close handshake.

Each test keeps a second websocket and checks that it still echoes afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib

import pytest
import websockets
from _hardening import BINARY, CLOSE, CONT, TEXT, Echo, Raw, assert_still_works, serving
from websockets.asyncio.client import connect

from pubsock.protocol import _frames_py

pytestmark = pytest.mark.timeout(30)

LIMIT = 64 * 1024  # max_payload_length here; its fragment limit is MIN_FRAGMENTS
TOO_BIG = "Received too big message"


async def expect_close(client: Raw, code: int, reason: str | None = None) -> None:
    _, close = await client.recv_close()
    assert close.close_code == code, close
    if reason is not None:
        assert close.close_reason == reason
    assert await client.expect_eof() == b""


async def test_single_frame_over_max_payload_length_gets_1009() -> None:
    app = Echo(max_payload_length=LIMIT)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            client.send(BINARY, b"a" * LIMIT)
            assert (await client.recv()).payload == b"a" * LIMIT  # at the limit: fine
            client.send(BINARY, b"a" * (LIMIT + 1))
            await expect_close(client, 1009, TOO_BIG)
            assert app.closes == [(1009, TOO_BIG)]
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_oversized_frame_fails_from_its_header() -> None:
    app = Echo(max_payload_length=LIMIT)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            # announce 1 GiB and send only the header: the server must not wait for (or buffer) the payload
            client.write(bytes([0x82, 0x80 | 127]) + (1 << 30).to_bytes(8, "big") + b"mask")
            await expect_close(client, 1009, TOO_BIG)
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_fragmented_message_over_max_payload_length_gets_1009() -> None:
    app = Echo(max_payload_length=LIMIT)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            piece = b"f" * (LIMIT // 4)
            client.send(TEXT, piece, fin=False)
            for _ in range(3):
                client.send(CONT, piece, fin=False)
            client.send(CONT, b"!")  # one byte over
            await expect_close(client, 1009, TOO_BIG)
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_inflated_message_over_max_payload_length_gets_1009() -> None:
    # a few kilobytes on the wire that inflate to 1 MiB: the limit applies after inflation
    app = Echo(max_payload_length=LIMIT, per_message_deflate=True)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        async with connect(f"ws://127.0.0.1:{server.port}/ws", compression="deflate") as ws:
            assert ws.protocol.extensions, "permessage-deflate was not negotiated"
            await ws.send(b"\0" * (LIMIT // 2))
            assert await ws.recv() == b"\0" * (LIMIT // 2)
            await ws.send(b"\0" * (1 << 20))
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.recv()
            assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1009
        try:
            assert app.closes == [(1009, TOO_BIG)]
            await assert_still_works(server.port, bystander)
        finally:
            await bystander.close()


async def test_inflated_fragments_over_max_payload_length_get_1009() -> None:
    app = Echo(max_payload_length=LIMIT, per_message_deflate=True)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        try:
            deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
            chunk = deflate.compress(b"\0" * (LIMIT // 2)) + deflate.flush(zlib.Z_SYNC_FLUSH)
            client.send(BINARY, chunk, fin=False, rsv1=True)  # half the limit
            client.send(CONT, chunk, fin=False)  # the whole limit
            client.send(CONT, chunk)  # over
            await expect_close(client, 1009, TOO_BIG)
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_too_many_fragments_get_1009() -> None:
    count = _frames_py.MIN_FRAGMENTS
    app = Echo(max_payload_length=LIMIT)
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            client.send(BINARY, b"a", fin=False)
            for _ in range(count - 2):
                client.send(CONT, b"", fin=False)
            client.send(CONT, b"z")
            assert (await client.recv()).payload == b"az"  # the most fragments allowed
            client.send(BINARY, b"a", fin=False)
            for _ in range(count):
                client.send(CONT, b"", fin=False)
            await expect_close(client, 1009, "Received too many fragments")
            assert app.closes == [(1009, "Received too many fragments")]
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_a_never_ending_fragmented_message_gets_1009() -> None:
    app = Echo()  # the default max_payload_length (16 MiB): empty fragments never reach it
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            client.send(TEXT, b"", fin=False)
            close = asyncio.ensure_future(client.recv_close(10))
            empty = b"".join(_empty_continuations(1024))
            sent = 0
            while not close.done() and sent < 2_000_000:
                client.write(empty)
                sent += 1024
                try:
                    await client.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0)
            _, frame = await close
            assert frame.close_code == 1009
            limit = (16 * 1024 * 1024) // _frames_py.FRAGMENT_COST
            assert limit <= sent <= limit + 64 * 1024
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


def _empty_continuations(count: int) -> list[bytes]:
    frame = bytes([0x00, 0x80]) + b"mask"  # an empty, masked, non-final continuation frame
    return [frame] * count


@pytest.mark.parametrize(
    "parts",
    [
        [b"caf\xc3", b"\xa9 ok", b"\xff"],  # valid split, then an invalid byte
        [b"euro \xe2\x82", b"\x28"],  # a 3-byte sequence broken at the boundary
        [b"\xed", b"\xa0\x80"],  # a surrogate split across fragments
        [b"ok \xf0\x9f", b"\x98", b"A"],  # a 4-byte sequence cut short in the third fragment
    ],
)
async def test_invalid_utf8_across_fragments_gets_1007(parts: list[bytes]) -> None:
    app = Echo()
    async with serving(app) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            client.send(TEXT, parts[0], fin=False)
            for part in parts[1:-1]:
                client.send(CONT, part, fin=False)
            client.send(CONT, parts[-1])
            await expect_close(client, 1007, "Received invalid UTF-8")
            assert app.closes == [(1007, "Received invalid UTF-8")]
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_valid_utf8_split_at_every_byte_is_fine() -> None:
    async with serving() as server:
        client = await Raw.websocket(server.port)
        try:
            data = "naïve € 𝄞".encode()
            client.send(TEXT, data[:1], fin=False)
            for i in range(1, len(data) - 1):
                client.send(CONT, data[i : i + 1], fin=False)
            client.send(CONT, data[-1:])
            assert (await client.recv()).payload == data
        finally:
            await client.close()


async def test_a_peer_that_never_answers_the_close_is_dropped_after_close_timeout() -> None:
    app = Echo()
    async with serving(app, close_timeout=0.3) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            client.send(TEXT, b"close me")
            _, close = await client.recv_close()
            start = time.monotonic()
            assert (close.close_code, close.close_reason) == (1000, "as you wish")
            # the client never sends its Close: the server drops the connection
            assert await client.expect_eof() == b""
            assert 0.1 <= time.monotonic() - start < 2
            assert app.closes == [(1000, "as you wish")]
            assert server.pending_websockets == 1
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_a_peer_that_answers_the_close_is_not_kept_waiting() -> None:
    async with serving(close_timeout=5) as server:
        client = await Raw.websocket(server.port)
        try:
            client.send(TEXT, b"close me")
            await client.recv_close()
            client.send_close(1000)
            start = time.monotonic()
            assert await client.expect_eof() == b""
            assert time.monotonic() - start < 1
        finally:
            await client.close()


async def test_a_peer_that_closes_but_stops_reading_is_dropped_after_close_timeout() -> None:
    # The client sends its Close while the server has megabytes queued for it and reads nothing:
    # the echoed Close can never be written, so without a deadline the connection would live forever.
    app = Echo()
    async with serving(app, close_timeout=0.3) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.websocket(server.port)
        try:
            ws = app.sockets[-1]
            ws._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            client.stop_reading()
            for _ in range(64):
                ws.send(b"q" * 65536)  # 4 MiB the client will not read
            await asyncio.sleep(0.05)
            assert ws.buffered_amount > 0
            client.send_close(1000)
            await client.drain()
            assert await app.wait_closes(1) == [(1000, "")]
            start = time.monotonic()
            while server._live.get(ws, 0) is None:  # the TCP connection is still there
                assert time.monotonic() - start < 3, "the connection was not dropped"
                await asyncio.sleep(0.01)
            assert time.monotonic() - start >= 0.1
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_close_frames_are_answered_even_with_a_peer_close_code() -> None:
    app = Echo()
    async with serving(app) as server:
        client = await Raw.websocket(server.port)
        try:
            client.send(CLOSE, (4000).to_bytes(2, "big") + b"bye")
            _, close = await client.recv_close()
            assert (close.close_code, close.close_reason) == (4000, "bye")
            assert await client.expect_eof() == b""
            assert app.closes == [(4000, "bye")]
        finally:
            await client.close()
