"""Helpers for an ASGI app served with ``pubsock.serve(asgi=app, websocket=handlers)``.

``upgrade(scope, data=...)`` turns a WebSocket handshake that reached the app
into a pubsock WebSocket (topics, the ``websocket=`` handlers);
``get_server(scope)`` returns the running ``Server``, e.g. to publish from an
HTTP endpoint. See docs/asgi.md.
"""

from .http.asgi import ASGIApp as ASGIApp, Receive as Receive, Scope as Scope, Send as Send
from .http.asgi import get_server as get_server, upgrade as upgrade

__all__ = ["ASGIApp", "Receive", "Scope", "Send", "get_server", "upgrade"]
