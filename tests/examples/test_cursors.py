"""The live-cursors example (``examples/cursors/``): positions published many times a second.

Clients built on ``pubsock.connect`` send hundreds of small position messages; the others get every one,
in order, never their own; newcomers get everyone's last position; leaving is announced. Then the page in
two headless Chromium windows (Debian's, as in test_chat_browser.py): moving the mouse in one draws a
cursor in the other. Finally ``python examples/cursors/app.py`` as one command.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest
from playwright.async_api import Browser, Page, async_playwright

import pubsock

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "cursors" / "app.py"
MOVES = 500
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
WAIT_MS = 10_000


def load_example(path: Path, name: str) -> ModuleType:
    """Import an example script by its path (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def hello(ws: pubsock.ClientConnection) -> int:
    first = await ws.recv()
    assert isinstance(first, str) and first.startswith("you "), first
    return int(first.split()[1])


async def nothing_more(ws: pubsock.ClientConnection, seconds: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            message = await ws.recv()
            raise AssertionError(f"unexpected {message!r}")


async def test_positions_reach_the_others_in_order() -> None:
    cursors = load_example(APP, "pubsock_example_cursors")
    handlers = cursors.Cursors()
    async with pubsock.serve(cursors.fetch, websocket=handlers, port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with pubsock.connect(url) as alice, pubsock.connect(url, max_queue=MOVES) as bob:
            a, b = await hello(alice), await hello(bob)
            assert a != b
            assert server.subscriber_count(cursors.TOPIC) == 2

            # Alice's mouse: many small messages in a burst, as a page sends them while the mouse moves.
            path = [(i * 17 % 10_001, i * 29 % 10_001) for i in range(MOVES)]
            for x, y in path:
                await alice.send(f"{x} {y}")
            async with asyncio.timeout(15):
                seen = [await bob.recv() for _ in range(MOVES)]
            assert seen == [f"{a} {x} {y}" for x, y in path]  # every position, in order
            await nothing_more(alice)  # ws.publish skips the sender: no echo of her own cursor

            await bob.send("123 456")
            assert await alice.recv() == f"{b} 123 456"

            # Junk is ignored; out-of-range positions are clamped to the page.
            for junk in ["hello", "-1 5", "1 2 3", "5", "", "99999 20000"]:
                await alice.send(junk)
            await alice.send(b"\x00\x01")
            assert await bob.recv() == f"{a} 10000 10000"
            await nothing_more(bob)

            # A newcomer gets everyone's last position (sent corked in open), then live moves.
            async with pubsock.connect(url) as carol:
                c = await hello(carol)
                snapshot = {await carol.recv(), await carol.recv()}
                assert snapshot == {f"{a} 10000 10000", f"{b} 123 456"}
                await carol.send("1 2")
                assert await alice.recv() == f"{c} 1 2"
                assert await bob.recv() == f"{c} 1 2"
            # Carol left: the others are told, and her position is forgotten.
            assert await alice.recv() == f"{c} -"
            assert await bob.recv() == f"{c} -"
            assert c not in handlers.positions
        await asyncio.sleep(0.05)
        assert handlers.positions == {}
        assert server.subscriber_count(cursors.TOPIC) == 0


async def test_many_movers_at_once() -> None:
    """Five pages move together; each hears the other four's full paths, interleaved but each in order."""
    cursors = load_example(APP, "pubsock_example_cursors")
    async with pubsock.serve(cursors.fetch, websocket=cursors.Cursors(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        pages = [await pubsock.connect(url, max_queue=1000) for _ in range(5)]
        ids = [await hello(ws) for ws in pages]
        steps = 100

        async def move(ws: pubsock.ClientConnection, me: int) -> None:
            for i in range(steps):
                await ws.send(f"{me} {i}")

        async def listen(ws: pubsock.ClientConnection) -> dict[int, list[int]]:
            heard: dict[int, list[int]] = {}
            for _ in range(steps * 4):
                who, _, y = str(await ws.recv()).split()
                heard.setdefault(int(who), []).append(int(y))
            return heard

        async with asyncio.timeout(20):
            listening = [asyncio.create_task(listen(ws)) for ws in pages]
            await asyncio.gather(*(move(ws, me) for ws, me in zip(pages, ids)))
            heard = await asyncio.gather(*listening)
        for me, got in zip(ids, heard):
            assert set(got) == set(ids) - {me}
            assert all(ys == list(range(steps)) for ys in got.values())
        await asyncio.gather(*(ws.close() for ws in pages))


def test_parse_position() -> None:
    cursors = load_example(APP, "pubsock_example_cursors")
    assert cursors.parse_position("0 0") == (0, 0)
    assert cursors.parse_position("10000 9999") == (10000, 9999)
    assert cursors.parse_position("20000 3") == (10000, 3)
    for junk in ["", " ", "1", "1 ", " 1", "1  2", "+1 2", "1.5 2", "1_0 2", "² 2", "1 2 3", "9" * 17, b"1 2"]:
        assert cursors.parse_position(junk) is None, junk


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make browser` (scripts/install-browser.sh)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def my_id(page: Page) -> int:
    await page.wait_for_function("() => document.getElementById('status').textContent.startsWith('you are ')", timeout=WAIT_MS)
    status = await page.text_content("#status")
    assert status is not None
    return int(status.split()[2].rstrip(";"))


async def test_cursor_drawn_in_the_other_window() -> None:
    cursors = load_example(APP, "pubsock_example_cursors")
    async with pubsock.serve(cursors.fetch, websocket=cursors.Cursors(), port=0) as server, chromium() as browser:
        base = f"http://127.0.0.1:{server.port}/"
        context = await browser.new_context(viewport={"width": 1000, "height": 500})
        one, two = await context.new_page(), await context.new_page()
        await one.goto(base)
        await two.goto(base)
        first, second = await my_id(one), await my_id(two)

        for x in range(100, 701, 50):  # a drag across the page: many mousemove events
            await one.mouse.move(x, 250)
        await one.mouse.move(700, 400)
        # The second window draws the first one's cursor where its mouse is (in its own 1000x500 view).
        drawn = f"() => document.getElementById('cursor-{first}')?.style.transform"
        try:
            await two.wait_for_function(f"{drawn} === 'translate(700px, 400px)'", timeout=WAIT_MS)
        except Exception as exc:
            raise AssertionError(f"cursor not at 700,400: {await two.evaluate(drawn)!r}") from exc
        assert await two.text_content("#status") == f"you are {second}; 1 other cursor(s)"
        assert await one.evaluate(f"() => document.getElementById('cursor-{first}')") is None  # not your own

        await two.mouse.move(50, 50)
        await one.wait_for_function(f"() => document.getElementById('cursor-{second}')?.style.transform === 'translate(50px, 50px)'", timeout=WAIT_MS)

        await one.close()  # leaving removes the cursor from the others
        await two.wait_for_function(f"() => document.getElementById('cursor-{first}') === null", timeout=WAIT_MS)
        assert await two.text_content("#status") == f"you are {second}; 0 other cursor(s)"
        await context.close()


def test_one_command_starts_it(tmp_path: Path) -> None:
    """``python examples/cursors/app.py --port P`` serves the page and the websocket."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSOCK_")}
    log = tmp_path / "cursors.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(APP), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=ROOT)  # fmt: skip
    try:

        async def scenario() -> None:
            deadline = time.monotonic() + 20
            while True:
                try:
                    one = await pubsock.connect(f"ws://127.0.0.1:{port}/ws")
                    break
                except OSError:
                    assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.05)
            async with pubsock.connect(f"ws://127.0.0.1:{port}/ws") as two:
                a, _ = await hello(one), await hello(two)
                await one.send("5000 5000")
                assert await two.recv() == f"{a} 5000 5000"
            await one.close()

        asyncio.run(scenario())
        assert "live cursors: open http://127.0.0.1:" in log.read_text()
    finally:
        process.terminate()
        assert process.wait(15) == 0
