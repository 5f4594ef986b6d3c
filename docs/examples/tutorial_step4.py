"""Tutorial, step 4: the browser page. Open http://127.0.0.1:3000/ in two tabs.

Run: python docs/examples/tutorial_step4.py
"""

from __future__ import annotations

from pathlib import Path

import pubsock

ROOM = "room"
PAGE = (Path(__file__).parent / "tutorial_chat.html").read_bytes()


class Chat(pubsock.WebSocketHandler):
    publish_to_self = True

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ROOM)
        ws.publish(ROOM, f"* {ws.data['name']} joined")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            ws.publish(ROOM, f"{ws.data['name']}: {message}")

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        ws.publish(ROOM, f"* {ws.data['name']} left")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/":
        return pubsock.Response(PAGE, headers={"Content-Type": "text/html;charset=utf-8"})
    if request.path == "/ws":
        name = request.query.get("name", "").strip()[:32] or "anonymous"
        if server.upgrade(request, data={"name": name}):
            return None
        return pubsock.Response("Expected a WebSocket handshake\n", status=400)
    return pubsock.Response("Not Found\n", status=404)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Chat(), port=3000)
