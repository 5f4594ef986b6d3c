"""Fixtures for the client tests (the root conftest runs each async test on asyncio and uvloop).

Servers listen on loopback only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """A websockets (PyPI) echo server with permessage-deflate; its ``ws://`` URL."""
    async with serve(_echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
