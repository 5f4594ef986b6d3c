"""Chat-room server on aiohttp: keeps its own set of sockets and awaits send_str() to each.

    python bench/chat/servers/aiohttp_server.py --port 4001 --clients 16
"""

import argparse
import asyncio
import sys

from aiohttp import WSMsgType, web

LIMIT = 16 * 1024 * 1024  # backpressure (writer limit) pinned to 16 MiB in every server compared


async def main(host: str, port: int, clients: int) -> None:
    room: list = []  # snapshot-friendly: rebuilt on join/leave, iterated as a tuple per message
    members: tuple = ()
    loop = asyncio.get_running_loop()

    async def send_ready() -> None:
        for c in members:
            await c.send_str("ready")

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal members
        ws = web.WebSocketResponse(compress=False, max_msg_size=LIMIT, writer_limit=LIMIT)
        await ws.prepare(request)
        name = request.query.get("name")
        room.append(ws)
        members = tuple(room)
        if len(room) == clients:
            loop.call_later(0.1, lambda: asyncio.ensure_future(send_ready()))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    out = f"{name}: {msg.data}"
                    for c in members:
                        await c.send_str(out)
        finally:
            room.remove(ws)
            members = tuple(room)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"aiohttp chat server on {host}:{port} waiting for {clients} clients", file=sys.stderr)
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
