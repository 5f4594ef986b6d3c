"""The public API is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

import pubsock

EXPECTED_PUBLIC_NAMES = [
    "ClientConnection",
    "CloseEvent",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ErrorEvent",
    "Event",
    "HandshakeError",
    "InvalidStateError",
    "InvalidStatus",
    "InvalidURL",
    "MessageEvent",
    "WebSocket",
    "connect",
    "Headers",
    "QueryParams",
    "Request",
    "Response",
    "Server",
    "ServerWebSocket",
    "WebSocketHandler",
    "run",
    "serve",
]


def test_public_api_is_pinned() -> None:
    assert sorted(pubsock.__all__) == sorted(EXPECTED_PUBLIC_NAMES)


def test_every_public_name_exists() -> None:
    for name in pubsock.__all__:
        assert getattr(pubsock, name) is not None, name
