"""Tutorial, step 3: names. ``?name=`` is read once, at upgrade, and kept in ``ws.data``.

Run: python docs/examples/tutorial_step3.py
"""

from __future__ import annotations

import pubsock

ROOM = "room"


class Chat(pubsock.WebSocketHandler):
    publish_to_self = True  # ws.publish reaches the sender too: everyone sees the same log

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ROOM)
        ws.publish(ROOM, f"* {ws.data['name']} joined")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):  # ignore binary messages
            ws.publish(ROOM, f"{ws.data['name']}: {message}")

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        ws.publish(ROOM, f"* {ws.data['name']} left")  # ws is closed: this reaches everyone left


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    name = request.query.get("name", "").strip()[:32]
    if not name:
        return pubsock.Response("Add ?name=... to the URL\n", status=400)
    if server.upgrade(request, data={"name": name}):
        return None
    return pubsock.Response("Expected a WebSocket handshake\n", status=400)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Chat(), port=3000)
