"""Echo server on picows: every data frame is sent back with its own opcode.

    python bench/echo/servers/picows_server.py --port 4001

picows hands out raw frames; the echo client never fragments, so a data frame is a whole message. The
payload is not decoded (picows does not validate UTF-8), only copied into the outgoing frame.
"""

import argparse
import asyncio
import sys

from picows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.BINARY:
            transport.send(kind, frame.get_payload_as_memoryview())
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def factory(request: WSUpgradeRequest) -> Echo:
    return Echo()


async def main(host: str, port: int) -> None:
    server = await ws_create_server(factory, host, port)
    print(f"picows echo server on {host}:{port}", file=sys.stderr)
    await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    a = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(a.host, a.port))
    else:
        uvloop.run(main(a.host, a.port))
