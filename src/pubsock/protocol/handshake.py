"""The RFC 6455 opening handshake (§4), both sides, without I/O.

Headers are given as a sequence of ``(name, value)`` pairs of ``str``; names
compare case-insensitively.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "GUID",
    "UpgradeCheck",
    "accept_key",
    "header_values",
    "header_tokens",
    "check_upgrade_request",
    "read_upgrade_request",
    "build_switching_response",
    "UPGRADE_REQUIRED_RESPONSE",
    "build_client_request",
    "ForbiddenHeaderError",
    "validate_client_headers",
    "HandshakeError",
    "check_switching_response",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

HeaderPairs = Sequence[tuple[str, str]]


def accept_key(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def header_values(headers: HeaderPairs, name: str) -> list[str]:
    """Return every value of header ``name`` (case-insensitive), in order."""
    lowered = name.lower()
    return [value for key, value in headers if key.lower() == lowered]


def header_tokens(headers: HeaderPairs, name: str) -> list[str]:
    """Return the comma-separated tokens of every ``name`` header, lower-cased and stripped."""
    return [token.strip().lower() for value in header_values(headers, name) for token in value.split(",")]


def _is_valid_key(key: str) -> bool:
    try:  # base64.b64decode(validate=True), without its wrappers
        return len(binascii.a2b_base64(key.encode("ascii"), strict_mode=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


class UpgradeCheck(enum.Enum):
    """The verdict on a request that asks to become a WebSocket."""

    OK = "ok"
    NOT_WEBSOCKET = "the Upgrade header has no 'websocket' token"
    BAD_KEY = "Sec-WebSocket-Key is missing or not base64 of 16 bytes"
    BAD_VERSION = "Sec-WebSocket-Version is missing or not 13"


def check_upgrade_request(headers: HeaderPairs) -> UpgradeCheck:
    """Validate an upgrade request's headers (Bun's rules: the method and ``Connection`` are not checked)."""
    return read_upgrade_request(headers)[0]


def read_upgrade_request(headers: HeaderPairs) -> tuple[UpgradeCheck, str, list[str]]:
    """Validate an upgrade request's headers and read what the answer needs, in one pass.

    Returns:
        The verdict (as ``check_upgrade_request``), the ``Sec-WebSocket-Key`` (stripped;
        meaningful only when the verdict is OK) and the ``Sec-WebSocket-Extensions`` values, in order.
    """
    websocket = False
    versions: list[str] = []
    keys: list[str] = []
    extensions: list[str] = []
    for name, value in headers:  # one pass (this runs once per handshake)
        lowered = name.lower()
        if lowered == "upgrade":
            websocket = websocket or "websocket" in [token.strip().lower() for token in value.split(",")]
        elif lowered == "sec-websocket-version":
            versions.append(value)
        elif lowered == "sec-websocket-key":
            keys.append(value)
        elif lowered == "sec-websocket-extensions":
            extensions.append(value)
    key = keys[0].strip() if len(keys) == 1 else ""
    if not websocket:
        return UpgradeCheck.NOT_WEBSOCKET, key, extensions
    if len(versions) != 1 or versions[0].strip() != "13":
        return UpgradeCheck.BAD_VERSION, key, extensions
    if len(keys) != 1 or not _is_valid_key(key):
        return UpgradeCheck.BAD_KEY, key, extensions
    return UpgradeCheck.OK, key, extensions


UPGRADE_REQUIRED_RESPONSE = (
    b"HTTP/1.1 426 Upgrade Required\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Content-Type: text/plain;charset=utf-8\r\n"
    b"Content-Length: 16\r\n"
    b"\r\n"
    b"Upgrade Required"
)
"""What the server answers itself to a missing or unsupported ``Sec-WebSocket-Version``."""


def _check_header_text(name: str, value: str) -> None:
    for text in (name, value):
        if "\r" in text or "\n" in text or "\0" in text:
            raise ValueError(f"header {name!r}: CR, LF and NUL are not allowed in names or values")


def build_switching_response(key: str, extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Return the ``101 Switching Protocols`` answer to a request with ``Sec-WebSocket-Key: key``.

    Raises:
        ValueError: a header name or value contains CR, LF or NUL.
    """
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
    )
    for name, value in extra_headers:
        _check_header_text(name, value)
        head += f"{name}: {value}\r\n"
    return (head + "\r\n").encode("latin-1")


# Client side -------------------------------------------------------------------------------------

FIXED_CLIENT_HEADERS = frozenset({"connection", "upgrade", "sec-websocket-version", "sec-websocket-key"})


class ForbiddenHeaderError(ValueError):
    """A custom header that a WebSocket client may not set."""


def validate_client_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Check custom client headers; return them without the ones the client fixes itself.

    ``Connection``, ``Upgrade``, ``Sec-WebSocket-Version`` and ``Sec-WebSocket-Key``
    are dropped (the client sets them); ``Host`` and ``Sec-WebSocket-Protocol`` are kept.

    Raises:
        ValueError: a name or value contains CR, LF or NUL, or a name is empty.
    """
    kept = []
    for name, value in headers:
        if not name:
            raise ValueError("header names must not be empty")
        _check_header_text(name, value)
        if name.lower() not in FIXED_CLIENT_HEADERS:
            kept.append((name, value))
    return kept


def build_client_request(
    host: str,
    resource: str,
    key: str,
    headers: Iterable[tuple[str, str]] = (),
    protocols: Sequence[str] = (),
    extensions: str | None = None,
) -> bytes:
    """Return the client's opening handshake request.

    ``headers`` (already validated) may override ``Host`` and ``Sec-WebSocket-Protocol``.
    """
    custom = list(headers)
    custom_names = {name.lower() for name, _ in custom}
    lines = [f"GET {resource} HTTP/1.1"]
    if "host" not in custom_names:
        lines.append(f"Host: {host}")
    lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocols and "sec-websocket-protocol" not in custom_names:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(protocols)}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    lines += [f"{name}: {value}" for name, value in custom]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class HandshakeError(Exception):
    """The server's answer does not complete a WebSocket handshake."""


def check_switching_response(status: int, headers: HeaderPairs, key: str, protocols: Sequence[str]) -> str:
    """Validate the server's answer to the client's request; return the chosen subprotocol ('' if none).

    Raises:
        HandshakeError: the status is not 101, or a required header is missing or wrong.
    """
    if status != 101:
        raise HandshakeError(f"the server answered {status} instead of 101 Switching Protocols")
    if "websocket" not in header_tokens(headers, "upgrade"):
        raise HandshakeError("the server's answer has no 'Upgrade: websocket'")
    if "upgrade" not in header_tokens(headers, "connection"):
        raise HandshakeError("the server's answer has no 'Connection: Upgrade'")
    accepts = header_values(headers, "sec-websocket-accept")
    if accepts != [accept_key(key)]:
        raise HandshakeError("the server's Sec-WebSocket-Accept does not match the key sent")
    chosen = header_values(headers, "sec-websocket-protocol")
    if not chosen:
        return ""
    if len(chosen) > 1 or chosen[0].strip() not in protocols:
        raise HandshakeError(f"the server chose a subprotocol that was not offered: {', '.join(chosen)}")
    return chosen[0].strip()
