#!/usr/bin/env python3
r"""Where pubsock's per-connection memory and handshake CPU go (a diagnostic, not a benchmark).

    .venv/bin/python bench/connections/profile_pubsock.py memory [--connections 5000] [--compress]
    .venv/bin/python bench/connections/profile_pubsock.py cpu    [--connections 5000] [--compress]
    .venv/bin/python bench/connections/profile_pubsock.py objects [--connections 5000]

Runs bench/connections/servers/pubsock_server.py's handlers in this process (uvloop unless --loop asyncio)
and bench/connections/client.py as a subprocess (same warm-up / go protocol as run.py). Between the warm-up
and the last handshake:
  memory   tracemalloc snapshots: Python allocations per connection, by line (--group lineno) or file;
           plus VmRSS per connection
  cpu      cProfile of the handshakes: the top functions by own time, µs per handshake
  objects  gc.get_objects() before/after: objects per connection by type, and sys.getsizeof sums
Loopback only; the client is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "servers"))

import pubsock  # noqa: E402
from pubsock_server import make_handlers  # noqa: E402


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def type_counts() -> tuple[collections.Counter, collections.Counter]:
    counts: collections.Counter = collections.Counter()
    sizes: collections.Counter = collections.Counter()
    for o in gc.get_objects():
        t = type(o)
        name = f"{t.__module__}.{t.__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(o)
    return counts, sizes


async def main(a: argparse.Namespace) -> None:
    fetch, idle = make_handlers(a.compress, a.subscribe)
    server = await pubsock.serve(fetch, websocket=idle, hostname="127.0.0.1", port=0)
    counted = a.connections - a.warmup
    cmd = [sys.executable, "-u", str(HERE / "client.py"), "--port", str(server.port),
           "--connections", str(a.connections), "--warmup", str(a.warmup), "--hold", "300"]
    if a.compress:
        cmd.append("--compress")
    cli = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    loop = asyncio.get_running_loop()
    prof = cProfile.Profile() if a.mode == "cpu" else None
    before = None
    try:
        while True:
            line = await loop.run_in_executor(None, cli.stdout.readline)
            if not line:
                raise SystemExit("client exited")
            ev = json.loads(line)
            if ev["event"] == "warm":
                await asyncio.sleep(0.5)
                gc.collect()
                rss0 = vm_rss()
                if a.mode == "memory":
                    tracemalloc.start(a.frames)
                    before = tracemalloc.take_snapshot()
                elif a.mode == "objects":
                    before = type_counts()
                t0 = time.process_time()
                times0 = os.times()
                if prof:
                    prof.enable()
                cli.stdin.write(b"go\n")
                cli.stdin.flush()
            elif ev["event"] == "connected":
                if prof:
                    prof.disable()
                cpu = time.process_time() - t0
                times1 = os.times()
                await asyncio.sleep(1.0)
                rss1 = vm_rss()
                print(f"{counted} connections: VmRSS +{(rss1 - rss0) / counted:.2f} KiB/conn, "
                      f"process CPU {cpu * 1e6 / counted:.1f} µs/handshake (includes the profiler's overhead "
                      f"in cpu mode, tracemalloc's in memory mode): user "
                      f"{(times1.user - times0.user) * 1e6 / counted:.1f} + system "
                      f"{(times1.system - times0.system) * 1e6 / counted:.1f}")
                if a.mode == "memory":
                    after = tracemalloc.take_snapshot()
                    stats = after.compare_to(before, a.group)
                    total = sum(s.size_diff for s in stats)
                    print(f"tracemalloc: +{total / counted:.0f} B/conn of Python allocations; top lines:")
                    for s in stats[: a.top]:
                        if abs(s.size_diff) < counted * 4:
                            continue
                        print(f"  {s.size_diff / counted:7.1f} B/conn {s.count_diff / counted:6.2f} blocks/conn  "
                              f"{s.traceback.format()[-1].strip() if a.group == 'traceback' else s.traceback}")
                        if a.group == "traceback":
                            for fr in s.traceback.format()[:-1]:
                                print("        " + fr.strip())
                    gc.collect()
                    after2 = tracemalloc.take_snapshot()
                    total2 = sum(s.size_diff for s in after2.compare_to(before, "filename"))
                    print(f"after gc.collect(): +{total2 / counted:.0f} B/conn "
                          f"(cyclic garbage was {(total - total2) / counted:.0f} B/conn)")
                elif a.mode == "objects":
                    c1, s1 = type_counts()
                    c0, s0 = before
                    print("objects per connection (gc-tracked only; sizes from sys.getsizeof):")
                    for name in sorted(c1, key=lambda n: -(s1[n] - s0[n])):
                        dc = c1[name] - c0[name]
                        if dc >= counted * 0.05:
                            print(f"  {dc / counted:6.2f} x {name:<55} {(s1[name] - s0[name]) / counted:7.0f} B/conn")
                else:
                    st = pstats.Stats(prof)
                    st.sort_stats(a.sort)
                    rows = []
                    for func, (cc, nc, tt, ct, callers) in st.stats.items():
                        rows.append((tt if a.sort == "tottime" else ct, nc, tt, ct, func))
                    rows.sort(reverse=True)
                    print(f"top {a.top} by {a.sort} (µs per handshake; profiler overhead inflates small calls):")
                    for _, nc, tt, ct, (fn, lno, name) in rows[: a.top]:
                        where = f"{Path(fn).name}:{lno}({name})" if lno else name
                        print(f"  own {tt * 1e6 / counted:7.2f}  cum {ct * 1e6 / counted:7.2f}  "
                              f"calls/hs {nc / counted:5.2f}  {where}")
                break
    finally:
        cli.kill()
        cli.wait()
    await server.stop(close_active=False)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["memory", "cpu", "objects"])
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--compress", action="store_true")
    p.add_argument("--subscribe", action="store_true")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--group", choices=["lineno", "filename", "traceback"], default="lineno")
    p.add_argument("--frames", type=int, default=1, help="tracemalloc frames (use >1 with --group traceback)")
    p.add_argument("--sort", choices=["tottime", "cumulative"], default="tottime")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
