"""Connect with credentials: a bearer token in a header, then the same with a cookie."""

from __future__ import annotations

import asyncio
import sys

import pubsock


async def greet(url: str, token: str) -> list[str | bytes]:
    answers = []
    async with pubsock.connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
        answers.append(await ws.recv())  # "hello alice"
    async with pubsock.connect(url, headers={"Cookie": f"session={token}"}) as ws:
        answers.append(await ws.recv())
    try:
        await pubsock.connect(url)  # no credentials
    except pubsock.InvalidStatus as refused:
        answers.append(f"refused: {refused.status}")  # "refused: 401"
    return answers


if __name__ == "__main__":
    print(asyncio.run(greet(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/ws", "s3cr3t-alice")))
