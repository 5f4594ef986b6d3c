"""The echo example (``examples/echo.py``) against the ``websockets`` client, with and without compression."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from websockets.asyncio.client import connect

import pubsock

pytestmark = pytest.mark.timeout(30)

ECHO = Path(__file__).resolve().parents[2] / "examples" / "echo.py"


def load_example(path: Path, name: str) -> ModuleType:
    """Import an example script by its path (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_echo_text_and_binary(deflate: bool) -> None:
    echo = load_example(ECHO, "pubsock_example_echo")
    handlers = echo.Echo()
    if deflate:  # what ``python examples/echo.py --deflate`` does
        handlers.per_message_deflate = {"compress": "dedicated", "decompress": "dedicated"}
    async with pubsock.serve(echo.fetch, websocket=handlers, port=0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:  # the client offers permessage-deflate
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
            if deflate:
                assert extensions is not None and extensions.startswith("permessage-deflate")
            else:
                assert extensions is None

            await ws.send("hello, echo ✓")
            assert await ws.recv() == "hello, echo ✓"

            blob = bytes(range(256)) * 4
            await ws.send(blob)
            assert await ws.recv() == blob

            big = os.urandom(200_000)  # several TCP writes each way, above the default 64 KiB read size
            await ws.send(big)
            assert await ws.recv() == big


async def test_echo_plain_http() -> None:
    """A plain GET is not upgraded: ``fetch`` answers it with a text page."""
    echo = load_example(ECHO, "pubsock_example_echo")
    async with pubsock.serve(echo.fetch, websocket=echo.Echo(), port=0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\nThis is a WebSocket echo server.\n")
