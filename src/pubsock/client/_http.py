"""The server's answer to the opening handshake (sans-I/O): an HTTP/1.1 response head and body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ..protocol.handshake import HandshakeError, header_tokens, header_values

__all__ = ["MAX_BODY", "MAX_HEAD", "BodyReader", "ResponseHead", "parse_response_head"]

MAX_HEAD: Final = 64 * 1024
"""The largest response head accepted, in bytes."""
MAX_BODY: Final = 1024 * 1024
"""The most of a non-101 response body kept; the rest is not read."""
_MAX_HEADERS: Final = 256
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response's status line and headers (``(name, value)`` pairs, in order)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]


def parse_response_head(buffer: bytes) -> tuple[ResponseHead, int] | None:
    """Parse the response head at the start of ``buffer``.

    Returns the head and its length in bytes (the rest of ``buffer`` follows it),
    or None if the head is not complete yet.

    Raises:
        HandshakeError: the bytes are not an HTTP/1.x response head, or it is larger
            than `MAX_HEAD`.
    """
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end < 0:
        if len(buffer) >= MAX_HEAD:
            raise HandshakeError(f"the server's response head is larger than {MAX_HEAD} bytes")
        prefix = bytes(buffer[:7])
        if prefix != b"HTTP/1."[: len(prefix)]:
            raise HandshakeError(f"the server did not answer with HTTP: {bytes(buffer[:40])!r}")
        return None
    lines = buffer[:end].split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise HandshakeError(f"invalid HTTP status line from the server: {bytes(lines[0][:80])!r}")
    if len(lines) - 1 > _MAX_HEADERS:
        raise HandshakeError(f"the server sent more than {_MAX_HEADERS} headers")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HandshakeError(f"invalid HTTP header line from the server: {bytes(line[:80])!r}")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    reason = (match.group(2) or b"").decode("latin-1")
    return ResponseHead(int(match.group(1)), reason, headers), end + 4


class BodyReader:
    """Collects the body of a non-101 response, up to `MAX_BODY` bytes.

    Feed it what follows the head; `feed` returns True once the body is complete
    (by ``Content-Length``, chunked encoding, or `MAX_BODY`). Call `eof` when the
    connection ends: a body delimited by the end of the connection is then complete.
    """

    def __init__(self, head: ResponseHead, limit: int = MAX_BODY) -> None:
        self._limit = limit
        self._body = bytearray()
        self._chunked = "chunked" in header_tokens(head.headers, "transfer-encoding")
        self._chunk_buffer = bytearray()
        self._chunk_left = -1  # bytes left in the current chunk plus its CRLF; -1 = expecting a size line
        self._remaining: int | None = None  # None: until the connection ends
        self.complete = False
        lengths = header_values(head.headers, "content-length")
        if head.status < 200 or head.status in (204, 304):
            self.complete = True
        elif not self._chunked and lengths:
            try:
                self._remaining = int(lengths[0])
            except ValueError:
                self._remaining = None
            else:
                self.complete = self._remaining <= 0

    @property
    def body(self) -> bytes:
        """The body collected so far."""
        return bytes(self._body)

    def feed(self, data: bytes) -> bool:
        """Add received bytes; return whether the body is complete."""
        if self.complete or not data:
            return self.complete
        if self._chunked:
            self._chunk_buffer += data
            self._dechunk()
        elif self._remaining is None:
            self._body += data
        else:
            self._body += data[: self._remaining]
            self._remaining -= min(len(data), self._remaining)
            self.complete = self._remaining == 0
        if len(self._body) >= self._limit:
            del self._body[self._limit :]
            self.complete = True
        return self.complete

    def eof(self) -> None:
        """The connection ended: whatever was received is the body."""
        self.complete = True

    def _dechunk(self) -> None:
        buffer = self._chunk_buffer
        while buffer:
            if self._chunk_left < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                try:
                    size = int(bytes(buffer[:end]).partition(b";")[0].strip(), 16)
                except ValueError:
                    self.complete = True  # malformed: keep what arrived
                    return
                del buffer[: end + 2]
                if size == 0:
                    self.complete = True  # trailers are not read
                    return
                self._chunk_left = size + 2
            take = min(self._chunk_left, len(buffer))
            self._body += buffer[: max(0, min(take, self._chunk_left - 2))]
            del buffer[:take]
            self._chunk_left -= take
            if self._chunk_left == 0:
                self._chunk_left = -1
