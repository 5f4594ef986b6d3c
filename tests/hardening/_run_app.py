"""A small app served by ``pubsock.run()`` for the signal tests: ``python _run_app.py LOOP CLOSE_TIMEOUT``.

It logs "pubsock listening on URL" (INFO, stderr) once its signal handlers are installed, prints
each websocket close to stdout, and prints "exited" when ``run()`` returns.
"""

from __future__ import annotations

import logging
import sys

import pubsock


class Echo:
    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes) -> None:
        ws.send(message)

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        print(f"close {code} {reason}", flush=True)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):
        return None
    return pubsock.Response("hello")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    loop, close_timeout = sys.argv[1], float(sys.argv[2])
    pubsock.run(fetch, websocket=Echo(), port=0, use_uvloop=loop == "uvloop", close_timeout=close_timeout)
    print("exited", flush=True)
