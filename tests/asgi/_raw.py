"""A raw HTTP/1.1 client for the ASGI tests: exact bytes out, parsed responses in, every read bounded."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

TIMEOUT = 5.0


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)  # the chunks of a chunked body, as framed

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def request(method: str, path: str, *headers: str, body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawHttp:
    """One TCP connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawHttp:
        sock = None
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        else:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(reader, writer)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError):
            pass

    async def read_head(self, timeout: float = TIMEOUT) -> RawResponse:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")[:-2]
        response = RawResponse(int(lines[0].split(" ", 2)[1]))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            response.headers.append((name, value.strip()))
        return response

    async def read_chunk(self, timeout: float = TIMEOUT) -> bytes:
        """Read one chunk of a chunked body (b"" for the last one)."""
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)).strip(), 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
        assert data.endswith(b"\r\n")
        return data[:-2]

    async def read_response(self, *, head_request: bool = False, timeout: float = TIMEOUT) -> RawResponse:
        """Read one response and its body (Content-Length, chunked, or up to EOF)."""
        response = await self.read_head(timeout)
        if head_request or response.status in (204, 304) or response.status < 200:
            return response
        length = response.header("content-length")
        if response.header("transfer-encoding") == "chunked":
            while chunk := await self.read_chunk(timeout):
                response.chunks.append(chunk)
            response.body = b"".join(response.chunks)
        elif length is not None:
            response.body = await asyncio.wait_for(self.reader.readexactly(int(length)), timeout)
        else:
            response.body = await asyncio.wait_for(self.reader.read(), timeout)
        return response

    async def at_eof(self, timeout: float = TIMEOUT) -> bool:
        """Whether the server closed the connection with nothing more to read."""
        try:
            return await asyncio.wait_for(self.reader.read(1), timeout) == b""
        except ConnectionError:
            return True
