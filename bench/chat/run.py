#!/usr/bin/env python3
r"""Chat-room benchmark runner: pubsock against its peers, one command.

    .venv/bin/python bench/chat/run.py --clients 16 64 --size 16 1024 \
        --servers pubsock,bun,picows,aiohttp,websockets --seconds 10 --json results.json

For each configuration (client count x message size) and each server: start the server pinned to one CPU
(taskset -c 0), wait until it listens, run the load generator (bench/chat/chat-client.mjs, under Bun, or
Node) pinned to another CPU (taskset -c 1), read its per-second samples, and stop the server by PID.
The client runs in its "raw" mode by default (frames counted from their headers, so that it is not the
bottleneck); --client-mode native uses the runtime's WebSocket client as Bun's own chat-client.mjs does.
Rounds start on a 64 ms tick as in Bun's benchmark (--tick-ms; 0 = as soon as the previous one is complete).

--compress (Bun's COMPRESS=1 variant): the servers negotiate permessage-deflate with their shared compressor
(pubsock per_message_deflate = True, Bun perMessageDeflate: true) and publish with compress=true; the client
offers the extension, and with a --size other than 16 sends JSON-like chat messages that compress. Only
pubsock and bun have this variant; the other servers are skipped (said so in the output). The table then
also shows the bytes received per delivery and the share of deliveries that arrived compressed (RSV1).
The CPU saved by compressing once per publish is measured apart, without network: bench/chat/compress_calls.py.

Recorded per run:
  deliveries/s      median of the per-second samples after the first (each sample divided by its measured length)
  CPU-s per M       server user+system CPU seconds (from /proc/PID/stat) over the measured window (samples after
                    the first), per million deliveries in that window
  server CPU %      the same CPU time over the window's wall time (100 % = one core saturated)
  client CPU %      the load generator's, likewise: near 100 % means the client may be the bottleneck
  peak RSS          the server's VmHWM from /proc/PID/status just before it is stopped
and per configuration the ratios pubsock/peer (throughput, and CPU per delivery).

A server that fails to start (e.g. pubsock while the library is not ready) is skipped with the reason.
Every subprocess has a timeout, and everything started is killed on exit. Setup: bash bench/chat/setup.sh.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402  (bench/common.py: processes, /proc readings, one run's machinery)
    BaseTools,
    add_run_arguments,
    chosen_servers,
    forget,
    kill,
    listeners,
    peak_rss_kib,
    popen,
    tree_cpu_seconds,
    tree_pids,
    fmt as _fmt,
    free_port,
    install_cleanup,
    loadavg,
    ratio_legend,
    ratio_table,
    report_run,
    run_cells,
    run_client,
    server_process,
    tail,
    window_stats,
)

SERVERS_DIR = HERE / "servers"
CLIENT_JS = HERE / "chat-client.mjs"
ALL_SERVERS = ["pubsock", "bun", "picows", "aiohttp", "websockets", "node"]
COMPRESS_SERVERS = ("pubsock", "bun")  # the servers with a --compress variant
DEFAULT_SERVERS = "pubsock,bun,picows,aiohttp,websockets"


# --------------------------------------------------------------------------------------------- tools

class Tools(BaseTools):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args.python, args.no_pin)
        self.client_runtime = args.client_runtime
        if self.client_runtime == "auto":
            self.client_runtime = "bun" if self.bun else "node"

    def client_cmd(self) -> list[str]:
        if self.client_runtime == "bun":
            if not self.bun:
                raise SystemExit("bun is not installed: run bash bench/chat/setup.sh, or use --client-runtime node")
            return [self.bun, str(CLIENT_JS)]
        if not (self.node and self.have_ws):
            raise SystemExit("node client needs node and bench/chat/node_modules/ws: run bash bench/chat/setup.sh")
        return [self.node, str(CLIENT_JS)]

    def server_cmd(self, name: str, compress: bool = False) -> tuple[list[str] | None, dict | None, str | None]:
        """(command, env, reason it cannot run)."""
        if compress:
            if name not in COMPRESS_SERVERS:
                return None, None, "no --compress variant (only pubsock and bun have one)"
            cmd, env, reason = self.server_cmd(name)
            return (cmd + ["--compress"] if cmd else None), env, reason
        py = [self.python, "-u"]
        if name == "pubsock":
            return py + [str(SERVERS_DIR / "pubsock_server.py")], self.pubsock_env, None
        if name in ("picows", "aiohttp", "websockets"):
            return py + [str(SERVERS_DIR / f"{name}_server.py")], None, None
        if name == "bun":
            if not self.bun:
                return None, None, "bun is not installed (bash bench/chat/setup.sh)"
            return [self.bun, str(SERVERS_DIR / "bun_server.js")], None, None
        if name == "node":
            if not (self.node and self.have_ws):
                return None, None, "node or the npm package ws is missing (bash bench/chat/setup.sh)"
            return [self.node, str(SERVERS_DIR / "node_ws_server.mjs")], None, None
        return None, None, f"unknown server {name!r}"


# --------------------------------------------------------------------------------------------- one run

def run_one(tools: Tools, server: str, clients: int, size: int, args: argparse.Namespace, logdir: Path) -> dict:
    res: dict = {"server": server, "clients": clients, "size": size, "seconds": args.seconds, "status": "ok",
                 "compress": args.compress, "loadavg_before": loadavg()}
    cmd, env, reason = tools.server_cmd(server, args.compress)
    if cmd is None:
        res.update(status="skipped", reason=reason)
        return res
    port = free_port(args.port)
    res["port"] = port
    tag = f"{server}-c{clients}-s{size}{'-z' if args.compress else ''}"
    server_log = logdir / f"{tag}.server.log"
    client_log = logdir / f"{tag}.client.log"
    res["logs"] = [str(server_log), str(client_log)]
    full = tools.pinned(cmd + ["--host", "127.0.0.1", "--port", str(port), "--clients", str(clients)], args.server_cpu)
    with server_process(full, env=env, port=port, log=server_log, start_timeout=args.start_timeout,
                        res=res) as srv:
        if srv is not None:
            _measure(tools, srv, res, port, clients, size, args, client_log, server_log)
    return res


def _measure(tools: Tools, srv, res: dict, port: int, clients: int, size: int,
             args: argparse.Namespace, client_log: Path, server_log: Path,
             client_extra: list[str] | None = None, server_cpu=None) -> dict:
    ccmd = tools.pinned(tools.client_cmd() + (client_extra or []) + [
        "--url", f"ws://127.0.0.1:{port}/", "--clients", str(clients), "--size", str(size),
        "--seconds", str(args.seconds), "--connect-timeout", str(args.connect_timeout),
        "--stall-timeout", str(args.stall_timeout), "--mode", args.client_mode,
        "--delay", str(args.tick_ms)] + (["--compress"] if args.compress else []), args.client_cpu)
    timeout = args.connect_timeout + args.seconds * 2 + 20
    result, marks = run_client(ccmd, srv=srv, timeout=timeout, log=client_log, server_log=server_log,
                               cwd=HERE, res=res, server_cpu=server_cpu)
    if result is None:
        return res
    samples = result.get("samples", [])
    res.update(rounds_completed=result.get("rounds_completed"), format_ok=result.get("format_ok"),
               avg_msg_bytes=result.get("avg_msg_bytes"), deliveries_per_round=result.get("deliveries_per_round"),
               samples=[round(s["deliveries"] / (s["ms"] / 1000.0)) for s in samples if s["ms"] > 0])
    if result.get("error"):
        res.update(status="failed", reason=result["error"], server_log_tail=tail(server_log))
    if result.get("format_ok") is False:
        res.update(status="failed", reason=f"unexpected delivery: {result.get('first_bad_message')!r}")
    if args.compress:
        _compression_checks(res, result)
    rates = res["samples"][1:] or res["samples"]
    if rates:
        res["deliveries_per_s"] = statistics.median(rates)
    window_stats(res, marks, samples, "deliveries")
    return res


def _compression_checks(res: dict, result: dict) -> None:
    """Record what the client saw of compression; fail the run if nothing arrived compressed or a check failed."""
    res.update(extensions=result.get("extensions"), checked=result.get("checked"),
               checked_compressed=result.get("checked_compressed"), checked_bfinal=result.get("checked_bfinal"))
    total, rsv1, wire = result.get("deliveries_total"), result.get("compressed_frames"), result.get("wire_bytes")
    if total:  # raw mode only
        res.update(deliveries_total=total, compressed_frames=rsv1, wire_bytes=wire,
                   compressed_pct=round(100 * rsv1 / total, 2), wire_bytes_per_delivery=round(wire / total, 1))
        if rsv1 == 0 and res["status"] == "ok":
            res.update(status="failed", reason="--compress: no delivery arrived compressed (RSV1)")
    if not result.get("checked_compressed") and res["status"] == "ok" and result.get("mode") == "raw":
        res.update(status="failed", reason="--compress: no checked delivery was compressed")


# --------------------------------------------------------------------------------------------- scale-out

REDIS_BINARIES = ("/usr/bin/redis-server", "/usr/sbin/redis-server")


def start_redis(logdir: Path, start_timeout: float) -> tuple:
    """Our own redis-server on a free loopback port (no persistence), stopped by PID at the end."""
    import shutil
    import socket
    binary = shutil.which("redis-server") or next((b for b in REDIS_BINARIES if os.path.exists(b)), None)
    if not binary:
        raise SystemExit("redis-server is not installed: run bash scripts/install-brokers.sh")
    port = free_port(0)
    log = open(logdir / f"redis-{port}.log", "wb")
    proc = popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(logdir), "--loglevel", "warning"], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            kill(proc)
            forget(proc)
            raise SystemExit(f"redis-server did not start on port {port} (see {logdir})")
        time.sleep(0.02)
    return proc, port


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Pin (or unpin) every thread of a running process."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def run_broker(tools: Tools, clients: int, size: int, args: argparse.Namespace, logdir: Path,
               redis, redis_port: int, workers: int) -> dict:
    """pubsock under `python -m pubsock` with the Redis broker: one worker pinned to the server CPU (Redis
    pinned there too), or N workers (SO_REUSEPORT) floating over all CPUs with Redis."""
    label = f"{workers} worker{'s' if workers > 1 else ''} + redis"
    pinned = workers == 1 and tools.taskset is not None
    res: dict = {"server": "pubsock", "variant": label, "workers": workers, "broker": "redis",
                 "server_pinned": pinned, "clients": clients, "size": size, "seconds": args.seconds,
                 "status": "ok", "compress": False, "loadavg_before": loadavg()}
    port = free_port(args.port)
    res["port"] = port
    tag = f"pubsock-w{workers}-redis-c{clients}-s{size}"
    server_log = logdir / f"{tag}.server.log"
    client_log = logdir / f"{tag}.client.log"
    res["logs"] = [str(server_log), str(client_log), str(logdir / f"redis-{redis_port}.log")]
    cmd = [tools.python, "-u", "-m", "pubsock", "pubsock_app:app", "--app-dir", str(SERVERS_DIR),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
           "--broker", f"redis://127.0.0.1:{redis_port}/0?channel_prefix=bench-{tag}:"]
    all_cpus = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    if pinned:
        cmd = tools.pinned(cmd, args.server_cpu)
        set_affinity(redis.pid, {int(c) for c in args.server_cpu.split(",")})
    else:
        set_affinity(redis.pid, all_cpus)
    res["redis_cpus"] = sorted(os.sched_getaffinity(redis.pid))
    with server_process(cmd, env=tools.pubsock_env, port=port, log=server_log, start_timeout=args.start_timeout,
                        res=res) as srv:
        if srv is None:
            return res
        deadline = time.monotonic() + args.start_timeout
        while listeners(port) < workers and time.monotonic() < deadline and srv.poll() is None:
            time.sleep(0.05)
        res["listeners"] = listeners(port)
        if res["listeners"] < workers:
            res.update(status="failed", reason=f"{res['listeners']} of {workers} workers listening",
                       server_log_tail=tail(server_log))
            return res
        time.sleep(0.2)
        res["server_pids"] = tree_pids(srv.pid)

        def server_cpu() -> float | None:  # supervisor + workers + redis
            return tree_cpu_seconds([srv.pid, redis.pid])

        _measure(tools, srv, res, port, clients, size, args, client_log, server_log,
                 client_extra=["--ready-sync"], server_cpu=server_cpu)
        rss = [peak_rss_kib(p) for p in tree_pids(srv.pid)]
        res["server_peak_rss_kib"] = sum(r for r in rss if r) or None  # supervisor + workers (not redis)
    return res


def scaleout_table(runs: list[dict], clients: int, size: int, seconds: int, tick_ms: int, workers: int,
                   server_cpu: str, pinned: bool) -> str:
    out = [f"\n== scale-out: {clients} clients, {size_label(size)}, {seconds} samples of 1 s "
           f"(deliveries per round {clients * 1600 * clients:,}, {tick_ms} ms tick) =="]
    head = (f"{'pubsock':<22} {'placement':<26} {'deliveries/s':>13} {'CPU-s/M':>8} {'srv CPU':>8} "
            f"{'RSS':>10} {'cli CPU':>8} {'rounds':>6}")
    out += [head, "-" * len(head)]
    where = f"CPU {server_cpu}" if pinned else "unpinned"
    for key, r in zip("abc", runs):
        if r.get("workers", 0) > 1:
            place = "floating, all CPUs"
        else:
            place = f"{where}{' (+redis)' if r.get('broker') else ''}"
        line = (f"({key}) {r.get('variant', '1 process, no broker'):<18} {place:<26} "
                f"{run_cells(r, 'deliveries_per_s')} {_fmt(r.get('rounds_completed'), 'd'):>6}")
        if r["status"] != "ok":
            line += f"  {r['status'].upper()}: {r.get('reason')}"
        out.append(line)

    def ratio(x: dict, y: dict, key: str) -> str:
        a, b = x.get(key), y.get(key)
        ok = x["status"] == "ok" and y["status"] == "ok" and a and b
        return f"{a / b:.2f}x" if ok else "-"

    a, b, c = (runs + [{"status": "missing"}] * 3)[:3]
    out.append(f"(b)/(a) deliveries/s {ratio(b, a, 'deliveries_per_s')}, CPU-s/M {ratio(b, a, 'server_cpu_s_per_M')}"
               f"   (the broker's cost on one core)")
    out.append(f"(c)/(b) deliveries/s {ratio(c, b, 'deliveries_per_s')}, CPU-s/M {ratio(c, b, 'server_cpu_s_per_M')}"
               f"   ({workers} workers vs 1, both with redis)")
    out.append(f"srv CPU = supervisor + workers + redis-server (from /proc/PID/stat of each process; 100 % = one "
               f"core); RSS = peak of pubsock's processes (not redis). (c): the {workers} workers and redis are "
               f"NOT pinned, they float over all CPUs; the client stays pinned to its CPU, so on a 2-core machine it "
               f"competes with the workers for CPU time and (c)/(b) understates what {workers} free cores give.")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- report

def size_label(size: int, compress: bool = False) -> str:
    if size == 16:
        return "Bun's short strings (~12 B)"
    return f"{size} B {'JSON-like ' if compress else ''}messages"


def table(runs: list[dict], clients: int, size: int, seconds: int, tick_ms: int, compress: bool = False) -> str:
    out = [f"\n== {clients} clients, {size_label(size, compress)}, {seconds} samples of 1 s "
           f"(deliveries per round {clients * 1600 * clients:,}, {tick_ms} ms tick"
           f"{', permessage-deflate' if compress else ''}) =="]
    rounds = ("rounds", 6, lambda r: _fmt(r.get("rounds_completed"), "d"))
    out += ratio_table(runs, rate_key="deliveries_per_s", rate_title="deliveries/s", extra=rounds, name_width=11)
    seen = [r for r in runs if r["status"] != "skipped" and "extensions" in r]
    if compress and seen:
        out.append("compression (as the client saw it):")
        for r in seen:
            line = f"  {r['server']:<9} answer {r.get('extensions')!r}"
            if r.get("wire_bytes_per_delivery") is not None:
                line += (f"; {r['compressed_pct']:.1f} % of deliveries compressed (RSV1), "
                         f"{r['wire_bytes_per_delivery']:.0f} B received per delivery")
            line += (f"; {r.get('checked')} deliveries checked ({r.get('checked_compressed')} inflated"
                     f"{', %d starting with a final block' % r['checked_bfinal'] if r.get('checked_bfinal') else ''})")
            out.append(line)
    out.append(ratio_legend(runs, "delivery"))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[16], help="client counts (default 16)")
    p.add_argument("--size", type=int, nargs="+", default=[16],
                   help="message sizes: 16 = Bun's short strings, other = exact bytes (default 16)")
    add_run_arguments(p, servers=ALL_SERVERS, default_servers=DEFAULT_SERVERS, stall="delivery")
    p.add_argument("--client-mode", choices=["raw", "native"], default="raw",
                   help="raw: frames counted from headers over node:net (default, light); "
                        "native: the runtime's WebSocket client, one event per delivery (as Bun's chat-client.mjs)")
    p.add_argument("--tick-ms", type=int, default=64,
                   help="a new round starts on this tick once the previous one is complete (Bun: 64); "
                        "0 = at once")
    p.add_argument("--compress", action="store_true",
                   help="permessage-deflate variant (Bun's COMPRESS=1): pubsock and bun only, compressed publishes, "
                        "JSON-like messages for --size other than 16")
    p.add_argument("--workers", type=int, default=0,
                   help="scale-out mode (needs --broker redis): pubsock only, (a) one process without a broker, "
                        "(b) one worker with redis, (c) --workers N with redis (python -m pubsock, SO_REUSEPORT)")
    p.add_argument("--broker", choices=["redis"],
                   help="scale-out mode: start our own redis-server on a free loopback port for the run")
    args = p.parse_args(argv)
    if bool(args.workers) != bool(args.broker):
        p.error("--workers N and --broker redis go together (the scale-out mode)")
    if args.workers and args.workers < 2:
        p.error("--workers must be at least 2 (the mode runs 1 worker as well)")
    if args.workers and args.compress:
        p.error("the scale-out mode has no --compress variant")

    servers = chosen_servers(p, args, ALL_SERVERS)
    if not Path(args.python).exists():
        args.python = sys.executable
    install_cleanup()
    if args.compress:
        skipped = [s for s in servers if s not in COMPRESS_SERVERS]
        if skipped:
            print(f"--compress: {', '.join(skipped)} skipped (only {' and '.join(COMPRESS_SERVERS)} have a "
                  "compressed variant)", flush=True)

    tools = Tools(args)
    logdir = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="pubsock-bench-chat-"))
    logdir.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_start": loadavg()},
        "pinning": {"server_cpu": args.server_cpu, "client_cpu": args.client_cpu} if tools.taskset else None,
        "client_runtime": tools.client_runtime,
        "client_mode": args.client_mode,
        "tick_ms": args.tick_ms,
        "compress": args.compress,
        "versions": tools.versions(),
        "backpressure_limit": 16 * 1024 * 1024,
        "logs": str(logdir),
    }
    print(f"chat-room benchmark: client under {tools.client_runtime} ({args.client_mode} mode, "
          f"{args.tick_ms} ms tick{', permessage-deflate' if args.compress else ''}), "
          f"{'pinned server->CPU ' + args.server_cpu + ', client->CPU ' + args.client_cpu if tools.taskset else 'unpinned'}; "
          f"load average {meta['machine']['loadavg_start']}; logs in {logdir}", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), flush=True)

    all_runs: list[dict] = []
    tables: list[str] = []
    if args.workers:
        return scaleout_main(tools, args, logdir, meta)
    for clients in args.clients:
        for size in args.size:
            runs = []
            for server in servers:
                print(f"-- {server}: {clients} clients, size {size} ...", end=" ", flush=True)
                r = run_one(tools, server, clients, size, args, logdir)
                runs.append(r)
                all_runs.append(r)
                report_run(r, "deliveries_per_s", "deliveries/s")
                time.sleep(args.pause)
            t = table(runs, clients, size, args.seconds, args.tick_ms, args.compress)
            tables.append(t)
            print(t, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "runs": all_runs}, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    ok = any(r["status"] == "ok" for r in all_runs)
    return 0 if ok else 1


def scaleout_main(tools: Tools, args: argparse.Namespace, logdir: Path, meta: dict) -> int:
    if args.servers != DEFAULT_SERVERS:
        print("scale-out mode: pubsock only (--servers ignored)", flush=True)
    print(f"scale-out mode: (a) pubsock_server.py, one process, no broker; (b) python -m pubsock, 1 worker, "
          f"redis; (c) python -m pubsock --workers {args.workers}, redis. "
          + (f"(a) and (b) pinned to CPU {args.server_cpu} (redis too in (b)); (c)'s workers and redis are not "
             f"pinned (they float over all CPUs); the client stays on CPU {args.client_cpu} and competes with them."
             if tools.taskset else "nothing pinned (--no-pin or no taskset)"), flush=True)
    redis, redis_port = start_redis(logdir, args.start_timeout)
    meta["redis"] = {"port": redis_port, "pid": redis.pid}
    print(f"redis-server pid {redis.pid} on 127.0.0.1:{redis_port}", flush=True)
    all_runs: list[dict] = []
    try:
        for clients in args.clients:
            for size in args.size:
                runs = []
                for key, workers in (("a", 0), ("b", 1), ("c", args.workers)):
                    name = "1 process, no broker" if not workers else f"{workers} worker(s) + redis"
                    print(f"-- ({key}) pubsock {name}: {clients} clients, size {size} ...", end=" ", flush=True)
                    if workers:
                        r = run_broker(tools, clients, size, args, logdir, redis, redis_port, workers)
                    else:
                        r = run_one(tools, "pubsock", clients, size, args, logdir)
                        r.update(variant="1 process, no broker", workers=0, broker=None,
                                 server_pinned=tools.taskset is not None)
                    runs.append(r)
                    all_runs.append(r)
                    report_run(r, "deliveries_per_s", "deliveries/s")
                    time.sleep(args.pause)
                print(scaleout_table(runs, clients, size, args.seconds, args.tick_ms, args.workers,
                                     args.server_cpu, tools.taskset is not None), flush=True)
    finally:
        kill(redis)
        forget(redis)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "runs": all_runs}, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    return 0 if all(r["status"] == "ok" for r in all_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
