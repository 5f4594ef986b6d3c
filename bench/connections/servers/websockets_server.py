"""Idle-connections server on `websockets` (asyncio API): each handler waits for its socket to close.

    python bench/connections/servers/websockets_server.py --port 4001 [--compress] [--subscribe]

No keepalive pings. --compress: websockets' default permessage-deflate (compression="deflate": per-connection
compressor and decompressor with context takeover, server_max_window_bits=12, memLevel 5; the client's offer
decides client_max_window_bits); without it, compression=None. --subscribe: each socket joins one set.
Runs on uvloop when installed.
"""

import argparse
import asyncio
import resource
import sys

from websockets.asyncio.server import serve


async def main(host: str, port: int, compress: bool, subscribe: bool) -> None:
    room: set = set()

    async def handler(ws) -> None:
        if subscribe:
            room.add(ws)
        try:
            await ws.wait_closed()
        finally:
            room.discard(ws)

    async with serve(handler, host, port, compression="deflate" if compress else None, ping_interval=None,
                     backlog=1024):
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    p.add_argument("--compress", action="store_true")
    p.add_argument("--subscribe", action="store_true")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import websockets
    print(f"websockets {websockets.__version__} idle server on {a.host}:{a.port}, fd limit {hard}"
          f"{', compression=deflate' if a.compress else ''}", file=sys.stderr)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(a.host, a.port, a.compress, a.subscribe))
    else:
        uvloop.run(main(a.host, a.port, a.compress, a.subscribe))
