"""Echo server: every WebSocket message is sent back as is.

Run: python examples/echo.py [PORT] [--deflate]   (default 9001; Autobahn's conformance target)

With ``--deflate`` it negotiates permessage-deflate (dedicated compressor and
decompressor) and compresses its answers.
"""

from __future__ import annotations

import argparse

import pubsock


class Echo(pubsock.WebSocketHandler):
    max_payload_length = 16 * 1024 * 1024

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.send(message, compress=True)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):
        return None
    return pubsock.Response("This is a WebSocket echo server.\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="WebSocket echo server")
    parser.add_argument("port", type=int, nargs="?", default=9001)
    parser.add_argument("--deflate", action="store_true", help="negotiate permessage-deflate")
    args = parser.parse_args()
    handlers = Echo()
    if args.deflate:
        handlers.per_message_deflate = {"compress": "dedicated", "decompress": "dedicated"}
    pubsock.run(fetch, websocket=handlers, port=args.port)
