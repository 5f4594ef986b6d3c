"""A ticker: one timer publishes a tick to every subscriber, many times a second.

Run the server:   python examples/ticker.py [--rate 20] [--port 3000]   (a page at http://127.0.0.1:3000/)
Then a swarm:     python examples/ticker.py swarm --clients 5000 --seconds 10 [--url ws://127.0.0.1:3000/ws]

Each tick is one ``server.publish("ticks", ...)``: the frame is built once and queued by reference for
every subscriber, and each socket is written once per event-loop iteration, so the cost of a tick grows
with the number of sockets, not with Python work per socket. The swarm opens many client connections and
checks that each one received consecutive ticks, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pubsock

TOPIC = "ticks"
T = TypeVar("T")
PAGE = b"""<!doctype html>
<html lang="en"><meta charset="utf-8"><title>pubsock ticker</title>
<style>body { font: 16px system-ui, sans-serif; margin: 2rem; } #price { font-size: 3rem; }</style>
<p id="price">&hellip;</p><p id="info">connecting&hellip;</p>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onmessage = (event) => {
    const tick = JSON.parse(event.data);
    document.getElementById("price").textContent = tick.price.toFixed(2);
    document.getElementById("info").textContent = `tick ${tick.seq}, ${tick.subscribers} subscribers`;
  };
  ws.onclose = () => { document.getElementById("info").textContent = "disconnected"; };
</script>
</html>
"""


class Ticker(pubsock.WebSocketHandler):
    # A subscriber that cannot keep up is cut off instead of silently missing ticks: its socket is
    # closed (the client sees 1006) once more than 1 MiB waits for it, and it can reconnect.
    backpressure_limit = 1024 * 1024
    close_on_backpressure_limit = True

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(TOPIC)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path == "/ws":
        if server.upgrade(request):
            return None
        return pubsock.Response("Expected a WebSocket handshake\n", status=400)
    if request.path == "/":
        return pubsock.Response(PAGE, headers={"Content-Type": "text/html;charset=utf-8"})
    return pubsock.Response("Not Found\n", status=404)


async def tick(server: pubsock.Server, rate: float, count: int | None = None) -> int:
    """Publish ``count`` ticks (forever if None), ``rate`` a second, to every subscriber of TOPIC.

    Ticks keep to a fixed schedule; a tick that is late by more than a period is not caught up
    with a burst, the schedule restarts instead. Returns how many ticks were published.
    """
    loop = asyncio.get_running_loop()
    period = 1 / rate
    price = 100.0
    seq = 0
    due = loop.time()
    while count is None or seq < count:
        price = max(0.01, price * (1 + random.gauss(0, 0.001)))
        tick = {"seq": seq, "price": round(price, 2), "subscribers": server.subscriber_count(TOPIC), "time": time.time()}
        server.publish(TOPIC, json.dumps(tick))
        seq += 1
        due += period
        delay = due - loop.time()
        if delay < -period:
            due, delay = loop.time(), 0.0
        await asyncio.sleep(max(delay, 0.0))
    return seq


async def serve_ticker(host: str, port: int, rate: float) -> None:
    """Serve until SIGINT or SIGTERM, then close every websocket with 1001."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with pubsock.serve(fetch, websocket=Ticker(), hostname=host, port=port) as server:
        print(f"ticker: {rate:g} ticks a second; page {server.url}, websocket {server.url.replace('http', 'ws', 1)}ws", flush=True)
        ticking = asyncio.create_task(tick(server, rate))
        await stopping.wait()
        ticking.cancel()


# the swarm -------------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """What one swarm client saw: the ticks' sequence numbers, in arrival order."""

    seqs: list[int] = field(default_factory=list)
    error: str | None = None

    def in_order(self) -> bool:
        """Whether every tick after the first one is the previous one plus 1."""
        return all(b == a + 1 for a, b in zip(self.seqs, self.seqs[1:]))


async def subscribe(url: str, ticks: int, seconds: float, subscriber: Subscriber, connecting: asyncio.Semaphore) -> None:
    """Connect, then read ``ticks`` ticks (or until ``seconds`` pass), recording their sequence numbers."""
    try:
        async with connecting:  # a bounded number of handshakes at a time: a SYN flood helps nobody
            ws = await pubsock.connect(url, per_message_deflate=False)
    except (OSError, TimeoutError, pubsock.HandshakeError) as exc:
        subscriber.error = f"connect: {type(exc).__name__}: {exc}"
        return
    try:
        async with asyncio.timeout(seconds):
            while len(subscriber.seqs) < ticks:
                subscriber.seqs.append(json.loads(await ws.recv())["seq"])
    except TimeoutError:
        if not subscriber.seqs:
            subscriber.error = "no tick"
    except pubsock.ConnectionClosed as exc:
        subscriber.error = f"{type(exc).__name__}: {exc}"
    finally:
        await ws.close()


async def swarm(url: str, clients: int, ticks: int, seconds: float, concurrency: int = 200) -> list[Subscriber]:
    """Open ``clients`` connections (``concurrency`` handshakes at a time); each reads ``ticks`` ticks within ``seconds``."""
    subscribers = [Subscriber() for _ in range(clients)]
    connecting = asyncio.Semaphore(concurrency)
    await asyncio.gather(*(subscribe(url, ticks, seconds, s, connecting) for s in subscribers))
    return subscribers


def report(subscribers: list[Subscriber], elapsed: float) -> str:
    received = sum(len(s.seqs) for s in subscribers)
    failed = [s for s in subscribers if s.error]
    out_of_order = [s for s in subscribers if not s.in_order()]
    lines = [
        f"{len(subscribers)} clients, {received} ticks received in {elapsed:.1f} s ({received / elapsed:,.0f}/s)",
        f"in order: {len(subscribers) - len(out_of_order)}, out of order: {len(out_of_order)}, failed: {len(failed)}",
    ]
    lines += [f"  {s.error}" for s in failed[:5]]
    return "\n".join(lines)


def raise_open_files_limit(needed: int) -> None:
    """Thousands of connections need thousands of file descriptors: raise the soft limit if allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed, else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=20, help="ticks a second (default 20)")
    crowd = sub.add_parser("swarm", help="connect many clients to a running ticker and check what they get")
    crowd.add_argument("--url", default="ws://127.0.0.1:3000/ws")
    crowd.add_argument("--clients", type=int, default=1000)
    crowd.add_argument("--seconds", type=float, default=10, help="how long each client listens at most (default 10)")
    crowd.add_argument("--ticks", type=int, default=100, help="ticks each client waits for (default 100)")
    args = parser.parse_args()
    if args.command == "swarm":
        raise_open_files_limit(args.clients + 256)
        started = time.monotonic()
        subscribers = run(swarm(args.url, args.clients, args.ticks, args.seconds))
        print(report(subscribers, time.monotonic() - started))
    else:
        raise_open_files_limit(65536)
        run(serve_ticker(args.host, args.port, args.rate))


if __name__ == "__main__":
    main()
