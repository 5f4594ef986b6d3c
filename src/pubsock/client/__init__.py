"""The WebSocket client: `WebSocket` (the browser's API) and `connect` (async iteration).

Both run on `ClientProtocol`, one asyncio Protocol over the sans-I/O core in
``pubsock.protocol``.
"""

from ._connection import ClientConnection as ClientConnection
from ._connection import connect as connect
from ._events import CloseEvent as CloseEvent
from ._events import ErrorEvent as ErrorEvent
from ._events import Event as Event
from ._events import MessageEvent as MessageEvent
from ._exceptions import ConnectionClosed as ConnectionClosed
from ._exceptions import ConnectionClosedError as ConnectionClosedError
from ._exceptions import ConnectionClosedOK as ConnectionClosedOK
from ._exceptions import HandshakeError as HandshakeError
from ._exceptions import InvalidStateError as InvalidStateError
from ._exceptions import InvalidStatus as InvalidStatus
from ._exceptions import InvalidURL as InvalidURL
from ._http import ResponseHead as ResponseHead
from ._websocket import WebSocket as WebSocket

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
    "ResponseHead",
    "WebSocket",
    "connect",
]
