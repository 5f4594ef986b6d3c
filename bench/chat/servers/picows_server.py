"""Chat-room server on picows: keeps its own list of transports and send()s to each.

    python bench/chat/servers/picows_server.py --port 4001 --clients 16

picows hands out raw frames; the chat client never fragments, so a TEXT frame is a whole message.
The payload is not decoded: the output is the UTF-8 prefix "name: " plus the payload bytes.
"""

import argparse
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

from picows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

LIMIT = 16 * 1024 * 1024  # backpressure (write buffer high-water mark) pinned to 16 MiB in every server


async def main(host: str, port: int, clients: int) -> None:
    room: list = []
    loop = asyncio.get_running_loop()

    def send_ready() -> None:
        for t in room:
            t.send(WSMsgType.TEXT, b"ready")

    class Chat(WSListener):
        def __init__(self, name: str) -> None:
            self.prefix = f"{name}: ".encode()

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.underlying_transport.set_write_buffer_limits(high=LIMIT)
            room.append(transport)
            if len(room) == clients:
                loop.call_later(0.1, send_ready)

        def on_ws_frame(self, transport: WSTransport, frame) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.TEXT:
                out = self.prefix + frame.get_payload_as_bytes()
                for t in room:
                    t.send(WSMsgType.TEXT, out)
            elif kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if transport in room:
                room.remove(transport)

    def factory(request: WSUpgradeRequest) -> Chat:
        query = parse_qs(urlsplit(request.path.decode()).query)
        return Chat(query.get("name", ["?"])[0])

    server = await ws_create_server(factory, host, port, max_frame_size=LIMIT)
    print(f"picows chat server on {host}:{port} waiting for {clients} clients", file=sys.stderr)
    await server.serve_forever()


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
