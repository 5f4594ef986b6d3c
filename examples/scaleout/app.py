"""Chat rooms that span processes: every worker serves the same rooms through a broker.

Run it on two workers sharing port 3000, with Redis (or NATS) carrying the rooms between them:

    python -m pubsock examples.scaleout.app:app --workers 2 --port 3000 --broker redis://127.0.0.1:6379/0
    python -m pubsock examples.scaleout.app:app --workers 2 --port 3000 --broker nats://127.0.0.1:4222

or as two separate nodes on two ports (or two hosts) that share the broker:

    PUBSOCK_BROKER=redis://127.0.0.1:6379/0 python -m pubsock examples.scaleout.app:app --port 3001
    PUBSOCK_BROKER=redis://127.0.0.1:6379/0 python -m pubsock examples.scaleout.app:app --port 3002

then open http://127.0.0.1:3000/ (or :3001 and :3002) in two tabs. Endpoints:

- ``GET /ws?room=lobby&name=ann``: the WebSocket; the server first sends ``* node <pid>``, then
  every message published to the room (your own too: ``publish_to_self``), as ``name: text``.
- ``POST /publish?room=lobby`` with a text body: publishes it to the room on every node (from HTTP).
- ``GET /stats``: this node's pid, local subscribers per room and broker counters, as JSON.
- ``GET /``: the chat page of ``examples/chat``.

``app`` is the mapping ``python -m pubsock`` serves: the keyword arguments of ``pubsock.serve()``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pubsock

PAGE = (Path(__file__).parent.parent / "chat" / "index.html").read_bytes()
log = logging.getLogger("scaleout")


class Rooms(pubsock.WebSocketHandler):
    publish_to_self = True  # the sender sees its message in the room's order, like everyone else

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.send(f"* node {os.getpid()}")
        ws.subscribe(ws.data["room"])

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            ws.publish(ws.data["room"], f"{ws.data['name']}: {message}")


def fetch(request: pubsock.Request, server: pubsock.Server) -> Any:
    if request.path == "/ws":
        room = request.query.get("room") or "lobby"
        name = (request.query.get("name") or "anonymous").strip()[:32] or "anonymous"
        if server.upgrade(request, data={"room": room, "name": name}):
            return None
        return pubsock.Response("Expected a WebSocket handshake", status=400)
    if request.path == "/publish" and request.method == "POST":
        return _publish(request, server)
    if request.path == "/stats":
        return _stats(request, server)
    if request.path == "/":
        return pubsock.Response(PAGE, headers={"Content-Type": "text/html;charset=utf-8"})
    return pubsock.Response("Not Found", status=404)


async def _publish(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response:
    room = request.query.get("room") or "lobby"
    server.publish(room, await request.text(), compress=False)
    return pubsock.Response("published\n")


def _stats(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response:
    link = server.broker_link
    rooms = request.query.get("rooms", "lobby").split(",")
    return pubsock.Response.json(
        {
            "pid": os.getpid(),
            "subscribers": {room: server.subscriber_count(room) for room in rooms},
            "broker": None
            if link is None
            else {
                "url": link.broker.url,
                "connected": link.connected,
                "topics": link.topics,
                "published": link.published,
                "received": link.received,
                "failed_publishes": link.failed_publishes,
                "outages": link.outages,
                "reconnects": link.reconnects,
            },
        }
    )


def broker_down(server: pubsock.Server, error: BaseException | None) -> None:
    log.warning("broker down (%s): rooms are local to this node until it is back", error)


def broker_back(server: pubsock.Server) -> None:
    log.warning("broker back: rooms span every node again")


app = {
    "fetch": fetch,
    "websocket": Rooms(),
    "on_broker_disconnect": broker_down,
    "on_broker_reconnect": broker_back,
}
