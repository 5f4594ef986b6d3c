"""Tutorial, step 2: a room. Every message goes to everyone else in the room.

Run: python docs/examples/tutorial_step2.py
"""

from __future__ import annotations

import pubsock

ROOM = "room"


class Room(pubsock.WebSocketHandler):
    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ROOM)

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.publish(ROOM, message)  # every subscriber of ROOM except ws itself


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):
        return None
    if request.path == "/say":  # curl 'http://127.0.0.1:3000/say?text=tea+is+ready'
        server.publish(ROOM, request.query.get("text", "") or "(silence)")  # reaches every subscriber
        return pubsock.Response("published\n")
    return pubsock.Response(f"{server.subscriber_count(ROOM)} in the room\n")


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Room(), port=3000)
