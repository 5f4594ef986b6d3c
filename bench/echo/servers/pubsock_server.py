"""Echo server on pubsock: every message is sent back as is (text as text, binary as binary).

    python bench/echo/servers/pubsock_server.py --port 4001
"""

import argparse
import sys

import pubsock


class Echo(pubsock.WebSocketHandler):
    per_message_deflate = False

    def message(self, ws, message) -> None:
        ws.send(message)


def fetch(req, server):
    if server.upgrade(req):
        return None
    return pubsock.Response("Upgrade failed", status=400)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    a = p.parse_args()
    print(f"pubsock {getattr(pubsock, '__version__', '?')} ({pubsock.__file__}) echo server on {a.host}:{a.port}",
          file=sys.stderr)
    pubsock.run(fetch, websocket=Echo(), hostname=a.host, port=a.port)
