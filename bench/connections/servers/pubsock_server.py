"""Idle-connections server on pubsock: upgrade every request, do nothing on the sockets.

    python bench/connections/servers/pubsock_server.py --port 4001 [--compress] [--subscribe] [--loop asyncio]

No idle timeout (the connections must stay open while they are measured). --compress: per_message_deflate =
True (shared compressor and decompressor, as Bun's perMessageDeflate: true). --subscribe: each socket
subscribes to one topic in open. --loop asyncio: the standard event loop instead of uvloop.
"""

import argparse
import resource
import sys

import pubsock


def make_handlers(compress: bool, subscribe: bool):
    class Idle:
        idle_timeout = 0
        per_message_deflate = compress

        def open(self, ws) -> None:
            if subscribe:
                ws.subscribe("room")

        def message(self, ws, message) -> None:
            pass

    def fetch(req, server):
        if server.upgrade(req):
            return None
        return pubsock.Response("Upgrade failed", status=400)

    return fetch, Idle()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4001)
    p.add_argument("--compress", action="store_true")
    p.add_argument("--subscribe", action="store_true")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fetch, idle = make_handlers(a.compress, a.subscribe)
    print(f"pubsock {getattr(pubsock, '__version__', '?')} ({pubsock.__file__}) idle server on {a.host}:{a.port}, "
          f"{a.loop}, fd limit {hard}{', permessage-deflate (shared)' if a.compress else ''}"
          f"{', one topic each' if a.subscribe else ''}", file=sys.stderr)
    pubsock.run(fetch=fetch, websocket=idle, hostname=a.host, port=a.port, use_uvloop=a.loop == "uvloop")
