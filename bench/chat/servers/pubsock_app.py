"""Chat-room app for `python -m pubsock` (one process or --workers N, with a broker): the scale-out benchmark.

    python -m pubsock pubsock_app:app --app-dir bench/chat/servers --port 4001 \
        --workers 2 --broker redis://127.0.0.1:6379/0

The chat logic is pubsock_server.py's (subscribe to "room", publish every message to the room including the
sender, 16 MiB backpressure limit). Only the "ready" signal differs: a worker counts only its own clients, so
no worker can tell when all N are connected. Instead, from its first client on, every worker publishes the
BINARY message "ready <pid> <local client count>" to the room every 100 ms (server.publish: to its own
clients and, through the broker, to the other workers'), until one of its own clients sends its first chat
message. The client (chat-client.mjs --ready-sync) waits until each socket has heard workers whose counts
sum to N, and never counts binary frames as deliveries. See bench/README.md, "Scale-out".
"""

import asyncio
import os

import pubsock

LIMIT = 16 * 1024 * 1024  # backpressure limit pinned to 16 MiB in every server compared
READY_EVERY = 0.1  # seconds between a worker's "ready" publishes


def create_app():
    """Factory: runs once in each worker process."""
    state = {"local": 0, "server": None, "timer": None, "started": False}
    pid = os.getpid()

    def announce() -> None:
        state["timer"] = None
        if state["started"] or state["server"] is None:
            return
        state["server"].publish("room", f"ready {pid} {state['local']}".encode(), False)
        state["timer"] = asyncio.get_running_loop().call_later(READY_EVERY, announce)

    class Chat:
        publish_to_self = True
        backpressure_limit = LIMIT
        close_on_backpressure_limit = False
        max_payload_length = LIMIT

        def open(self, ws) -> None:
            ws.subscribe("room")
            state["local"] += 1
            if state["timer"] is None and not state["started"]:
                state["timer"] = asyncio.get_running_loop().call_later(READY_EVERY, announce)

        def message(self, ws, message) -> None:
            if not state["started"]:
                state["started"] = True
                if state["timer"] is not None:
                    state["timer"].cancel()
                    state["timer"] = None
            if ws.publish("room", f"{ws.data['name']}: {message}", False) == 0:
                raise RuntimeError("publish dropped a message (backpressure limit reached)")

        def close(self, ws, code, reason) -> None:
            state["local"] -= 1

    def fetch(req, server):
        state["server"] = server
        if server.upgrade(req, data={"name": req.query.get("name")}):
            return None
        return pubsock.Response("Upgrade failed", status=400)

    return {"fetch": fetch, "websocket": Chat()}


app = create_app
