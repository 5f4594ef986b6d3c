"""Scale-out across processes: ``python -m pubsock examples.scaleout.app:app`` against Redis and NATS.

Two nodes on two ports, and ``--workers 2`` on one port (SO_REUSEPORT) under the supervisor: clients on each
process, every publish reaches every subscriber exactly once in per-publisher order; a crashed worker is
restarted; SIGHUP restarts the workers (Close 1012), SIGTERM stops them (Close 1001).

These tests start processes, so each runs once (on asyncio), not once per event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import BrokerServer, free_port
from .helpers import Client, wait_until, wait_until_async

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
APP = "examples.scaleout.app:app"


class Pubsock:
    """A ``python -m pubsock`` process whose log goes to a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSOCK_")}
        env["PYTHONUNBUFFERED"] = "1"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pubsock", APP, "--app-dir", str(ROOT), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
                start_new_session=True,  # its own process group, as a shell gives a command
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.text())
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"pubsock exited with {self.process.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} x{count} in the log within {timeout} s:\n{self.text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Pubsock]]:
    started: list[Pubsock] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def start(processes: list[Pubsock], tmp_path: Path, *args: str) -> Pubsock:
    process = Pubsock(list(args), tmp_path / f"pubsock-{len(processes)}.log")
    processes.append(process)
    return process


def stats(port: int, rooms: str = "lobby") -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats?rooms={rooms}", timeout=5) as answer:
        data = json.loads(answer.read())
        assert isinstance(data, dict)
        return data


def post(port: int, room: str, text: str) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/publish?room={room}", data=text.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def join(port: int, name: str, room: str = "lobby") -> tuple[Client, int]:
    """Connect to the example app; return the client and the pid of the process that serves it."""
    client = await Client.connect(port, name, f"/ws?room={room}&name={name}")
    await client.until(1)
    first = client.messages[0]
    assert isinstance(first, str) and first.startswith("* node "), first
    return client, int(first.split()[-1])


def chat_sequence(messages: list[str | bytes], name: str) -> list[int]:
    prefix = f"{name}: "
    return [int(m[len(prefix) :]) for m in messages if isinstance(m, str) and m.startswith(prefix)]


async def chat(clients: list[Client], count: int) -> None:
    """Every client says 0..count-1; each must hear every message once, in each speaker's order."""
    for i in range(count):
        for client in clients:
            await client.send(str(i))
    total = 1 + count * len(clients)
    for client in clients:
        await client.until(total, timeout=10)
    await asyncio.sleep(0.1)
    for client in clients:
        assert len(client.messages) == total, client.name
        for speaker in clients:
            assert chat_sequence(client.messages, speaker.name) == list(range(count)), (client.name, speaker.name)


def test_two_nodes_on_two_ports(broker: BrokerServer, processes: list[Pubsock], tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    nodes = [start(processes, tmp_path, "--port", str(port), "--broker", broker.url, "--log-level", "debug") for port in ports]
    for node in nodes:
        node.wait_for_log(r"pubsock listening on")

    async def scenario() -> None:
        joined = [await join(ports[i % 2], f"c{i}") for i in range(4)]
        clients = [client for client, _ in joined]
        assert len({pid for _, pid in joined}) == 2
        await wait_until_async(lambda: broker.subscriptions("lobby") == 2, what="both nodes subscribed")
        await chat(clients, 30)
        solo, _ = await join(ports[0], "solo", "solo")  # a room with subscribers on node 0 only
        await wait_until_async(lambda: broker.subscriptions("solo") == 1)
        await asyncio.to_thread(post, ports[1], "solo", "over HTTP from node 1")
        await solo.until(2)
        assert solo.messages[1] == "over HTTP from node 1"
        far = await asyncio.to_thread(stats, ports[1], "lobby,solo")
        assert far["subscribers"] == {"lobby": 2, "solo": 0}  # subscriber_count is local
        assert far["broker"]["topics"] == ["lobby"]  # type: ignore[index]
        assert far["broker"]["received"] == 2 * 30  # the lobby messages of node 0's clients; nothing of "solo"  # type: ignore[index]
        for client in [*clients, solo]:
            await client.close()

    asyncio.run(scenario())


def test_workers_share_a_port_restart_and_stop_gracefully(
    broker: BrokerServer, processes: list[Pubsock], tmp_path: Path
) -> None:
    port = free_port()
    supervisor = start(processes, tmp_path, "--workers", "2", "--port", str(port), "--broker", broker.url)
    supervisor.wait_for_log(r"2 workers ready")
    first_pids = {int(pid) for pid in re.findall(r"worker \d started \(pid (\d+)\)", supervisor.text())}
    assert len(first_pids) == 2

    async def spread(prefix: str, pids: set[int]) -> dict[int, list[Client]]:
        """Connect clients until each worker in ``pids`` serves two of them."""
        by_pid: dict[int, list[Client]] = {pid: [] for pid in pids}
        for i in range(200):
            client, pid = await join(port, f"{prefix}{i}")
            assert pid in pids, (pid, pids)
            if len(by_pid[pid]) < 2:
                by_pid[pid].append(client)
            else:
                await client.close()
            if all(len(clients) == 2 for clients in by_pid.values()):
                return by_pid
        raise AssertionError(f"SO_REUSEPORT never spread 200 connections over {pids}")

    async def scenario() -> None:
        by_pid = await spread("w", first_pids)
        await wait_until_async(lambda: broker.subscriptions("lobby") == 2, what="both workers subscribed")
        await chat([c for clients in by_pid.values() for c in clients], 25)

        # A crashed worker is restarted; the other one's clients do not notice.
        victim, survivor = sorted(first_pids)
        os.kill(victim, signal.SIGKILL)
        for client in by_pid[victim]:
            await asyncio.wait_for(client.closed.wait(), 5)
        await asyncio.to_thread(supervisor.wait_for_log, r"exited with signal SIGKILL", 1)
        await asyncio.to_thread(supervisor.wait_for_log, r"worker \d started \(pid \d+\)", 3)
        pids = {int(p) for p in re.findall(r"worker \d started \(pid (\d+)\)", supervisor.text())}
        replacement = (pids - first_pids).pop()
        assert not any(c.closed.is_set() for c in by_pid[survivor])
        await wait_until(lambda: alive(replacement))
        newcomers = await spread("n", {survivor, replacement})
        await wait_until_async(lambda: broker.subscriptions("lobby") == 2, what="the replacement subscribed")
        await chat([c for clients in newcomers.values() for c in clients], 10)
        for client in by_pid[survivor]:
            await client.close()

        # SIGHUP: a rolling restart; websockets of the replaced workers get 1012.
        supervisor.process.send_signal(signal.SIGHUP)
        for clients in newcomers.values():
            for client in clients:
                await asyncio.wait_for(client.closed.wait(), 20)
                assert client.close_code == 1012, client.close_code
        await asyncio.to_thread(supervisor.wait_for_log, r"worker \d started \(pid \d+\)", 5)
        all_pids = {int(p) for p in re.findall(r"worker \d started \(pid (\d+)\)", supervisor.text())}
        await wait_until(lambda: not alive(survivor) and not alive(replacement), what="the old workers exited")

        # SIGTERM: the supervisor stops every worker; websockets get 1001.
        last = await spread("t", all_pids - {victim, survivor, replacement})
        supervisor.process.send_signal(signal.SIGTERM)
        for clients in last.values():
            for client in clients:
                await asyncio.wait_for(client.closed.wait(), 20)
                assert client.close_code == 1001, client.close_code
        assert await asyncio.to_thread(supervisor.process.wait, 20) == 0
        assert not any(alive(pid) for pid in all_pids)

    asyncio.run(scenario())
    assert "Traceback" not in supervisor.text(), supervisor.text()


def test_workers_stop_when_the_supervisor_is_killed(redis_server: BrokerServer, processes: list[Pubsock], tmp_path: Path) -> None:
    supervisor = start(processes, tmp_path, "--workers", "2", "--port", str(free_port()), "--broker", redis_server.url)
    supervisor.wait_for_log(r"2 workers ready")
    pids = [int(pid) for pid in re.findall(r"worker \d started \(pid (\d+)\)", supervisor.text())]
    supervisor.process.send_signal(signal.SIGKILL)
    supervisor.process.wait(10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, supervisor.text()
        time.sleep(0.05)
    assert supervisor.text().count("the supervisor is gone: stopping") == 2


def test_workers_that_cannot_start_stop_the_supervisor(redis_server: BrokerServer, processes: list[Pubsock], tmp_path: Path) -> None:
    with socket.socket() as taken:  # a plain listener (no SO_REUSEPORT) on the port: the workers cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        supervisor = start(processes, tmp_path, "--workers", "2", "--port", str(port), "--broker", redis_server.url)
        assert supervisor.process.wait(30) == 1
    assert "a worker failed to start: stopping" in supervisor.text()


def test_ctrl_c_to_the_process_group_stops_gracefully(redis_server: BrokerServer, processes: list[Pubsock], tmp_path: Path) -> None:
    port = free_port()
    supervisor = start(processes, tmp_path, "--workers", "2", "--port", str(port), "--broker", redis_server.url)
    supervisor.wait_for_log(r"2 workers ready")

    async def scenario() -> None:
        client, _ = await join(port, "ann")
        os.killpg(supervisor.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        await asyncio.wait_for(client.closed.wait(), 20)
        assert client.close_code == 1001

    asyncio.run(scenario())
    assert supervisor.process.wait(20) == 0
    assert "second signal" not in supervisor.text() and "Traceback" not in supervisor.text(), supervisor.text()


def test_broker_killed_and_restarted_under_two_processes(own_broker: BrokerServer, processes: list[Pubsock], tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    nodes = [start(processes, tmp_path, "--port", str(port), "--broker", own_broker.url) for port in ports]
    for node in nodes:
        node.wait_for_log(r"pubsock listening on")

    async def scenario() -> None:
        talker, _ = await join(ports[0], "t")
        listener, _ = await join(ports[1], "l")
        await wait_until_async(lambda: own_broker.subscriptions("lobby") == 2)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        sent = 0

        async def talk() -> None:
            nonlocal sent
            while not stop.is_set():
                await talker.send(str(sent))
                sent += 1
                await asyncio.sleep(0.005)

        task = loop.create_task(talk())
        await listener.until(30)
        await asyncio.to_thread(own_broker.kill)
        await asyncio.sleep(0.4)
        before = len(listener.messages)
        await asyncio.to_thread(own_broker.start)
        restarted = loop.time()
        await wait_until(lambda: len(listener.messages) > before, timeout=1.0, what="delivery resumed within 1 s")
        assert listener.arrivals[before] - restarted <= 1.0
        await listener.until(before + 30)
        stop.set()
        await task
        await talker.until(1 + sent)  # publish_to_self: the talker's own node never stopped delivering
        seqs = chat_sequence(listener.messages, "t")
        gaps = [(x, y) for x, y in zip(seqs, seqs[1:]) if y != x + 1]
        assert seqs[0] == 0 and len(gaps) == 1 and gaps[0][0] < gaps[0][1], gaps
        assert chat_sequence(talker.messages, "t") == list(range(sent))
        assert not talker.closed.is_set() and not listener.closed.is_set()
        await wait_until_async(lambda: own_broker.subscriptions("lobby") == 2, timeout=1.0, what="resubscribed")
        for port in ports:
            link = (await asyncio.to_thread(stats, port))["broker"]
            assert isinstance(link, dict)
            assert (link["connected"], link["outages"], link["reconnects"]) == (True, 1, 1)
        assert (await asyncio.to_thread(stats, ports[0]))["broker"]["failed_publishes"] > 0  # type: ignore[index]
        for client in (talker, listener):
            await client.close()

    asyncio.run(scenario())
    for node in nodes:
        log = node.text()
        assert log.count("broker down (") == 1 and log.count("broker back") == 1, log  # the example's hooks
        assert log.count("publishes to other nodes are dropped") <= 1, log
