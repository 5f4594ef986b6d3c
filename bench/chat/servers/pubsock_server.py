"""Chat-room server on pubsock (public API as in ARCHITECTURE.md): native topic pub/sub, publish_to_self.

    python bench/chat/servers/pubsock_server.py --port 4001 --clients 16 [--compress]

--compress: per_message_deflate = True (shared compressor and decompressor) and ws.publish(..., compress=True),
so each publish is compressed once for all subscribers (they share one compressor key).
"""

import argparse
import asyncio
import sys

import pubsock

LIMIT = 16 * 1024 * 1024  # backpressure limit pinned to 16 MiB in every server compared


def make_handlers(clients: int, compress: bool = False):
    state = {"connected": 0, "server": None}

    class Chat:
        publish_to_self = True
        per_message_deflate = compress
        backpressure_limit = LIMIT
        close_on_backpressure_limit = False
        max_payload_length = LIMIT

        def open(self, ws) -> None:
            ws.subscribe("room")
            state["connected"] += 1
            if state["connected"] == clients:
                asyncio.get_running_loop().call_later(0.1, state["server"].publish, "room", "ready")

        def message(self, ws, message) -> None:
            if ws.publish("room", f"{ws.data['name']}: {message}", compress) == 0:
                raise RuntimeError("publish dropped a message (backpressure limit reached)")

        def close(self, ws, code, reason) -> None:
            state["connected"] -= 1

    def fetch(req, server):
        state["server"] = server
        if server.upgrade(req, data={"name": req.query.get("name")}):
            return None
        return pubsock.Response("Upgrade failed", status=400)

    return fetch, Chat()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--compress", action="store_true", help="permessage-deflate (shared) and compressed publishes")
    a = p.parse_args()
    fetch, chat = make_handlers(a.clients, a.compress)
    print(f"pubsock {getattr(pubsock, '__version__', '?')} ({pubsock.__file__}) chat server on "
          f"{a.host}:{a.port} waiting for {a.clients} clients"
          f"{', permessage-deflate (shared), compressed publishes' if a.compress else ''}", file=sys.stderr)
    pubsock.run(fetch=fetch, websocket=chat, hostname=a.host, port=a.port)
