"""Option checks and the opening request they produce (no network)."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest

from pubsock.client import InvalidURL
from pubsock.client._options import ClientOptions, HeadersLike, ProtocolsLike


def make(url: str = "ws://example.com:8080/chat?room=1", **overrides: Any) -> ClientOptions:
    options: dict[str, Any] = dict(
        headers=None,
        protocols=None,
        per_message_deflate=True,
        ssl=None,
        open_timeout=10,
        close_timeout=10,
        max_payload_length=1024,
        logger="pubsock.client",
    )
    options.update(overrides)
    return ClientOptions.create(url, **options)


def request_lines(options: ClientOptions, extensions: str | None = None) -> list[str]:
    request, key = options.request(extensions)
    assert request.endswith(b"\r\n\r\n")
    lines = request.decode().split("\r\n")[:-2]
    assert f"Sec-WebSocket-Key: {key}" in lines
    return lines


def test_default_request() -> None:
    lines = request_lines(make(), "permessage-deflate; client_max_window_bits")
    assert lines[0] == "GET /chat?room=1 HTTP/1.1"
    assert "Host: example.com:8080" in lines
    assert "Upgrade: websocket" in lines
    assert "Connection: Upgrade" in lines
    assert "Sec-WebSocket-Version: 13" in lines
    assert "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits" in lines
    assert not any(line.startswith("Sec-WebSocket-Protocol") for line in lines)


def test_keys_are_random() -> None:
    options = make()
    assert options.request(None)[1] != options.request(None)[1]


@pytest.mark.parametrize("headers", [{"X-Token": "abc"}, [("X-Token", "abc")]])
def test_custom_headers(headers: HeadersLike) -> None:
    assert "X-Token: abc" in request_lines(make(headers=headers))


def test_host_can_be_set() -> None:
    lines = request_lines(make(headers={"Host": "other.example"}))
    assert "Host: other.example" in lines
    assert not any(line.startswith("Host: example.com") for line in lines)


def test_protocol_header_overrides_protocols() -> None:
    options = make(headers={"Sec-WebSocket-Protocol": "b, c"}, protocols=["a"])
    assert options.protocols == ("b", "c")
    lines = request_lines(options)
    assert [line for line in lines if line.lower().startswith("sec-websocket-protocol")] == [
        "Sec-WebSocket-Protocol: b, c"
    ]


@pytest.mark.parametrize(
    ("protocols", "expected"), [("chat", ("chat",)), (["a", "b"], ("a", "b")), ((), ()), (None, ())]
)
def test_protocols(protocols: ProtocolsLike | None, expected: tuple[str, ...]) -> None:
    options = make(protocols=protocols)
    assert options.protocols == expected
    offered = [line for line in request_lines(options) if line.startswith("Sec-WebSocket-Protocol")]
    assert offered == ([f"Sec-WebSocket-Protocol: {', '.join(expected)}"] if expected else [])


@pytest.mark.parametrize("name", ["Connection", "Upgrade", "Sec-WebSocket-Version", "sec-websocket-key"])
def test_fixed_headers_cannot_be_overridden(name: str) -> None:
    lines = request_lines(make(headers={name: "evil"}))
    assert not any(line.endswith(": evil") for line in lines)


def test_extension_offer_follows_the_option() -> None:
    lines = request_lines(make(headers={"Sec-WebSocket-Extensions": "x-evil"}))
    assert not any("x-evil" in line for line in lines)


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "a\r\nInjected: 1"}, {"X-A": "a\nb"}, {"X-A\r\nB": "a"}, [("X-A", "a\rb")], {"X-A": "a\x00"}],
)
def test_cr_lf_in_headers(headers: HeadersLike) -> None:
    with pytest.raises(ValueError, match="X-A"):
        make(headers=headers)


@pytest.mark.parametrize("headers", [{"X-A": 1}, [("X-A",)], [("X-A", "b", "c")], ["ab"]])
def test_header_types(headers: Any) -> None:
    with pytest.raises(TypeError):
        make(headers=headers)


def test_empty_header_name() -> None:
    with pytest.raises(ValueError):
        make(headers={"": "x"})


@pytest.mark.parametrize("protocols", [["a b"], ["a", "a"], [""], ["chat,x"]])
def test_invalid_protocols(protocols: list[str]) -> None:
    with pytest.raises(ValueError):
        make(protocols=protocols)


def test_protocol_types() -> None:
    with pytest.raises(TypeError):
        make(protocols=[1])


def test_credentials_become_basic_auth() -> None:
    lines = request_lines(make("ws://user:pass@example.com/"))
    assert "Authorization: Basic dXNlcjpwYXNz" in lines
    lines = request_lines(make("ws://user:pass@example.com/", headers={"Authorization": "Bearer t"}))
    assert "Authorization: Bearer t" in lines
    assert not any("Basic" in line for line in lines)


def test_ssl() -> None:
    assert make("ws://example.com/").ssl is None
    default = make("wss://example.com/").ssl
    assert isinstance(default, ssl.SSLContext) and default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    context = ssl.create_default_context()
    assert make("wss://example.com/", ssl=context).ssl is context
    with pytest.raises(ValueError, match="wss://"):
        make("ws://example.com/", ssl=context)
    with pytest.raises(TypeError):
        make("wss://example.com/", ssl=True)


def test_numbers() -> None:
    assert make(max_payload_length=-5).max_payload_length == 0
    assert make(open_timeout=None, close_timeout=0.5).close_timeout == 0.5
    bad: dict[str, Any]
    for bad in ({"max_payload_length": 1.5}, {"max_payload_length": True}, {"open_timeout": "1"}):
        with pytest.raises(TypeError):
            make(**bad)
    with pytest.raises(ValueError):
        make(open_timeout=0)
    with pytest.raises(ValueError):
        make(close_timeout=-1)
    with pytest.raises(TypeError):
        make(per_message_deflate=1)


def test_logger() -> None:
    logger = logging.getLogger("custom")
    assert make(logger=logger).logger is logger
    assert make().logger.name == "pubsock.client"


def test_invalid_url() -> None:
    with pytest.raises(InvalidURL):
        make("ws://example.com/#x")
