"""A chat app for the command line: python -m pubsock --app-dir docs/examples howto_deploy:app

With workers and Redis:
python -m pubsock --app-dir docs/examples howto_deploy:app --workers 2 --broker redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import os

import pubsock

ROOM = "room"


class Chat(pubsock.WebSocketHandler):
    publish_to_self = True

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ROOM)
        ws.send(f"* served by process {os.getpid()}")  # to see the workers share the clients

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.publish(ROOM, message)  # with --broker, subscribers in every worker get it


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/health":  # for the load balancer
        return pubsock.Response("ok\n")
    if server.upgrade(request):
        return None
    return pubsock.Response("Expected a WebSocket handshake\n", status=400)


# What `python -m pubsock howto_deploy:app` serves: serve()'s keyword arguments. Flags (--port,
# --workers, --broker, ...) and PUBSOCK_* variables override them.
app = {"fetch": fetch, "websocket": Chat(), "port": 3000}
