"""Run Autobahn|Testsuite against pubsock and gate on it (0 FAILED, 0 UNIMPLEMENTED).

  python scripts/autobahn.py server [--full]   echo server (examples/echo.py) under the fuzzing client
  python scripts/autobahn.py client [--full]   tests/autobahn_client.py under the fuzzing server

Without --full, the compression groups 12 and 13 are left out. The echo server is
started on a free loopback port and stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUTOBAHN = ROOT.parent / "shared" / "conformance" / "autobahn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"autobahn: the echo server did not listen on port {port}")


def unimplemented(index_path: Path) -> list[str]:
    index = json.loads(index_path.read_text())
    return [case for cases in index.values() for case, result in cases.items() if result["behavior"] == "UNIMPLEMENTED"]


def run_server(full: bool) -> int:
    port = free_port()
    out = ROOT.resolve() / "build" / ("autobahn-server-full" if full else "autobahn-server")
    server = subprocess.Popen([sys.executable, str(ROOT / "examples" / "echo.py"), str(port), "--deflate"])
    try:
        wait_for_port(port, time.monotonic() + 20)
        command = [str(AUTOBAHN), "server", f"ws://127.0.0.1:{port}", "--out", str(out)]
        status = subprocess.run(command + (["--full"] if full else []), timeout=3000).returncode
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return gate(status, out)


def run_client(full: bool) -> int:
    out = ROOT.resolve() / "build" / ("autobahn-client-full" if full else "autobahn-client")
    command = [str(AUTOBAHN), "client", "--out", str(out)] + (["--full"] if full else [])
    command += ["--", sys.executable, str(ROOT / "tests" / "autobahn_client.py")]
    return gate(subprocess.run(command, timeout=3000).returncode, out)


def gate(status: int, out: Path) -> int:
    if status != 0:
        return status
    for index in out.rglob("index.json"):
        missing = unimplemented(index)
        if missing:
            print(f"autobahn: UNIMPLEMENTED cases: {', '.join(missing)}")
            return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["server", "client"])
    parser.add_argument("--full", action="store_true", help="include compression (groups 12 and 13)")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.exit(run_server(args.full) if args.side == "server" else run_client(args.full))


if __name__ == "__main__":
    main()
