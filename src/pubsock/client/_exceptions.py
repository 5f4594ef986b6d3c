"""Exceptions raised by the WebSocket client."""

from __future__ import annotations

from ..protocol.handshake import HandshakeError

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InvalidStateError",
    "InvalidStatus",
    "InvalidURL",
]


class InvalidURL(ValueError):
    """The URL is not a valid ``ws://`` or ``wss://`` URL; ``url`` is the text given."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"{problem}: {url!r}")
        self.url = url


class InvalidStatus(HandshakeError):
    """The server answered the opening handshake with ``status`` instead of 101.

    ``headers`` are the response's ``(name, value)`` pairs and ``body`` its content
    (at most 1 MiB of it), e.g. a 403 page, or a redirect's ``Location``.
    """

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(f"the server answered {status} {reason} instead of 101 Switching Protocols".rstrip())
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class InvalidStateError(RuntimeError):
    """The call is not allowed in the socket's current ``ready_state`` (e.g. ``send`` while connecting)."""


class ConnectionClosed(Exception):
    """The connection is closed (or closing); ``code``, ``reason`` and ``was_clean`` say how.

    ``code`` is the peer's close code, 1005 if its Close frame had none, the code sent
    when pubsock failed the connection, or 1006 when the connection was lost without
    a Close frame.
    """

    def __init__(self, code: int, reason: str, was_clean: bool) -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip() + ("" if was_clean else " (not clean)"))
        self.code = code
        self.reason = reason
        self.was_clean = was_clean


class ConnectionClosedOK(ConnectionClosed):
    """The closing handshake completed with code 1000, 1001 or 1005 (no code)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or without a complete closing handshake."""
