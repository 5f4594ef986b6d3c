"""Fuzz the HTTP side: request bytes through `HttpConnection`, then the handshake helpers.

Input: one flags byte (bit 0: small server limits; bit 1: check the handshake helpers
on the header values too; bits 2-7 unused), one byte seeding how the bytes are cut
into reads, then the bytes a client sends.

The connection runs on a fake transport inside an event loop, behind a ``fetch``
that upgrades ``/ws*`` (echoing websocket, permessage-deflate on) and answers
``/stream*`` with a streamed body, ``/async*`` from a coroutine, anything else with
a fixed body. Properties:
- no exception escapes, nothing is logged at ERROR, the loop reports no error;
- what the server writes is a well-formed sequence of HTTP/1.1 responses (status
  line, headers, a body framed by Content-Length or chunks, none for HEAD, 1xx, 204,
  304), one per request given to ``fetch`` plus at most a final error answer; or
  nothing; a ``101`` ends it, and what follows is valid unmasked WebSocket frames;
- nothing is written after ``write_eof``, ``close`` or ``abort``;
- once the client goes away, the server holds no connection, socket or topic.

``check_upgrade_request``, ``negotiate_server`` and ``accept_client_response`` also get
the request's header values: they may only answer (or raise ValueError, as
documented for ``accept_client_response``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Input, chunks, instrumented, main  # noqa: E402

if __name__ == "__main__":
    # fuzz the pure-Python frame reader and outbox, which are instrumented: the fuzzer then sees
    # the websocket's paths too (the compiled ones replay the crashers in the regression tests)
    os.environ.setdefault("PUBSOCK_NO_EXTENSIONS", "1")

with instrumented(__name__ == "__main__"):
    from pubsock.http.connection import HttpConnection
    from pubsock.http.request import Request
    from pubsock.http.response import Response
    from pubsock.protocol import _frames_py
    from pubsock.protocol import deflate as deflate_mod
    from pubsock.protocol.events import Close, ProtocolError
    from pubsock.protocol.handshake import UpgradeCheck, check_upgrade_request
    from pubsock.server.server import Server


class Finding(AssertionError):
    """A property of the HTTP connection does not hold."""


# -- the fake transport --------------------------------------------------------------------------


class FakeTransport:
    """Takes every write at once; records what the protocol does with it."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.protocol: Any = None
        self.closed = False  # close() or abort() called
        self.eof = False
        self.violations: list[str] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.eof:
            self.violations.append(f"write after write_eof: {bytes(data)[:80]!r}")
        elif self.closed:
            self.violations.append(f"write after close: {bytes(data)[:80]!r}")
        self.out += data

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.write(line)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


ERRORS = _Errors()
LOGGERS = ("pubsock", "asyncio")
_loop: asyncio.AbstractEventLoop | None = None


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _loop.set_exception_handler(lambda loop, context: ERRORS.records.append(f"loop: {context.get('message')}"))
    return _loop


def close_loop() -> None:
    """Close the harness' event loop (the regression tests call this at the end)."""
    global _loop
    if _loop is not None:
        _loop.close()
        _loop = None


# -- the app -------------------------------------------------------------------------------------


def _open(ws: Any) -> None:
    ws.subscribe("room")


def _message(ws: Any, message: str | bytes) -> None:
    ws.send(message)
    ws.publish("room", message, compress=True)
    if message == "close":
        ws.close(1000, "bye")


async def _stream() -> AsyncIterator[bytes | str]:
    yield b"a"
    await asyncio.sleep(0)
    yield ""
    yield "bc"


async def _later(request: Request) -> Response:
    body = await request.body()
    await asyncio.sleep(0)
    return Response(body[:32], status=201, headers={"X-Async": "1"})


def _fetch(methods: list[str]) -> Any:
    def fetch(request: Request, server: Server) -> Any:
        methods.append(request.method)
        path = request.path
        request.url  # noqa: B018 - exercised, not used
        request.query.get("a")
        if path.startswith("/ws"):
            if server.upgrade(request, headers={"X-Fuzz": "1", "Sec-WebSocket-Protocol": "chat, x"}):
                return None
            return Response("Upgrade failed", status=400)
        if path.startswith("/stream"):
            return Response(_stream(), headers={"Content-Type": "text/plain"})
        if path.startswith("/iter"):
            return Response(iter([b"x", "yz"]))
        if path.startswith("/async"):
            return _later(request)
        if path.startswith("/none"):
            return Response(None, status=204)
        return Response("ok", headers=[("X-Method", request.method)])

    return fetch


def _server(small: bool, methods: list[str]) -> Server:
    websocket = {"open": _open, "message": _message, "per_message_deflate": True}
    if small:
        websocket["max_payload_length"] = 64
        server = Server(
            _fetch(methods),
            websocket=websocket,
            max_header_size=256,
            max_header_count=8,
            max_request_body_size=64,
        )
    else:
        server = Server(_fetch(methods), websocket=websocket)
    server._loop = _get_loop()
    return server


# -- checking the output -------------------------------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5]\d\d) [^\r\n]*\r\n")
HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([^\r\n]*)")
CHUNK_SIZE = re.compile(rb"([0-9a-f]+)\r\n")


def _responses(out: bytes, methods: list[str]) -> tuple[int, dict[str, str] | None, bytes]:
    """Parse the answers; return their count, the 101's headers (or None) and the bytes after it."""
    pos = 0
    count = 0
    while pos < len(out):
        line = STATUS_LINE.match(out, pos)
        if line is None:
            raise Finding(f"answer {count + 1} does not start with a status line: {out[pos:pos + 80]!r}")
        end = out.find(b"\r\n\r\n", line.end() - 2)
        if end < 0:
            raise Finding(f"answer {count + 1} has no end of head: {out[pos:pos + 200]!r}")
        headers: dict[str, str] = {}
        for raw in out[line.end() : end].split(b"\r\n") if end > line.end() - 2 else []:
            if not raw:
                continue
            header = HEADER_LINE.fullmatch(raw)
            if header is None:
                raise Finding(f"answer {count + 1} has a malformed header line {raw!r}")
            name = header.group(1).decode("latin-1").lower()
            if name in headers and name in ("content-length", "transfer-encoding"):
                raise Finding(f"answer {count + 1} repeats {name}")
            headers[name] = header.group(2).decode("latin-1")
        status = int(line.group(1))
        method = methods[count] if count < len(methods) else None
        count += 1
        pos = end + 4
        if status == 101:
            return count, headers, out[pos:]
        if "content-length" in headers and "transfer-encoding" in headers:
            raise Finding(f"answer {count} has both Content-Length and Transfer-Encoding")
        if method == "HEAD" or status < 200 or status in (204, 304):
            continue
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = CHUNK_SIZE.match(out, pos)
                if size is None:
                    raise Finding(f"answer {count}: bad chunk at {out[pos:pos + 40]!r}")
                length = int(size.group(1), 16)
                pos = size.end() + length
                if out[pos : pos + 2] != b"\r\n":
                    raise Finding(f"answer {count}: chunk not followed by CRLF")
                pos += 2
                if length == 0:
                    break
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if pos + length > len(out):
                raise Finding(f"answer {count}: body shorter than Content-Length {length}")
            pos += length
        else:
            raise Finding(f"answer {count} ({status}) has neither Content-Length nor chunks")
    return count, None, b""


def _check_frames(headers: dict[str, str], frames: bytes) -> None:
    """What the server sends after its 101 must be complete, valid, unmasked frames."""
    inflater = None
    extensions = headers.get("sec-websocket-extensions")
    if extensions is not None:
        params = deflate_mod.accept_client_response(extensions, extensions)
        if params is not None:
            inflater = deflate_mod.Decompressor(params, "client")
    reader = _frames_py.FrameReader(False, 1 << 24, inflater)
    events = reader.feed(frames)
    for event in events:
        if isinstance(event, ProtocolError):
            raise Finding(f"the server sent an invalid frame: {event!r} in {frames[:200]!r}")
    if reader._buffer:
        raise Finding(f"the server left a frame incomplete: {reader._buffer[:80]!r}")
    if not reader.done and frames and not any(isinstance(event, Close) for event in events):
        pass  # the socket may still be open when the client leaves


# -- the run -------------------------------------------------------------------------------------


async def _settle() -> None:
    """Let the loop run what the input started (tail feeds, async answers, streamed bodies)."""
    me = asyncio.current_task()
    for _ in range(200):
        await asyncio.sleep(0)
        if not [task for task in asyncio.all_tasks() if task is not me]:
            await asyncio.sleep(0)
            return
    raise Finding("tasks still running after 200 loop iterations")


async def _converse(small: bool, pieces: list[bytes]) -> tuple[FakeTransport, Server, list[str]]:
    methods: list[str] = []
    server = _server(small, methods)
    transport = FakeTransport()
    connection = HttpConnection(server)
    transport.protocol = connection
    connection.connection_made(transport)  # type: ignore[arg-type]
    for piece in pieces:
        if transport.closed:
            break
        transport.protocol.data_received(piece)
        await asyncio.sleep(0)
    await _settle()
    transport.closed = True  # the client goes away
    transport.protocol.connection_lost(None)
    await _settle()
    return transport, server, methods


def _check_helpers(stream: bytes) -> None:
    """The handshake helpers on the header values of the input (split on CRLF, as latin-1)."""
    headers = []
    for line in stream.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    verdict = check_upgrade_request(headers)
    if not isinstance(verdict, UpgradeCheck):
        raise Finding(f"check_upgrade_request returned {verdict!r}")
    values = [value for _, value in headers]
    for options in (True, {"compress": "16KB", "decompress": "8KB"}, {"compress": "dedicated", "decompress": "shared"}):
        parsed = deflate_mod.DeflateOptions.from_option(options)
        assert parsed is not None
        answer = deflate_mod.negotiate_server(parsed, values)
        if answer is not None:
            text, params = answer
            # the answer must be acceptable to a client that made the offers
            for value in values:
                try:
                    deflate_mod.accept_client_response(text, value)
                except ValueError:
                    pass
            if not 9 <= params.server_max_window_bits <= 15 or not 8 <= params.client_max_window_bits <= 15:
                raise Finding(f"negotiated {params!r}")
    for value in values[:4]:
        for other in values[:4]:
            try:
                deflate_mod.accept_client_response(value, other)
            except ValueError:
                pass


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    seed = inp.byte()
    stream = inp.rest()
    ERRORS.records.clear()
    loop = _get_loop()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(ERRORS)
    try:
        transport, server, methods = loop.run_until_complete(_converse(bool(flags & 1), chunks(stream, seed)))
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(ERRORS)
    if ERRORS.records:
        raise Finding(f"logged: {ERRORS.records}")
    if transport.violations:
        raise Finding(f"transport misuse: {transport.violations}")
    count, upgrade_headers, frames = _responses(bytes(transport.out), methods)
    if count not in (len(methods), len(methods) + 1):
        raise Finding(f"{count} answers to {len(methods)} requests: {methods}")
    if upgrade_headers is not None:
        if count != len(methods):
            raise Finding("an answer went out besides the 101")
        _check_frames(upgrade_headers, frames)
    if server._connections or server._sockets or server._live or server._hub.topics:
        raise Finding("the server still holds state after the client left")
    if [handle for handle in loop._scheduled if not handle.cancelled()]:  # type: ignore[attr-defined]
        raise Finding(f"timers left: {loop._scheduled}")  # type: ignore[attr-defined]
    if flags & 2:
        _check_helpers(stream)


if __name__ == "__main__":
    main("http", test_one_input)
