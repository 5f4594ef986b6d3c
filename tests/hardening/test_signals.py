"""``pubsock.run()`` in a subprocess: SIGTERM/SIGINT stop it gracefully (1001, exit 0), a second signal exits at once.

The subprocess is always stopped by its PID (``Popen.kill``) if a test leaves it running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websockets
from _hardening import upgrade_request
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

APP = Path(__file__).with_name("_run_app.py")
LOOPS = ["uvloop", "asyncio"]


class App:
    """The running subprocess, its port, and its output lines as they arrive."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        for stream in (process.stdout, process.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()
        self.port = int(self.wait_for(r"listening on https?://[^:]+:(\d+)/").group(1))

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for line in self.output:
            if match := re.search(pattern, line):
                return match
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.output}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.output.append(line)
            if match := re.search(pattern, line):
                return match

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


@contextmanager
def running(loop: str, close_timeout: float = 5.0) -> Iterator[App]:
    with subprocess.Popen(
        [sys.executable, str(APP), loop, str(close_timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield App(process)
        finally:
            if process.poll() is None:
                process.kill()  # by PID, whatever happened
            process.wait(10)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_websockets_with_1001_and_exits_0(loop: str, sig: signal.Signals) -> None:
    with running(loop) as app:
        with connect(f"ws://127.0.0.1:{app.port}/") as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            app.signal(sig)
            with pytest.raises(websockets.ConnectionClosedOK):
                ws.recv(timeout=10)
            assert ws.close_code == 1001
        assert app.wait(10) == 0
        app.wait_for("close 1001 Server stopping")
        app.wait_for("^exited$")


@pytest.mark.parametrize("loop", LOOPS)
def test_signal_without_connections_exits_0(loop: str) -> None:
    with running(loop) as app:
        app.signal(signal.SIGTERM)
        assert app.wait(10) == 0
        app.wait_for("^exited$")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_second_signal_exits_at_once(loop: str) -> None:
    # close_timeout=60: the graceful stop would wait a minute for a peer that never answers the Close
    with running(loop, close_timeout=60) as app:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(upgrade_request("/"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101 "), head
            app.signal(signal.SIGTERM)
            frame = sock.recv(4096)  # the server's Close, which this client never answers
            assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1001, frame
            time.sleep(0.3)
            assert app.process.poll() is None  # still waiting for the handshake
            start = time.monotonic()
            app.signal(signal.SIGTERM)
            assert app.wait(5) == 1
            assert time.monotonic() - start < 3
        assert not any(line == "exited" for line in app.output)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_unanswered_close_is_terminated_after_close_timeout(loop: str) -> None:
    with running(loop, close_timeout=0.5) as app:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            sock.sendall(upgrade_request("/"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            start = time.monotonic()
            app.signal(signal.SIGTERM)
            assert app.wait(10) == 0  # one signal: graceful, bounded by close_timeout
            assert 0.4 <= time.monotonic() - start < 5
        app.wait_for("close 1001 Server stopping")
