"""HTTP/1.1 over real loopback sockets: Request, Response, keep-alive, pipelining, limits, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import pubsock
from pubsock import Request, Response, Server

from rawws import RawClient

pytestmark = pytest.mark.timeout(20)


def get(path: str, *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def exchange(port: int, data: bytes, count: int = 1, **options: Any) -> list[Any]:
    """Write ``data`` in one write; read ``count`` responses; close."""
    client = await RawClient.connect(port)
    try:
        client.write(data)
        return [await client.read_response(**options) for _ in range(count)]
    finally:
        await client.close()


# Request ---------------------------------------------------------------------------------------


async def test_request_line_query_and_headers() -> None:
    seen: list[Request] = []

    def fetch(req: Request, server: Server) -> Response:
        seen.append(req)
        return Response("ok")

    async with pubsock.serve(fetch, port=0) as server:
        raw = (
            f"GET /a%20b/c?x=1&x=2&y=&z=%C3%A9&sp=a+b HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "X-Multi: a\r\nx-multi: b\r\nX-Case: Value\r\n\r\n"
        ).encode()
        [response] = await exchange(server.port, raw)
    assert response.status == 200
    assert response.body == b"ok"
    [req] = seen
    assert req.method == "GET"
    assert req.path == "/a b/c"
    assert req.target == "/a%20b/c?x=1&x=2&y=&z=%C3%A9&sp=a+b"
    assert req.url == f"http://127.0.0.1:{server.port}/a%20b/c?x=1&x=2&y=&z=%C3%A9&sp=a+b"
    assert req.query.get("x") == "1"
    assert req.query.get_all("x") == ["1", "2"]
    assert req.query.get("y") == ""
    assert req.query.get("z") == "é"
    assert req.query.get("sp") == "a b"
    assert req.query.get("missing") is None
    assert req.query.get_all("missing") == []
    assert req.headers["x-case"] == "Value"
    assert req.headers["X-CASE"] == "Value"
    assert req.headers.get("X-Multi") == "a"
    assert req.headers.get_all("X-MULTI") == ["a", "b"]
    assert "x-multi" in req.headers and "X-Missing" not in req.headers
    assert req.headers.get("x-missing") is None
    assert req.remote_address == "127.0.0.1"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_body_text_and_json(chunked: bool) -> None:
    seen: list[tuple[bytes, str, Any]] = []

    async def fetch(req: Request, server: Server) -> Response:
        seen.append((await req.body(), await req.text(), await req.json()))
        return Response(await req.body())

    payload = json.dumps({"name": "Zoë", "n": [1, 2]}).encode()
    if chunked:
        body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, payload[:5], len(payload) - 5, payload[5:])
        head = "Transfer-Encoding: chunked"
    else:
        body = payload
        head = f"Content-Length: {len(payload)}"
    async with pubsock.serve(fetch, port=0) as server:
        [response] = await exchange(server.port, get("/", head, method="POST", body=body))
    assert response.status == 200
    assert response.body == payload
    assert seen == [(payload, payload.decode(), {"name": "Zoë", "n": [1, 2]})]


async def test_sync_and_async_fetch() -> None:
    def sync_fetch(req: Request, server: Server) -> Response:
        return Response("sync")

    async def async_fetch(req: Request, server: Server) -> Response:
        await asyncio.sleep(0.01)
        return Response("async", status=202)

    for fetch, status, body in ((sync_fetch, 200, b"sync"), (async_fetch, 202, b"async")):
        async with pubsock.serve(fetch, port=0) as server:
            [response] = await exchange(server.port, get("/"))
        assert (response.status, response.body) == (status, body)


async def test_default_fetch_is_404() -> None:
    async with pubsock.serve(port=0) as server:
        [response] = await exchange(server.port, get("/"))
    assert response.status == 404


# Response --------------------------------------------------------------------------------------


def sync_chunks() -> Iterator[bytes | str]:
    yield b"one,"
    yield "two,"
    yield b""
    yield b"three"


async def async_chunks() -> AsyncIterator[bytes | str]:
    yield "a"
    await asyncio.sleep(0)
    yield b"b" * 3000
    yield "ç"


RESPONSES: dict[str, tuple[Any, int, dict[str, str | None], bytes, bool]] = {
    # name: (response factory, status, expected headers, body, chunked)
    "str": (
        lambda: Response("héllo"),
        200,
        {"content-type": "text/plain;charset=utf-8", "content-length": "6"},
        "héllo".encode(),
        False,
    ),
    "bytes": (
        lambda: Response(b"\x00\x01", status=201, headers={"X-A": "1"}),
        201,
        {"content-type": None, "content-length": "2", "x-a": "1"},
        b"\x00\x01",
        False,
    ),
    "bytearray": (lambda: Response(bytearray(b"ba")), 200, {"content-length": "2"}, b"ba", False),
    "empty": (lambda: Response(status=204), 204, {"content-length": None}, b"", False),
    "none-200": (lambda: Response(), 200, {"content-length": "0"}, b"", False),
    "sync-iterable": (
        lambda: Response(sync_chunks(), headers=[("Content-Type", "text/csv")]),
        200,
        {"transfer-encoding": "chunked", "content-length": None, "content-type": "text/csv"},
        b"one,two,three",
        True,
    ),
    "async-iterable": (
        lambda: Response(async_chunks()),
        200,
        {"transfer-encoding": "chunked", "content-length": None},
        b"a" + b"b" * 3000 + "ç".encode(),
        True,
    ),
    "json": (
        lambda: Response.json({"a": [1, "é"]}, status=418),
        418,
        {"content-type": "application/json;charset=utf-8"},
        json.dumps({"a": [1, "é"]}, separators=(",", ":")).encode(),
        False,
    ),
    "json-own-type": (
        lambda: Response.json([], headers={"content-type": "application/vnd.x+json"}),
        200,
        {"content-type": "application/vnd.x+json"},
        b"[]",
        False,
    ),
}


@pytest.mark.parametrize("name", list(RESPONSES))
async def test_response_bodies(name: str) -> None:
    factory, status, headers, body, chunked = RESPONSES[name]

    def fetch(req: Request, server: Server) -> Response:
        return factory()  # type: ignore[no-any-return]

    async with pubsock.serve(fetch, port=0) as server:
        # a second request on the same connection checks that the body was framed correctly
        [first, second] = await exchange(server.port, get("/") + get("/"), count=2)
    for response in (first, second):
        assert response.status == status
        for key, value in headers.items():
            assert response.header(key) == value, key
        assert response.body == body
        assert response.chunked is chunked


async def test_response_repeated_headers_and_user_framing_headers_dropped() -> None:
    def fetch(req: Request, server: Server) -> Response:
        return Response(
            "x",
            headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", "99"), ("Connection", "close")],
        )

    async with pubsock.serve(fetch, port=0) as server:
        [first, second] = await exchange(server.port, get("/") + get("/"), count=2)
    assert first.header_all("set-cookie") == ["a=1", "b=2"]
    assert first.header_all("content-length") == ["1"]
    assert first.header("connection") is None
    assert second.body == b"x"


def test_response_argument_errors() -> None:
    with pytest.raises(TypeError):
        Response("x", status="200")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Response("x", status=99)
    with pytest.raises(TypeError):
        Response(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Response("x", headers="X-A: 1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Response("x", headers={"X-A": "1\r\nX-B: 2"})


# Connections -----------------------------------------------------------------------------------


async def test_keep_alive_two_requests_one_connection() -> None:
    peers: list[int] = []

    def fetch(req: Request, server: Server) -> Response:
        peers.append(id(req._connection))
        return Response(req.path)

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/one"))
            first = await client.read_response()
            client.write(get("/two"))
            second = await client.read_response()
        finally:
            await client.close()
    assert (first.status, first.body, second.status, second.body) == (200, b"/one", 200, b"/two")
    assert first.header("connection") is None
    assert peers[0] == peers[1]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_pipelined_requests_answered_in_order(asynchronous: bool) -> None:
    order: list[str] = []

    async def slow_fetch(req: Request, server: Server) -> Response:
        order.append(req.path)
        # the first request takes longer: its answer must still come first
        await asyncio.sleep(0.05 if req.path == "/1" else 0)
        return Response(req.path + ":" + (await req.text()))

    def fast_fetch(req: Request, server: Server) -> Response:
        order.append(req.path)
        return Response(req.path + ":" + req._body.decode())

    fetch = slow_fetch if asynchronous else fast_fetch
    data = get("/1", "Content-Length: 1", method="POST", body=b"a") + get("/2") + get("/3", "Content-Length: 2", method="POST", body=b"cd")
    async with pubsock.serve(fetch, port=0) as server:
        responses = await exchange(server.port, data, count=3)
    assert [r.body for r in responses] == [b"/1:a", b"/2:", b"/3:cd"]
    assert order == ["/1", "/2", "/3"]


async def test_connection_close_and_http10() -> None:
    def fetch(req: Request, server: Server) -> Response:
        return Response("bye")

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/", "Connection: close"))
            response = await client.read_response()
            assert response.header("connection") == "close"
            assert response.body == b"bye"
            assert await client.expect_eof() == b""
        finally:
            await client.close()
        client = await RawClient.connect(server.port)
        try:
            client.write(b"GET / HTTP/1.0\r\n\r\n")
            response = await client.read_response()
            assert response.body == b"bye"
            assert await client.expect_eof() == b""
        finally:
            await client.close()


async def test_head_has_length_but_no_body() -> None:
    def fetch(req: Request, server: Server) -> Response:
        return Response("twelve bytes")

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/", method="HEAD") + get("/"))
            head = await client.read_response(head_request=True)
            after = await client.read_response()
        finally:
            await client.close()
    assert head.status == 200
    assert head.header("content-length") == "12"
    assert (after.status, after.body) == (200, b"twelve bytes")


async def test_head_streamed_response_sends_no_chunks() -> None:
    def fetch(req: Request, server: Server) -> Response:
        return Response(sync_chunks())

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/", method="HEAD") + get("/"))
            head = await client.read_response(head_request=True)
            after = await client.read_response()
        finally:
            await client.close()
    assert head.header("transfer-encoding") == "chunked"
    assert (after.status, after.body) == (200, b"one,two,three")


# Limits and bad input ----------------------------------------------------------------------------


async def check_refused(port: int, data: bytes, status: int) -> None:
    client = await RawClient.connect(port)
    try:
        client.write(data)
        response = await client.read_response()
        assert response.status == status
        assert response.header("connection") == "close"
        assert await client.expect_eof() == b""
    finally:
        await client.close()


async def test_header_block_too_large_is_431() -> None:
    calls: list[Request] = []

    def fetch(req: Request, server: Server) -> Response:
        calls.append(req)
        return Response("ok")

    async with pubsock.serve(fetch, port=0, max_header_size=1024) as server:
        await check_refused(server.port, get("/", "X-Big: " + "a" * 2000), 431)
        await check_refused(server.port, get("/", *(f"X-H{i}: {'b' * 100}" for i in range(12))), 431)
        [ok] = await exchange(server.port, get("/", "X-Small: " + "a" * 500))
    assert ok.status == 200
    assert len(calls) == 1


async def test_too_many_headers_is_431() -> None:
    async with pubsock.serve(lambda req, server: Response("ok"), port=0, max_header_count=10) as server:
        await check_refused(server.port, get("/", *(f"X-H{i}: v" for i in range(20))), 431)
        [ok] = await exchange(server.port, get("/", *(f"X-H{i}: v" for i in range(8))))
    assert ok.status == 200


async def test_body_too_large_is_413() -> None:
    calls: list[Request] = []

    def fetch(req: Request, server: Server) -> Response:
        calls.append(req)
        return Response("ok")

    async with pubsock.serve(fetch, port=0, max_request_body_size=100) as server:
        await check_refused(server.port, get("/", "Content-Length: 101", method="POST", body=b"x" * 101), 413)
        # the limit applies before the body arrives
        await check_refused(server.port, get("/", "Content-Length: 1000000", method="POST"), 413)
        chunked = b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n"
        await check_refused(server.port, get("/", "Transfer-Encoding: chunked", method="POST", body=chunked), 413)
        [ok] = await exchange(server.port, get("/", "Content-Length: 100", method="POST", body=b"z" * 100))
    assert ok.status == 200
    assert len(calls) == 1


async def test_413_reaches_a_client_still_uploading() -> None:
    """The answer must survive unread input: closing at once would reset the connection and lose it."""
    async with pubsock.serve(lambda req, server: Response("ok"), port=0, max_request_body_size=1000) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/", "Content-Length: 5000000", method="POST", body=b"u" * 1_000_000))
            response = await client.read_response()
            assert await client.expect_eof() == b""
        finally:
            await client.close()
    assert response.status == 413


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["binary", "header", "version", "tls-hello", "cl-and-te", "cl-negative", "cl-twice", "bad-chunk"],
)
async def test_garbage_is_400(garbage: bytes) -> None:
    async with pubsock.serve(lambda req, server: Response("ok"), port=0) as server:
        await check_refused(server.port, garbage, 400)
        [ok] = await exchange(server.port, get("/"))
    assert ok.status == 200


async def test_garbage_after_good_request_answers_first_then_400() -> None:
    async with pubsock.serve(lambda req, server: Response("ok"), port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/") + b"\x00\x00nonsense\r\n\r\n")
            first = await client.read_response()
            second = await client.read_response()
            assert await client.expect_eof() == b""
        finally:
            await client.close()
    assert (first.status, first.body) == (200, b"ok")
    assert second.status == 400


# fetch errors ----------------------------------------------------------------------------------

SECRET = "s3cr3t-detail"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_fetch_exception_is_500_without_traceback(asynchronous: bool, caplog: pytest.LogCaptureFixture) -> None:
    def sync_fetch(req: Request, server: Server) -> Response:
        raise KeyError(SECRET)

    async def async_fetch(req: Request, server: Server) -> Response:
        await asyncio.sleep(0)
        raise KeyError(SECRET)

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    async with pubsock.serve(async_fetch if asynchronous else sync_fetch, port=0) as server:
        [response, after] = await exchange(server.port, get("/boom") + get("/boom"), count=2)
    assert response.status == 500
    assert SECRET.encode() not in response.body
    assert b"Traceback" not in response.body
    assert b"KeyError" not in response.body
    assert after.status == 500  # the connection survived
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert len(failures) == 2
    assert "/boom" in failures[0].getMessage()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_error_handler_answers(kind: str) -> None:
    seen: list[BaseException] = []

    def fetch(req: Request, server: Server) -> Response:
        raise ValueError(SECRET)

    def sync_error(exc: Exception) -> Response:
        seen.append(exc)
        return Response("handled", status=503)

    async def async_error(exc: Exception) -> Response:
        seen.append(exc)
        await asyncio.sleep(0)
        return Response("handled", status=503)

    error = sync_error if kind == "sync" else async_error
    async with pubsock.serve(fetch, error=error, port=0) as server:
        [response] = await exchange(server.port, get("/"))
    assert (response.status, response.body) == (503, b"handled")
    assert len(seen) == 1 and isinstance(seen[0], ValueError) and str(seen[0]) == SECRET


async def test_error_handler_raising_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    def fetch(req: Request, server: Server) -> Response:
        raise ValueError(SECRET)

    def error(exc: Exception) -> Response:
        raise RuntimeError("error handler broke")

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    async with pubsock.serve(fetch, error=error, port=0) as server:
        [response] = await exchange(server.port, get("/"))
    assert response.status == 500
    assert SECRET.encode() not in response.body and b"broke" not in response.body
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_fetch_returning_none_without_upgrade_is_500(asynchronous: bool, caplog: pytest.LogCaptureFixture) -> None:
    def sync_fetch(req: Request, server: Server) -> None:
        return None

    async def async_fetch(req: Request, server: Server) -> None:
        return None

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    async with pubsock.serve(async_fetch if asynchronous else sync_fetch, port=0) as server:
        [response] = await exchange(server.port, get("/"))
    assert response.status == 500
    assert any("None" in r.getMessage() for r in caplog.records)


async def test_streaming_body_failure_cuts_connection(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError(SECRET)

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    async with pubsock.serve(lambda req, server: Response(broken()), port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/"))
            response = await client.read_response(body=False)
            assert response.status == 200
            rest = await client.expect_eof()
        finally:
            await client.close()
    assert rest == b"7\r\npartial\r\n"
    assert any(r.exc_info and r.exc_info[0] is OSError for r in caplog.records)


async def test_server_properties() -> None:
    async with pubsock.serve(lambda req, server: Response("ok"), port=0) as server:
        assert server.port > 0
        assert server.hostname == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert server.pending_websockets == 0
        assert server.subscriber_count("room") == 0
        assert server.publish("room", "x") == 0


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_send_no_body(status: int) -> None:
    def fetch(req: Request, server: Server) -> Response:
        if req.path == "/empty":
            return Response("must not be sent", status=status)
        return Response("next")

    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            client.write(get("/empty") + get("/next"))
            first = await client.read_response()
            second = await client.read_response()
        finally:
            await client.close()
    assert first.status == status
    assert first.header("content-length") is None and first.header("transfer-encoding") is None
    assert (second.status, second.body) == (200, b"next")


def test_header_values_must_be_latin1() -> None:
    with pytest.raises(ValueError):
        Response("x", headers={"X-Mark": "✓"})
    with pytest.raises(ValueError):
        Response("x", headers={"X-✓": "1"})
    assert Response("x", headers={"X-Name": "Zoë"}).headers == [("X-Name", "Zoë")]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_fetch_returning_a_non_response_is_500(asynchronous: bool, caplog: pytest.LogCaptureFixture) -> None:
    def sync_fetch(req: Request, server: Server) -> Any:
        return "not a response"

    async def async_fetch(req: Request, server: Server) -> Any:
        return {"status": 200}

    caplog.set_level(logging.ERROR, logger="pubsock.server")
    async with pubsock.serve(async_fetch if asynchronous else sync_fetch, port=0) as server:
        [first, second] = await exchange(server.port, get("/") + get("/"), count=2)
    assert (first.status, second.status) == (500, 500)
    assert b"not a response" not in first.body
    assert caplog.records


async def test_request_split_across_writes() -> None:
    seen: list[tuple[str, bytes]] = []

    async def fetch(req: Request, server: Server) -> Response:
        seen.append((req.headers["x-long"], await req.body()))
        return Response("ok")

    data = get("/split", "X-Long: " + "v" * 300, "Content-Length: 5", method="POST", body=b"hello")
    async with pubsock.serve(fetch, port=0) as server:
        client = await RawClient.connect(server.port)
        try:
            for i in range(0, len(data), 37):
                client.write(data[i : i + 37])
                await client.writer.drain()
                await asyncio.sleep(0.001)
            response = await client.read_response()
        finally:
            await client.close()
    assert response.body == b"ok"
    assert seen == [("v" * 300, b"hello")]


async def test_request_timeout_closes_idle_and_incomplete_connections() -> None:
    async with pubsock.serve(lambda req, server: Response("ok"), port=0, request_timeout=0.2) as server:
        idle = await RawClient.connect(server.port)
        partial = await RawClient.connect(server.port)
        kept = await RawClient.connect(server.port)
        try:
            partial.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            kept.write(get("/"))
            assert (await kept.read_response()).body == b"ok"
            assert await idle.expect_eof(2) == b""
            assert await partial.expect_eof(2) == b""
            assert await kept.expect_eof(2) == b""  # keep-alive idle after the answer
        finally:
            for client in (idle, partial, kept):
                await client.close()


async def test_stop_closes_idle_connections_and_in_flight_ones_after_their_answer() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def fetch(req: Request, server: Server) -> Response:
        if req.path == "/slow":
            entered.set()
            await release.wait()
        return Response(req.path)

    server = await pubsock.serve(fetch, port=0)
    idle = await RawClient.connect(server.port)
    busy = await RawClient.connect(server.port)
    try:
        idle.write(get("/fast"))
        assert (await idle.read_response()).body == b"/fast"
        busy.write(get("/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.wait_for(server.stop(), 5)
        assert await idle.expect_eof(2) == b""
        release.set()
        response = await busy.read_response()
        assert response.body == b"/slow"
        assert response.header("connection") == "close"
        assert await busy.expect_eof(2) == b""
    finally:
        await idle.close()
        await busy.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_many_pipelined_requests(asynchronous: bool) -> None:
    count = 2000

    def sync_fetch(req: Request, server: Server) -> Response:
        return Response(req.query["i"])

    async def async_fetch(req: Request, server: Server) -> Response:
        return Response(req.query["i"])

    data = b"".join(get(f"/?i={i}") for i in range(count))
    async with pubsock.serve(async_fetch if asynchronous else sync_fetch, port=0) as server:
        responses = await exchange(server.port, data, count=count)
    assert [r.body for r in responses] == [str(i).encode() for i in range(count)]
