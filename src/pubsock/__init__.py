"""pubsock: Bun's WebSocket server model for Python.

One ``fetch(request, server)`` handler answers HTTP; ``server.upgrade(request)``
turns a request into a WebSocket whose events go to handlers declared once per
server; topics (``subscribe``/``publish``) fan messages out at batch speed.
"""

from .http.multidict import Headers as Headers, QueryParams as QueryParams
from .http.request import Request as Request
from .http.response import Response as Response
from .server.handlers import WebSocketHandler as WebSocketHandler
from .server.server import Server as Server, run as run, serve as serve
from .server.websocket import ServerWebSocket as ServerWebSocket

__version__ = "0.1.0"

__all__ = [
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
