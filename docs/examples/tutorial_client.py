"""Send one message and print the answer. Run: python docs/examples/tutorial_client.py [URL]"""

from __future__ import annotations

import asyncio
import sys

import pubsock


async def hello(url: str) -> str | bytes:
    async with pubsock.connect(url) as ws:  # closes with 1000 when the block ends
        await ws.send("Hello, pubsock!")
        return await ws.recv()


if __name__ == "__main__":
    print(asyncio.run(hello(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/")))
