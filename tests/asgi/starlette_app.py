"""The Starlette app the ASGI tests serve: JSON routes, bodies, streaming, lifespan, and topics.

``make_app(record)`` builds a fresh app; ``record`` collects what the lifespan
and the endpoints saw, for the tests to check.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import pubsock
from pubsock.asgi import get_server, upgrade


class Room(pubsock.WebSocketHandler):
    """pubsock handlers for the sockets the app upgrades: they join the topic named in their data."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(ws.data["topic"])
        self.record.setdefault("opened", []).append(ws.data)

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.publish(ws.data["topic"], f"{ws.data['name']}: {message!s}")


def make_app(record: dict[str, Any]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        record.setdefault("lifespan", []).append("startup")
        if record.get("fail_startup"):
            raise RuntimeError("no database")
        yield {"greeting": "hello", "counter": [0]}
        record["lifespan"].append("shutdown")

    async def home(request: Request) -> Response:
        request.state.counter[0] += 1
        return JSONResponse({"greeting": request.state.greeting, "count": request.state.counter[0]})

    async def item(request: Request) -> Response:
        return JSONResponse(
            {
                "id": int(request.path_params["item_id"]),
                "q": request.query_params.getlist("q"),
                "client": request.client.host if request.client else None,
                "port": request.client.port if request.client else None,
                "url": str(request.url),
                "agent": request.headers.get("user-agent"),
            }
        )

    async def echo_json(request: Request) -> Response:
        data = await request.json()
        return JSONResponse({"received": data}, status_code=201)

    async def digest(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def stream(request: Request) -> Response:
        count = int(request.query_params.get("n", "3"))
        delay = float(request.query_params.get("delay", "0"))

        async def lines() -> AsyncIterator[str]:
            for i in range(count):
                yield f"line {i}\n"
                await asyncio.sleep(delay)

        return StreamingResponse(lines(), media_type="text/plain")

    async def stream_gated(request: Request) -> Response:
        gate: asyncio.Event = record["gate"]

        async def parts() -> AsyncIterator[bytes]:
            yield b"first"
            await gate.wait()
            yield b"second"

        return StreamingResponse(parts())

    def sync_page(request: Request) -> Response:  # a sync endpoint: Starlette runs it in a thread
        return PlainTextResponse("from a thread")

    async def publish(request: Request) -> Response:
        payload = await request.json()
        server = get_server(request.scope)
        sent = server.publish(payload["topic"], payload["text"])
        return JSONResponse({"sent": sent, "subscribers": server.subscriber_count(payload["topic"])})

    async def boom(request: Request) -> Response:
        raise ValueError("boom")

    async def ws_endpoint(websocket: WebSocket) -> None:
        name = websocket.query_params.get("name")
        if not name:
            await websocket.close()  # -> 403
            return
        topic = websocket.path_params["topic"]
        if not upgrade(websocket.scope, data={"name": name, "topic": topic}, headers={"X-Joined": topic}):
            await websocket.close()

    async def native_ws(websocket: WebSocket) -> None:
        await websocket.accept()  # not supported: answered 403, raises RuntimeError
        await websocket.send_text("never")

    async def denied_ws(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))

    return Starlette(
        routes=[
            Route("/", home),
            Route("/items/{item_id:int}", item),
            Route("/json", echo_json, methods=["POST"]),
            Route("/digest", digest, methods=["POST", "PUT"]),
            Route("/stream", stream),
            Route("/stream-gated", stream_gated),
            Route("/sync", sync_page),
            Route("/publish", publish, methods=["POST"]),
            Route("/boom", boom),
            WebSocketRoute("/ws/{topic}", ws_endpoint),
            WebSocketRoute("/native", native_ws),
            WebSocketRoute("/denied", denied_ws),
        ],
        lifespan=lifespan,
    )
