"""Chat-room server on `websockets` (asyncio API): keeps its own set of sockets, broadcast() to each.

    python bench/chat/servers/websockets_server.py --port 4001 --clients 16
"""

import argparse
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve

LIMIT = 16 * 1024 * 1024  # backpressure (write buffer high-water mark) pinned to 16 MiB in every server


async def main(host: str, port: int, clients: int) -> None:
    room: set = set()
    loop = asyncio.get_running_loop()

    async def handler(ws) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        name = query.get("name", ["?"])[0]
        room.add(ws)
        if len(room) == clients:
            loop.call_later(0.1, broadcast, room, "ready")
        try:
            async for message in ws:
                broadcast(room, f"{name}: {message}")
        finally:
            room.discard(ws)

    # No compression; no keepalive pings (a pong queued behind megabytes would time out the socket).
    async with serve(handler, host, port, compression=None, max_size=LIMIT, write_limit=LIMIT, ping_interval=None):
        print(f"websockets chat server on {host}:{port} waiting for {clients} clients", file=sys.stderr)
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    p.add_argument("--clients", type=int, default=16)
    a = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(a.host, a.port, a.clients))
    else:
        uvloop.run(main(a.host, a.port, a.clients))
