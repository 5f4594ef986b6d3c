"""The notice-board example (``examples/asgi_app.py``): a POST to the Starlette API reaches every open page."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from websockets.asyncio.client import connect

import pubsock

pytestmark = pytest.mark.timeout(20)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asgi_app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pubsock_example_asgi_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_notice_board() -> None:
    example = load_example()
    async with pubsock.serve(asgi=example.app, websocket=example.Board(), port=0) as server:
        live = f"ws://127.0.0.1:{server.port}/live"
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client, connect(live) as one, connect(live) as two:
            page = await client.get("/")
            assert page.status_code == 200 and "new WebSocket" in page.text
            posted = await client.post("/api/notices", json={"author": "ops", "text": "deploy at 5"})
            assert posted.status_code == 201
            assert posted.json() == {"id": 1, "author": "ops", "text": "deploy at 5", "pages": 2}
            for ws in (one, two):
                assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"id": 1, "author": "ops", "text": "deploy at 5"}
            bad = await client.post("/api/notices", content=b"not json")
            assert bad.status_code == 400
            await client.post("/api/notices", json={"author": "qa", "text": "tests green"})
            assert [n["text"] for n in (await client.get("/api/notices")).json()] == ["deploy at 5", "tests green"]
            export = await client.get("/api/notices.ndjson")
            assert export.headers["transfer-encoding"] == "chunked"
            assert [json.loads(line)["author"] for line in export.text.splitlines()] == ["ops", "qa"]


def test_command_line_app_mapping() -> None:
    example = load_example()
    assert example.board["asgi"] is example.app
    assert isinstance(example.board["websocket"], example.Board)
