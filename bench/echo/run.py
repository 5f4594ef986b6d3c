#!/usr/bin/env python3
r"""Echo benchmark runner: pubsock against its peers, one command.

    .venv/bin/python bench/echo/run.py --connections 256 --in-flight 1 32 \
        --servers pubsock,bun,picows --seconds 10 --json echo-results.json

Workload: C connections (--connections), each keeping K messages (--in-flight) of 16 B (--size) in flight.
The load generator (bench/echo/echo-client.mjs, under Bun) sends K messages on each connection and one more
each time an echo comes back, so C*K messages are always outstanding. It speaks RFC 6455 itself over
node:net (pre-masked frames, echoes counted from their headers, one write per chunk of echoes) so that it
is not the bottleneck.

For each configuration (connections x in-flight) and each server: start the server pinned to one CPU
(taskset -c 0), wait until it listens, run the load generator pinned to another CPU (taskset -c 1), read
its per-second samples, and stop the server by PID. Recorded per run:
  round trips/s     median of the per-second samples after the first (each divided by its measured length)
  CPU-s per M       server user+system CPU seconds (/proc/PID/stat) over the measured window (samples after
                    the first), per million round trips in that window
  server CPU %      the same CPU time over the window's wall time (100 % = one core saturated)
  client CPU %      the load generator's, likewise: near 100 % means the client may be the bottleneck
  mean RTT          C*K / (round trips/s), by Little's law (a derived figure, not a latency measurement)
  peak RSS          the server's VmHWM from /proc/PID/status just before it is stopped
and per configuration the ratios pubsock/peer (throughput, and CPU per round trip).

Servers (bench/echo/servers/): pubsock (ws.send(message)), bun (Bun.serve, ws.send(message)), picows
(transport.send of the frame's payload). A server that fails to start is skipped with the reason. Every
subprocess has a timeout; everything started is stopped by PID on exit. Loopback only.
Setup: bash bench/chat/setup.sh (Bun, picows, uvloop; shared with the chat benchmark).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
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
    free_port,
    install_cleanup,
    loadavg,
    ratio_legend,
    ratio_table,
    report_run,
    run_client,
    server_process,
    tail,
    window_stats,
)

SERVERS_DIR = HERE / "servers"
CLIENT_JS = HERE / "echo-client.mjs"
ALL_SERVERS = ["pubsock", "bun", "picows"]
DEFAULT_SERVERS = "pubsock,bun,picows"


# --------------------------------------------------------------------------------------------- tools

class Tools(BaseTools):
    python_peers = ("picows", "uvloop")

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args.python, args.no_pin)
        self.client_runtime = args.client_runtime
        if self.client_runtime == "auto":
            self.client_runtime = "bun" if self.bun else "node"

    def client_cmd(self) -> list[str]:
        runtime = self.bun if self.client_runtime == "bun" else self.node
        if not runtime:
            raise SystemExit(f"{self.client_runtime} is not installed: run bash bench/chat/setup.sh")
        return [runtime, str(CLIENT_JS)]

    def server_cmd(self, name: str) -> tuple[list[str] | None, dict | None, str | None]:
        """(command, env, reason it cannot run)."""
        py = [self.python, "-u"]
        if name == "pubsock":
            return py + [str(SERVERS_DIR / "pubsock_server.py")], self.pubsock_env, None
        if name == "picows":
            return py + [str(SERVERS_DIR / "picows_server.py")], None, None
        if name == "bun":
            if not self.bun:
                return None, None, "bun is not installed (bash bench/chat/setup.sh)"
            return [self.bun, str(SERVERS_DIR / "bun_server.js")], None, None
        return None, None, f"unknown server {name!r}"


# --------------------------------------------------------------------------------------------- one run

def run_one(tools: Tools, server: str, conns: int, k: int, args: argparse.Namespace, logdir: Path) -> dict:
    res: dict = {"server": server, "connections": conns, "in_flight": k, "size": args.size,
                 "opcode": "binary" if args.binary else "text", "seconds": args.seconds, "status": "ok",
                 "loadavg_before": loadavg()}
    cmd, env, reason = tools.server_cmd(server)
    if cmd is None:
        res.update(status="skipped", reason=reason)
        return res
    port = free_port(args.port)
    res["port"] = port
    server_log = logdir / f"{server}-c{conns}-k{k}.server.log"
    client_log = logdir / f"{server}-c{conns}-k{k}.client.log"
    res["logs"] = [str(server_log), str(client_log)]
    full = tools.pinned(cmd + ["--host", "127.0.0.1", "--port", str(port)], args.server_cpu)
    with server_process(full, env=env, port=port, log=server_log, start_timeout=args.start_timeout,
                        res=res) as srv:
        if srv is None:
            return res
        ccmd = tools.pinned(tools.client_cmd() + [
            "--url", f"ws://127.0.0.1:{port}/", "--connections", str(conns), "--in-flight", str(k),
            "--size", str(args.size), "--seconds", str(args.seconds),
            "--connect-timeout", str(args.connect_timeout), "--stall-timeout", str(args.stall_timeout),
        ] + (["--binary"] if args.binary else []), args.client_cpu)
        timeout = args.connect_timeout + args.seconds * 2 + 20
        result, marks = run_client(ccmd, srv=srv, timeout=timeout, log=client_log, server_log=server_log,
                                   cwd=HERE, res=res)
    if result is None:
        return res
    samples = result.get("samples", [])
    res.update(round_trips_total=result.get("round_trips_total"),
               per_connection_min=result.get("per_connection_min"),
               per_connection_max=result.get("per_connection_max"),
               first_echo_checked=result.get("first_echo_checked"),
               samples=[round(s["round_trips"] / (s["ms"] / 1000.0)) for s in samples if s["ms"] > 0])
    if result.get("error"):
        res.update(status="failed", reason=result["error"], server_log_tail=tail(server_log))
    rates = res["samples"][1:] or res["samples"]
    if rates:
        res["round_trips_per_s"] = statistics.median(rates)
        if res["round_trips_per_s"] > 0:
            res["mean_rtt_us"] = round(conns * k / res["round_trips_per_s"] * 1e6, 1)
    window_stats(res, marks, samples, "round_trips")
    return res


# --------------------------------------------------------------------------------------------- report

def _fmt_rtt(us) -> str:
    if not isinstance(us, (int, float)):
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def table(runs: list[dict], conns: int, k: int, size: int, opcode: str, seconds: int) -> str:
    title = (f"\n== {conns} connections x {k} in flight ({conns * k:,} outstanding), {size} B {opcode} messages, "
             f"{seconds} samples of 1 s ==")
    rtt = ("mean RTT", 9, lambda r: _fmt_rtt(r.get("mean_rtt_us")))
    rows = ratio_table(runs, rate_key="round_trips_per_s", rate_title="round trips/s", extra=rtt, name_width=9)
    return "\n".join([title, *rows, ratio_legend(runs, "round trip")])


# --------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, nargs="+", default=[256], help="connection counts (default 256)")
    p.add_argument("--in-flight", type=int, nargs="+", default=[1, 32],
                   help="messages kept in flight per connection (default: 1 32)")
    p.add_argument("--size", type=int, default=16, help="message size in bytes (default 16)")
    p.add_argument("--binary", action="store_true", help="send binary messages (default: text)")
    add_run_arguments(p, servers=ALL_SERVERS, default_servers=DEFAULT_SERVERS, stall="echo")
    args = p.parse_args(argv)

    servers = chosen_servers(p, args, ALL_SERVERS)
    if not 8 <= args.size < 65536:
        p.error("--size must be 8..65535 bytes")
    if not Path(args.python).exists():
        args.python = sys.executable
    install_cleanup()

    tools = Tools(args)
    logdir = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="pubsock-bench-echo-"))
    logdir.mkdir(parents=True, exist_ok=True)
    opcode = "binary" if args.binary else "text"
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_start": loadavg()},
        "pinning": {"server_cpu": args.server_cpu, "client_cpu": args.client_cpu} if tools.taskset else None,
        "client_runtime": tools.client_runtime,
        "size": args.size,
        "opcode": opcode,
        "versions": tools.versions(),
        "logs": str(logdir),
    }
    print(f"echo benchmark: client under {tools.client_runtime} (raw RFC 6455 over node:net), "
          f"{args.size} B {opcode} messages, "
          f"{'pinned server->CPU ' + args.server_cpu + ', client->CPU ' + args.client_cpu if tools.taskset else 'unpinned'}; "
          f"load average {meta['machine']['loadavg_start']}; logs in {logdir}", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), flush=True)

    all_runs: list[dict] = []
    for conns in args.connections:
        for k in args.in_flight:
            runs = []
            for server in servers:
                print(f"-- {server}: {conns} connections x {k} in flight ...", end=" ", flush=True)
                r = run_one(tools, server, conns, k, args, logdir)
                runs.append(r)
                all_runs.append(r)
                report_run(r, "round_trips_per_s", "round trips/s",
                           f"; per connection {r.get('per_connection_min')}..{r.get('per_connection_max')}")
                time.sleep(args.pause)
            print(table(runs, conns, k, args.size, opcode, args.seconds), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "runs": all_runs}, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    ok = any(r["status"] == "ok" for r in all_runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
