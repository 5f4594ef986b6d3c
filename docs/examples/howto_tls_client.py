"""Connect over wss:// to a server whose certificate your own CA signed (e.g. mkcert's)."""

from __future__ import annotations

import asyncio
import ssl
import sys

import pubsock


async def echo_over_tls(url: str, cafile: str | None) -> str | bytes:
    context = ssl.create_default_context(cafile=cafile)  # cafile=None: the system's CAs
    async with pubsock.connect(url, ssl=context) as ws:
        await ws.send("over TLS")
        return await ws.recv()


if __name__ == "__main__":
    print(asyncio.run(echo_over_tls(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
