"""Tutorial, step 1: an echo server. Run: python docs/examples/tutorial_step1.py"""

from __future__ import annotations

import pubsock


class Echo(pubsock.WebSocketHandler):
    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.send(message)  # str goes back as a text frame, bytes as a binary frame


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):  # a WebSocket handshake: the 101 is queued, and Echo takes over
        return None
    return pubsock.Response("Hello! This server speaks WebSocket.\n")  # any other request


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Echo(), port=3000)
