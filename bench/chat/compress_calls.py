#!/usr/bin/env python3
r"""Compress once per publish vs once per subscriber: zlib calls and CPU, without network.

    .venv/bin/python bench/chat/compress_calls.py                      # 64 subscribers, 2000 publishes of 1 KiB
    .venv/bin/python bench/chat/compress_calls.py --subscribers 16 --messages 5000 --impl all --json out.json

pubsock's publish path (`Server._publish` -> `Hub.publish_compressed`) compresses a published message once for
all subscribers whose compressors share a key (no context takeover: Bun's shared compressor), and appends the
same compressed frame to each. uWS (Bun) compresses in each subscriber's `send()`: once per delivery. This
script drives pubsock's real `Hub` and `Outbox`es (the compiled or the pure-Python ones) with fake
transports and real `Compressor`s (`DeflateOptions.from_option(True).codecs(params)`, params negotiated from a
browser's offer), publishes the same messages to N subscribers in three ways, and counts the actual zlib work:

  shared          what the server does: build_frame + hub.publish_compressed (as Server._publish)
  per-subscriber  what uWS does: for each subscriber, compressor.compress(payload) + build_frame + push
  plain           no compression at all (hub.publish), the cost of the fan-out alone

Counted (in one instrumented pass): calls to `deflate.compress_shared` (patched in deflate and in the topics
module, which imported it by name) and to `Compressor.compress`, and the zlib deflate runs themselves
(`compress()` calls on the zlib streams, through a counting proxy around each shared stream). CPU: user+system
time of the uninstrumented passes (`--repeat`, the best and the median are shown), divided by deliveries.
Before timing, the frames of a short run are checked: every subscriber gets RSV1 frames that inflate to the
published payload, byte-identical in the shared and per-subscriber modes.

The counts are deterministic; the CPU figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Iterator
from hashlib import sha256

from pubsock.protocol import deflate
from pubsock.protocol.deflate import DeflateOptions, negotiate_server
from pubsock.protocol.frames import build_frame

OFFER = "permessage-deflate; client_max_window_bits"  # what browsers (and chat-client.mjs) offer
OP_TEXT = 1
TAIL = b"\x00\x00\xff\xff"

# --------------------------------------------------------------------------------------------- messages

WORDS = [
    "the", "meeting", "starts", "at", "noon", "please", "review", "pull", "request", "before", "lunch",
    "deploy", "is", "done", "and", "tests", "are", "green", "can", "you", "check", "logs", "on", "staging",
    "server", "again", "thanks", "I", "think", "we", "should", "ship", "it", "today", "tomorrow", "maybe",
    "after", "standup", "let", "me", "know", "what", "this", "looks", "good", "to", "ok", "sounds", "great",
    "new", "build", "fails", "with", "a", "timeout", "in", "CI", "retry", "fixed", "typo", "docs", "for",
    "release", "notes", "who", "owns", "dashboard", "latency", "went", "up", "again?", "yes", "no", "lol",
]
USERS = ["Alice", "Bob", "Charlie", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy"]
NAMES = ["Alice", "Bob", "Charlie", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl",
         "Linda", "Mike", "Nancy", "Oscar", "Peggy", "Quentin", "Ruth", "Steve", "Trudy", "Ursula", "Victor",
         "Wendy", "Xavier", "Yvonne", "Zach"]


def json_message(v: int, size: int) -> str:
    """Variant ``v`` of the JSON-like chat message of exactly ``size`` bytes (chat-client.mjs: jsonMessage)."""
    x = (0x9E3779B9 ^ v) & 0xFFFFFFFF
    user = f"{USERS[v % len(USERS)]}{v // len(USERS)}"
    head = (f'{{"type":"message","room":"lobby","user":"{user}","id":{100000 + v},'
            f'"ts":{1732550400000 + v * 1337},"reply_to":null,"text":"')
    tail = '","tags":["chat","bench"],"edited":false}'
    need = size - len(head) - len(tail)
    text = ""
    while len(text) < need:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        text += (" " if text else "") + WORDS[(x >> 16) % len(WORDS)]
    return (head + text[:max(0, need)] + tail)[:size]


def payloads(count: int, size: int, senders: int) -> list[bytes]:
    """What the chat server publishes: "<sender>: <message>", senders and variants in turn."""
    variants = [json_message(v, size) for v in range(50)]
    names = [f"{NAMES[i % len(NAMES)]}{i // len(NAMES)}" for i in range(senders)]
    return [f"{names[i % senders]}: {variants[i % 50]}".encode() for i in range(count)]


# --------------------------------------------------------------------------------------------- fakes

class Transport:
    """The part of an asyncio transport an Outbox uses; keeps the bytes only when asked to."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.data = bytearray()
        self.writes = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)
        if self.keep:
            self.data += data

    def get_write_buffer_size(self) -> int:
        return 0


class CountingStream:
    """Wraps a zlib compress object: counts deflate runs (compress calls), flushes and input bytes."""

    def __init__(self, stream, counts: dict) -> None:
        self._stream = stream
        self._counts = counts

    def compress(self, data):
        self._counts["zlib_deflate"] += 1
        self._counts["zlib_bytes_in"] += len(data)
        return self._stream.compress(data)

    def flush(self, mode=zlib.Z_FINISH):
        self._counts["zlib_flush"] += 1
        return self._stream.flush(mode)


def topics_module(impl: str):
    if impl == "py":
        return importlib.import_module("pubsock.server._topics_py")
    if impl == "c":
        return importlib.import_module("pubsock.server._topics_c")
    from pubsock.server import topics
    return importlib.import_module(topics.Hub.__module__)


class Room:
    """A Hub with N subscribed Outboxes, each carrying a negotiated server-side Compressor."""

    def __init__(self, mod, subscribers: int, keep: bool = False) -> None:
        options = DeflateOptions.from_option(True)
        agreed = negotiate_server(options, OFFER)
        assert agreed is not None, "the shared preset declined a browser's offer"
        self.answer, params = agreed
        self.hub = mod.Hub(lambda callback: None)  # flushed by hand, once per "iteration"
        self.outboxes = []
        for _ in range(subscribers):
            outbox = mod.Outbox(self.hub, Transport(keep), None, 0, False)
            outbox.compressor = options.codecs(params)[0]
            self.hub.subscribe(outbox, "room")
            self.outboxes.append(outbox)
        keys = {o.compressor.share_key for o in self.outboxes}
        assert len(keys) == 1 and None not in keys, f"compressors do not share one key: {keys}"
        self.share_key = keys.pop()


# --------------------------------------------------------------------------------------------- modes

def run_shared(room: Room, msgs: list[bytes], batch: int) -> None:
    hub = room.hub
    for i, payload in enumerate(msgs, 1):
        frame = build_frame(OP_TEXT, payload)  # Server._publish builds the plain frame first
        hub.publish_compressed("room", frame, OP_TEXT, payload, None)
        if i % batch == 0:
            hub.flush()
    hub.flush()


def run_per_subscriber(room: Room, msgs: list[bytes], batch: int) -> None:
    hub = room.hub
    outboxes = room.outboxes
    for i, payload in enumerate(msgs, 1):
        n = len(payload)
        for outbox in outboxes:
            outbox.push(build_frame(OP_TEXT, outbox.compressor.compress(payload), True, True), n)
        if i % batch == 0:
            hub.flush()
    hub.flush()


def run_plain(room: Room, msgs: list[bytes], batch: int) -> None:
    hub = room.hub
    for i, payload in enumerate(msgs, 1):
        hub.publish("room", build_frame(OP_TEXT, payload), len(payload), None)
        if i % batch == 0:
            hub.flush()
    hub.flush()


MODES = {"shared": run_shared, "per-subscriber": run_per_subscriber, "plain": run_plain}


@contextlib.contextmanager
def instrumented(mod) -> Iterator[dict]:
    """Count compress_shared / Compressor.compress calls and the zlib runs of the shared streams."""
    counts = dict.fromkeys(("compress_shared", "compressor_compress", "zlib_deflate", "zlib_flush",
                            "zlib_bytes_in"), 0)
    real_shared = deflate.compress_shared
    real_method = deflate.Compressor.compress

    def counting_shared(key, data):
        counts["compress_shared"] += 1
        return real_shared(key, data)

    def counting_method(self, data):
        counts["compressor_compress"] += 1
        return real_method(self, data)

    streams = deflate._shared.streams
    saved_streams = dict(streams)
    for key, stream in list(streams.items()):
        streams[key] = CountingStream(stream, counts)
    patched = [(deflate, "compress_shared"), (mod, "compress_shared")]
    saved = [(m, name, getattr(m, name)) for m, name in patched]
    try:
        for m, name in patched:
            setattr(m, name, counting_shared)
        deflate.Compressor.compress = counting_method
        yield counts
    finally:
        for m, name, value in saved:
            setattr(m, name, value)
        deflate.Compressor.compress = real_method
        streams.clear()
        streams.update(saved_streams)


# --------------------------------------------------------------------------------------------- checks

def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(first header byte, payload) of each unmasked frame in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        n, h = b1 & 0x7F, 2
        if n == 126:
            n, h = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            n, h = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        out.append((b0, bytes(data[pos + h:pos + h + n])))
        pos += h + n
    return out


def check_frames(mod, subscribers: int, msgs: list[bytes], batch: int) -> dict:
    """Every subscriber's frames inflate to the payloads; shared and per-subscriber bytes are identical."""
    got = {}
    for mode in ("shared", "per-subscriber"):
        room = Room(mod, subscribers, keep=True)
        MODES[mode](room, msgs, batch)
        got[mode] = [bytes(o.transport.data) for o in room.outboxes]
    for data in got["shared"]:
        frames = parse_frames(data)
        assert len(frames) == len(msgs), f"{len(frames)} frames for {len(msgs)} publishes"
        for (b0, payload), sent in zip(frames, msgs):
            assert b0 == 0x80 | 0x40 | OP_TEXT, f"header byte {b0:#x}: not a final compressed text frame"
            inflated = zlib.decompressobj(-15).decompress(payload + TAIL)
            assert inflated == sent, "a frame does not inflate to the published payload"
    identical = got["shared"] == got["per-subscriber"]
    # compress_shared's stream is reused with a full flush per message: is it the bytes of a fresh stream?
    key = Room(mod, 1).share_key
    fresh_equal = all(
        deflate.compress_shared(key, m) == _fresh(key, m) for m in msgs
    )
    wire = sum(len(p) for _, p in parse_frames(got["shared"][0]))
    return {"frames_checked": len(msgs) * subscribers, "shared_equals_per_subscriber": identical,
            "shared_stream_equals_fresh_stream": fresh_equal,
            "compressed_payload_avg": round(wire / len(msgs), 1),
            "payload_avg": round(sum(map(len, msgs)) / len(msgs), 1)}


def _fresh(key, data: bytes) -> bytes:
    bits, mem_level, level = key
    c = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


# --------------------------------------------------------------------------------------------- main

def cpu() -> float:
    return time.process_time()  # user+system CPU of this process, ns resolution (os.times() ticks at 10 ms)


def measure(mod, args, msgs: list[bytes]) -> dict:
    out: dict = {"impl": "compiled (Cython)" if not mod.__file__.endswith(".py") else "pure Python",
                 "module": mod.__name__}
    out["check"] = check_frames(mod, args.subscribers, msgs[: args.check], args.batch)
    deliveries = len(msgs) * args.subscribers
    for mode, fn in MODES.items():
        room = Room(mod, args.subscribers)
        with instrumented(mod) as counts:
            fn(room, msgs, args.batch)
        times = []
        for _ in range(args.repeat):
            room = Room(mod, args.subscribers)
            t0 = cpu()
            fn(room, msgs, args.batch)
            times.append(cpu() - t0)
        written = sum(o.transport.bytes for o in room.outboxes)
        best, median = min(times), statistics.median(times)
        out[mode] = {**counts, "publishes": len(msgs), "deliveries": deliveries,
                     "zlib_deflate_per_publish": counts["zlib_deflate"] / len(msgs),
                     "cpu_s": [round(t, 4) for t in times],
                     "us_per_delivery_best": round(1e6 * best / deliveries, 3),
                     "us_per_delivery_median": round(1e6 * median / deliveries, 3),
                     "us_per_publish_best": round(1e6 * best / len(msgs), 2),
                     "bytes_written_per_delivery": round(written / deliveries, 1)}
    # one compress of one message on the shared stream, alone
    key = Room(mod, 1).share_key
    sample = msgs[:200]
    t0 = cpu()
    for _ in range(max(1, 2000 // len(sample))):
        for m in sample:
            deflate.compress_shared(key, m)
    n = max(1, 2000 // len(sample)) * len(sample)
    out["us_per_compress_shared"] = round(1e6 * (cpu() - t0) / n, 2)
    return out


def report(r: dict, args) -> str:
    s, p, pl = r["shared"], r["per-subscriber"], r["plain"]
    chk = r["check"]
    lines = [f"\n== topics: {r['impl']} ({r['module']}) ==",
             f"check: {chk['frames_checked']} frames inflate to the published payloads; shared == per-subscriber "
             f"bytes: {chk['shared_equals_per_subscriber']}; shared stream == fresh stream: "
             f"{chk['shared_stream_equals_fresh_stream']}; payload {chk['payload_avg']:.0f} B -> "
             f"{chk['compressed_payload_avg']:.0f} B compressed",
             f"{'mode':<16} {'compress_shared':>15} {'Compressor.':>11} {'zlib runs':>10} {'runs/pub':>8} "
             f"{'us/delivery':>11} {'(median)':>9} {'us/publish':>10} {'B/delivery':>10}",
             f"{'':<16} {'calls':>15} {'compress':>11}"]
    for name, m in (("shared (pubsock)", s), ("per-subscriber", p), ("plain (no zlib)", pl)):
        lines.append(f"{name:<16} {m['compress_shared']:>15,} {m['compressor_compress']:>11,} {m['zlib_deflate']:>10,} "
                     f"{m['zlib_deflate_per_publish']:>8.2f} {m['us_per_delivery_best']:>11.3f} "
                     f"{m['us_per_delivery_median']:>9.3f} {m['us_per_publish_best']:>10.1f} "
                     f"{m['bytes_written_per_delivery']:>10.1f}")
    runs = p["zlib_deflate"] / s["zlib_deflate"] if s["zlib_deflate"] else float("nan")
    cpu_ratio = p["us_per_delivery_best"] / s["us_per_delivery_best"] if s["us_per_delivery_best"] else float("nan")
    line = (f"per-subscriber / shared: {runs:.1f}x the zlib runs, {cpu_ratio:.1f}x the CPU per delivery "
            f"(best of {args.repeat}); one compress_shared of a message alone: {r['us_per_compress_shared']:.1f} us")
    if pl["us_per_delivery_best"]:
        line += f"; shared costs {s['us_per_delivery_best'] / pl['us_per_delivery_best']:.1f}x plain per delivery"
    lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=64)
    p.add_argument("--messages", type=int, default=2000, help="publishes per pass")
    p.add_argument("--size", type=int, default=1024, help="JSON-like message size in bytes (before 'name: ')")
    p.add_argument("--senders", type=int, default=16, help="distinct sender names in the 'name: ' prefixes")
    p.add_argument("--batch", type=int, default=100, help="publishes per loop iteration (one flush each)")
    p.add_argument("--repeat", type=int, default=5, help="timed passes per mode")
    p.add_argument("--check", type=int, default=100, help="publishes in the frame check")
    p.add_argument("--impl", choices=["auto", "py", "c", "all"], default="auto",
                   help="topics implementation: the one pubsock uses (auto), pure Python, compiled, or both")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)

    msgs = payloads(args.messages, args.size, args.senders)
    digest = sha256("\n".join(json_message(v, args.size) for v in range(50)).encode()).hexdigest()[:12]
    impls = ["py", "c"] if args.impl == "all" else [args.impl]
    print(f"compress once per publish vs once per subscriber: {args.subscribers} subscribers, {args.messages} "
          f"publishes of '<name>: ' + {args.size} B JSON-like messages (50 variants, sha256 {digest}), "
          f"flush every {args.batch}; CPU = user+system, best and median of {args.repeat}; "
          f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    answer = negotiate_server(DeflateOptions.from_option(True), OFFER)
    print(f"negotiated: offer {OFFER!r} -> {answer[0]!r}; zlib {zlib.ZLIB_RUNTIME_VERSION}; "
          f"CPython {platform.python_version()}")
    results = []
    for impl in impls:
        try:
            mod = topics_module(impl)
        except ImportError as exc:
            print(f"\n== topics {impl}: not available ({exc}) ==")
            continue
        r = measure(mod, args, msgs)
        results.append(r)
        print(report(r, args), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "offer": OFFER, "answer": answer[0], "messages_sha256": digest,
                       "results": results}, f, indent=2)
            f.write("\n")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
