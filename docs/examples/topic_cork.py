"""Send a burst from a coroutine (after an await) as one write, with ``cork`` as in Bun."""

from __future__ import annotations

import asyncio

import pubsock

ROWS = [f"row {i}" for i in range(100)]


async def load_rows() -> list[str]:
    await asyncio.sleep(0)  # a database query
    return ROWS


class Snapshot(pubsock.WebSocketHandler):
    async def open(self, ws: pubsock.ServerWebSocket) -> None:
        rows = await load_rows()  # after an await the handler no longer runs corked...
        with ws.cork():  # ...so batch the burst: everything sent in the block leaves in one write
            for row in rows:
                ws.send(row)
            ws.send("end")


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):
        return None
    return pubsock.Response("Expected a WebSocket handshake\n", status=400)


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Snapshot(), port=3000)
