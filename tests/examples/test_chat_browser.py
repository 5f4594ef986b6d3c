"""The chat example in a real browser: two headless Chromium pages talk through pubsock.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make browser`` /
``scripts/install-browser.sh``), driven by Playwright's Python package; Playwright's
own browser download is never used. The test fails, rather than skips, when
Chromium is missing: ``make test`` installs it.

The chat server (``examples/chat/app.py``'s ``fetch`` and ``Chat``) runs inside
the test's event loop, so the test runs on both loops like the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest
from playwright.async_api import Browser, Page, async_playwright

import pubsock

pytestmark = pytest.mark.timeout(60)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # per wait on page state; the whole test is bounded by the 60 s timeout above
APP = Path(__file__).resolve().parents[2] / "examples" / "chat" / "app.py"

LOG_ITEMS = "() => [...document.querySelectorAll('#log li')].map(li => li.textContent)"
CONNECTED = "() => document.getElementById('status').textContent.startsWith('connected as ')"
LOG_HAS = "(text) => [...document.querySelectorAll('#log li')].some(li => li.textContent === text)"


def load_example(path: Path, name: str) -> ModuleType:
    """Import an example script by its path (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium under Playwright; fails (not skips) when either is missing."""
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make browser` (scripts/install-browser.sh)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def log_of(page: Page) -> list[str]:
    items: list[str] = await page.evaluate(LOG_ITEMS)
    return items


async def wait_connected(page: Page, who: str) -> None:
    try:
        await page.wait_for_function(CONNECTED, timeout=WAIT_MS)
    except Exception as exc:
        status = await page.text_content("#status")
        raise AssertionError(f"{who}'s page never connected (status {status!r})") from exc


async def wait_logged(page: Page, who: str, text: str) -> None:
    try:
        await page.wait_for_function(LOG_HAS, arg=text, timeout=WAIT_MS)
    except Exception as exc:
        raise AssertionError(f"{who} never saw {text!r}; {who}'s log: {await log_of(page)!r}") from exc


async def test_two_browsers_chat() -> None:
    chat = load_example(APP, "pubsock_example_chat")
    async with pubsock.serve(chat.fetch, websocket=chat.Chat(), port=0) as server, chromium() as browser:
        base = f"http://127.0.0.1:{server.port}/"
        context = await browser.new_context()
        alice = await context.new_page()
        bob = await context.new_page()

        # One after the other, so the join notices arrive in a known order.
        await alice.goto(f"{base}?name=alice")
        await wait_connected(alice, "alice")
        await bob.goto(f"{base}?name=bob")
        await wait_connected(bob, "bob")
        await wait_logged(alice, "alice", "* bob joined")  # alice was in the room when bob came in
        assert await alice.text_content("#status") == "connected as alice"
        assert await bob.text_content("#status") == "connected as bob"

        await alice.fill("#text", "hello from alice")
        await alice.click("#send")
        await wait_logged(bob, "bob", "alice: hello from alice")
        await wait_logged(alice, "alice", "alice: hello from alice")  # publish_to_self: the sender sees it too
        assert await alice.input_value("#text") == ""  # the form cleared the box after sending

        await bob.fill("#text", "hi alice")
        await bob.press("#text", "Enter")  # submitting with the keyboard works too
        await wait_logged(alice, "alice", "bob: hi alice")
        await wait_logged(bob, "bob", "bob: hi alice")

        assert await log_of(alice) == [
            "* alice joined",
            "* bob joined",
            "alice: hello from alice",
            "bob: hi alice",
        ]
        assert await log_of(bob) == ["* bob joined", "alice: hello from alice", "bob: hi alice"]
        assert server.subscriber_count(chat.ROOM) == 2

        # Closing bob's tab closes his WebSocket; the room hears about it.
        await bob.close()
        await wait_logged(alice, "alice", "* bob left")
        assert server.subscriber_count(chat.ROOM) == 1
        await context.close()


async def test_chat_page_and_routes() -> None:
    """The HTTP side of the example, from the browser: the page, a 404, and a refused non-WebSocket /ws."""
    chat = load_example(APP, "pubsock_example_chat")
    async with pubsock.serve(chat.fetch, websocket=chat.Chat(), port=0) as server, chromium() as browser:
        base = f"http://127.0.0.1:{server.port}/"
        page = await browser.new_page()
        response = await page.goto(f"{base}?name=carol")
        assert response is not None and response.status == 200
        assert response.headers["content-type"] == "text/html;charset=utf-8"
        assert await page.title() == "pubsock chat"
        await wait_connected(page, "carol")
        await wait_logged(page, "carol", "* carol joined")

        missing = await page.goto(f"{base}nope")
        assert missing is not None and missing.status == 404
        plain = await page.goto(f"{base}ws?name=dave")  # a plain GET, not a handshake
        assert plain is not None and plain.status == 400
        assert "Expected a WebSocket handshake" in await page.content()
