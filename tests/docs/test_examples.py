"""Every code sample of the documentation runs here, against a real server on a loopback port.

The samples are files in ``docs/examples/``, included into the pages with ``pymdownx.snippets``
(``--8<-- "docs/examples/NAME.py"``), so the text readers see is the code these tests run. The last
tests keep it that way: every sample is included somewhere and tested here, the pages write no Python
of their own, every Python block of every page compiles, and the reference pages name every CLI flag,
every Bun option and handler.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trustme
import websockets
from playwright.async_api import Browser, async_playwright

import pubsock
from pubsock.cli import build_parser
from pubsock.server.handlers import HANDLER_NAMES, OPTION_NAMES

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SAMPLES = DOCS / "examples"
CHROMIUM = "/usr/bin/chromium"

# Every file in docs/examples/ and the tests that run it (a new sample needs a test to be added here).
TESTED = {
    "quickstart.py": "test_quickstart",
    "tutorial_step1.py": "test_tutorial_step1_echo",
    "tutorial_client.py": "test_tutorial_step1_echo",
    "tutorial_step2.py": "test_tutorial_step2_room",
    "tutorial_step3.py": "test_tutorial_step3_names",
    "tutorial_step4.py": "test_tutorial_step4_page_in_a_browser",
    "tutorial_chat.html": "test_tutorial_step4_page_in_a_browser",
    "howto_auth.py": "test_howto_auth",
    "howto_auth_client.py": "test_howto_auth",
    "howto_user_topics.py": "test_howto_user_topics",
    "howto_deploy.py": "test_howto_deploy_workers_and_redis",
    "howto_tls.py": "test_howto_tls",
    "howto_tls_client.py": "test_howto_tls",
    "topic_backpressure.py": "test_topic_backpressure",
    "topic_cork.py": "test_topic_cork",
    "from_websockets_before.py": "test_from_websockets_before_and_after",
    "from_websockets_after.py": "test_from_websockets_before_and_after",
}


def load(name: str) -> ModuleType:
    """Import ``docs/examples/NAME.py`` (the samples are scripts, not a package)."""
    module_name = f"pubsock_docs_{name}"
    spec = importlib.util.spec_from_file_location(module_name, SAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


async def http(port: int, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
    """One HTTP/1.1 request on a fresh connection: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{headers}"
        f"Connection: close\r\n\r\n".encode() + body
    )
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


async def silent(ws: pubsock.ClientConnection, seconds: float = 0.2) -> None:
    """Assert that nothing arrives on ``ws`` for a while."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            raise AssertionError(f"unexpected {await ws.recv()!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# index ----------------------------------------------------------------------------------------


async def test_quickstart() -> None:
    sample = load("quickstart")
    async with pubsock.serve(sample.fetch, websocket=sample.Chat(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with pubsock.connect(url + "?name=ada") as ada, pubsock.connect(url + "?name=bob") as bob:
            await ada.send("hi")
            assert await ada.recv() == "ada: hi"  # publish_to_self
            assert await bob.recv() == "ada: hi"
            anon = await pubsock.connect(url)
            await anon.send("who am I?")
            assert await bob.recv() == "anon: who am I?"
            await anon.close()
            assert await bob.recv() == "anon left"
        assert await http(server.port, "GET", "/") == (400, b"Upgrade failed")


# tutorial -------------------------------------------------------------------------------------


async def test_tutorial_step1_echo() -> None:
    step = load("tutorial_step1")
    client = load("tutorial_client")
    async with pubsock.serve(step.fetch, websocket=step.Echo(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        assert await client.hello(url) == "Hello, pubsock!"
        async with websockets.connect(url) as ws:  # any client will do: `python -m websockets URL`
            await ws.send(b"\x00bytes\xff")
            assert await ws.recv() == b"\x00bytes\xff"  # binary stays binary
        assert await http(server.port, "GET", "/") == (200, b"Hello! This server speaks WebSocket.\n")


async def test_tutorial_step2_room() -> None:
    step = load("tutorial_step2")
    async with pubsock.serve(step.fetch, websocket=step.Room(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with pubsock.connect(url) as a, pubsock.connect(url) as b, pubsock.connect(url) as c:
            assert await http(server.port, "GET", "/") == (200, b"3 in the room\n")
            await a.send("hello room")
            assert await b.recv() == "hello room"
            assert await c.recv() == "hello room"
            await silent(a)  # ws.publish skips the sender
            assert await http(server.port, "GET", "/say?text=tea+is+ready") == (200, b"published\n")
            for ws in (a, b, c):  # server.publish reaches every subscriber
                assert await ws.recv() == "tea is ready"
        await asyncio.sleep(0.05)
        assert await http(server.port, "GET", "/") == (200, b"0 in the room\n")


async def test_tutorial_step3_names() -> None:
    step = load("tutorial_step3")
    async with pubsock.serve(step.fetch, websocket=step.Chat(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(pubsock.InvalidStatus) as refused:
            await pubsock.connect(url)
        assert refused.value.status == 400 and refused.value.body == b"Add ?name=... to the URL\n"
        async with pubsock.connect(url + "?name=ada") as ada:
            assert await ada.recv() == "* ada joined"
            async with pubsock.connect(url + "?name=" + "b" * 40) as bob:
                assert await bob.recv() == "* " + "b" * 32 + " joined"  # names are cut to 32 characters
                assert await ada.recv() == "* " + "b" * 32 + " joined"
                await bob.send("hi ada")
                assert await bob.recv() == f"{'b' * 32}: hi ada"
                assert await ada.recv() == f"{'b' * 32}: hi ada"
                await bob.send(b"binary is ignored")
                await ada.send("hello")
                assert await bob.recv() == "ada: hello"
                assert await ada.recv() == "ada: hello"
            assert await ada.recv() == f"* {'b' * 32} left"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make browser` (scripts/install-browser.sh)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_tutorial_step4_page_in_a_browser() -> None:
    """The page of step 4 in headless Chromium, talking with a Python client in the same room."""
    step = load("tutorial_step4")
    async with pubsock.serve(step.fetch, websocket=step.Chat(), port=0) as server, chromium() as browser:
        base = f"http://127.0.0.1:{server.port}/"
        page = await browser.new_page()
        await page.goto(base + "?name=ada")
        await page.wait_for_function("() => document.getElementById('status').textContent === 'connected as ada'")
        async with pubsock.connect(f"ws://127.0.0.1:{server.port}/ws?name=bob") as bob:
            assert await bob.recv() == "* bob joined"
            await page.fill("#text", "hello <b>bob</b>")
            await page.press("#text", "Enter")
            assert await bob.recv() == "ada: hello <b>bob</b>"
            await bob.send("hi ada")
            await page.wait_for_function("() => document.querySelectorAll('#log li').length === 4")
            log = await page.evaluate("() => [...document.querySelectorAll('#log li')].map(li => li.textContent)")
            assert log == ["* ada joined", "* bob joined", "ada: hello <b>bob</b>", "bob: hi ada"]
            assert await page.evaluate("() => document.querySelectorAll('#log b').length") == 0  # text, not HTML
        await page.wait_for_function("() => document.querySelectorAll('#log li').length === 5")
        assert await page.evaluate("() => document.querySelector('#log li:last-child').textContent") == "* bob left"
        assert await http(server.port, "GET", "/nope") == (404, b"Not Found\n")


# how-to guides --------------------------------------------------------------------------------


async def test_howto_auth() -> None:
    sample = load("howto_auth")
    client = load("howto_auth_client")
    async with pubsock.serve(sample.fetch, websocket=sample.Authenticated(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        assert await client.greet(url, "s3cr3t-alice") == ["hello alice", "hello alice", "refused: 401"]

        with pytest.raises(pubsock.InvalidStatus) as refused:
            await pubsock.connect(url, headers={"Authorization": "Bearer wrong"})
        assert refused.value.status == 401
        assert ("www-authenticate", "Bearer") in [(name.lower(), value) for name, value in refused.value.headers]
        with pytest.raises(pubsock.InvalidStatus) as refused:  # a page of another site, with the user's cookie
            await pubsock.connect(url, headers={"Cookie": "session=s3cr3t-bob", "Origin": "https://evil.example"})
        assert refused.value.status == 403
        with pytest.raises(pubsock.InvalidStatus) as refused:
            await pubsock.connect(url, headers={"Cookie": "bad cookie;;=="})
        assert refused.value.status == 401
        with pytest.raises(pubsock.InvalidStatus) as refused:
            await pubsock.connect(f"ws://127.0.0.1:{server.port}/elsewhere?token=s3cr3t-bob")
        assert refused.value.status == 404

        headers = {"Cookie": "theme=dark; session=s3cr3t-bob", "Origin": "http://localhost:3000"}
        async with pubsock.connect(url, headers=headers) as bob:
            assert await bob.recv() == "hello bob"
            await bob.send("hi")
            assert await bob.recv() == "bob said 'hi'"
        async with pubsock.connect(url + "?token=s3cr3t-alice") as alice:
            assert await alice.recv() == "hello alice"
        assert await http(server.port, "GET", "/ws", headers="Authorization: Bearer s3cr3t-bob\r\n") == (
            400,
            b"Expected a WebSocket handshake\n",
        )


async def test_howto_user_topics() -> None:
    sample = load("howto_user_topics")
    async with pubsock.serve(sample.fetch, websocket=sample.Inbox(), port=0) as server:
        url = f"ws://127.0.0.1:{server.port}/ws?user="
        async with (
            pubsock.connect(url + "alice") as alice_phone,
            pubsock.connect(url + "alice") as alice_laptop,
            pubsock.connect(url + "bob") as bob,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as api,
        ):
            answer = await api.post("/notify/alice", content="your order shipped")
            assert answer.status_code == 200
            assert answer.json() == {"sockets": 2, "result": len('{"from": "server", "text": "your order shipped"}')}
            for ws in (alice_phone, alice_laptop):
                assert json.loads(await ws.recv()) == {"from": "server", "text": "your order shipped"}
            await silent(bob)

            nobody = await api.post("/notify/carol", content="hello?")
            assert nobody.json() == {"sockets": 0, "result": 0}  # carol has no socket here

            await bob.send(json.dumps({"to": "alice", "text": "lunch?"}))
            for ws in (alice_phone, alice_laptop):
                assert json.loads(await ws.recv()) == {"from": "bob", "text": "lunch?"}
            await alice_phone.send(json.dumps({"to": "alice", "text": "note to self"}))
            assert json.loads(await alice_laptop.recv()) == {"from": "alice", "text": "note to self"}
            await silent(alice_phone)  # ws.publish skips the sending socket, not the user's other sockets

            await bob.send("not json")
            assert "error" in json.loads(await bob.recv())
            await bob.send(json.dumps(["to", "alice"]))
            assert "error" in json.loads(await bob.recv())

            assert (await api.get("/notify/alice")).status_code == 404
        with pytest.raises(pubsock.InvalidStatus) as refused:
            await pubsock.connect(f"ws://127.0.0.1:{server.port}/ws")
        assert refused.value.status == 400


async def test_howto_tls(tmp_path: Path) -> None:
    sample = load("howto_tls")
    client = load("howto_tls_client")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))  # key and chain in one file works too
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    for tls in ({"certfile": str(certfile), "keyfile": str(keyfile)}, sample.tls_context(str(certfile), str(keyfile))):
        async with pubsock.serve(sample.fetch, websocket=sample.Echo(), port=0, tls=tls) as server:
            assert server.url.startswith("https://")
            assert await client.echo_over_tls(f"wss://localhost:{server.port}/", str(cafile)) == "over TLS"
            with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know this one
                await client.echo_over_tls(f"wss://localhost:{server.port}/", None)
            async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cafile))) as https:
                answer = await https.get(f"https://localhost:{server.port}/")
                assert answer.text == "Hello over https\n"


class RedisServer:
    """A redis-server of the test's own on a free loopback port, stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is not installed: run `make brokers` (scripts/install-brokers.sh)")
        self.port = free_port()
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(workdir), "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_howto_deploy_workers_and_redis(redis: RedisServer, tmp_path: Path) -> None:
    """The exact command of the how-to: two workers on one port, publishes crossing them through Redis."""
    port = free_port()
    broker = f"redis://127.0.0.1:{redis.port}/0?channel_prefix=docs:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSOCK_")}
    log = tmp_path / "pubsock.log"
    with open(log, "wb") as out:
        command = [sys.executable, "-m", "pubsock", "--app-dir", "docs/examples", "howto_deploy:app",
                   "--workers", "2", "--port", str(port), "--broker", broker]  # fmt: skip
        supervisor = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while "2 workers ready" not in log.read_text():
            assert supervisor.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

        async def scenario() -> list[int | None]:
            url = f"ws://127.0.0.1:{port}/"
            clients: dict[int, list[pubsock.ClientConnection]] = {}
            for _ in range(40):  # the kernel spreads connections over the workers; stop once both have some
                ws = await pubsock.connect(url)
                hello = await ws.recv()
                assert isinstance(hello, str) and hello.startswith("* served by process "), hello
                clients.setdefault(int(hello.split()[-1]), []).append(ws)
                if len(clients) == 2 and all(len(group) >= 2 for group in clients.values()):
                    break
            assert len(clients) == 2, f"every connection went to one worker: {clients.keys()}"
            everyone = [ws for group in clients.values() for ws in group]
            await asyncio.sleep(0.3)  # each worker subscribes to the room's channel on its first subscriber
            first, other = (group[0] for group in clients.values())
            await first.send("from one worker")
            await other.send("from the other")
            for ws in everyone:  # publish_to_self: each sender hears its own message too
                got = {await ws.recv(), await ws.recv()}
                assert got == {"from one worker", "from the other"}
            status, body = await http(port, "GET", "/health")
            assert (status, body) == (200, b"ok\n")
            supervisor.send_signal(signal.SIGTERM)
            codes = []
            for ws in everyone:
                await ws.wait_closed()
                codes.append(ws.close_code)
            return codes

        assert set(asyncio.run(scenario())) == {1001}  # going away: clients should reconnect elsewhere
        assert supervisor.wait(20) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)


async def test_howto_deploy_app_in_process() -> None:
    """The app mapping is serve()'s keyword arguments."""
    sample = load("howto_deploy")
    options = {**sample.app, "port": 0}
    async with pubsock.serve(**options) as server:
        async with pubsock.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert await ws.recv() == f"* served by process {os.getpid()}"
            await ws.send("echo through the room")
            assert await ws.recv() == "echo through the room"
        assert await http(server.port, "GET", "/") == (400, b"Expected a WebSocket handshake\n")


# topic guides ---------------------------------------------------------------------------------


async def test_topic_backpressure() -> None:
    """A slow reader gets every chunk, in order; the server paused at each -1 and resumed in drain."""
    sample = load("topic_backpressure")
    drains = 0

    class Counted(sample.Streamer):
        def drain(self, ws: pubsock.ServerWebSocket) -> None:
            nonlocal drains
            drains += 1
            super().drain(ws)

    chunks = 256  # 16 MiB: more than the loopback socket buffers hold while the client does not read
    async with pubsock.serve(sample.fetch, websocket=Counted(), port=0) as server:
        async with pubsock.connect(f"ws://127.0.0.1:{server.port}/?chunks={chunks}", max_queue=1) as ws:
            await asyncio.sleep(0.3)  # not reading: the server's sends start returning -1
            received = 0
            async with asyncio.timeout(30):
                async for message in ws:
                    assert message == sample.chunk(received)
                    received += 1
            assert received == chunks
            assert ws.close_code == 1000 and ws.close_reason == "done"
    assert drains >= 1


async def test_topic_cork() -> None:
    sample = load("topic_cork")
    async with pubsock.serve(sample.fetch, websocket=sample.Snapshot(), port=0) as server:
        async with pubsock.connect(f"ws://127.0.0.1:{server.port}/", max_queue=200) as ws:
            got = [await ws.recv() for _ in range(101)]
            assert got == [*sample.ROWS, "end"]


# coming from websockets ------------------------------------------------------------------------


async def test_from_websockets_before_and_after() -> None:
    """Both servers behave the same for the same clients."""
    before = load("from_websockets_before")
    after = load("from_websockets_after")

    async def scenario(port: int) -> None:
        url = f"ws://127.0.0.1:{port}/?name="
        async with websockets.connect(url + "ada") as ada, websockets.connect(url + "bob") as bob:
            await ada.send("hello")
            assert await ada.recv() == "ada: hello"
            assert await bob.recv() == "ada: hello"
            await bob.send("hi")
            assert await ada.recv() == "bob: hi"
            assert await bob.recv() == "bob: hi"

    async with websockets.serve(before.handler, "127.0.0.1", 0) as old:
        await scenario(old.sockets[0].getsockname()[1])
    async with pubsock.serve(after.fetch, websocket=after.Broadcast(), port=0) as new:
        await scenario(new.port)
        status, _ = await http(new.port, "GET", "/")
        assert status == 426


# the pages themselves ---------------------------------------------------------------------------

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)\s*$", re.M | re.S)
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
# Pages written by others (linked from the site, not rewritten): their Python blocks must still compile.
OTHERS_PAGES = {"asgi.md", "compression.md", "scale-out.md", "observability.md"}


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(page: Path) -> Iterator[tuple[str, str]]:
    for match in FENCE.finditer(page.read_text()):
        yield match["info"].strip().split(" ")[0].lower(), match["body"]


def test_every_sample_is_included_and_tested() -> None:
    included: set[str] = set()
    for page in pages():
        included.update(m["path"] for m in re.finditer(r'--8<--\s+"(?P<path>[^"]+)"', page.read_text()))
    files = {p.name for p in SAMPLES.iterdir() if p.is_file()}
    assert files == set(TESTED), "add the new sample to TESTED with the test that runs it"
    for name, test in TESTED.items():
        assert test in globals(), test
    for name in files:
        assert f"docs/examples/{name}" in included, f"{name} is not shown on any page"
    for path in included:
        assert (ROOT / path).is_file(), path


def test_pages_write_no_untested_python() -> None:
    """In the pages of this site, Python blocks only include files that tests run."""
    for page in pages():
        if page.relative_to(DOCS).as_posix() in OTHERS_PAGES:
            continue
        for language, body in blocks(page):
            if language in ("python", "py", "pycon"):
                lines = [line for line in body.splitlines() if line.strip()]
                assert lines and all(SNIPPET.match(line) for line in lines), f"{page}: inline Python:\n{body}"


def test_every_python_block_compiles() -> None:
    import ast

    for page in pages():
        for language, body in blocks(page):
            if language in ("python", "py") and not SNIPPET.match(body.strip().splitlines()[0] if body.strip() else ""):
                compile(body, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_cli_reference_names_every_flag() -> None:
    text = (DOCS / "reference" / "cli.md").read_text()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert f"`{flag}" in text, flag
        if action.option_strings and action.dest not in ("help", "version"):
            assert f"PUBSOCK_{action.dest.upper()}" in text, action.dest


def test_server_reference_lists_every_argument() -> None:
    import inspect

    text = (DOCS / "reference" / "server.md").read_text()
    for name in inspect.signature(pubsock.Server.__init__).parameters:
        if name != "self":
            assert f"| `{name}` |" in text, f"reference/server.md: add {name} to the table of serve() arguments"


def test_coming_from_bun_names_every_option_handler_and_member() -> None:
    text = (DOCS / "coming-from-bun.md").read_text()
    names = set(OPTION_NAMES) | set(HANDLER_NAMES)
    names |= {n for n in dir(pubsock.ServerWebSocket) if not n.startswith("_") and n not in dir(object) and not n.endswith("_writing")}
    names |= {n for n in dir(pubsock.Server) if not n.startswith("_")}
    names -= {"connection_made", "connection_lost", "data_received", "eof_received", "start"}  # asyncio.Protocol's
    missing = sorted(n for n in names if f"`{n}" not in text and f".{n}" not in text)
    assert not missing, f"coming-from-bun.md does not mention {missing}"
