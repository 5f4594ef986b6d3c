"""URL parsing, as ``new WebSocket(url)`` does it (no network)."""

from __future__ import annotations

import pytest

from pubsock.client import InvalidURL
from pubsock.client._url import WebSocketURL, parse_url


@pytest.mark.parametrize(
    ("url", "secure", "host", "port", "resource"),
    [
        ("ws://example.com", False, "example.com", 80, "/"),
        ("wss://example.com", True, "example.com", 443, "/"),
        ("WS://Example.COM:8080/chat", False, "example.com", 8080, "/chat"),
        ("http://example.com/a", False, "example.com", 80, "/a"),
        ("https://example.com/a", True, "example.com", 443, "/a"),
        ("ws://127.0.0.1:9001/runCase?case=1&agent=x", False, "127.0.0.1", 9001, "/runCase?case=1&agent=x"),
        ("ws://[::1]:3000/", False, "::1", 3000, "/"),
        ("wss://[2001:db8::1]/x?y", True, "2001:db8::1", 443, "/x?y"),
        ("ws://example.com/a b?c d", False, "example.com", 80, "/a%20b?c%20d"),
        ("ws://example.com/é?q=ü", False, "example.com", 80, "/%C3%A9?q=%C3%BC"),
        ("ws://example.com/%41/?", False, "example.com", 80, "/%41/?"),
        ("ws://bücher.example/", False, "xn--bcher-kva.example", 80, "/"),
        ("  ws://example.com/  ", False, "example.com", 80, "/"),
    ],
)
def test_valid(url: str, secure: bool, host: str, port: int, resource: str) -> None:
    parsed = parse_url(url)
    assert (parsed.secure, parsed.host, parsed.port, parsed.resource) == (secure, host, port, resource)


@pytest.mark.parametrize(
    ("url", "host_header", "text"),
    [
        ("ws://example.com:80/", "example.com", "ws://example.com/"),
        ("wss://example.com:443/", "example.com", "wss://example.com/"),
        ("ws://example.com:443/", "example.com:443", "ws://example.com:443/"),
        ("http://[::1]:8080", "[::1]:8080", "ws://[::1]:8080/"),
        ("wss://[::1]", "[::1]", "wss://[::1]/"),
    ],
)
def test_host_header_and_text(url: str, host_header: str, text: str) -> None:
    parsed = parse_url(url)
    assert parsed.host_header == host_header
    assert str(parsed) == text


def test_credentials() -> None:
    parsed = parse_url("ws://user:p%40ss@example.com/")
    assert (parsed.username, parsed.password) == ("user", "p@ss")
    assert str(parsed) == "ws://user:p%40ss@example.com/"
    assert parse_url("ws://example.com/") == WebSocketURL(False, "example.com", 80, "/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "scheme"),
        ("example.com", "scheme"),
        ("", "scheme"),
        ("ws://example.com/#frag", "fragment"),
        ("ws://example.com/#", "fragment"),
        ("ws:///path", "no host"),
        ("ws://", "no host"),
        ("ws://user@:80/", "no host"),
        ("ws://example.com:99999/", "port"),
        ("ws://example.com:0/", "port"),
        ("ws://example.com:abc/", "port"),
        ("ws://[::1/", "IPv6"),
        ("ws://[zz::1]/", "IPv6"),
        ("ws://exa mple.com/", "host"),
        ("ws://" + "é" * 70 + ".com/", "host"),
        ("ws://exa<mple.com/", "host"),
        ("ws://example.com/\r\nX: y", "control"),
        ("ws://example.com/\x00", "control"),
    ],
)
def test_invalid(url: str, problem: str) -> None:
    with pytest.raises(InvalidURL, match=problem) as info:
        parse_url(url)
    assert info.value.url == url
    assert isinstance(info.value, ValueError)


def test_not_a_string() -> None:
    with pytest.raises(TypeError):
        parse_url(b"ws://example.com/")  # type: ignore[arg-type]
