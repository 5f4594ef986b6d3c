"""The same broadcast server with pubsock: handlers per server, a topic instead of a set."""

from __future__ import annotations

import pubsock


class Broadcast(pubsock.WebSocketHandler):
    publish_to_self = True  # websockets' broadcast(CONNECTIONS, ...) includes the sender

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe("all")  # the topic replaces CONNECTIONS; it is left on close

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            ws.publish("all", f"{ws.data}: {message}")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request, data=request.query.get("name", "")):  # websocket.request, read once
        return None
    return pubsock.Response("Failed to open a WebSocket connection.\n", status=426)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Broadcast(), port=3000)
