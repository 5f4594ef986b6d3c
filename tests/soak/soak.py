"""Soak test: many clients publishing, reconnecting, reading slowly and vanishing, against one server process.

Run: python tests/soak/soak.py --clients 1000 --seconds 180     (``make soak``; ``test_soak.py`` runs a small one)

Roles (one script, three kinds of process, all on loopback and all stopped by PID):

* ``--role server``: two pubsock servers in one process (so one RSS), a chat app with ``--rooms`` topics. Even
  rooms live on server A (``backpressure_limit`` small, messages over it are dropped), odd rooms on server B (the
  same limit with ``close_on_backpressure_limit``). ``open`` subscribes the socket to its room and sends
  ``ack <n>``, ``n`` being the room's publish counter; ``message`` numbers the message with the room's next
  counter value and publishes ``m <room seq> <rest>`` to the room (``publish_to_self``). Handler errors (an
  ``error`` handler), ERROR log records and loop exceptions are counted. ``GET /stats`` answers both servers'
  ``stats()``, the counters, the room counters and VmRSS/VmHWM; ``GET /gc`` runs ``gc.collect()`` first.
* ``--role clients``: a share of the client slots, raw asyncio sockets (a small WebSocket client below). Each
  slot connects to a random room, publishes at random, and after a random lifetime leaves: a clean Close, an
  abrupt end without Close (FIN), or a reset (SO_LINGER 0); then reconnects. A fraction of connections are slow
  readers: they stop reading for several seconds (small SO_RCVBUF), so the server's buffer passes its limit.
  Delivery check: a healthy connection must receive every room seq from its ack + 1 on, without a gap, up to the
  moment it decides to leave, and (connections open at the end) up to the room's final counter. Slow readers'
  gaps are counted as dropped, not as losses.
* driver (default): starts the server, runs a warm-up wave of the same size and length/6 (its memory is the
  baseline, measured after every client left and ``gc.collect()``), then the main wave, then checks: no handler
  error, no lost message to a healthy connection, no unexpected close of one, Python's allocated blocks and gc
  objects back within baseline + 2 %, and RSS within baseline + 10 % (at least 2 MiB) once the allocators' caches
  are left out: glibc's free heap is trimmed (``malloc_trim``) before RSS is read, and the arenas pymalloc added
  at the peak and keeps (it frees an arena only when it is empty) are taken off, 1 MiB each. Prints the figures; exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import ctypes.util
import gc
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from typing import Any

HERE = os.path.abspath(__file__)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status(pid: int | str = "self") -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the kernel (glibc's ``malloc_trim``), so that RSS counts memory in use.

    Without it, RSS after a wave keeps what glibc's allocator cached at the wave's peak (freed buffers of slow
    readers, for one), which says nothing about a leak. A no-op where the C library has no ``malloc_trim``.
    """
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)


def pymalloc_arenas() -> int:
    """How many 1 MiB arenas Python's small-object allocator holds (``sys._debugmallocstats``; -1 if unknown).

    pymalloc frees an arena only when no object lives in it, so after a peak the count stays near its high-water
    mark even when every object of the peak is gone: it is cached memory, not a leak.
    """
    with tempfile.TemporaryFile("w+") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        for line in sink:
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return -1


def new_loop(kind: str = "uvloop") -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            pass
    return asyncio.new_event_loop()


# ----------------------------------------------------------------------------------------------- server


def run_server(args: argparse.Namespace) -> None:
    import logging

    import pubsock

    raise_nofile()
    counters = {"handler_errors": 0, "log_errors": 0, "loop_errors": 0}
    first_errors: list[str] = []
    room_seq = [0] * args.rooms

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                counters["log_errors"] += 1
                if len(first_errors) < 5:
                    first_errors.append(self.format(record))

    logging.getLogger().addHandler(Counting())

    class Room(pubsock.WebSocketHandler):
        publish_to_self = True
        backpressure_limit = args.backpressure_limit

        def __init__(self, close_on_limit: bool) -> None:
            self.close_on_backpressure_limit = close_on_limit

        def open(self, ws: pubsock.ServerWebSocket) -> None:
            room = ws.data
            if args.sndbuf:
                # Linux grows a socket's send buffer to 4 MB (tcp_wmem): a slow reader would have to fall megabytes
                # behind before backpressure_limit mattered. A fixed small buffer makes the limit bite in seconds.
                sock = ws._transport.get_extra_info("socket")  # noqa: SLF001 - test app only
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
            ws.subscribe(str(room))
            ws.send(f"ack {room_seq[room]}")

        def message(self, ws: pubsock.ServerWebSocket, message: Any) -> None:
            room = ws.data
            n = room_seq[room] = room_seq[room] + 1
            ws.publish(str(room), f"m {n} {message}")

        def error(self, ws: pubsock.ServerWebSocket, exc: BaseException) -> None:
            counters["handler_errors"] += 1
            if len(first_errors) < 5:
                first_errors.append(f"{type(exc).__name__}: {exc}")

    servers: dict[str, pubsock.Server] = {}

    def report(collect: bool) -> pubsock.Response:
        rss_untrimmed_kb = proc_status()["VmRSS"]
        if collect:
            for _ in range(3):
                gc.collect()
            release_free_heap()
        body = {
            "stats": {name: server.stats() for name, server in servers.items()},
            **counters,
            "first_errors": first_errors,
            "room_seq": room_seq,
            "rss_kb": proc_status()["VmRSS"],
            "rss_untrimmed_kb": rss_untrimmed_kb,
            "hwm_kb": proc_status()["VmHWM"],
            "objects": len(gc.get_objects()) if collect else None,
            "blocks": sys.getallocatedblocks(),
            "arenas": pymalloc_arenas() if collect else None,
            # with PYTHONTRACEMALLOC=1: every byte Python allocated and still holds, large buffers included
            "traced_kb": tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else None,
        }
        if collect and args.histogram:
            counts: dict[str, int] = {}
            for obj in gc.get_objects():
                counts[type(obj).__qualname__] = counts.get(type(obj).__qualname__, 0) + 1
            body["histogram"] = counts
        return pubsock.Response(json.dumps(body), headers={"Content-Type": "application/json"})

    def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
        if request.path == "/ws":
            room = int(request.query.get("room") or 0)
            if 0 <= room < args.rooms and server.upgrade(request, data=room):
                return None
            return pubsock.Response("bad upgrade", status=400)
        if request.path in ("/stats", "/gc"):
            return report(request.path == "/gc")
        return pubsock.Response("Not Found", status=404)

    async def main() -> None:
        def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            counters["loop_errors"] += 1
            if len(first_errors) < 5:
                first_errors.append(str(context.get("message")) + " " + repr(context.get("exception")))
            loop.default_exception_handler(context)

        asyncio.get_running_loop().set_exception_handler(on_loop_error)
        async with pubsock.serve(fetch, websocket=Room(False), port=0) as a, pubsock.serve(
            fetch, websocket=Room(True), port=0
        ) as b:
            servers["a"], servers["b"] = a, b
            print(json.dumps({"ports": [a.port, b.port]}), flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    loop = new_loop(args.server_loop)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ----------------------------------------------------------------------------------------------- clients


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


class Stats:
    def __init__(self) -> None:
        self.c: dict[str, int] = dict.fromkeys(
            (
                "connections", "reconnects", "connect_failures", "handshake_rejected", "sent", "delivered",
                "dropped_slow", "lost_healthy", "out_of_order", "bad_payload", "unexpected_close",
                "closed_by_server_slow", "clean_closes", "abrupt_fin", "abrupt_rst", "slow_readers", "slow_pauses",
                "checked_connections", "tail_checked",
            ),
            0,
        )
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


class Conn(asyncio.Protocol):
    """One WebSocket connection: handshake, frame parsing, the delivery check."""

    def __init__(self, stats: Stats, room: int, slow: bool, pad: int, name: str) -> None:
        self.stats, self.room, self.slow, self.pad, self.name = stats, room, slow, pad, name
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.opened = False
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.acked = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.expected = -1  # next room seq due; -1 before the ack
        self.leaving = False  # the client decided to go: stop checking
        self.got_close = False
        self.lost = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        transport.write(  # type: ignore[attr-defined]
            (
                f"GET /ws?room={self.room} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acked.done():
            self.acked.set_exception(ConnectionError("closed before the ack"))
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.leaving and self.opened:
            if self.slow:
                self.stats.c["closed_by_server_slow"] += 1
            else:
                self.stats.c["unexpected_close"] += 1
                self.stats.problem(f"{self.name}: healthy connection closed by the server ({exc!r})")
            self.leaving = True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.opened:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.stats.c["handshake_rejected"] += 1
                self.stats.problem(f"{self.name}: handshake answer {head[:40]!r}")
                self.leaving = True
                self.transport.abort()  # type: ignore[union-attr]
                return
            self.opened = True
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if size - pos < 4:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < h + n:
                break
            payload = bytes(buf[pos + h : pos + h + n])
            pos += h + n
            self.frame(b0 & 0x0F, payload)
        del buf[:pos]

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:
            if payload[:2] == b"m ":
                self.on_message(payload)
            elif payload[:4] == b"ack ":
                self.expected = int(payload[4:]) + 1
                if not self.acked.done():
                    self.acked.set_result(None)
            else:
                self.stats.c["bad_payload"] += 1
        elif opcode == 9:
            self.send(10, payload)
        elif opcode == 8:
            self.got_close = True
            if not self.leaving:  # the server closed it (close_on_backpressure_limit, or a fault)
                if self.slow:
                    self.stats.c["closed_by_server_slow"] += 1
                else:
                    self.stats.c["unexpected_close"] += 1
                    self.stats.problem(f"{self.name}: healthy connection got Close {payload[:2].hex()}")
                self.leaving = True
                self.send(8, payload[:2])
            self.transport.close()  # type: ignore[union-attr]
        elif opcode != 10:
            self.stats.c["bad_payload"] += 1

    def on_message(self, payload: bytes) -> None:
        stats = self.stats
        stats.c["delivered"] += 1
        end = payload.index(b" ", 2)
        seq = int(payload[2:end])
        # "m <seq> <publisher> <pubseq> <pad>"
        if len(payload) - payload.rindex(b" ") - 1 != self.pad:
            stats.c["bad_payload"] += 1
        if self.leaving or self.expected < 0:
            return
        expected = self.expected
        if seq == expected:
            self.expected = seq + 1
        elif seq < expected:
            stats.c["out_of_order"] += 1
            stats.problem(f"{self.name}: room {self.room} seq {seq} after {expected - 1}")
        else:
            gap = seq - expected
            self.lost += gap
            if self.slow:
                stats.c["dropped_slow"] += gap
            else:
                stats.c["lost_healthy"] += gap
                stats.problem(f"{self.name}: room {self.room} lost seq {expected}..{seq - 1}")
            self.expected = seq + 1

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))


class ClientRunner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.conns: set[Conn] = set()
        self.rng = random.Random(args.seed)
        self.pad_text = "x" * args.pad

    async def open(self, room: int, slow: bool, name: str) -> Conn | None:
        args, loop = self.args, asyncio.get_running_loop()
        port = args.ports[room % 2]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if slow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn: Conn | None = None
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
            _, conn = await loop.create_connection(
                lambda: Conn(self.stats, room, slow, args.pad, name), sock=sock
            )
            await asyncio.wait_for(conn.acked, 10)
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            self.stats.c["connect_failures"] += 1
            self.stats.problem(f"{name}: connect failed: {exc!r}")
            if conn is not None:
                conn.leaving = True
                conn.transport.abort()  # type: ignore[union-attr]
            else:
                sock.close()
            return None
        self.stats.c["connections"] += 1
        self.stats.c["slow_readers"] += slow
        self.conns.add(conn)
        return conn

    async def leave(self, conn: Conn, how: str) -> None:
        conn.leaving = True
        transport = conn.transport
        assert transport is not None
        if transport.is_closing():
            pass
        elif how == "clean":
            self.stats.c["clean_closes"] += 1
            if conn.slow:
                transport.resume_reading()
            conn.send(8, struct.pack("!H", 1000))
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), 5)
            except asyncio.TimeoutError:
                self.stats.problem(f"{conn.name}: no close from the server within 5 s")
                transport.abort()
        elif how == "fin":
            self.stats.c["abrupt_fin"] += 1
            transport.abort()
        else:
            self.stats.c["abrupt_rst"] += 1
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self.conns.discard(conn)

    async def slow_reader(self, conn: Conn, rng: random.Random, stop_at: float) -> None:
        transport = conn.transport
        assert transport is not None
        while not conn.leaving:
            await asyncio.sleep(rng.uniform(1, 4))
            if conn.leaving or time.time() >= stop_at:
                return
            transport.pause_reading()
            self.stats.c["slow_pauses"] += 1
            await asyncio.sleep(min(rng.uniform(5, 15), max(0.0, stop_at - time.time())))
            if not transport.is_closing():
                transport.resume_reading()

    async def slot(self, index: int, stop_at: float) -> None:
        args = self.args
        rng = random.Random(f"{args.seed}-{index}")
        await asyncio.sleep(rng.uniform(0, args.ramp))
        name = f"p{args.seed}s{index}"
        pub = 0
        first = True
        while time.time() < stop_at:
            room = rng.randrange(args.rooms)
            slow = rng.random() < args.slow_fraction
            conn = await self.open(room, slow, f"{name}c{pub}")
            if conn is None:
                await asyncio.sleep(rng.uniform(0.5, 2))
                continue
            if not first:
                self.stats.c["reconnects"] += 1
            first = False
            slow_task = asyncio.ensure_future(self.slow_reader(conn, rng, stop_at)) if slow else None
            leave_at = min(stop_at, time.time() + rng.expovariate(1 / args.lifetime))
            while not conn.leaving:
                wait = rng.expovariate(1 / args.interval)
                if time.time() + wait >= leave_at:
                    await asyncio.sleep(max(0.0, leave_at - time.time()))
                    break
                await asyncio.sleep(wait)
                if conn.leaving:
                    break
                pub += 1
                conn.send(1, f"{name} {pub} {self.pad_text}".encode())
                self.stats.c["sent"] += 1
            if slow_task is not None and time.time() >= stop_at:
                await slow_task
            elif slow_task is not None:
                slow_task.cancel()
            if time.time() >= stop_at and not conn.leaving:
                return  # stays for the final check
            if not conn.leaving:
                await self.leave(conn, rng.choices(("clean", "fin", "rst"), (2, 1, 1))[0])
            else:
                self.conns.discard(conn)
                conn.transport.abort()  # type: ignore[union-attr]
            await asyncio.sleep(rng.uniform(0.1, 2))

    async def run(self) -> dict[str, Any]:
        args = self.args
        stop_at = args.stop_at
        await asyncio.wait_for(
            asyncio.gather(*(self.slot(i, stop_at) for i in range(args.first, args.first + args.count))),
            stop_at - time.time() + 30,
        )
        # every publisher stopped at stop_at; give the last publishes time to be numbered, then read the counters
        await asyncio.sleep(max(0.0, stop_at + args.quiet - time.time()))
        final = (await asyncio.to_thread(http_json, args.ports[0], "/stats"))["room_seq"]
        deadline = time.time() + 30
        healthy = [c for c in self.conns if not c.slow and not c.leaving]
        for conn in self.conns:
            if conn.slow and conn.transport is not None and not conn.transport.is_closing():
                conn.transport.resume_reading()
        while time.time() < deadline and any(c.expected <= final[c.room] and not c.leaving for c in healthy):
            await asyncio.sleep(0.2)
        for conn in healthy:
            if conn.leaving:
                continue
            self.stats.c["tail_checked"] += 1
            if conn.expected <= final[conn.room]:
                missing = final[conn.room] - conn.expected + 1
                self.stats.c["lost_healthy"] += missing
                self.stats.problem(
                    f"{conn.name}: room {conn.room} ended at {conn.expected - 1}, final {final[conn.room]}"
                )
        self.stats.c["checked_connections"] = self.stats.c["connections"] - self.stats.c["slow_readers"]
        await asyncio.wait_for(
            asyncio.gather(*(self.leave(c, "clean") for c in list(self.conns))), 20
        )
        return {"counters": self.stats.c, "problems": self.stats.problems}


def run_clients(args: argparse.Namespace) -> None:
    raise_nofile()
    loop = new_loop()
    try:
        result = loop.run_until_complete(ClientRunner(args).run())
    finally:
        loop.close()
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------- driver


def http_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def wave(args: argparse.Namespace, ports: list[int], seconds: float, seed: int, hwm: list[int]) -> dict[str, Any]:
    """Run one wave of ``args.clients`` slots in ``args.processes`` client processes; merge their results."""
    stop_at = time.time() + args.ramp + seconds
    share = -(-args.clients // args.processes)
    procs = []
    for k in range(args.processes):
        first, count = k * share, min(share, args.clients - k * share)
        if count <= 0:
            break
        cmd = [
            sys.executable, HERE, "--role", "clients", "--ports", *map(str, ports), "--stop-at", repr(stop_at),
            "--first", str(first), "--count", str(count), "--seed", str(seed * 100 + k),
        ]
        for opt in ("rooms", "pad", "interval", "lifetime", "slow_fraction", "ramp", "quiet"):
            cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    limit = stop_at + args.quiet + 90
    try:
        while any(p.poll() is None for p in procs) and time.time() < limit:
            try:
                hwm.append(http_json(ports[0], "/stats")["rss_kb"])
            except OSError:
                pass
            time.sleep(1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    merged: dict[str, Any] = {"counters": {}, "problems": [], "failed_processes": 0}
    for p in procs:
        out, _ = p.communicate(timeout=10)
        if p.returncode != 0 or not out.strip():
            merged["failed_processes"] += 1
            continue
        result = json.loads(out.strip().splitlines()[-1])
        for key, value in result["counters"].items():
            merged["counters"][key] = merged["counters"].get(key, 0) + value
        merged["problems"] += result["problems"]
    return merged


def settle(port: int, timeout: float = 30) -> dict[str, Any]:
    """Wait until the server has no open socket, then collect garbage and read the figures."""
    deadline = time.time() + timeout
    while True:
        report = http_json(port, "/stats")
        if all(s["websockets_open"] == 0 for s in report["stats"].values()) or time.time() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2)
    http_json(port, "/gc")
    time.sleep(1)
    return http_json(port, "/gc")


def run_driver(args: argparse.Namespace) -> int:
    raise_nofile()
    if args.processes is None:
        args.processes = 1 if args.clients < 200 else 2
    if args.rooms is None:
        args.rooms = max(2, min(20, args.clients // 25))
    if args.warmup is None:
        args.warmup = min(30.0, max(5.0, args.seconds / 6))
    started = time.time()
    server = subprocess.Popen(
        [sys.executable, HERE, "--role", "server", "--rooms", str(args.rooms),
         "--backpressure-limit", str(args.backpressure_limit), "--sndbuf", str(args.sndbuf),
         "--server-loop", args.server_loop,
         *(["--histogram"] if args.histogram else [])],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        ports = json.loads(line)["ports"]
        start = http_json(ports[0], "/gc")
        start_rss = start["rss_kb"]
        hwm: list[int] = []
        print(f"soak: {args.clients} clients, {args.rooms} rooms, warm-up {args.warmup:.0f} s, "
              f"main {args.seconds:.0f} s, server pid {server.pid}", flush=True)
        warm = wave(args, ports, args.warmup, 1, hwm)
        base = settle(ports[0])
        main = wave(args, ports, args.seconds, 2, hwm)
        after = settle(ports[0])
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)

    c = main["counters"]
    stats = after["stats"]
    keys = ("publishes", "messages_out", "dropped", "closed_backpressure", "websockets_opened")

    def server_total(report: dict[str, Any]) -> dict[str, int]:
        return {k: sum(s[k] for s in report["stats"].values()) for k in keys}

    t0, t1, t2 = server_total(start), server_total(base), server_total(after)
    total = {k: t2[k] - t1[k] for k in keys}  # the main wave's
    warm_total = {k: t1[k] - t0[k] for k in keys}
    base_kb, after_kb = base["rss_kb"], after["rss_kb"]
    peak_kb = max([after["hwm_kb"]] + hwm)
    margin_kb = max(base_kb // 10, 2048)
    # memory the allocators cache after the peak is not a leak: glibc's free heap is trimmed before RSS is read,
    # and pymalloc's extra arenas (each at most 1 MiB resident) are taken off; Python's own use is checked by
    # the allocated blocks and gc objects
    arena_growth_kb = max(0, after["arenas"] - base["arenas"]) * 1024
    # what Python itself holds: a leak of Python objects or buffers grows these whatever the allocator caches
    blocks_margin = max(base["blocks"] // 50, 1000)
    objects_margin = max(base["objects"] // 50, 500)
    errors = after["handler_errors"] + after["log_errors"] + after["loop_errors"]
    checks = {
        "no handler errors": errors == 0,
        "no lost message to a healthy client": c.get("lost_healthy", 0) == 0 and warm["counters"].get(
            "lost_healthy", 0) == 0,
        "no out-of-order or corrupt message": c.get("out_of_order", 0) + c.get("bad_payload", 0) == 0,
        "no unexpected close of a healthy client": c.get("unexpected_close", 0) == 0,
        "every handshake answered 101": c.get("handshake_rejected", 0) == 0,
        "client processes finished": main["failed_processes"] + warm["failed_processes"] == 0,
        "no socket left open": all(s["websockets_open"] == 0 for s in stats.values()),
        f"allocated blocks after <= baseline + {blocks_margin}": after["blocks"] <= base["blocks"] + blocks_margin,
        f"gc objects after <= baseline + {objects_margin}": after["objects"] <= base["objects"] + objects_margin,
        f"RSS after (less allocator caches) <= baseline + {margin_kb} kB":
            after_kb - arena_growth_kb <= base_kb + margin_kb,
    }
    print("\n== soak figures (main wave; warm-up wave in brackets) ==")
    rows = [
        ("messages published (server)", total["publishes"], warm_total["publishes"]),
        ("messages sent (clients)", c.get("sent"), warm["counters"].get("sent")),
        ("deliveries queued (server messages_out)", total["messages_out"], warm_total["messages_out"]),
        ("messages delivered (clients)", c.get("delivered"), warm["counters"].get("delivered")),
        ("dropped for slow readers (server)", total["dropped"], warm_total["dropped"]),
        ("gaps seen by slow readers", c.get("dropped_slow"), warm["counters"].get("dropped_slow")),
        ("slow readers closed (close_on_backpressure_limit)", total["closed_backpressure"],
         warm_total["closed_backpressure"]),
        ("connections", c.get("connections"), warm["counters"].get("connections")),
        ("  of which slow readers", c.get("slow_readers"), warm["counters"].get("slow_readers")),
        ("reconnects", c.get("reconnects"), warm["counters"].get("reconnects")),
        ("clean closes", c.get("clean_closes"), warm["counters"].get("clean_closes")),
        ("abrupt disconnects, FIN without Close", c.get("abrupt_fin"), warm["counters"].get("abrupt_fin")),
        ("abrupt disconnects, RST", c.get("abrupt_rst"), warm["counters"].get("abrupt_rst")),
        ("healthy connections checked at the end", c.get("tail_checked"), warm["counters"].get("tail_checked")),
        ("lost messages to healthy clients", c.get("lost_healthy"), warm["counters"].get("lost_healthy")),
        ("connect failures (retried)", c.get("connect_failures"), warm["counters"].get("connect_failures")),
        ("handler errors / log errors / loop errors",
         f"{after['handler_errors']} / {after['log_errors']} / {after['loop_errors']}", None),
        ("gc objects start / baseline / after", f"{start['objects']} / {base['objects']} / {after['objects']}", None),
        ("allocated blocks start / baseline / after", f"{start['blocks']} / {base['blocks']} / {after['blocks']}", None),
        ("RSS start / baseline / peak / after (kB)", f"{start_rss} / {base_kb} / {peak_kb} / {after_kb}", None),
        ("RSS after, before the heap trim (kB)", after["rss_untrimmed_kb"], None),
        ("pymalloc arenas start / baseline / after", f"{start['arenas']} / {base['arenas']} / {after['arenas']}",
         None),
        ("RSS after, less pymalloc's added arenas (kB)", after_kb - arena_growth_kb, None),
        ("traced by tracemalloc start / baseline / after (kB)",
         f"{start['traced_kb']} / {base['traced_kb']} / {after['traced_kb']}", None),
        ("websockets opened (server)", total["websockets_opened"], warm_total["websockets_opened"]),
        ("duration (s)", f"{time.time() - started:.0f}", None),
    ]
    for label, value, warm_value in rows:
        extra = f"   [{warm_value}]" if warm_value is not None else ""
        print(f"  {label:<48} {value}{extra}")
    if args.histogram:
        for label, h0, h1 in (("warm-up", start, base), ("main", base, after)):
            grown = sorted(((h1["histogram"].get(k, 0) - h0["histogram"].get(k, 0), k) for k in h1["histogram"]),
                           reverse=True)[:12]
            print(f"  objects grown over the {label} wave:", ", ".join(f"{k} +{n}" for n, k in grown if n > 0))
    for text in (warm["problems"] + main["problems"])[:20] + after["first_errors"]:
        print("  problem:", text)
    print()
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("driver", "server", "clients"), default="driver")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--warmup", type=float, default=None, help="warm-up wave length (default seconds/6, 5-30)")
    parser.add_argument("--processes", type=int, default=None, help="client processes (default 1, 2 from 200)")
    parser.add_argument("--rooms", type=int, default=None, help="topics (default clients/25, 2-20)")
    parser.add_argument("--pad", type=int, default=1000, help="message padding in bytes")
    parser.add_argument("--interval", type=float, default=2.0, help="mean seconds between a client's publishes")
    parser.add_argument("--lifetime", type=float, default=20.0, help="mean connection lifetime in seconds")
    parser.add_argument("--slow-fraction", type=float, default=0.1)
    parser.add_argument("--backpressure-limit", type=int, default=64 * 1024)
    parser.add_argument("--sndbuf", type=int, default=32 * 1024, help="server SO_SNDBUF per socket (0: the kernel's)")
    parser.add_argument("--server-loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--histogram", action="store_true", help="server: object counts by type in /gc")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds over which the slots start")
    parser.add_argument("--quiet", type=float, default=2.0, help="seconds after the end before the final counters")
    # clients role
    parser.add_argument("--ports", type=int, nargs=2)
    parser.add_argument("--stop-at", type=float)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.role == "server":
        run_server(args)
        return 0
    if args.role == "clients":
        run_clients(args)
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
