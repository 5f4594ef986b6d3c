"""Stream a large download to each client at the pace it reads: stop at -1, go on in ``drain``.

Run: python docs/examples/topic_backpressure.py, then read ws://127.0.0.1:3000/?chunks=1000 slowly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pubsock

CHUNK = 64 * 1024


@dataclass
class Download:
    chunks: int  # how many to send
    sent: int = 0


def chunk(index: int) -> bytes:
    return index.to_bytes(4, "big") * (CHUNK // 4)


class Streamer(pubsock.WebSocketHandler):
    backpressure_limit = 1024 * 1024  # a safety net: never more than ~1 MiB queued per socket

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        self.pump(ws)

    def drain(self, ws: pubsock.ServerWebSocket) -> None:
        self.pump(ws)  # some of the backlog reached the kernel: send more

    def pump(self, ws: pubsock.ServerWebSocket) -> None:
        download: Download = ws.data
        while download.sent < download.chunks:
            result = ws.send(chunk(download.sent))
            if result == 0:  # dropped (over backpressure_limit) or closed: this chunk is lost
                ws.close(1011, "lost a chunk")
                return
            download.sent += 1
            if result == -1:  # queued: it will be delivered; wait for drain before sending more
                return
        ws.close(1000, "done")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    chunks = min(int(request.query.get("chunks", "100")), 100_000)
    if server.upgrade(request, data=Download(chunks)):
        return None
    return pubsock.Response("Expected a WebSocket handshake\n", status=400)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Streamer(), port=3000)
