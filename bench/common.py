"""Machinery shared by the benchmark runners (bench/chat/run.py, bench/echo/run.py).

Processes: every subprocess is started in its own session (so it leads a process group), recorded, and
stopped by PID (SIGTERM to its group, then SIGKILL); `install_cleanup()` stops whatever is left on exit,
SIGINT or SIGTERM. Measurements come from /proc: CPU seconds (/proc/PID/stat), peak RSS (VmHWM), and
"is the port listening" (/proc/net/tcp, so no probe connection is made to the server).

A run is: `server_process()` (start the server pinned to one CPU, wait until it listens, and on exit record
its peak RSS and stop it), then `run_client()` (start the load generator pinned to another CPU, read its
JSON lines from stdout, and snapshot both processes' CPU times at each "sample" event), then
`window_stats()` (CPU per million events over the measured window).

The load generators print JSON lines on stdout:
  {"event":"connected","ms":...,"runtime":...}     all connections ready
  {"event":"sample","i":k,"<count>":n,"ms":t}       one per sampling interval (t = its measured length)
  {"event":"result","samples":[...],"error":...}    last line
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# bench/chat/setup.sh installs Bun (the npm package `bun`) here; the other benchmarks use the same copy.
NODE_MODULES = BENCH / "chat" / "node_modules"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_started: list[subprocess.Popen] = []


# --------------------------------------------------------------------------------------------- processes

def kill(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a process we started (and its process group, which it leads) by PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_all() -> None:
    while _started:
        kill(_started.pop(), grace=2.0)


def _on_signal(signum, frame):  # noqa: ARG001
    kill_all()
    sys.exit(128 + signum)


def install_cleanup() -> None:
    """Stop everything started through popen() on exit, SIGINT and SIGTERM."""
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def popen(cmd: list[str], **kw) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    _started.append(proc)
    return proc


def forget(proc: subprocess.Popen) -> None:
    if proc in _started:
        _started.remove(proc)


# --------------------------------------------------------------------------------------------- /proc

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (read from /proc/PID/task/TID/children), root first."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


def tree_cpu_seconds(roots: list[int]) -> float | None:
    """Sum of utime + stime over the process trees of `roots` (live processes only; None if no root lives)."""
    total, seen = 0.0, False
    for root in roots:
        for pid in tree_pids(root):
            t = cpu_seconds(pid)
            if t is not None:
                total += t
                seen = True
    return total if seen else None


def peak_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def listening(port: int) -> bool:
    """Is some socket in LISTEN state on this TCP port (read from /proc/net/tcp{,6}, no connection made)?"""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def listeners(port: int) -> int:
    """How many sockets are in LISTEN state on this TCP port (SO_REUSEPORT workers each have one)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                n += sum(1 for line in f if (parts := line.split())[3] == "0A"
                         and int(parts[1].rsplit(":", 1)[1], 16) == port)
        except OSError:
            continue
    return n


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def tail(path: Path, n: int = 12) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------------------------- tools

def find_bun() -> str | None:
    for cand in (NODE_MODULES / ".bin" / "bun", BENCH / "chat" / ".tools" / "node_modules" / ".bin" / "bun"):
        if cand.exists():
            return str(cand)
    return shutil.which("bun")


def tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def python_pkg_version(python: str, module: str, env: dict | None = None) -> str | None:
    code = (f"import importlib.metadata as m, {module} as x\n"
            f"try: print(m.version({module!r}))\n"
            f"except Exception: print(getattr(x, '__version__', '?'), x.__file__)")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class BaseTools:
    """What is installed: Bun, Node, taskset, and how to run pubsock (the venv's install, or src/)."""

    python_peers: tuple[str, ...] = ("picows", "aiohttp", "websockets", "uvloop")

    def __init__(self, python: str, no_pin: bool) -> None:
        self.python = python
        self.bun = find_bun()
        self.bun_version = tool_version([self.bun, "--version"]) if self.bun else None
        if not self.bun_version:
            self.bun = None
        self.node = shutil.which("node")
        self.node_version = tool_version([self.node, "--version"]) if self.node else None
        self.have_ws = (NODE_MODULES / "ws" / "package.json").exists()
        self.taskset = shutil.which("taskset") if not no_pin else None
        # pubsock: the venv's install if any, else the work tree's src/ on PYTHONPATH.
        self.pubsock_env = dict(os.environ)
        self.pubsock_version = python_pkg_version(self.python, "pubsock")
        if self.pubsock_version is None:
            self.pubsock_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
            v = python_pkg_version(self.python, "pubsock", self.pubsock_env)
            self.pubsock_version = f"{v} (from src/ on PYTHONPATH)" if v else None

    def pinned(self, cmd: list[str], cpu: str) -> list[str]:
        return [self.taskset, "-c", cpu, *cmd] if self.taskset else cmd

    def versions(self) -> dict:
        v = {"bun": self.bun_version, "node": self.node_version, "pubsock": self.pubsock_version,
             "python": platform.python_version()}
        for mod in self.python_peers:
            v[mod] = python_pkg_version(self.python, mod)
        return v


# --------------------------------------------------------------------------------------------- one run

@contextlib.contextmanager
def server_process(cmd: list[str], *, env: dict | None, port: int, log: Path, start_timeout: float,
                   res: dict) -> Iterator[subprocess.Popen | None]:
    """Start a server, wait until it listens on `port`, and yield its Popen.

    Yields None (with res["status"] = "skipped" and the reason) when it exits or does not listen within
    `start_timeout` seconds. On exit: records its peak RSS (unless already set), stops it by PID, and marks
    the run failed if the server had died during it.
    """
    with open(log, "wb") as slog:
        srv = popen(cmd, stdout=slog, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + start_timeout
        ready = True
        while not listening(port):
            if srv.poll() is not None:
                last = tail(log, 1).strip()
                res.update(status="skipped", reason=f"server exited with code {srv.returncode} before listening"
                           + (f" ({last[:160]})" if last else ""), server_log_tail=tail(log))
                ready = False
                break
            if time.monotonic() > deadline:
                res.update(status="skipped", reason=f"server not listening on {port} after {start_timeout}s",
                           server_log_tail=tail(log))
                ready = False
                break
            time.sleep(0.05)
        if ready:
            time.sleep(0.2)  # let it finish starting up (the socket may listen before the loop runs)
        yield srv if ready else None
    finally:
        res["server_peak_rss_kib"] = res.get("server_peak_rss_kib") or peak_rss_kib(srv.pid)
        alive = srv.poll() is None
        kill(srv)
        forget(srv)
        if not alive and res["status"] == "ok":
            res.update(status="failed", reason=f"server died during the run (exit {srv.returncode})",
                       server_log_tail=tail(log))


def _reader(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put((time.monotonic(), line))
    q.put((time.monotonic(), None))


Mark = tuple[float, float | None, float | None]  # (time, server CPU s, client CPU s) at one sample


def run_client(cmd: list[str], *, srv: subprocess.Popen, timeout: float, log: Path, server_log: Path,
               cwd: Path, res: dict, server_cpu=None) -> tuple[dict | None, list[Mark]]:
    """Run the load generator until its "result" line (or `timeout`), snapshotting CPU times at each sample.

    Returns (the result event or None, the marks). Sets res["connect_ms"], res["client_runtime"] and the
    server's peak RSS (read while it is still running); on a missing result, marks the run failed and keeps
    the tails of both logs. The client is stopped by PID in every case. `server_cpu` (a function returning
    CPU seconds) replaces the server process's own CPU time, e.g. to sum a process tree and a broker.
    """
    if server_cpu is None:
        def server_cpu() -> float | None:
            return cpu_seconds(srv.pid)
    with open(log, "wb") as clog:
        cli = popen(cmd, stdout=subprocess.PIPE, stderr=clog, cwd=str(cwd))
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(cli.stdout, q), daemon=True).start()
    marks: list[Mark] = []
    result = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                res.update(status="failed", reason=f"client timed out after {timeout:.0f}s")
                break
            try:
                t, line = q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "sample":
                marks.append((t, server_cpu(), cpu_seconds(cli.pid)))
            elif ev.get("event") == "connected":
                res["connect_ms"] = ev.get("ms")
                res["client_runtime"] = ev.get("runtime")
            elif ev.get("event") == "result":
                result = ev
        res["server_peak_rss_kib"] = peak_rss_kib(srv.pid)
    finally:
        kill(cli, grace=1.0)
        forget(cli)
    if result is None:
        if res["status"] == "ok":
            res.update(status="failed", reason=f"client exited (code {cli.returncode}) without a result")
        res["client_log_tail"] = tail(log)
        res["server_log_tail"] = tail(server_log)
    return result, marks


def window_stats(res: dict, marks: list[Mark], samples: list[dict], key: str) -> None:
    """CPU figures over the measured window: from the end of the first sample to the end of the last one.

    `samples` are the client's {key: count, "ms": length} entries. Sets server_cpu_s, server_cpu_pct,
    server_cpu_s_per_M (per million counted events), client_cpu_pct, window_s and window_<key>.
    """
    k = min(len(marks), len(samples))
    if k < 2:
        return
    (t0, s0, c0), (t1, s1, c1) = marks[0], marks[k - 1]
    n = sum(s[key] for s in samples[1:k])
    wall = t1 - t0
    if s0 is not None and s1 is not None and wall > 0:
        res["server_cpu_s"] = round(s1 - s0, 3)
        res["server_cpu_pct"] = round(100 * (s1 - s0) / wall, 1)
        if n:
            res["server_cpu_s_per_M"] = round((s1 - s0) / (n / 1e6), 4)
    if c0 is not None and c1 is not None and wall > 0:
        res["client_cpu_pct"] = round(100 * (c1 - c0) / wall, 1)
    res["window_s"] = round(wall, 3)
    res[f"window_{key}"] = n


# --------------------------------------------------------------------------------------------- report

def fmt_rate(x) -> str:
    return f"{x / 1e6:.3f} M" if isinstance(x, (int, float)) else "-"


def fmt(x, spec: str, unit: str = "") -> str:
    return f"{x:{spec}}{unit}" if isinstance(x, (int, float)) else "-"


def ratio_table(runs: list[dict], *, rate_key: str, rate_title: str,
                extra: tuple[str, int, Callable[[dict], str]], name_width: int) -> list[str]:
    """The lines of a run table: a head, then one row per server with pubsock's ratios to it.

    ``rate_key`` is the figure compared (events per second) and ``extra`` a column of the benchmark's own
    (title, width, cell from a run). ``ratio_legend`` gives the line that goes under it.
    """
    pub = next((r for r in runs if r["server"] == "pubsock" and r["status"] == "ok"), None)
    extra_title, extra_width, extra_cell = extra
    head = (f"{'server':<{name_width}} {rate_title:>13} {'CPU-s/M':>8} {'srv CPU':>8} {'peak RSS':>10} "
            f"{'cli CPU':>8} {extra_title:>{extra_width}}  {'pubsock/peer':>12} {'CPU/M ratio':>11}")
    out = [head, "-" * len(head)]
    for r in runs:
        if r["status"] == "skipped":
            out.append(f"{r['server']:<{name_width}} skipped: {r.get('reason')}")
            continue
        ratio = cpu_ratio = "-"
        if pub and r is not pub and r.get(rate_key):
            ratio = f"{pub[rate_key] / r[rate_key]:.2f}x"
            if pub.get("server_cpu_s_per_M") and r.get("server_cpu_s_per_M"):
                cpu_ratio = f"{pub['server_cpu_s_per_M'] / r['server_cpu_s_per_M']:.2f}x"
        line = (f"{r['server']:<{name_width}} {run_cells(r, rate_key)} "
                f"{extra_cell(r):>{extra_width}}  {ratio:>12} {cpu_ratio:>11}")
        if r["status"] != "ok":
            line += f"  FAILED: {r.get('reason')}"
        elif (r.get("client_cpu_pct") or 0) >= 85 and (r.get("server_cpu_pct") or 0) < 85:
            line += "  (client-bound?)"
        out.append(line)
    return out


def run_cells(r: dict, rate_key: str) -> str:
    """A run's measured columns: rate, CPU-s/M, server CPU, server peak RSS, client CPU (widths 13/8/8/10/8)."""
    rss = r.get("server_peak_rss_kib")
    return (f"{fmt_rate(r.get(rate_key)):>13} {fmt(r.get('server_cpu_s_per_M'), '.3f'):>8} "
            f"{fmt(r.get('server_cpu_pct'), '.0f', '%'):>8} {fmt(rss / 1024 if rss else None, '.1f', ' MiB'):>10} "
            f"{fmt(r.get('client_cpu_pct'), '.0f', '%'):>8}")


def ratio_legend(runs: list[dict], unit: str) -> str:
    """The line under a run table: what its ratios mean (``unit``: one event), or why there are none."""
    if not any(r["server"] == "pubsock" and r["status"] == "ok" for r in runs):
        return "(pubsock did not run: no ratios)"
    return f"pubsock/peer: throughput ratio (>1 = pubsock faster); CPU/M ratio: CPU per {unit} (<1 = pubsock cheaper)"


def add_process_arguments(p: argparse.ArgumentParser, *, servers: list[str], default_servers: str) -> None:
    """The options every runner has: servers, output, port, pinning, the Python, start-up, pauses, logs."""
    p.add_argument("--servers", default=default_servers, help=f"comma list from {','.join(servers)}")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--port", type=int, default=4001, help="port to use when free (else a free one)")
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                   help="python for the Python servers (and a Python client)")
    p.add_argument("--start-timeout", type=float, default=20.0)
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    p.add_argument("--logs", help="directory for server/client logs (default: a new temp dir)")


def add_run_arguments(p: argparse.ArgumentParser, *, servers: list[str], default_servers: str,
                      stall: str) -> None:
    """The options of a load runner (chat, echo): ``add_process_arguments``, samples, client runtime, timeouts."""
    add_process_arguments(p, servers=servers, default_servers=default_servers)
    p.add_argument("--seconds", type=int, default=10, help="samples of 1 s per run (the first is not counted)")
    p.add_argument("--client-runtime", choices=["auto", "bun", "node"], default="auto")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--stall-timeout", type=float, default=10.0, help=f"fail a run with no {stall} for this long")


def chosen_servers(p: argparse.ArgumentParser, args: argparse.Namespace, servers: list[str]) -> list[str]:
    """``--servers`` as a list, after checking each name (``p.error`` on an unknown one)."""
    chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in chosen:
        if s not in servers:
            p.error(f"unknown server {s!r}; choose from {servers}")
    return chosen


def report_run(r: dict, rate_key: str, rate_label: str, detail: str = "") -> None:
    """Finish a run's progress line: its rate and samples (``detail`` appended), or its failure and log tails."""
    if r["status"] == "ok":
        samples = [round(x / 1e6, 3) for x in r.get("samples", [])]
        print(f"{fmt_rate(r.get(rate_key))} {rate_label} (samples {samples} M{detail})", flush=True)
        return
    print(f"{r['status']}: {r.get('reason')}", flush=True)
    for key in ("server_log_tail", "client_log_tail"):
        if r.get(key):
            print("   | " + r[key].replace("\n", "\n   | "), flush=True)
