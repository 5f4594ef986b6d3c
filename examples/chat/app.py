"""A chat room: open http://127.0.0.1:3000/ in two browser tabs and talk.

Run: python examples/chat/app.py [--port 3000]   (``make run`` does it for you)

``fetch`` serves the page and upgrades ``/ws?name=...``; every socket subscribes
to the "room" topic, and each message is published to the whole room.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pubsock

PAGE = (Path(__file__).parent / "index.html").read_bytes()
ROOM = "room"


class Chat(pubsock.WebSocketHandler):
    publish_to_self = True  # the sender sees its own messages too, as everyone else sees them

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ROOM)
        ws.publish(ROOM, f"* {ws.data['name']} joined")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            ws.publish(ROOM, f"{ws.data['name']}: {message}")

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        ws.publish(ROOM, f"* {ws.data['name']} left")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/ws":
        name = (request.query.get("name") or "anonymous").strip()[:32] or "anonymous"
        if server.upgrade(request, data={"name": name}):
            return None
        return pubsock.Response("Expected a WebSocket handshake", status=400)
    if request.path == "/":
        return pubsock.Response(PAGE, headers={"Content-Type": "text/html;charset=utf-8"})
    return pubsock.Response("Not Found", status=404)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    print(f"chat room: open http://{args.host}:{args.port}/ in two browser tabs", flush=True)
    pubsock.run(fetch, websocket=Chat(), hostname=args.host, port=args.port)


if __name__ == "__main__":
    main()
