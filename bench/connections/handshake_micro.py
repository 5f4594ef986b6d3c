#!/usr/bin/env python3
r"""pubsock's own share of a handshake and of an idle connection, without sockets (a diagnostic).

    .venv/bin/python bench/connections/handshake_micro.py [--connections 5000] [--repeat 7] [--compress]

Drives the server's protocol objects directly: for each connection, a fake transport, HttpConnection
(the server's protocol factory), connection_made, data_received(the handshake request), and the hub's flush
of the 101 answer; the upgraded sockets are kept open. No kernel, no event-loop I/O: what remains is the
Python work pubsock does per handshake (µs, the best of --repeat batches) and the Python memory it keeps
per idle connection (tracemalloc, B/conn; the real transport, which uvloop allocates, is not included).
Use it to compare changes to the connection path; bench/connections/run.py gives the real figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "servers"))

import pubsock  # noqa: E402
from pubsock_server import make_handlers  # noqa: E402


class FakeTransport(asyncio.Transport):
    """Just enough of a transport for the handshake path; writes are counted, not sent."""

    __slots__ = ("protocol", "written", "closing", "peer")

    def __init__(self, peer: tuple[str, int]) -> None:
        self.protocol = None
        self.written = 0
        self.closing = False
        self.peer = peer

    def get_extra_info(self, name, default=None):
        if name == "peername":
            return self.peer
        if name == "sockname":
            return ("127.0.0.1", 4001)
        return default

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_protocol(self):
        return self.protocol

    def write(self, data) -> None:
        self.written += len(data)

    def writelines(self, chunks) -> None:
        for c in chunks:
            self.write(c)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def request(compress: bool) -> bytes:
    key = base64.b64encode(os.urandom(16))
    ext = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if compress else b""
    return (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + ext + b"\r\n")


async def batch(server, factory, requests: list[bytes], keep: list) -> float:
    """Handshake len(requests) connections; return the seconds spent (the hub's flushes included)."""
    t0 = time.perf_counter()
    for i, req in enumerate(requests):
        transport = FakeTransport(("127.0.0.%d" % (2 + i // 2500), 10000 + i % 50000))
        proto = factory()
        proto.connection_made(transport)
        proto.data_received(req)
        keep.append(transport)
        if i % 64 == 63:
            server._hub.flush()  # what the loop's call_soon would do, once per iteration
    server._hub.flush()
    return time.perf_counter() - t0


async def main(a: argparse.Namespace) -> None:
    fetch, idle = make_handlers(a.compress, a.subscribe)
    server = await pubsock.serve(fetch, websocket=idle, hostname="127.0.0.1", port=0)
    factory = lambda: pubsock.server.server.HttpConnection(server)  # noqa: E731 - as Server._create_server
    from pubsock.server import topics

    reqs = [request(a.compress) for _ in range(a.connections)]
    keep: list = []
    await batch(server, factory, reqs[: a.warmup], keep)  # warm-up
    times = []
    for _ in range(a.repeat):
        gc.collect()
        times.append(await batch(server, factory, reqs, keep))
        await asyncio.sleep(0)
    assert all(t.protocol is not None and type(t.protocol).__name__ == "ServerWebSocket" for t in keep[-10:]), \
        "the handshakes did not upgrade"
    best = min(times) * 1e6 / a.connections
    print(f"pubsock {pubsock.__file__} (compiled outbox: {topics.COMPILED}), {a.connections} handshakes x "
          f"{a.repeat}: best {best:.2f} µs/handshake, median {sorted(times)[len(times) // 2] * 1e6 / a.connections:.2f}"
          f"{', permessage-deflate' if a.compress else ''}")
    # memory: one more batch under tracemalloc
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    mem_keep: list = []
    await batch(server, factory, reqs, mem_keep)
    await asyncio.sleep(0)
    after = tracemalloc.take_snapshot()
    gc.collect()
    collected = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    fake = sum(s.size_diff for s in stats if s.traceback[0].filename == __file__)
    total = sum(s.size_diff for s in stats)
    total_gc = sum(s.size_diff for s in collected.compare_to(before, "lineno"))
    n = a.connections
    print(f"Python memory per idle connection, without the transport: {(total - fake) / n:.0f} B "
          f"({(total_gc - fake) / n:.0f} B after gc.collect())")
    if a.lines:
        for s in stats[: a.lines]:
            if s.traceback[0].filename != __file__ and abs(s.size_diff) >= n * 4:
                print(f"  {s.size_diff / n:7.1f} B {s.count_diff / n:5.2f} blocks  {s.traceback}")
    for transport in keep + mem_keep:  # the peers "disconnect", so that stop() does not wait for them
        transport.protocol.connection_lost(None)
    await server.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--compress", action="store_true")
    p.add_argument("--subscribe", action="store_true")
    p.add_argument("--lines", type=int, default=0, help="show the top allocation lines")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = p.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
