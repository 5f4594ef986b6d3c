"""Sans-I/O tests of the RFC 6455 opening handshake, server side and client side."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pubsock.protocol.handshake import (
    GUID,
    UPGRADE_REQUIRED_RESPONSE,
    ForbiddenHeaderError,
    HandshakeError,
    UpgradeCheck,
    accept_key,
    build_client_request,
    build_switching_response,
    check_switching_response,
    check_upgrade_request,
    read_upgrade_request,
    header_tokens,
    header_values,
    validate_client_headers,
)

# RFC 6455 §1.3 and §4.2.2: the example key and the answer the server must give.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

Headers = list[tuple[str, str]]


def upgrade_request(**overrides: str | None) -> Headers:
    """The headers of a valid upgrade request; ``name=None`` drops a header, ``name=value`` replaces it.

    Keyword names use ``_`` for ``-`` (``sec_websocket_key``).
    """
    headers = {
        "Host": "example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in overrides.items():
        header = next((key for key in headers if key.lower() == name.replace("_", "-")), None)
        if header is None:
            header = name.replace("_", "-")
        if value is None:
            del headers[header]
        else:
            headers[header] = value
    return list(headers.items())


def parse_head(data: bytes) -> tuple[str, Headers]:
    """Split an HTTP/1.1 head into its first line and header pairs (a test-side parser)."""
    assert data.endswith(b"\r\n\r\n")
    first, *lines = data[:-4].decode("latin-1").split("\r\n")
    pairs = []
    for line in lines:
        name, _, value = line.partition(":")
        pairs.append((name, value.strip()))
    return first, pairs


# accept_key and header helpers -----------------------------------------------------------------


def test_accept_key_rfc_6455_example() -> None:
    assert accept_key(KEY) == ACCEPT


@pytest.mark.parametrize("key", ["AAAAAAAAAAAAAAAAAAAAAA==", base64.b64encode(bytes(range(16))).decode(), "x"])
def test_accept_key_is_sha1_of_key_and_guid(key: str) -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(key) == base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def test_header_values_are_case_insensitive_and_ordered() -> None:
    headers = [("X-A", "1"), ("x-a", "2"), ("X-B", "3"), ("X-A", "4")]
    assert header_values(headers, "x-A") == ["1", "2", "4"]
    assert header_values(headers, "X-C") == []


def test_header_tokens_split_strip_and_lower() -> None:
    headers = [("Connection", "keep-alive, Upgrade"), ("connection", " CLOSE ")]
    assert header_tokens(headers, "CONNECTION") == ["keep-alive", "upgrade", "close"]
    assert header_tokens(headers, "Upgrade") == []


# Server: check_upgrade_request -----------------------------------------------------------------


def test_valid_upgrade_request() -> None:
    assert check_upgrade_request(upgrade_request()) is UpgradeCheck.OK


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(upgrade_request(upgrade="WebSocket"), id="mixed-case"),
        pytest.param(upgrade_request(upgrade="WEBSOCKET"), id="upper-case"),
        pytest.param(upgrade_request(upgrade="h2c, websocket"), id="token-list"),
        pytest.param(upgrade_request(upgrade=" websocket ,foo/1"), id="spaces"),
        pytest.param(upgrade_request(connection="keep-alive, Upgrade"), id="connection-list"),
        pytest.param(upgrade_request(connection="keep-alive"), id="connection-not-checked"),
        pytest.param(upgrade_request(connection=None), id="connection-missing"),
        pytest.param(upgrade_request(sec_websocket_version=" 13 "), id="version-spaces"),
        pytest.param(upgrade_request(sec_websocket_key=f" {KEY} "), id="key-spaces"),
        pytest.param(upgrade_request(upgrade="h2c") + [("upgrade", "websocket")], id="two-upgrade-headers"),
        pytest.param([(name.upper(), value) for name, value in upgrade_request()], id="upper-case-names"),
        pytest.param([(name.lower(), value) for name, value in upgrade_request()], id="lower-case-names"),
    ],
)
def test_upgrade_request_accepted(headers: Headers) -> None:
    assert check_upgrade_request(headers) is UpgradeCheck.OK


def test_read_upgrade_request_gives_the_key_and_the_extension_offers() -> None:
    headers = upgrade_request(sec_websocket_key=f" {KEY} ") + [
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("sec-websocket-extensions", "x-webkit-deflate-frame"),
    ]
    assert read_upgrade_request(headers) == (
        UpgradeCheck.OK,
        KEY,
        ["permessage-deflate; client_max_window_bits", "x-webkit-deflate-frame"],
    )
    assert read_upgrade_request(upgrade_request(upgrade=None))[0] is UpgradeCheck.NOT_WEBSOCKET
    assert read_upgrade_request(upgrade_request()) == (UpgradeCheck.OK, KEY, [])


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        pytest.param(upgrade_request(upgrade=None), UpgradeCheck.NOT_WEBSOCKET, id="no-upgrade"),
        pytest.param(upgrade_request(upgrade="h2c"), UpgradeCheck.NOT_WEBSOCKET, id="h2c"),
        pytest.param(upgrade_request(upgrade="websockets"), UpgradeCheck.NOT_WEBSOCKET, id="websockets"),
        pytest.param(upgrade_request(upgrade="web socket"), UpgradeCheck.NOT_WEBSOCKET, id="web-socket"),
        pytest.param(upgrade_request(upgrade=""), UpgradeCheck.NOT_WEBSOCKET, id="empty-upgrade"),
        pytest.param(upgrade_request(sec_websocket_version=None), UpgradeCheck.BAD_VERSION, id="no-version"),
        pytest.param(upgrade_request(sec_websocket_version="8"), UpgradeCheck.BAD_VERSION, id="version-8"),
        pytest.param(upgrade_request(sec_websocket_version="14"), UpgradeCheck.BAD_VERSION, id="version-14"),
        pytest.param(upgrade_request(sec_websocket_version="13, 8"), UpgradeCheck.BAD_VERSION, id="version-list"),
        pytest.param(upgrade_request(sec_websocket_version=""), UpgradeCheck.BAD_VERSION, id="version-empty"),
        pytest.param(
            upgrade_request() + [("Sec-WebSocket-Version", "13")], UpgradeCheck.BAD_VERSION, id="two-versions"
        ),
        pytest.param(upgrade_request(sec_websocket_key=None), UpgradeCheck.BAD_KEY, id="no-key"),
        pytest.param(upgrade_request(sec_websocket_key=""), UpgradeCheck.BAD_KEY, id="empty-key"),
        pytest.param(upgrade_request(sec_websocket_key="not base64 at all!"), UpgradeCheck.BAD_KEY, id="not-base64"),
        pytest.param(
            upgrade_request(sec_websocket_key=base64.b64encode(b"x" * 15).decode()), UpgradeCheck.BAD_KEY, id="15-bytes"
        ),
        pytest.param(
            upgrade_request(sec_websocket_key=base64.b64encode(b"x" * 17).decode()), UpgradeCheck.BAD_KEY, id="17-bytes"
        ),
        pytest.param(upgrade_request(sec_websocket_key=KEY.rstrip("=")), UpgradeCheck.BAD_KEY, id="no-padding"),
        pytest.param(upgrade_request(sec_websocket_key="dGhlIHNhbXBs ZSBub25jZQ=="), UpgradeCheck.BAD_KEY, id="space"),
        pytest.param(upgrade_request(sec_websocket_key="é" * 24), UpgradeCheck.BAD_KEY, id="non-ascii"),
        pytest.param(upgrade_request() + [("Sec-WebSocket-Key", KEY)], UpgradeCheck.BAD_KEY, id="two-keys"),
        # The first failing rule decides: Upgrade, then the version, then the key.
        pytest.param(
            upgrade_request(upgrade="h2c", sec_websocket_version="8", sec_websocket_key=None),
            UpgradeCheck.NOT_WEBSOCKET,
            id="upgrade-first",
        ),
        pytest.param(
            upgrade_request(sec_websocket_version="8", sec_websocket_key=None),
            UpgradeCheck.BAD_VERSION,
            id="version-before-key",
        ),
    ],
)
def test_upgrade_request_refused(headers: Headers, verdict: UpgradeCheck) -> None:
    assert check_upgrade_request(headers) is verdict


def test_upgrade_check_values_explain_the_verdict() -> None:
    assert UpgradeCheck.OK.value == "ok"
    assert all(check.value for check in UpgradeCheck)


def test_upgrade_required_response() -> None:
    first, headers = parse_head(UPGRADE_REQUIRED_RESPONSE[: UPGRADE_REQUIRED_RESPONSE.index(b"\r\n\r\n") + 4])
    body = UPGRADE_REQUIRED_RESPONSE.partition(b"\r\n\r\n")[2]
    assert first == "HTTP/1.1 426 Upgrade Required"
    assert header_values(headers, "Sec-WebSocket-Version") == ["13"]
    assert header_values(headers, "Content-Length") == [str(len(body))]
    assert body == b"Upgrade Required"


# Server: build_switching_response --------------------------------------------------------------


def test_switching_response() -> None:
    assert build_switching_response(KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n"
    )


def test_switching_response_with_extra_headers() -> None:
    extra = [("Sec-WebSocket-Protocol", "chat"), ("Set-Cookie", "sid=1; Path=/"), ("Set-Cookie", "b=2"), ("X-É", "é")]
    response = build_switching_response(KEY, iter(extra))
    assert response.endswith(b"Set-Cookie: sid=1; Path=/\r\nSet-Cookie: b=2\r\nX-\xc9: \xe9\r\n\r\n")
    first, headers = parse_head(response)
    assert first == "HTTP/1.1 101 Switching Protocols"
    assert headers[:3] == [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)]
    assert headers[3:] == [(name, value.strip()) for name, value in extra]


@pytest.mark.parametrize(
    "header",
    [
        ("X-Injected", "a\r\nSet-Cookie: evil=1"),
        ("X-Injected", "a\rb"),
        ("X-Injected", "a\nb"),
        ("X-Injected", "a\0b"),
        ("X-In\r\njected", "value"),
        ("X-In\njected", "value"),
        ("X-In\0jected", "value"),
    ],
)
def test_switching_response_rejects_cr_lf_nul(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="CR, LF and NUL"):
        build_switching_response(KEY, [("X-Fine", "ok"), header])


# Client: validate_client_headers ----------------------------------------------------------------


def test_validate_client_headers_drops_the_fixed_ones() -> None:
    headers = [
        ("Connection", "keep-alive"),
        ("UPGRADE", "h2c"),
        ("sec-websocket-version", "8"),
        ("Sec-WebSocket-Key", KEY),
        ("Host", "other.example"),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Authorization", "Bearer x"),
        ("X-Empty", ""),
    ]
    assert validate_client_headers(iter(headers)) == headers[4:]


def test_validate_client_headers_empty() -> None:
    assert validate_client_headers([]) == []


@pytest.mark.parametrize(
    "header",
    [
        ("X-A", "1\r\n"),
        ("X-A", "\n"),
        ("X-A", "\r"),
        ("X-A", "\0"),
        ("X\r\nA", "1"),
        ("X\0", "1"),
        ("Connection\n", "x"),  # checked before the fixed headers are dropped
    ],
)
def test_validate_client_headers_rejects_cr_lf_nul(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="CR, LF and NUL"):
        validate_client_headers([header])


def test_validate_client_headers_rejects_empty_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_client_headers([("X-A", "1"), ("", "value")])


def test_forbidden_header_error_is_a_value_error() -> None:
    assert issubclass(ForbiddenHeaderError, ValueError)


# Client: build_client_request ------------------------------------------------------------------


def test_client_request() -> None:
    assert build_client_request("example.com:8080", "/chat?room=1", KEY) == (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def test_client_request_with_protocols_extensions_and_headers() -> None:
    request = build_client_request(
        "example.com",
        "/",
        KEY,
        headers=[("Authorization", "Bearer t"), ("X-Name", "naïve")],
        protocols=["chat", "superchat"],
        extensions="permessage-deflate; client_max_window_bits",
    )
    assert request == (
        b"GET / HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"Authorization: Bearer t\r\n"
        b"X-Name: na\xc3\xafve\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
def test_client_request_host_override(name: str) -> None:
    _, headers = parse_head(build_client_request("example.com", "/", KEY, headers=[(name, "proxy.example")]))
    assert header_values(headers, "host") == ["proxy.example"]


@pytest.mark.parametrize("name", ["Sec-WebSocket-Protocol", "sec-websocket-protocol"])
def test_client_request_protocol_override(name: str) -> None:
    request = build_client_request("example.com", "/", KEY, headers=[(name, "mine")], protocols=["a", "b"])
    _, headers = parse_head(request)
    assert header_values(headers, "Sec-WebSocket-Protocol") == ["mine"]
    assert header_values(headers, "Host") == ["example.com"]


def test_client_request_without_protocols_or_extensions() -> None:
    _, headers = parse_head(build_client_request("h", "/", KEY, protocols=[], extensions=""))
    assert header_values(headers, "Sec-WebSocket-Protocol") == []
    assert header_values(headers, "Sec-WebSocket-Extensions") == []


# Client: check_switching_response -------------------------------------------------------------

GOOD_RESPONSE: Headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)]


def test_switching_response_accepted() -> None:
    assert check_switching_response(101, GOOD_RESPONSE, KEY, []) == ""
    assert check_switching_response(101, GOOD_RESPONSE, KEY, ["chat"]) == ""


def test_switching_response_accepted_with_token_lists_and_any_case() -> None:
    headers = [("upgrade", "WebSocket"), ("CONNECTION", "keep-alive, upgrade"), ("sec-websocket-accept", ACCEPT)]
    assert check_switching_response(101, headers, KEY, []) == ""


@pytest.mark.parametrize("chosen", ["chat", " chat ", "superchat"])
def test_switching_response_with_offered_protocol(chosen: str) -> None:
    headers = [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", chosen)]
    assert check_switching_response(101, headers, KEY, ["chat", "superchat"]) == chosen.strip()


@pytest.mark.parametrize(
    ("status", "headers", "protocols", "message"),
    [
        pytest.param(200, GOOD_RESPONSE, [], "answered 200 instead of 101", id="200"),
        pytest.param(426, GOOD_RESPONSE, [], "answered 426", id="426"),
        pytest.param(101, GOOD_RESPONSE[1:], [], "no 'Upgrade: websocket'", id="no-upgrade"),
        pytest.param(101, [("Upgrade", "h2c"), *GOOD_RESPONSE[1:]], [], "no 'Upgrade: websocket'", id="h2c"),
        pytest.param(101, [GOOD_RESPONSE[0], GOOD_RESPONSE[2]], [], "no 'Connection: Upgrade'", id="no-connection"),
        pytest.param(
            101,
            [GOOD_RESPONSE[0], ("Connection", "keep-alive"), GOOD_RESPONSE[2]],
            [],
            "no 'Connection: Upgrade'",
            id="connection-keep-alive",
        ),
        pytest.param(101, GOOD_RESPONSE[:2], [], "Sec-WebSocket-Accept does not match", id="no-accept"),
        pytest.param(
            101,
            [*GOOD_RESPONSE[:2], ("Sec-WebSocket-Accept", accept_key("AAAAAAAAAAAAAAAAAAAAAA=="))],
            [],
            "Sec-WebSocket-Accept does not match",
            id="wrong-accept",
        ),
        pytest.param(
            101,
            [*GOOD_RESPONSE, ("Sec-WebSocket-Accept", ACCEPT)],
            [],
            "Sec-WebSocket-Accept does not match",
            id="two-accepts",
        ),
        pytest.param(
            101,
            [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "chat")],
            [],
            "not offered: chat",
            id="protocol-not-asked-for",
        ),
        pytest.param(
            101,
            [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "other")],
            ["chat"],
            "not offered: other",
            id="protocol-not-offered",
        ),
        pytest.param(
            101,
            [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "chat, superchat")],
            ["chat", "superchat"],
            "not offered: chat, superchat",
            id="protocol-list",
        ),
        pytest.param(
            101,
            [*GOOD_RESPONSE, ("Sec-WebSocket-Protocol", "chat"), ("Sec-WebSocket-Protocol", "chat")],
            ["chat"],
            "not offered: chat, chat",
            id="two-protocol-headers",
        ),
    ],
)
def test_switching_response_refused(status: int, headers: Headers, protocols: list[str], message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        check_switching_response(status, headers, KEY, protocols)


# Both sides together -----------------------------------------------------------------------------


def test_client_and_server_agree() -> None:
    key = base64.b64encode(bytes(range(100, 116))).decode()
    custom = validate_client_headers([("Sec-WebSocket-Protocol", "chat"), ("Upgrade", "h2c"), ("Cookie", "a=b")])
    first, request_headers = parse_head(build_client_request("example.com", "/ws", key, custom, ["ignored"]))
    assert first == "GET /ws HTTP/1.1"
    assert check_upgrade_request(request_headers) is UpgradeCheck.OK
    received_key = header_values(request_headers, "Sec-WebSocket-Key")[0]
    chosen = header_tokens(request_headers, "Sec-WebSocket-Protocol")[0]
    status_line, response_headers = parse_head(
        build_switching_response(received_key, [("Sec-WebSocket-Protocol", chosen)])
    )
    assert status_line.split()[1] == "101"
    assert check_switching_response(101, response_headers, key, ["chat"]) == "chat"
