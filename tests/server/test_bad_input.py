"""Protocol violations over raw sockets (bun-semantics.md §5.8): the Close sent, the handler's view, isolation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rawws import RawClient, build_frame, close_body, upgrade_request

import pubsock
from pubsock import Request, Response, Server, ServerWebSocket

pytestmark = pytest.mark.timeout(20)

MAX = 1000  # max_payload_length of the test server
MASKED = "Received an incorrectly masked frame"
RSV1 = "Received unexpected RSV1 bit"
UTF8 = "Received invalid UTF-8"
TOO_BIG = "Received too big message"


def fetch(req: Request, server: Server) -> Response | None:
    if server.upgrade(req, data=req.path):
        return None
    return Response("Upgrade failed", status=400)


class App:
    max_payload_length = MAX

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.closed: dict[str, asyncio.Event] = {}

    def open(self, ws: ServerWebSocket) -> None:
        self.closed[ws.data] = asyncio.Event()

    def message(self, ws: ServerWebSocket, message: str | bytes) -> None:
        self.events.append((ws.data, "message", message))
        ws.send(message)

    def close(self, ws: ServerWebSocket, code: int, reason: str) -> None:
        self.events.append((ws.data, "close", code, reason))
        self.closed[ws.data].set()


def frames(*parts: bytes) -> bytes:
    return b"".join(parts)


# (bytes sent after the handshake, expected close code, expected reason or None for "pubsock's choice")
CASES: dict[str, tuple[bytes, int, str | None]] = {
    "unmasked": (build_frame(1, b"hi", mask=False), 1002, MASKED),
    "unmasked-close": (build_frame(8, close_body(1000), mask=False), 1002, MASKED),
    "rsv1-text": (build_frame(1, b"hi", rsv=4), 1002, RSV1),
    "rsv1-ping": (build_frame(9, b"", rsv=4), 1002, RSV1),
    "rsv2": (build_frame(1, b"hi", rsv=2), 1002, None),
    "rsv3": (build_frame(2, b"hi", rsv=1), 1002, None),
    **{f"opcode-{op:x}": (build_frame(op, b"x"), 1002, None) for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)},
    "fragmented-ping": (build_frame(9, b"p", fin=False) + build_frame(0, b"q"), 1002, None),
    "fragmented-close": (build_frame(8, close_body(1000), fin=False), 1002, None),
    "ping-126": (build_frame(9, b"p" * 126), 1002, None),
    "pong-200": (build_frame(10, b"p" * 200), 1002, None),
    "close-126": (build_frame(8, close_body(1000, "r" * 124)), 1002, None),
    "stray-continuation": (build_frame(0, b"x"), 1002, None),
    "text-inside-fragmented": (build_frame(1, b"a", fin=False) + build_frame(1, b"b"), 1002, None),
    "binary-inside-fragmented": (build_frame(2, b"a", fin=False) + build_frame(2, b"b"), 1002, None),
    "length-msb": (b"\x82\xff\x80" + b"\x00" * 7 + b"mask", 1002, None),
    "utf8-single": (build_frame(1, b"ok \xff"), 1007, UTF8),
    "utf8-surrogate": (build_frame(1, b"\xed\xa0\x80"), 1007, UTF8),
    "utf8-overlong": (build_frame(1, b"\xc0\xaf"), 1007, UTF8),
    "utf8-truncated": (build_frame(1, "€".encode()[:2]), 1007, UTF8),
    "utf8-across-fragments": (build_frame(1, b"a\xce", fin=False) + build_frame(0, b"\x41"), 1007, UTF8),
    "utf8-truncated-at-end-of-fragments": (
        build_frame(1, b"abc", fin=False) + build_frame(0, "€".encode()[:1], fin=False) + build_frame(0, "€".encode()[1:2]),
        1007,
        UTF8,
    ),
    "utf8-close-reason": (build_frame(8, b"\x03\xe8\xff\xfe"), 1007, UTF8),
    "too-big-single-text": (build_frame(1, b"t" * (MAX + 1)), 1009, TOO_BIG),
    "too-big-single-binary": (build_frame(2, b"b" * 70000), 1009, TOO_BIG),
    "too-big-reassembled": (build_frame(2, b"b" * 600, fin=False) + build_frame(0, b"b" * 401), 1009, TOO_BIG),
    "too-big-reassembled-3": (
        build_frame(1, b"t" * 400, fin=False) + build_frame(0, b"t" * 400, fin=False) + build_frame(0, b"t" * 201),
        1009,
        TOO_BIG,
    ),
    **{f"close-code-{code}": (build_frame(8, close_body(code)), 1002, None) for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535)},
    "close-1-byte": (build_frame(8, b"\x03"), 1002, None),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_protocol_violation(name: str) -> None:
    data, code, reason = CASES[name]
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        # a good message first, then the violation, then a message that must be ignored
        client, _ = await RawClient.open_websocket(server.port, "/bad")
        try:
            client.write(build_frame(1, b"before") + data + build_frame(1, b"after"))
            echo = await client.recv_frame()
            frame = await client.recv_frame()
            rest = await client.expect_eof()
        finally:
            await client.close()
        await asyncio.wait_for(app.closed["/bad"].wait(), 5)
        assert server.pending_websockets == 0
    assert (echo.opcode, echo.payload) == (1, b"before")
    assert frame.opcode == 8 and frame.fin and not frame.masked
    assert frame.close_code == code
    if reason is not None:
        assert frame.close_reason == reason
    assert frame.close_reason  # a reason is always given
    assert len(frame.payload) <= 125
    assert rest == b""  # the TCP connection is closed right after the Close frame
    assert app.events == [("/bad", "message", "before"), ("/bad", "close", code, frame.close_reason)]


async def test_payload_exactly_at_the_limit_is_accepted() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port, "/ok")
        try:
            client.write(build_frame(2, b"x" * MAX))
            client.write(build_frame(1, b"y" * 500, fin=False) + build_frame(0, b"y" * 500))
            first = await client.recv_frame()
            second = await client.recv_frame()
            client.send_close(1000)
            close = await client.recv_frame()
        finally:
            await client.close()
    assert (len(first.payload), len(second.payload), close.close_code) == (MAX, MAX, 1000)


async def test_violation_split_across_writes() -> None:
    """The header of an oversized frame is enough: the server fails before the payload arrives."""
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client, _ = await RawClient.open_websocket(server.port, "/bad")
        try:
            frame = build_frame(2, b"z" * (1 << 20))
            client.write(frame[:14])  # header and mask only
            close = await client.recv_frame()
            await client.expect_eof()
        finally:
            await client.close()
    assert (close.close_code, close.close_reason) == (1009, TOO_BIG)


@pytest.mark.parametrize(
    "garbage",
    [b"\x81\x82abcd\x00\x00", b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n"],
    ids=["frame-first", "text", "bad-header"],
)
async def test_garbage_before_the_handshake_is_400(garbage: bytes) -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(garbage + upgrade_request())
            response = await client.read_response()
            rest = await client.expect_eof()
        finally:
            await client.close()
    assert response.status == 400
    assert rest == b""
    assert app.events == []


async def test_misbehaving_connection_does_not_disturb_another() -> None:
    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        good, _ = await RawClient.open_websocket(server.port, "/good")
        try:
            good.send_text("one")
            assert (await good.recv_frame()).payload == b"one"
            for name in ("unmasked", "utf8-single", "too-big-reassembled", "opcode-3", "close-1-byte"):
                bad, _ = await RawClient.open_websocket(server.port, "/bad")
                try:
                    bad.write(CASES[name][0])
                    assert (await bad.recv_frame()).opcode == 8
                    await bad.expect_eof()
                finally:
                    await bad.close()
                await asyncio.wait_for(app.closed["/bad"].wait(), 5)
                # garbage before any handshake on a third connection
                raw = await RawClient.connect(server.port)
                try:
                    raw.write(b"\x00\xff garbage\r\n\r\n")
                    assert (await raw.read_response()).status == 400
                finally:
                    await raw.close()
                good.send_text(name)
                echo = await good.recv_frame()
                assert (echo.opcode, echo.payload) == (1, name.encode())
            assert server.pending_websockets == 1
            good.send_close(1000)
            assert (await good.recv_frame()).close_code == 1000
        finally:
            await good.close()
        await asyncio.wait_for(app.closed["/good"].wait(), 5)
    good_events = [e for e in app.events if e[0] == "/good"]
    assert good_events == [
        ("/good", "message", "one"),
        *(("/good", "message", name) for name in ("unmasked", "utf8-single", "too-big-reassembled", "opcode-3", "close-1-byte")),
        ("/good", "close", 1000, ""),
    ]
    assert [e[2] for e in app.events if e[0] == "/bad"] == [1002, 1007, 1009, 1002, 1002]


async def test_websockets_client_sees_1009_for_a_large_message() -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedError

    app = App()
    async with pubsock.serve(fetch, websocket=app, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/big", max_size=None) as ws:
            await ws.send(b"x" * 500_000)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009
            assert ws.close_reason == TOO_BIG
        await asyncio.wait_for(app.closed["/big"].wait(), 5)
    assert app.events == [("/big", "close", 1009, TOO_BIG)]
