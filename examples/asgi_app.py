"""A notice board: a Starlette app served by pubsock, with topics.

Run: python examples/asgi_app.py [--port 3000]   (needs ``pip install starlette``)
then open http://127.0.0.1:3000/ in two tabs, or post from a shell:

    curl -X POST localhost:3000/api/notices -H 'Content-Type: application/json' -d '{"author": "ops", "text": "deploy at 5"}'

Starlette answers HTTP (JSON routes, a streamed export, lifespan); its WebSocket
route upgrades through ``pubsock.asgi.upgrade`` so the sockets are pubsock's:
they subscribe to the "notices" topic, and the POST endpoint publishes each new
notice to every open page at batch speed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import pubsock
from pubsock.asgi import get_server, upgrade

TOPIC = "notices"
MAX_TEXT = 500


class Board(pubsock.WebSocketHandler):
    """The pubsock side: every page subscribes to the notices topic."""

    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.subscribe(TOPIC)

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        pass  # pages only listen; notices come in through the HTTP API


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # open databases, clients, ... here; what is yielded is every request's ``request.state``
    yield {"notices": []}


async def list_notices(request: Request) -> Response:
    return JSONResponse(request.state.notices[-50:])


async def post_notice(request: Request) -> Response:
    try:
        payload = await request.json()
        author, text = str(payload["author"])[:32], str(payload["text"])[:MAX_TEXT]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'expected {"author": ..., "text": ...}'}, status_code=400)
    notices: list[dict[str, Any]] = request.state.notices
    notice = {"id": len(notices) + 1, "author": author, "text": text}
    notices.append(notice)
    server = get_server(request.scope)  # publish from an async endpoint: it runs on the server's loop
    server.publish(TOPIC, json.dumps(notice))
    return JSONResponse({**notice, "pages": server.subscriber_count(TOPIC)}, status_code=201)


async def export_notices(request: Request) -> Response:
    notices: list[dict[str, Any]] = list(request.state.notices)

    async def lines() -> AsyncIterator[str]:  # streamed chunk by chunk, as the client reads
        for notice in notices:
            yield json.dumps(notice) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def live(websocket: WebSocket) -> None:
    if not upgrade(websocket.scope, data={"page": websocket.query_params.get("page", "")}):
        await websocket.close()  # not a usable handshake: 403


async def home(request: Request) -> Response:
    return HTMLResponse(PAGE)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/api/notices", list_notices, methods=["GET"]),
        Route("/api/notices", post_notice, methods=["POST"]),
        Route("/api/notices.ndjson", export_notices),
        WebSocketRoute("/live", live),
    ],
    lifespan=lifespan,
)

# for the command line: python -m pubsock --app-dir examples asgi_app:board
board = {"asgi": app, "websocket": Board()}

PAGE = """<!doctype html>
<meta charset="utf-8"><title>pubsock notice board</title>
<style>body{font:16px system-ui;max-width:40em;margin:2em auto}li{margin:.3em 0}</style>
<h1>Notices</h1>
<form id="f"><input id="a" placeholder="name" size="8"> <input id="t" placeholder="notice" size="40"> <button>Post</button></form>
<ul id="l"></ul>
<script>
const list = document.getElementById("l");
const show = (n) => { const li = document.createElement("li"); li.textContent = `${n.author}: ${n.text}`; list.prepend(li); };
fetch("/api/notices").then((r) => r.json()).then((ns) => ns.forEach(show));
const ws = new WebSocket(`ws://${location.host}/live`);
ws.onmessage = (e) => show(JSON.parse(e.data));
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const author = document.getElementById("a").value || "anonymous", t = document.getElementById("t");
  fetch("/api/notices", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({author, text: t.value})});
  t.value = "";
};
</script>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    print(f"notice board: open http://{args.host}:{args.port}/", flush=True)
    pubsock.run(asgi=app, websocket=Board(), hostname=args.host, port=args.port)


if __name__ == "__main__":
    main()
