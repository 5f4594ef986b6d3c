"""A minimal raw client for server tests: arbitrary bytes and frames in, parsed responses and frames out.

Everything is bounded by a timeout so that a misbehaving server fails a test
instead of hanging it. Loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_KEY",
    "TIMEOUT",
    "Frame",
    "HttpResponse",
    "RawClient",
    "accept_for",
    "build_frame",
    "close_body",
    "upgrade_request",
]

TIMEOUT = 5.0
DEFAULT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(
    path: str = "/",
    *,
    key: str | None = DEFAULT_KEY,
    version: str | None = "13",
    upgrade: str | None = "websocket",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """Return an opening handshake request; a ``None`` field leaves that header out."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    lines.append("Connection: Upgrade")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    for name, value in extra or []:
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """Return one frame. ``rsv`` is the 3 RSV bits (4 = RSV1); ``length`` overrides the header's length."""
    size = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if size < 126:
        head.append(bit | size)
    elif size < 65536:
        head.append(bit | 126)
        head += size.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += size.to_bytes(8, "big")
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


def close_body(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


@dataclass
class Frame:
    """A frame received from the server."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class RawClient:
    """One TCP connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(reader, writer)

    @classmethod
    async def open_websocket(
        cls, port: int, path: str = "/", *, after: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> tuple[RawClient, HttpResponse]:
        """Connect and complete the opening handshake; ``after`` goes in the same write as the request."""
        client = await cls.connect(port)
        client.write(upgrade_request(path, extra=extra) + after)
        response = await client.read_response(body=False)
        assert response.status == 101, response
        assert response.header("sec-websocket-accept") == accept_for(DEFAULT_KEY)
        return client, response

    # writing ------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **options: object) -> None:
        self.write(build_frame(opcode, payload, **options))  # type: ignore[arg-type]

    def send_text(self, text: str) -> None:
        self.send_frame(1, text.encode())

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        self.send_frame(8, b"" if code is None else close_body(code, reason))

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass

    # reading ------------------------------------------------------------------------------------

    async def _exactly(self, n: int, timeout: float) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def read_response(self, *, body: bool = True, head_request: bool = False, timeout: float = TIMEOUT) -> HttpResponse:
        """Read one HTTP response; with ``body`` read its body too (Content-Length, chunked or to EOF)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")[:-2]
        _, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        response = HttpResponse(int(status), reason[0] if reason else "", headers)
        if not body or head_request or response.status in (101, 204, 304):
            return response
        length = response.header("content-length")
        if response.header("transfer-encoding") == "chunked":
            response.chunked = True
            chunks = []
            while True:
                size_line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)
                size = int(size_line.strip(), 16)
                data = await self._exactly(size + 2, timeout)
                if size == 0:
                    break
                chunks.append(data[:-2])
            response.body = b"".join(chunks)
        elif length is not None:
            response.body = await self._exactly(int(length), timeout)
        else:
            response.body = await asyncio.wait_for(self.reader.read(), timeout)
        return response

    async def recv_frame(self, timeout: float = TIMEOUT) -> Frame:
        """Read one frame from the server."""
        b0, b1 = await self._exactly(2, timeout)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await self._exactly(2, timeout), "big")
        elif length == 127:
            length = int.from_bytes(await self._exactly(8, timeout), "big")
        masked = bool(b1 & 0x80)
        key = await self._exactly(4, timeout) if masked else b""
        payload = await self._exactly(length, timeout) if length else b""
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)

    async def recv_raw(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Read exactly ``n`` bytes."""
        return await self._exactly(n, timeout)

    async def expect_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Wait for the server to close the connection; return what it sent before (usually b'')."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""

    async def expect_silence(self, seconds: float = 0.1) -> None:
        """Assert that nothing arrives (and the connection stays open) for ``seconds``."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected silence, got {data!r}")
