#!/usr/bin/env python3
"""Open N idle WebSocket connections from several loopback source addresses and keep them open.

    python bench/connections/client.py --port 4001 --connections 10000 --per-address 2500 [--compress]

Each connection binds to a source address first (127.0.0.2, 127.0.0.3, ... from --first-address: --per-address connections on
each; one address has ~28k ephemeral ports, so 10k per address is safe), connects to 127.0.0.1:PORT, sends a
minimal RFC 6455 opening handshake (with `Sec-WebSocket-Extensions: permessage-deflate;
client_max_window_bits` under --compress, as browsers send it) and reads the 101 answer. At most
--concurrency handshakes are in flight, so the server's accept backlog never overflows (an overflow would
cost a 1 s SYN retransmit, not server CPU). Then nothing more is sent: the connections stay idle until the
process is stopped (by PID, by the runner) or --hold seconds have passed.

With --warmup W, the first W connections are opened first; the client prints a "warm" event and waits for a
line "go" on stdin before it opens the others (the runner reads its baseline in between).

stdout, JSON lines:
  {"event":"warm","n":W}                                  (with --warmup) the first W are open
  {"event":"start"}                                       before the first counted connect
  {"event":"connected","ms":...,"n":N,"deflate":k,...}    every handshake done (k answered with the extension)
  {"event":"result","error":...}                          on failure (then the process exits 1)

Runs on uvloop when installed. Raises its own RLIMIT_NOFILE soft limit to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux 4.2+


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < need:
        raise SystemExit(f"fd limit {soft} (hard {hard}) is below the {need} this run needs: lower --connections")
    return soft


class Conn(asyncio.Protocol):
    """One client connection: send the request, read until the end of the answer's head, then stay idle."""

    __slots__ = ("request", "done", "head", "transport")

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.head = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return  # idle: the server sends nothing (no pings), and anything else is ignored
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            head = self.head[:end].decode("latin-1")
            self.head = b""
            self.done.set_result(head)

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed during the handshake ({exc})"))


async def main(a: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    compress_line = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if a.compress else b""
    request_tpl = (
        b"GET " + a.path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" + compress_line + b"\r\n"
    )
    sources = [f"127.0.0.{a.first_address + i // a.per_address}" for i in range(a.connections)]
    if a.first_address + (a.connections - 1) // a.per_address > 254:
        emit(event="result", error="too many connections for the source addresses at --per-address")
        return 1
    sem = asyncio.Semaphore(a.concurrency)
    conns: list = []
    counts = {"deflate": 0}
    errors: list[str] = []

    async def one(i: int) -> None:
        async with sem:
            if errors:
                return
            key = base64.b64encode(os.urandom(16))
            done = loop.create_future()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                # the port is chosen at connect(), unique per 4-tuple: the TIME_WAIT sockets of earlier runs
                # (the client closes first) do not use up the source address's ports
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((sources[i], 0))
                await loop.sock_connect(sock, ("127.0.0.1", a.port))
                transport, proto = await loop.create_connection(
                    lambda: Conn(request_tpl % (a.port, key), done), sock=sock
                )
                head = await asyncio.wait_for(done, a.handshake_timeout)
            except Exception as exc:  # noqa: BLE001
                sock.close()
                errors.append(f"connection {i} from {sources[i]}: {type(exc).__name__}: {exc}")
                return
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " ":
                transport.close()
                errors.append(f"connection {i}: {status!r}")
                return
            if "permessage-deflate" in head.lower():
                counts["deflate"] += 1
            conns.append(transport)

    warm = min(a.warmup, a.connections)
    if warm:
        # A first batch, not counted: one-time costs (code paths run for the first time, lazy imports, the
        # first allocations of each kind) happen here. The runner reads its baseline, then says "go".
        await asyncio.gather(*(one(i) for i in range(warm)))
        if errors:
            emit(event="result", error=f"{len(errors)} connections failed; first: {errors[0]}", opened=len(conns))
            return 1
        emit(event="warm", n=len(conns))
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            emit(event="result", error="stopped after the warm-up")
            return 1
    emit(event="start", connections=a.connections - warm, sources=len(set(sources)))
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(warm, a.connections)))
    ms = (time.perf_counter() - t0) * 1000
    if errors:
        emit(event="result", error=f"{len(errors)} connections failed; first: {errors[0]}", opened=len(conns))
        return 1
    emit(event="connected", ms=round(ms, 1), n=len(conns), deflate=counts["deflate"],
         sources=len(set(sources)), runtime=f"python {sys.version.split()[0]} "
         f"({type(loop).__module__.split('.')[0]})")
    # Idle: wait to be stopped (or --hold seconds), watching for connections the server drops.
    deadline = time.monotonic() + a.hold
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        lost = sum(1 for t in conns if t.is_closing())
        if lost:
            emit(event="result", error=f"the server closed {lost} idle connections")
            return 1
    emit(event="result", error=None)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--per-address", type=int, default=2500, help="connections per source address")
    p.add_argument("--first-address", type=int, default=2, help="first source address is 127.0.0.K")
    p.add_argument("--concurrency", type=int, default=64, help="handshakes in flight")
    p.add_argument("--compress", action="store_true", help="offer permessage-deflate")
    p.add_argument("--handshake-timeout", type=float, default=15.0)
    p.add_argument("--warmup", type=int, default=0,
                   help="open this many first, print a 'warm' event and wait for 'go' on stdin")
    p.add_argument("--hold", type=float, default=300.0, help="seconds to keep the connections open at most")
    args = p.parse_args()
    raise_fd_limit(args.connections + 64)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main(args)))
    else:
        sys.exit(uvloop.run(main(args)))
