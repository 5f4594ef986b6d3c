"""Per-user topics: every socket of a user subscribes to ``user:<id>``; anything can publish to it.

Run: python docs/examples/howto_user_topics.py
Then: curl -d 'your order shipped' http://127.0.0.1:3000/notify/alice
"""

from __future__ import annotations

import json

import pubsock


def user_topic(user: str) -> str:
    return f"user:{user}"


class Inbox(pubsock.WebSocketHandler):
    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(user_topic(ws.data["user"]))  # every tab and device of this user

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        # A direct message: {"to": "bob", "text": "hi"} reaches all of bob's sockets.
        if not isinstance(message, str):
            return
        try:
            note = json.loads(message)
            to, text = str(note["to"]), str(note["text"])
        except (ValueError, TypeError, KeyError):
            ws.send(json.dumps({"error": 'send {"to": user, "text": ...}'}))
            return
        ws.publish(user_topic(to), json.dumps({"from": ws.data["user"], "text": text}))


async def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/ws":
        user = request.query.get("user")  # authenticate for real: see "Authenticate at upgrade"
        if user and server.upgrade(request, data={"user": user}):
            return None
        return pubsock.Response("Expected a WebSocket handshake with ?user=\n", status=400)
    if request.path.startswith("/notify/") and request.method == "POST":
        user = request.path.removeprefix("/notify/")
        text = await request.text()
        result = server.publish(user_topic(user), json.dumps({"from": "server", "text": text}))
        # result: the byte count; 0 if no socket of this user is here (or one dropped it); -1 if queued
        return pubsock.Response.json({"sockets": server.subscriber_count(user_topic(user)), "result": result})
    return pubsock.Response("Not Found\n", status=404)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Inbox(), port=3000)
