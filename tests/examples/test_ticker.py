"""The ticker example (``examples/ticker.py``): one timer task publishing to many subscribers.

200 clients (bounded; the example's swarm mode does thousands) each get consecutive ticks in order;
the swarm mode itself, the page, and ``python examples/ticker.py`` as a process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

import pubsock

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
TICKER = ROOT / "examples" / "ticker.py"
CLIENTS = 200
TICKS = 20  # consecutive ticks each client must see
RATE = 50.0


def load_example(path: Path, name: str) -> ModuleType:
    """Import an example script by its path (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


async def test_two_hundred_subscribers_get_consecutive_ticks_in_order() -> None:
    ticker = load_example(TICKER, "pubsock_example_ticker")
    async with pubsock.serve(ticker.fetch, websocket=ticker.Ticker(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        clients = await asyncio.gather(*(pubsock.connect(url, per_message_deflate=False) for _ in range(CLIENTS)))
        assert server.subscriber_count(ticker.TOPIC) == CLIENTS  # open subscribed each inside upgrade()
        ticking = asyncio.create_task(ticker.tick(server, RATE))
        try:

            async def ticks(ws: pubsock.ClientConnection) -> list[dict[str, object]]:
                return [json.loads(await ws.recv()) for _ in range(TICKS)]

            async with asyncio.timeout(20):
                seen = await asyncio.gather(*(ticks(ws) for ws in clients))
        finally:
            ticking.cancel()
        first_seqs = set()
        for received in seen:
            seqs = [tick["seq"] for tick in received]
            assert seqs == list(range(seqs[0], seqs[0] + TICKS)), seqs  # consecutive, in order, no gap
            first_seqs.add(seqs[0])
            assert all(tick["subscribers"] == CLIENTS for tick in received)
            assert all(isinstance(tick["price"], float) and tick["price"] > 0 for tick in received)
        assert first_seqs == {0}  # everyone was subscribed before the first tick: all got tick 0
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_tick_keeps_its_rate_and_count() -> None:
    ticker = load_example(TICKER, "pubsock_example_ticker")
    async with pubsock.serve(ticker.fetch, websocket=ticker.Ticker(), port=0) as server:
        async with pubsock.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            started = time.monotonic()
            assert await ticker.tick(server, 100.0, count=30) == 30
            elapsed = time.monotonic() - started
            assert 0.25 <= elapsed < 5  # 30 ticks at 100 a second: ~0.3 s on a fixed schedule
            seqs = [json.loads(await ws.recv())["seq"] for _ in range(30)]
            assert seqs == list(range(30))


async def test_swarm_mode_reports_every_client_in_order() -> None:
    ticker = load_example(TICKER, "pubsock_example_ticker")
    async with pubsock.serve(ticker.fetch, websocket=ticker.Ticker(), port=0) as server:
        ticking = asyncio.create_task(ticker.tick(server, RATE))
        try:
            subscribers = await ticker.swarm(f"ws://127.0.0.1:{server.port}/ws", clients=20, ticks=10, seconds=15)
        finally:
            ticking.cancel()
    assert all(s.error is None and len(s.seqs) == 10 and s.in_order() for s in subscribers)
    text = ticker.report(subscribers, 1.0)
    assert "20 clients, 200 ticks received" in text and "out of order: 0, failed: 0" in text
    gap = ticker.Subscriber(seqs=[3, 4, 6])
    assert not gap.in_order()


async def test_page_and_routes() -> None:
    ticker = load_example(TICKER, "pubsock_example_ticker")
    async with pubsock.serve(ticker.fetch, websocket=ticker.Ticker(), port=0) as server:
        for path, status, marker in [("/", 200, b"pubsock ticker"), ("/nope", 404, b"Not Found"), ("/ws", 400, b"Expected")]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:40]
            assert marker in answer


def test_one_command_starts_it(tmp_path: Path) -> None:
    """``python examples/ticker.py --port P`` serves ticks; SIGTERM closes clients with 1001 and exits 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSOCK_")}
    log = tmp_path / "ticker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(TICKER), "--port", str(port), "--rate", "50"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
        )  # fmt: skip
    try:

        async def scenario() -> int | None:
            deadline = time.monotonic() + 20
            while True:
                try:
                    ws = await pubsock.connect(f"ws://127.0.0.1:{port}/ws")
                    break
                except OSError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.05)
            seqs = [json.loads(await ws.recv())["seq"] for _ in range(5)]
            assert seqs == list(range(seqs[0], seqs[0] + 5))
            process.send_signal(signal.SIGTERM)
            with pytest.raises(pubsock.ConnectionClosed):
                while True:
                    await ws.recv()
            return ws.close_code

        assert asyncio.run(scenario()) == 1001
        assert process.wait(15) == 0
        assert "ticks a second" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
