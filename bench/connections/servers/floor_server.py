"""The floor for a Python server on uvloop: a bare asyncio Protocol that answers the handshake and idles.

    python bench/connections/servers/floor_server.py --port 4001 [--compress] [--loop asyncio]

Not a WebSocket server: it finds Sec-WebSocket-Key with bytes.find, writes a canned 101 (accepting
permessage-deflate with no context takeover when offered and --compress is given) and keeps the transport.
No HTTP parser, no request object, no timers, no frame reader. What it costs per handshake and per idle
connection is what the event loop, the transport and the kernel cost: no Python server can do less.
"""

import argparse
import asyncio
import base64
import hashlib
import resource
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"


class Floor(asyncio.Protocol):
    __slots__ = ("transport", "compress")

    def __init__(self, compress: bool) -> None:
        self.transport = None
        self.compress = compress

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        start = data.find(b"Sec-WebSocket-Key: ")
        if start < 0 or not data.endswith(b"\r\n\r\n"):
            self.transport.close()
            return
        key = data[start + 19:data.index(b"\r\n", start)].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        ext = DEFLATE if self.compress and b"permessage-deflate" in data else b""
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n" + ext + b"\r\n")
        self.transport = None  # idle from here on (the transport keeps the protocol)


async def main(host: str, port: int, compress: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(compress), host, port, backlog=1024)
    async with server:
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    p.add_argument("--compress", action="store_true")
    p.add_argument("--subscribe", action="store_true", help="ignored")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"floor server ({a.loop}) on {a.host}:{a.port}", file=sys.stderr)
    if a.loop == "uvloop":
        import uvloop
        uvloop.run(main(a.host, a.port, a.compress))
    else:
        asyncio.run(main(a.host, a.port, a.compress))
