"""A chat room in twenty lines. Run: python docs/examples/quickstart.py"""

from __future__ import annotations

import pubsock


class Chat(pubsock.WebSocketHandler):
    publish_to_self = True  # options live beside the handlers, as in Bun

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe("room")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            ws.publish("room", f"{ws.data['name']}: {message}")

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        ws.publish("room", f"{ws.data['name']} left")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request, data={"name": request.query.get("name", "anon")}):
        return None
    return pubsock.Response("Upgrade failed", status=400)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Chat(), port=3000)  # blocking; uvloop when installed
