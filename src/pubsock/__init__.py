"""pubsock: Bun's WebSocket server model for Python.

One ``fetch(request, server)`` handler answers HTTP; ``server.upgrade(request)``
turns a request into a WebSocket whose events go to handlers declared once per
server; topics (``subscribe``/``publish``) fan messages out at batch speed.
``WebSocket`` and ``connect`` are the client.
"""

from .client import (
    ClientConnection as ClientConnection,
    CloseEvent as CloseEvent,
    ConnectionClosed as ConnectionClosed,
    ConnectionClosedError as ConnectionClosedError,
    ConnectionClosedOK as ConnectionClosedOK,
    ErrorEvent as ErrorEvent,
    Event as Event,
    HandshakeError as HandshakeError,
    InvalidStateError as InvalidStateError,
    InvalidStatus as InvalidStatus,
    InvalidURL as InvalidURL,
    MessageEvent as MessageEvent,
    WebSocket as WebSocket,
    connect as connect,
)
from .http.multidict import Headers as Headers, QueryParams as QueryParams
from .http.request import Request as Request
from .http.response import Response as Response
from .server.handlers import WebSocketHandler as WebSocketHandler
from .server.server import Server as Server, run as run, serve as serve
from .server.websocket import ServerWebSocket as ServerWebSocket

__version__ = "0.1.0"

__all__ = [
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
