"""The handshake response parser and the non-101 body reader (no network)."""

from __future__ import annotations

import pytest

from pubsock.client import HandshakeError
from pubsock.client._http import MAX_HEAD, BodyReader, ResponseHead, parse_response_head


def test_complete_head_and_rest() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A:  b c \r\n\r\n\x81\x00"
    parsed = parse_response_head(data)
    assert parsed is not None
    head, size = parsed
    assert head == ResponseHead(101, "Switching Protocols", [("Upgrade", "websocket"), ("X-A", "b c")])
    assert data[size:] == b"\x81\x00"


@pytest.mark.parametrize("data", [b"", b"HTTP/1.1 101 OK\r\n", b"HTTP/1.1 101 OK\r\nA: b\r\n\r", b"HTT"])
def test_incomplete(data: bytes) -> None:
    assert parse_response_head(data) is None


def test_status_without_reason() -> None:
    parsed = parse_response_head(b"HTTP/1.0 404\r\n\r\n")
    assert parsed is not None and (parsed[0].status, parsed[0].reason) == (404, "")


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x81\x05hello",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 101 OK\r\n folded: x\r\n\r\n",
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(HandshakeError):
        parse_response_head(data)


def test_too_large() -> None:
    with pytest.raises(HandshakeError, match="larger"):
        parse_response_head(b"HTTP/1.1 101 OK\r\n" + b"X: " + b"a" * MAX_HEAD)


def test_too_many_headers() -> None:
    with pytest.raises(HandshakeError, match="headers"):
        parse_response_head(b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 300 + b"\r\n")


def head(status: int, *headers: tuple[str, str]) -> ResponseHead:
    return ResponseHead(status, "", list(headers))


def test_body_content_length() -> None:
    reader = BodyReader(head(403, ("Content-Length", "10")))
    assert not reader.feed(b"0123")
    assert reader.feed(b"456789extra")
    assert reader.body == b"0123456789"


def test_body_until_eof() -> None:
    reader = BodyReader(head(500))
    assert not reader.feed(b"abc")
    assert not reader.feed(b"def")
    reader.eof()
    assert reader.complete and reader.body == b"abcdef"


@pytest.mark.parametrize("status", [100, 204, 304])
def test_no_body(status: int) -> None:
    assert BodyReader(head(status, ("Content-Length", "5"))).complete


def test_empty_and_invalid_content_length() -> None:
    assert BodyReader(head(400, ("Content-Length", "0"))).complete
    reader = BodyReader(head(400, ("Content-Length", "x")))
    assert not reader.feed(b"ab")  # read until the end of the connection instead


def test_body_chunked() -> None:
    reader = BodyReader(head(400, ("Transfer-Encoding", "chunked")))
    data = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    done = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert done.index(True) == data.index(b"0\r\n") + 2
    assert reader.body == b"hello world"


def test_body_chunked_malformed_keeps_what_arrived() -> None:
    reader = BodyReader(head(400, ("Transfer-Encoding", "chunked")))
    assert reader.feed(b"3\r\nabc\r\nzz\r\n")
    assert reader.body == b"abc"


def test_body_limit() -> None:
    reader = BodyReader(head(200), limit=4)
    assert reader.feed(b"abcdef")
    assert reader.body == b"abcd"
