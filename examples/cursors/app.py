"""Live cursors: open http://127.0.0.1:3000/ in several windows and move the mouse.

Run: python examples/cursors/app.py [--port 3000]

Each page sends its mouse position many times a second ("x y", both 0-10000, fractions of the
page); the server publishes it to the "cursors" topic as "id x y", and every other page draws a
cursor there. A newcomer gets "you id", then everyone's last position; "id -" means a page left.
``ws.publish`` skips the sender, so nobody gets their own cursor back.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pubsock

PAGE = (Path(__file__).parent / "index.html").read_bytes()
TOPIC = "cursors"
SCALE = 10_000  # positions are fractions of the page, in 1/10000ths


def parse_position(message: str | bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``"x y"`` as two ints within 0..SCALE, or None for anything else."""
    if not isinstance(message, str) or len(message) > 16:
        return None
    x, _, y = message.partition(" ")
    if not (x.isdecimal() and y.isdecimal()):  # no sign, no spaces, no "1_000"
        return None
    return min(int(x), SCALE), min(int(y), SCALE)


class Cursors(pubsock.WebSocketHandler):
    # Positions are worth little once stale: a page that cannot keep up loses updates (send/publish
    # return 0 for it) rather than piling up megabytes; the next move repairs its picture.
    backpressure_limit = 64 * 1024
    idle_timeout = 60

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.positions: dict[int, tuple[int, int]] = {}  # last known position of every page

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        me = ws.data["id"] = next(self.ids)
        ws.send(f"you {me}")
        for other, (x, y) in self.positions.items():  # open runs corked: one write for all of these
            ws.send(f"{other} {x} {y}")
        ws.subscribe(TOPIC)

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        position = parse_position(message)
        if position is None:
            return  # ignore what is not a position
        me = ws.data["id"]
        self.positions[me] = position
        ws.publish(TOPIC, f"{me} {position[0]} {position[1]}")  # everyone but the sender

    def close(self, ws: pubsock.ServerWebSocket, code: int, reason: str) -> None:
        me = ws.data["id"]
        self.positions.pop(me, None)
        ws.publish(TOPIC, f"{me} -")  # ws is closed: this reaches every remaining page


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/ws":
        if server.upgrade(request, data={}):
            return None
        return pubsock.Response("Expected a WebSocket handshake\n", status=400)
    if request.path == "/":
        return pubsock.Response(PAGE, headers={"Content-Type": "text/html;charset=utf-8"})
    return pubsock.Response("Not Found\n", status=404)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    print(f"live cursors: open http://{args.host}:{args.port}/ in several windows", flush=True)
    pubsock.run(fetch, websocket=Cursors(), hostname=args.host, port=args.port)


if __name__ == "__main__":
    main()
