"""A broadcast server with the websockets library: one coroutine per connection."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

CONNECTIONS: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    name = websocket.request.path.partition("?name=")[2] if websocket.request else ""
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str):
                broadcast(CONNECTIONS, f"{name}: {message}")
    finally:
        CONNECTIONS.remove(websocket)


async def main() -> None:
    async with serve(handler, "127.0.0.1", 3000) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
