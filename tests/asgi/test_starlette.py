"""A real Starlette app served by pubsock: JSON routes, bodies, streaming, HEAD, keep-alive, lifespan state,
errors, and topics published from an HTTP POST reaching WebSocket subscribers. Loopback only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import pubsock

from ._raw import RawHttp, request
from .starlette_app import Room, make_app

pytestmark = pytest.mark.timeout(20)


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[pubsock.Server, dict[str, Any], httpx.AsyncClient]]:
    record: dict[str, Any] = {"gate": asyncio.Event()}
    async with pubsock.serve(asgi=make_app(record), websocket=Room(record), port=0, **options) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            yield server, record, client


def ws_url(server: pubsock.Server, path: str) -> str:
    return server.url.replace("http://", "ws://").rstrip("/") + path


# HTTP routes -----------------------------------------------------------------------------------


async def test_json_route_with_lifespan_state() -> None:
    async with serving() as (server, record, client):
        first = await client.get("/")
        second = await client.get("/")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"greeting": "hello", "count": 1}
    assert second.json() == {"greeting": "hello", "count": 2}  # the state dict is shared, its copy per request
    assert record["lifespan"] == ["startup", "shutdown"]


async def test_path_params_query_headers_client_and_url() -> None:
    async with serving() as (server, _, client):
        response = await client.get("/items/42?q=a&q=b%20c", headers={"User-Agent": "pubsock-test"})
    assert response.json() == {
        "id": 42,
        "q": ["a", "b c"],
        "client": "127.0.0.1",
        "port": response.json()["port"],
        "url": f"http://127.0.0.1:{server.port}/items/42?q=a&q=b%20c",
        "agent": "pubsock-test",
    }


async def test_not_found_and_method_not_allowed_come_from_the_app() -> None:
    async with serving() as (_, _, client):
        missing = await client.get("/nowhere")
        wrong_method = await client.get("/publish")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


async def test_json_request_body() -> None:
    async with serving() as (_, _, client):
        response = await client.post("/json", json={"name": "ada", "tags": ["x", "y"], "n": 1.5})
    assert response.status_code == 201
    assert response.json() == {"received": {"name": "ada", "tags": ["x", "y"], "n": 1.5}}


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 7])
async def test_request_body_sizes(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    async with serving() as (_, _, client):
        response = await client.put("/digest", content=body)
    assert response.json() == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}


async def test_chunked_request_body() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"part {i};".encode()

    async with serving() as (_, _, client):
        response = await client.post("/digest", content=parts())  # httpx sends it chunked
    expected = b"".join(f"part {i};".encode() for i in range(5))
    assert response.json() == {"size": len(expected), "sha256": hashlib.sha256(expected).hexdigest()}


async def test_request_body_over_the_limit_is_refused_before_the_app() -> None:
    async with serving(max_request_body_size=1000) as (_, _, client):
        response = await client.post("/digest", content=b"x" * 1001)
    assert response.status_code == 413


async def test_sync_endpoint_runs_in_a_thread() -> None:
    async with serving() as (_, _, client):
        response = await client.get("/sync")
    assert (response.status_code, response.text) == (200, "from a thread")


async def test_app_exception_is_a_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "pubsock.server")
    async with serving() as (_, _, client):
        response = await client.get("/boom")
        after = await client.get("/")  # the connection and the server go on
    assert response.status_code == 500
    assert after.status_code == 200
    assert any("the ASGI app raised for GET /boom" in r.getMessage() for r in caplog.records)


# streaming, HEAD, keep-alive ---------------------------------------------------------------------


async def test_streaming_response_is_chunked() -> None:
    async with serving() as (_, _, client):
        response = await client.get("/stream?n=4")
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.text == "line 0\nline 1\nline 2\nline 3\n"


async def test_streamed_chunks_arrive_as_they_are_sent() -> None:
    async with serving() as (server, record, _):
        client = await RawHttp.connect(server.port)
        try:
            client.write(request("GET", "/stream-gated"))
            head = await client.read_head()
            assert head.header("transfer-encoding") == "chunked"
            assert await client.read_chunk() == b"first"  # before the generator may go on
            record["gate"].set()
            assert await client.read_chunk() == b"second"
            assert await client.read_chunk() == b""
        finally:
            await client.close()


async def test_streaming_with_httpx_stream() -> None:
    async with serving() as (_, _, client):
        async with client.stream("GET", "/stream?n=50") as response:
            lines = [line async for line in response.aiter_lines()]
    assert lines == [f"line {i}" for i in range(50)]


async def test_head_has_the_headers_and_no_body() -> None:
    async with serving() as (server, _, _):
        client = await RawHttp.connect(server.port)
        try:
            client.write(request("HEAD", "/") + request("HEAD", "/stream") + request("GET", "/"))
            json_head = await client.read_response(head_request=True)
            stream_head = await client.read_response(head_request=True)
            after = await client.read_response()  # parses cleanly: no stray body bytes before it
        finally:
            await client.close()
    assert json_head.status == 200
    assert json_head.header("content-length") == str(len(after.body))
    assert stream_head.status == 200
    assert stream_head.header("transfer-encoding") is None and stream_head.header("content-length") is None
    assert json.loads(after.body)["greeting"] == "hello"


async def test_keep_alive_and_pipelining_on_one_connection() -> None:
    async with serving() as (server, _, _):
        client = await RawHttp.connect(server.port)
        try:
            client.write(request("GET", "/items/1") + request("GET", "/stream?n=2") + request("POST", "/json", body=b'"x"'))
            one = await client.read_response()
            two = await client.read_response()
            three = await client.read_response()
            client.write(request("GET", "/items/2", "Connection: close"))
            four = await client.read_response()
            assert await client.at_eof()
        finally:
            await client.close()
    assert json.loads(one.body)["id"] == 1
    assert two.body == b"line 0\nline 1\n"
    assert json.loads(three.body) == {"received": "x"}
    assert json.loads(four.body)["id"] == 2
    assert four.header("connection") == "close"


async def test_httpx_reuses_the_connection() -> None:
    async with serving() as (_, _, client):
        ports = {(await client.get("/items/7")).json()["port"] for _ in range(5)}
    assert len(ports) == 1  # the app saw one client address: one connection


# topics ----------------------------------------------------------------------------------------


async def test_post_publishes_to_websocket_subscribers() -> None:
    async with serving() as (server, record, client):
        async with connect(ws_url(server, "/ws/news?name=ada")) as ada, connect(ws_url(server, "/ws/news?name=bob")) as bob:
            async with connect(ws_url(server, "/ws/sport?name=cy")) as cy:
                assert ada.response is not None and ada.response.headers["X-Joined"] == "news"
                response = await client.post("/publish", json={"topic": "news", "text": "extra! extra!"})
                assert response.json() == {"sent": len("extra! extra!"), "subscribers": 2}
                assert await asyncio.wait_for(ada.recv(), 5) == "extra! extra!"
                assert await asyncio.wait_for(bob.recv(), 5) == "extra! extra!"
                # the pubsock handlers serve the sockets: a message is published to the sender's topic
                await bob.send("hi")
                assert await asyncio.wait_for(ada.recv(), 5) == "bob: hi"
                await client.post("/publish", json={"topic": "sport", "text": "goal"})
                assert await asyncio.wait_for(cy.recv(), 5) == "goal"
        nobody = await client.post("/publish", json={"topic": "news", "text": "anyone?"})
    assert nobody.json() == {"sent": 0, "subscribers": 0}
    assert [data["name"] for data in record["opened"]] == ["ada", "bob", "cy"]


async def test_websocket_endpoint_refusing_is_a_403() -> None:
    async with serving() as (server, _, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "/ws/news")):  # no name: the endpoint closes
                pass
    assert refused.value.response.status_code == 403


async def test_websocket_to_an_unknown_route_is_a_403() -> None:
    async with serving() as (server, _, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "/nowhere")):
                pass
    assert refused.value.response.status_code == 403


async def test_websocket_denial_response() -> None:
    async with serving() as (server, _, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "/denied")):
                pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"members only"


async def test_native_asgi_websocket_is_refused_clearly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "pubsock.server")
    async with serving() as (server, _, client):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server, "/native")):
                pass
        assert (await client.get("/")).status_code == 200
    assert refused.value.response.status_code == 403
    assert any("does not run ASGI WebSocket sessions" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


# lifespan --------------------------------------------------------------------------------------


async def test_failed_startup_makes_serve_raise_and_nothing_listens() -> None:
    record: dict[str, Any] = {"fail_startup": True}
    server = pubsock.Server(asgi=make_app(record), port=0)
    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with pubsock.serve(asgi=make_app(record), port=0):
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match="no database"):
        await server.start()
    assert server._tcp_server is None
    assert record["lifespan"] == ["startup", "startup"]
