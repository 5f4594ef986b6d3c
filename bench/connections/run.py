#!/usr/bin/env python3
r"""Idle-connections benchmark: server memory per open WebSocket and server CPU per handshake.

    .venv/bin/python bench/connections/run.py --connections 10000 --servers pubsock,websockets,bun \
        [--compress both] [--json connections-results.json]

For each server (and with/without permessage-deflate), the runner:
  1. starts the server pinned to CPU 0 (taskset -c 0) and waits until it listens (/proc/net/tcp);
  2. starts the client (bench/connections/idle-client.mjs under Bun, or client.py on uvloop with
     --client python; pinned to CPU 1), which opens --warmup
     connections first (default 200; not counted: one-time costs such as lazy imports, code pages and the
     first allocations of each kind land here) and waits;
  3. reads the server's VmRSS / RssAnon (/proc/PID/status) and its CPU time (/proc/PID/stat): the baseline;
  4. lets the client open the other N - warmup connections, each from a source address 127.0.0.K,
     127.0.0.K+1, ... (--per-address on each; each run takes the next block of addresses), each a complete RFC 6455 handshake (with --compress: offering
     `permessage-deflate; client_max_window_bits`, and checking that every answer accepts it), at most
     --concurrency in flight;
  5. reads the server's CPU time when the last handshake is done, waits --settle seconds with every
     connection idle, and reads VmRSS / RssAnon again;
  6. stops the client, then the server, by PID.

Reported per server:
  KiB/conn     (VmRSS after - VmRSS at the baseline) / (N - warmup): what one more idle connection costs
  anon/conn    the same from RssAnon (heap only; file-backed pages such as code excluded). The memory ratio
               uses it: Bun's VmRSS also grows by ~6 MB of its own binary's pages during a run whatever
               the connection count (1.56 KiB/conn at 10k, 1.19 at 19k), the Python servers' file pages
               do not grow
  µs/handshake server user+system CPU (/proc/PID/stat) from the first counted connect to the last 101,
               divided by N - warmup: accept, HTTP parse, upgrade, 101 answer, kernel time included
  user+sys     the same split into user and system (kernel) time
  handshakes/s the rate the client achieved, and cli CPU its CPU use meanwhile (100 % = one core): the
               client, not the server, sets the pace when the server's CPU per handshake times the rate is
               well under one core (server CPU per handshake is still measured correctly then)
  RSS          the server's VmRSS with all N connections open
and the ratios pubsock/peer for both (< 1 = pubsock cheaper).

Memory figures are stable from run to run and do not depend on other load on the machine. CPU figures do:
on a shared machine, take several runs (--repeat) and look at the spread.

Servers (bench/connections/servers/): pubsock (uvloop), pubsock-asyncio (the standard loop), pubsock-base
(the same server on another pubsock tree given by --base-src: before/after comparisons in one run), websockets
(uvloop), bun (Bun.serve), and floor: not a WebSocket server but a bare uvloop Protocol that answers the
handshake with a canned 101 (bytes.find for the key), the floor for any Python server on uvloop. None of them has an idle timeout or keepalive pings. Everything started is stopped
by PID on exit. Loopback only. The file-descriptor limit is raised to the hard limit (`ulimit -Hn`) for
the runner and its children; it must exceed N plus a margin.
Setup: bash bench/chat/setup.sh (Bun, websockets, uvloop; shared with the chat benchmark).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402  (bench/common.py: processes, /proc readings)
from common import (  # noqa: E402
    BaseTools,
    add_process_arguments,
    chosen_servers,
    cpu_seconds,
    fmt,
    free_port,
    install_cleanup,
    loadavg,
    server_process,
    tail,
)

SERVERS_DIR = HERE / "servers"
CLIENT = HERE / "client.py"
CLIENT_JS = HERE / "idle-client.mjs"
ALL_SERVERS = ["pubsock", "pubsock-asyncio", "pubsock-base", "websockets", "bun", "floor"]
DEFAULT_SERVERS = "pubsock,websockets,bun"


def cpu_split(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) / common.CLK_TCK, int(fields[12]) / common.CLK_TCK


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process, in KiB."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


_runs_started = 0


def next_first_address(args: argparse.Namespace) -> int:
    """Each run takes the next block of source addresses (127.0.0.2 ... 127.0.0.254, round robin).

    The client closes first, so each run leaves its ports in TIME_WAIT for a minute; a fresh block of
    addresses per run never runs out of ports, however many runs follow each other.
    """
    global _runs_started
    block = -(-args.connections // args.per_address)
    slots = max(1, 253 // block)
    first = 2 + (_runs_started % slots) * block
    _runs_started += 1
    return first


class Tools(BaseTools):
    python_peers = ("websockets", "uvloop")

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args.python, args.no_pin)
        self.client = args.client
        if self.client == "auto":
            self.client = "bun" if self.bun else "python"
        self.python_client = args.python
        self.base_src = args.base_src

    def base_env(self) -> dict:
        """pubsock-base: the same server script on another source tree (its src/ first on PYTHONPATH)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.base_src, os.environ.get("PYTHONPATH", "")) if p)
        return env

    def client_cmd(self) -> list[str]:
        if self.client == "bun":
            if not self.bun:
                raise SystemExit("bun is not installed: run bash bench/chat/setup.sh, or use --client python")
            return [self.bun, str(CLIENT_JS)]
        return [self.python_client, "-u", str(CLIENT)]

    def server_cmd(self, name: str) -> tuple[list[str] | None, dict | None, str | None]:
        """(command, env, reason it cannot run)."""
        py = [self.python, "-u"]
        if name == "pubsock":
            return py + [str(SERVERS_DIR / "pubsock_server.py")], self.pubsock_env, None
        if name == "pubsock-base":
            if not self.base_src:
                return None, None, "pubsock-base needs --base-src DIR (another tree's src/, extensions built)"
            return py + [str(SERVERS_DIR / "pubsock_server.py")], self.base_env(), None
        if name == "pubsock-asyncio":
            return py + [str(SERVERS_DIR / "pubsock_server.py"), "--loop", "asyncio"], self.pubsock_env, None
        if name == "websockets":
            return py + [str(SERVERS_DIR / "websockets_server.py")], None, None
        if name == "floor":
            return py + [str(SERVERS_DIR / "floor_server.py")], None, None
        if name == "bun":
            if not self.bun:
                return None, None, "bun is not installed (bash bench/chat/setup.sh)"
            return [self.bun, str(SERVERS_DIR / "bun_server.js")], None, None
        return None, None, f"unknown server {name!r}"


# --------------------------------------------------------------------------------------------- one run

def run_one(tools: Tools, server: str, compress: bool, args: argparse.Namespace, logdir: Path, rep: int) -> dict:
    res: dict = {"server": server, "compress": compress, "connections": args.connections, "warmup": args.warmup,
                 "status": "ok", "loadavg_before": loadavg(), "repeat": rep}
    cmd, env, reason = tools.server_cmd(server)
    if cmd is None:
        res.update(status="skipped", reason=reason)
        return res
    port = free_port(args.port)
    res["port"] = port
    tag = f"{server}{'-z' if compress else ''}-{rep}"
    server_log = logdir / f"{tag}.server.log"
    client_log = logdir / f"{tag}.client.log"
    res["logs"] = [str(server_log), str(client_log)]
    full = tools.pinned(cmd + ["--host", "127.0.0.1", "--port", str(port)]
                        + (["--compress"] if compress else []) + (["--subscribe"] if args.subscribe else []),
                        args.server_cpu)
    with server_process(full, env=env, port=port, log=server_log, start_timeout=args.start_timeout,
                        res=res) as srv:
        if srv is not None:
            _measure(tools, srv, res, port, compress, args, client_log, server_log)
    return res


def _reader(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def _measure(tools: Tools, srv: subprocess.Popen, res: dict, port: int, compress: bool,
             args: argparse.Namespace, client_log: Path, server_log: Path) -> None:
    time.sleep(args.settle)
    res["rss_start"] = rss_kib(srv.pid)
    ccmd = tools.pinned(tools.client_cmd() + [
        "--port", str(port), "--connections", str(args.connections), "--per-address", str(args.per_address),
        "--first-address", str(next_first_address(args)), "--concurrency", str(args.concurrency),
        "--warmup", str(args.warmup), "--hold", str(args.timeout + 60)]
        + (["--compress"] if compress else []), args.client_cpu)
    with open(client_log, "wb") as clog:
        cli = subprocess.Popen(ccmd, start_new_session=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=clog, cwd=str(HERE))
    common._started.append(cli)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(cli.stdout, q), daemon=True).start()
    deadline = time.monotonic() + args.timeout
    counted = args.connections - args.warmup
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                res.update(status="failed", reason=f"client did not finish within {args.timeout:.0f}s")
                break
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                res.update(status="failed", reason=f"client exited (code {cli.wait()}) early")
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "warm":
                time.sleep(args.settle)
                res["rss_before"] = rss_kib(srv.pid)
                res["cpu_before"] = cpu_seconds(srv.pid)
                res["split_before"] = cpu_split(srv.pid)
                res["client_cpu_before"] = cpu_seconds(cli.pid)
                cli.stdin.write(b"go\n")
                cli.stdin.flush()
            elif kind == "start" and "cpu_before" not in res:
                res["rss_before"] = rss_kib(srv.pid)
                res["cpu_before"] = cpu_seconds(srv.pid)
                res["split_before"] = cpu_split(srv.pid)
                res["client_cpu_before"] = cpu_seconds(cli.pid)
            elif kind == "connected":
                res["cpu_after"] = cpu_seconds(srv.pid)
                res["split_after"] = cpu_split(srv.pid)
                res["client_cpu_after"] = cpu_seconds(cli.pid)
                res["connect_ms"] = ev.get("ms")
                res["client_runtime"] = ev.get("runtime")
                res["sources"] = ev.get("sources")
                res["deflate_answers"] = ev.get("deflate")
                time.sleep(args.settle)
                res["cpu_idle_s"] = round(cpu_seconds(srv.pid) - res["cpu_after"], 3)
                res["rss_after"] = rss_kib(srv.pid)
                break
            elif kind == "result":
                res.update(status="failed", reason=ev.get("error") or "client stopped")
                break
    finally:
        common.kill(cli, grace=2.0)
        common.forget(cli)
    if res["status"] != "ok":
        res["client_log_tail"] = tail(client_log)
        res["server_log_tail"] = tail(server_log)
        return
    if compress and res["deflate_answers"] != args.connections:
        res.update(status="failed", reason=f"--compress: {res['deflate_answers']} of {args.connections} answers "
                   "accepted permessage-deflate")
    before, after = res["rss_before"], res["rss_after"]
    res["kib_per_conn"] = round((after["VmRSS"] - before["VmRSS"]) / counted, 3)
    if "RssAnon" in after and "RssAnon" in before:
        res["anon_kib_per_conn"] = round((after["RssAnon"] - before["RssAnon"]) / counted, 3)
    if res.get("cpu_before") is not None and res.get("cpu_after") is not None:
        res["us_per_handshake"] = round((res["cpu_after"] - res["cpu_before"]) * 1e6 / counted, 1)
    if res.get("split_before") and res.get("split_after"):
        (u0, s0), (u1, s1) = res["split_before"], res["split_after"]
        res["us_user"] = round((u1 - u0) * 1e6 / counted, 1)
        res["us_system"] = round((s1 - s0) * 1e6 / counted, 1)
    res["handshakes_per_s"] = round(counted / (res["connect_ms"] / 1000)) if res.get("connect_ms") else None
    if res.get("client_cpu_before") is not None and res.get("client_cpu_after") is not None and res.get("connect_ms"):
        res["client_cpu_pct"] = round(100 * (res["client_cpu_after"] - res["client_cpu_before"])
                                      / (res["connect_ms"] / 1000), 1)


# --------------------------------------------------------------------------------------------- report

def _median(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (compress, server): medians over the repeats."""
    rows = []
    keys = []
    for r in runs:
        k = (r["compress"], r["server"])
        if k not in keys:
            keys.append(k)
    for compress, server in keys:
        mine = [r for r in runs if r["compress"] == compress and r["server"] == server]
        ok = [r for r in mine if r["status"] == "ok"]
        row = {"compress": compress, "server": server, "runs": len(ok)}
        if not ok:
            row.update(status=mine[0]["status"], reason=mine[0].get("reason"))
        else:
            row["status"] = "ok"
            for key in ("kib_per_conn", "anon_kib_per_conn", "us_per_handshake", "us_user", "us_system",
                        "handshakes_per_s", "client_cpu_pct"):
                row[key] = _median(ok, key)
            row["us_per_handshake_all"] = [r.get("us_per_handshake") for r in ok]
            row["kib_per_conn_all"] = [r.get("kib_per_conn") for r in ok]
            row["rss_after_mib"] = round(ok[-1]["rss_after"]["VmRSS"] / 1024, 1)
        rows.append(row)
    return rows


def table(rows: list[dict], connections: int, warmup: int, compress: bool) -> str:
    mine = [r for r in rows if r["compress"] == compress]
    pub = next((r for r in mine if r["server"] == "pubsock" and r["status"] == "ok"), None)
    out = [f"\n== {connections:,} idle connections ({connections - warmup:,} counted), "
           f"{'permessage-deflate negotiated' if compress else 'no compression'} =="]
    head = (f"{'server':<16} {'KiB/conn':>9} {'anon/conn':>9} {'µs/handshake':>12} {'user+sys':>11} {'handshakes/s':>12} "
            f"{'cli CPU':>7} {'RSS':>10}  {'mem pubsock/peer':>16} {'CPU pubsock/peer':>16}")
    out += [head, "-" * len(head)]
    for r in mine:
        if r["status"] != "ok":
            out.append(f"{r['server']:<16} {r['status']}: {r.get('reason')}")
            continue
        mem = cpu = "-"
        if pub and r is not pub:
            if pub.get("anon_kib_per_conn") and r.get("anon_kib_per_conn"):
                mem = f"{pub['anon_kib_per_conn'] / r['anon_kib_per_conn']:.2f}x"
            if pub.get("us_per_handshake") and r.get("us_per_handshake"):
                cpu = f"{pub['us_per_handshake'] / r['us_per_handshake']:.2f}x"
        us = fmt(r.get("us_per_handshake"), ".1f")
        if r["runs"] > 1:
            us += " (" + "/".join(f"{x:.0f}" for x in r["us_per_handshake_all"] if x is not None) + ")"
        out.append(f"{r['server']:<16} {fmt(r.get('kib_per_conn'), '.2f'):>9} {fmt(r.get('anon_kib_per_conn'), '.2f'):>9} "
                   f"{us:>12} {fmt(r.get('us_user'), '.0f')}+{fmt(r.get('us_system'), '.0f'):<5} "
                   f"{fmt(r.get('handshakes_per_s'), ',.0f'):>12} {fmt(r.get('client_cpu_pct'), '.0f', '%'):>7} "
                   f"{fmt(r.get('rss_after_mib'), '.1f', ' MiB'):>10}  {mem:>16} {cpu:>16}")
    if not pub:
        out.append("(pubsock did not run: no ratios)")
    else:
        out.append("pubsock/peer: < 1 = pubsock uses less memory per connection (anon/conn) / less CPU per handshake")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10_000, help="idle connections to open (default 10000)")
    p.add_argument("--warmup", type=int, default=200, help="first connections, not counted (default 200)")
    p.add_argument("--per-address", type=int, default=2500, help="connections per source address (default 2500)")
    p.add_argument("--concurrency", type=int, default=64, help="handshakes in flight (default 64)")
    p.add_argument("--compress", choices=["off", "on", "both"], default="both",
                   help="permessage-deflate offered by the client and enabled in the servers (default both)")
    p.add_argument("--subscribe", action="store_true", help="each socket subscribes to one topic in open")
    p.add_argument("--client", choices=["auto", "bun", "python"], default="auto",
                   help="the client: idle-client.mjs under Bun (auto, when installed) or client.py (uvloop)")
    p.add_argument("--base-src", metavar="DIR",
                   help="for the server pubsock-base: another pubsock tree's src/ (e.g. an earlier commit, from "
                        "git archive, with build_ext --inplace), run beside the current one to compare them")
    p.add_argument("--repeat", type=int, default=1, help="runs per server (medians are reported)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds idle before each RSS reading")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds a run may take once the client started")
    add_process_arguments(p, servers=ALL_SERVERS, default_servers=DEFAULT_SERVERS)
    args = p.parse_args(argv)

    servers = chosen_servers(p, args, ALL_SERVERS)
    if not 0 <= args.warmup < args.connections:
        p.error("--warmup must be below --connections")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 256
    if hard < need:
        p.error(f"the hard fd limit (ulimit -Hn) is {hard}: {need} are needed for {args.connections} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers and the client

    install_cleanup()
    tools = Tools(args)
    logdir = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="pubsock-bench-connections-"))
    logdir.mkdir(parents=True, exist_ok=True)
    versions = tools.versions()
    print(f"versions: {versions}", file=sys.stderr)
    print(f"fd limit {hard}; client: {tools.client}; logs: {logdir}; loadavg {loadavg()}", file=sys.stderr)
    if not tools.taskset:
        print("(not pinned: taskset missing or --no-pin)", file=sys.stderr)

    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compress]
    runs: list[dict] = []
    for compress in modes:
        for rep in range(args.repeat):
            for server in servers:
                res = run_one(tools, server, compress, args, logdir, rep)
                runs.append(res)
                status = res["status"]
                line = (f"[{server}{' +deflate' if compress else ''} #{rep + 1}] {status}: "
                        f"{fmt(res.get('kib_per_conn'), '.2f', ' KiB/conn')}, "
                        f"{fmt(res.get('us_per_handshake'), '.1f', ' µs/handshake')}, "
                        f"connect {fmt(res.get('connect_ms'), '.0f', ' ms')}, loadavg {res['loadavg_before']}")
                if status != "ok":
                    line += f" — {res.get('reason')}"
                    if res.get("server_log_tail"):
                        line += "\n  server log: " + res["server_log_tail"].replace("\n", "\n  ")
                    if res.get("client_log_tail"):
                        line += "\n  client log: " + res["client_log_tail"].replace("\n", "\n  ")
                print(line, file=sys.stderr)
                time.sleep(args.pause)
    rows = summarize(runs)
    for compress in modes:
        print(table(rows, args.connections, args.warmup, compress))
    print(f"\nloadavg after: {loadavg()}. Memory figures are robust to other load; CPU per handshake is not.")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "when": _dt.datetime.now().isoformat(timespec="seconds"), "versions": versions,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "args": vars(args), "rows": rows, "runs": runs}, indent=1))
    return 0 if all(r["status"] in ("ok", "skipped") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
