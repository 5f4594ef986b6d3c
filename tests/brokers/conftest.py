"""Real brokers for the scale-out tests: a Redis server and a NATS server on free loopback ports.

Each is started once per session (``redis_server``, ``nats_server``) and killed by PID at the end.
Outage tests get a broker of their own (``own_broker``) so that killing it disturbs no other test.
``make test`` installs both servers first (``scripts/install-brokers.sh``).

``broker_kind`` runs a test against Redis and against NATS; ``broker`` gives it a ``BrokerServer`` with
a namespace (channel or subject prefix) of its own, so tests sharing a server never see each other's
traffic.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BROKER_KINDS = ("redis", "nats")
_namespaces = itertools.count()


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if the test process dies without stopping it (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class BrokerServer:
    """One broker process on loopback: ``start``, ``kill`` (SIGKILL by PID), ``restart`` on the same port."""

    def __init__(self, kind: str, workdir: Path) -> None:
        binary = shutil.which(f"{kind}-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin") or ""
        if not binary:
            pytest.fail(f"{kind}-server is not installed: run `bash scripts/install-brokers.sh` (make test does)")
        self.kind = kind
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.monitor_port = free_port() if kind == "nats" else 0
        self.process: subprocess.Popen[bytes] | None = None
        self.namespace = ""

    def command(self) -> list[str]:
        if self.kind == "redis":
            return [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--loglevel", "warning",
            ]  # fmt: skip
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = open(self.workdir / f"{self.kind}-{self.port}.log", "ab")
        # PR_SET_PDEATHSIG follows the thread that forks: only a start from the main thread may ask for it
        # (a restart from a worker thread would be killed when that thread ends).
        main = threading.current_thread() is threading.main_thread()
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if main else None,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not _accepts(self.port) or (self.monitor_port and not _accepts(self.monitor_port)):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind}-server exited with {self.process.returncode}: see {self.workdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}-server did not listen on {self.port} within 10 s")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the server (by PID) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def url(self) -> str:
        """The broker URL, with this test's namespace."""
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.port}/0?channel_prefix={self.namespace}:"
        return f"nats://127.0.0.1:{self.port}?subject_prefix={self.namespace}"

    def with_namespace(self, namespace: str) -> BrokerServer:
        view = object.__new__(BrokerServer)
        view.__dict__.update(self.__dict__)
        view.namespace = namespace
        return view

    # what the broker sees ----------------------------------------------------------------------

    def channel(self, topic: str) -> str:
        if self.kind == "redis":
            return f"{self.namespace}:{topic}"
        from pubsock.brokers._nats import subject_token

        return f"{self.namespace}.{subject_token(topic)}"

    def subscriptions(self, topic: str) -> int:
        """How many connections the broker sends ``topic`` to (Redis ``PUBSUB NUMSUB``, NATS ``/connz``)."""
        if self.kind == "redis":
            reply = self.redis_command("PUBSUB", "NUMSUB", self.channel(topic))
            assert isinstance(reply, list)
            return int(reply[1])
        subject = self.channel(topic)
        connz = self.monitor("connz?subs=1&limit=1024")
        return sum(subject in (c.get("subscriptions_list") or []) for c in connz["connections"])

    def monitor(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/{path}", timeout=5) as answer:
            data = json.loads(answer.read())
            assert isinstance(data, dict)
            return data

    def redis_command(self, *args: str) -> object:
        """One command over a plain socket (RESP), so that tests need no client of their own."""
        import hiredis

        payload = f"*{len(args)}\r\n".encode() + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        reader = hiredis.Reader()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            while True:
                reply = reader.gets()
                if reply is not False:
                    return reply.decode() if isinstance(reply, bytes) else reply
                reader.feed(sock.recv(65536))

    def stop(self) -> None:
        self.kill()


@pytest.fixture(scope="session")
def broker_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("brokers")


def _session_server(kind: str, workdir: Path) -> Iterator[BrokerServer]:
    server = BrokerServer(kind, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(broker_workdir: Path) -> Iterator[BrokerServer]:
    yield from _session_server("redis", broker_workdir)


@pytest.fixture(scope="session")
def nats_server(broker_workdir: Path) -> Iterator[BrokerServer]:
    yield from _session_server("nats", broker_workdir)


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker(broker_kind: str, request: pytest.FixtureRequest) -> BrokerServer:
    """The session's broker of ``broker_kind``, with a namespace of this test's own."""
    server: BrokerServer = request.getfixturevalue(f"{broker_kind}_server")
    return server.with_namespace(f"t{next(_namespaces)}")


@pytest.fixture
def own_broker(broker_kind: str, broker_workdir: Path) -> Iterator[BrokerServer]:
    """A broker process of this test's own (to kill and restart)."""
    server = BrokerServer(broker_kind, broker_workdir)
    server.namespace = "own"
    server.start()
    try:
        yield server
    finally:
        server.stop()
