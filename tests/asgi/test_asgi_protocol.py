"""The ASGI adapter with raw ASGI apps: scopes, framing, backpressure, disconnects, errors, routing beside
``fetch``, WebSocket scopes, lifespan and stop. Loopback only; every wait is bounded."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import pubsock
import pubsock.asgi
from pubsock.asgi import Receive, Scope, Send

from ._raw import RawHttp, request

pytestmark = pytest.mark.timeout(20)

App = Callable[[Scope, Receive, Send], Awaitable[None]]


@asynccontextmanager
async def serving(app: App, **options: Any) -> AsyncIterator[pubsock.Server]:
    async with pubsock.serve(asgi=app, port=0, **options) as server:
        yield server


@asynccontextmanager
async def raw(server: pubsock.Server, **options: Any) -> AsyncIterator[RawHttp]:
    client = await RawHttp.connect(server.port, **options)
    try:
        yield client
    finally:
        await client.close()


async def exchange(server: pubsock.Server, data: bytes, *, head_request: bool = False) -> Any:
    async with raw(server) as client:
        client.write(data)
        return await client.read_response(head_request=head_request)


def reply(body: bytes = b"ok", *, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": body})

    return app


def test_public_names_of_pubsock_asgi() -> None:
    assert sorted(pubsock.asgi.__all__) == ["ASGIApp", "Receive", "Scope", "Send", "get_server", "upgrade"]


def test_helpers_refuse_a_foreign_scope() -> None:
    with pytest.raises(LookupError):
        pubsock.asgi.get_server({"type": "http"})
    with pytest.raises(LookupError):
        pubsock.asgi.upgrade({"type": "http", "extensions": {}})


def test_asgi_must_be_callable() -> None:
    with pytest.raises(TypeError, match="asgi must be"):
        pubsock.Server(asgi="module:app", port=0)  # type: ignore[arg-type]


# scopes ----------------------------------------------------------------------------------------


async def test_http_scope() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scopes.append(scope)
        await reply()(scope, receive, send)

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/a%20b/%C3%A9?x=1&y=%20", "X-Custom: Value", "x-custom: two"))
            await client.read_response()
            client.write(request("OPTIONS", "http://example.com/abs?q=1"))
            await client.read_response()
            sockname = client.writer.get_extra_info("sockname")
    first, absolute = scopes
    assert first["type"] == "http"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (first["http_version"], first["method"], first["scheme"]) == ("1.1", "GET", "http")
    assert first["path"] == "/a b/é"
    assert first["raw_path"] == b"/a%20b/%C3%A9"
    assert first["query_string"] == b"x=1&y=%20"
    assert first["root_path"] == ""
    assert first["headers"] == [(b"host", b"127.0.0.1"), (b"x-custom", b"Value"), (b"x-custom", b"two")]
    assert first["client"] == (sockname[0], sockname[1])
    assert first["server"] == ("127.0.0.1", server.port)
    assert first["state"] == {}
    assert first["extensions"]["pubsock"]["server"] is server
    assert isinstance(first["extensions"]["pubsock"]["request"], pubsock.Request)
    assert pubsock.asgi.get_server(first) is server
    assert (absolute["method"], absolute["path"], absolute["query_string"]) == ("OPTIONS", "/abs", b"q=1")


async def test_websocket_scope_and_upgrade_return_value() -> None:
    seen: list[tuple[Scope, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            seen.append((scope, await receive()))
            assert pubsock.asgi.upgrade(scope, headers={"Sec-WebSocket-Protocol": "chat"}, data=7)
            assert not pubsock.asgi.upgrade(scope)  # already upgraded
            await send({"type": "websocket.close"})  # ignored: the socket is pubsock's now

    opened: list[Any] = []
    handlers = {"open": lambda ws: opened.append(ws.data)}
    async with serving(app, websocket=handlers) as server:
        async with raw(server) as client:
            client.write(
                request(
                    "GET", "/chat?room=1", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: chat, superchat",
                )
            )
            head = await client.read_head()
    [(scope, first)] = seen
    assert head.status == 101
    assert head.header("sec-websocket-protocol") == "chat"
    assert opened == [7]
    assert first == {"type": "websocket.connect"}
    assert scope["type"] == "websocket" and "method" not in scope
    assert (scope["scheme"], scope["path"], scope["query_string"]) == ("ws", "/chat", b"room=1")
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert "websocket.http.response" in scope["extensions"]


# response framing ------------------------------------------------------------------------------


async def test_one_body_message_gets_a_content_length() -> None:
    async with serving(reply(b"hello")) as server:
        response = await exchange(server, request("GET", "/"))
    assert (response.status, response.body) == (200, b"hello")
    assert response.header("content-length") == "5"
    assert response.header("transfer-encoding") is None


async def test_app_content_length_frames_a_streamed_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6"), (b"transfer-encoding", b"chunked")]})
        for part in (b"ab", b"cd", b"ef"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/") + request("GET", "/"))
            first = await client.read_response()
            second = await client.read_response()
    for response in (first, second):
        assert response.body == b"abcdef"
        assert response.header("content-length") == "6"
        assert response.header("transfer-encoding") is None


async def test_body_shorter_than_content_length_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(reply(b"abc", headers=[(b"content-length", b"10")])) as server:
        async with raw(server) as client:
            client.write(request("GET", "/"))
            head = await client.read_head()
            rest = await asyncio.wait_for(client.reader.read(), 5)
    assert head.header("content-length") == "10"
    assert rest == b"abc"  # then EOF: the client can tell the body was cut
    assert any("less than its Content-Length" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("first", [b"", b"a"], ids=["at-once", "streamed"])
async def test_body_longer_than_content_length_raises_in_the_app(first: bytes, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        try:
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            await send({"type": "http.response.body", "body": b"abc"})
        except RuntimeError as exc:
            errors.append(exc)
            raise

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/"))
            if first:  # the head went out with the first part: the connection is cut after it
                head = await client.read_head()
                assert (head.status, await asyncio.wait_for(client.reader.read(), 5)) == (200, b"a")
            else:  # nothing was sent yet: a 500
                assert (await client.read_response()).status == 500
    assert "longer than its Content-Length" in str(errors[0])


async def test_http_1_0() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/one", "Connection: keep-alive", version="1.0"))
            kept = await client.read_response()
            client.write(request("GET", "/stream", version="1.0"))
            streamed = await client.read_response()  # close-delimited: read to EOF
    assert (kept.body, kept.header("connection"), kept.header("content-length")) == (b"b", "keep-alive", "1")
    assert (streamed.body, streamed.header("connection")) == (b"ab", "close")
    assert streamed.header("transfer-encoding") is None and streamed.header("content-length") is None


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(status: int) -> None:
    async with serving(reply(b"ignored", status=status)) as server:
        async with raw(server) as client:
            client.write(request("GET", "/") + request("GET", "/"))
            first = await client.read_response()
            second = await client.read_response()
    assert first.status == second.status == status
    assert first.header("content-length") is None and first.header("transfer-encoding") is None


async def test_app_connection_close_header_closes() -> None:
    async with serving(reply(headers=[(b"connection", b"close"), (b"x-a", b"1")])) as server:
        async with raw(server) as client:
            client.write(request("GET", "/"))
            response = await client.read_response()
            assert await client.at_eof()
    assert response.header("connection") == "close"
    assert response.header("x-a") == "1"


async def test_invalid_response_headers_are_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(reply(headers=[(b"x-bad", b"a\r\nInjected: 1")])) as server:
        response = await exchange(server, request("GET", "/"))
    assert response.status == 500
    assert response.header("injected") is None
    assert any("the ASGI app raised" in r.getMessage() for r in caplog.records)


# the app stopping short --------------------------------------------------------------------------


@pytest.mark.parametrize("sends", [0, 1], ids=["nothing", "start-only"])
async def test_app_returning_without_a_response_is_a_500(sends: int, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if sends and scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})

    async with serving(app) as server:
        response = await exchange(server, request("GET", "/"))
    assert response.status == 500
    assert any("without completing an answer" in r.getMessage() for r in caplog.records)


async def test_app_raising_mid_stream_cuts_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("mid-stream")

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/"))
            head = await client.read_head()
            assert await client.read_chunk() == b"partial"
            assert await client.at_eof()  # no last chunk: the client sees a truncated body
    assert head.header("transfer-encoding") == "chunked"
    assert any("the ASGI app raised for GET /" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body", "body": b"x"}],
        [{"type": "http.response.start", "status": 200}, {"type": "http.response.start", "status": 200}],
        [{"type": "http.response.start", "status": 200}, {"type": "http.response.body"}, {"type": "http.response.body"}],
        [{"type": "websocket.accept"}],
        [{"type": "http.response.start", "status": 99}, {"type": "http.response.body"}],
        [{"type": "http.response.start", "status": 200, "headers": [("x", "str")]}, {"type": "http.response.body"}],
    ],
    ids=["body-first", "start-twice", "body-after-complete", "foreign-message", "bad-status", "str-headers"],
)
async def test_protocol_misuse_raises_in_the_app(messages: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    errors: list[Exception] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            for message in messages:
                await send(message)
        except (RuntimeError, ValueError, TypeError) as exc:
            errors.append(exc)
            raise

    async with serving(app) as server:
        async with raw(server) as client:
            client.write(request("GET", "/"))
            response = await client.read_response()
    assert len(errors) == 1
    assert response.status in (200, 500)


# receive, disconnects, backpressure ----------------------------------------------------------------


async def test_receive_after_the_response_is_http_disconnect() -> None:
    received: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        received.append(await receive())
        await reply(b"done")(scope, receive, send)
        received.append(await asyncio.wait_for(receive(), 5))

    async with serving(app) as server:
        response = await exchange(server, request("POST", "/", body=b"payload"))
    assert response.body == b"done"
    assert received == [{"type": "http.request", "body": b"payload", "more_body": False}, {"type": "http.disconnect"}]


async def test_http_disconnect_when_the_client_leaves() -> None:
    waiting = asyncio.Event()
    outcome: asyncio.Future[tuple[Any, BaseException | None]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        waiting.set()
        message = await receive()  # blocks until the client goes away
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            outcome.set_result((message, exc))
        else:
            outcome.set_result((message, None))

    async with serving(app) as server:
        client = await RawHttp.connect(server.port)
        client.write(request("GET", "/"))
        await asyncio.wait_for(waiting.wait(), 5)
        await client.close()
        message, error = await asyncio.wait_for(outcome, 5)
    assert message == {"type": "http.disconnect"}
    assert isinstance(error, OSError)


async def test_send_waits_while_the_client_does_not_read() -> None:
    chunk = b"x" * 65536
    total = 400  # 25 MiB in all
    sent = 0
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % (total * len(chunk)))]})
        for _ in range(total):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += 1
        await send({"type": "http.response.body"})
        done.set()

    async with serving(app) as server:
        async with raw(server, rcvbuf=65536) as client:
            client.write(request("GET", "/"))
            await client.read_head()
            await asyncio.sleep(0.5)  # the client reads nothing more meanwhile
            stalled_at = sent
            assert not done.is_set()
            assert stalled_at < total // 2, stalled_at  # the app waits instead of buffering everything
            received = 0
            while received < total * len(chunk):
                received += len(await asyncio.wait_for(client.reader.read(1 << 20), 5))
            await asyncio.wait_for(done.wait(), 5)
    assert received == total * len(chunk)


# routing beside fetch ------------------------------------------------------------------------------


async def test_fetch_first_then_the_app() -> None:
    app_saw: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            app_saw.append(scope["path"])
            await reply(b"from asgi")(scope, receive, send)

    async def fetch(req: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
        if req.path == "/health":
            return pubsock.Response("fetch says ok")
        if req.path == "/async-none":
            await asyncio.sleep(0)
            return None
        if req.path == "/boom":
            raise ValueError("fetch failed")
        return None

    async with serving(app, fetch=fetch) as server:
        health = await exchange(server, request("GET", "/health"))
        passed = await exchange(server, request("GET", "/other"))
        passed_async = await exchange(server, request("GET", "/async-none"))
        failed = await exchange(server, request("GET", "/boom"))
    assert (health.body, passed.body, passed_async.body) == (b"fetch says ok", b"from asgi", b"from asgi")
    assert failed.status == 500  # a fetch error is fetch's (error handler or 500), not handed to the app
    assert app_saw == ["/other", "/async-none"]


async def test_fetch_upgrades_and_the_app_is_not_called() -> None:
    app_calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        app_calls.append(scope["type"])

    def fetch(req: pubsock.Request, server: pubsock.Server) -> None:
        server.upgrade(req)

    async with serving(app, fetch=fetch, websocket={"message": lambda ws, m: None}) as server:
        async with raw(server) as client:
            client.write(
                request("GET", "/", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
            )
            head = await client.read_head()
    assert head.status == 101
    assert app_calls == ["lifespan"]


# WebSocket scopes ----------------------------------------------------------------------------------

HANDSHAKE = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")


async def test_websocket_scope_left_unanswered_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async with serving(app, websocket={"message": lambda ws, m: None}) as server:
        response = await exchange(server, request("GET", "/", *HANDSHAKE))
    assert response.status == 500
    assert any("without completing an answer" in r.getMessage() for r in caplog.records)


async def test_websocket_upgrade_without_handlers_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            pubsock.asgi.upgrade(scope)

    async with serving(app) as server:
        response = await exchange(server, request("GET", "/", *HANDSHAKE))
    assert response.status == 500
    assert any(r.exc_info and "needs websocket handlers" in str(r.exc_info[1]) for r in caplog.records)


async def test_websocket_bad_version_is_answered_426_by_the_server() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            assert not pubsock.asgi.upgrade(scope)
            await send({"type": "websocket.close"})  # ignored: the server has answered

    async with serving(app, websocket={"message": lambda ws, m: None}) as server:
        response = await exchange(server, request("GET", "/", *HANDSHAKE[:2], "Sec-WebSocket-Version: 8", HANDSHAKE[3]))
    assert response.status == 426


async def test_upgrade_from_a_lifespan_scope_is_false() -> None:
    results: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        results.append(pubsock.asgi.upgrade(scope))

    async with serving(app, websocket={"message": lambda ws, m: None}):
        pass
    assert results == [False]


# lifespan --------------------------------------------------------------------------------------


def lifespan_app(events: list[Any], *, startup: str = "complete", shutdown: str = "complete") -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await reply(repr(sorted(scope["state"])).encode())(scope, receive, send)
            return
        server = pubsock.asgi.get_server(scope)

        def listening() -> bool:
            return server._tcp_server is not None and server._tcp_server.is_serving()

        message = await receive()
        events.append((message["type"], listening()))
        scope["state"]["db"] = "connected"
        if startup == "raise":
            raise OSError("cannot start")
        await send({"type": f"lifespan.startup.{startup}", "message": "no config"})
        message = await receive()
        events.append((message["type"], listening()))
        if shutdown == "raise":
            raise OSError("cannot stop")
        await send({"type": f"lifespan.shutdown.{shutdown}", "message": "disk full"})

    return app


async def test_lifespan_startup_before_listening_shutdown_at_stop() -> None:
    events: list[Any] = []
    async with serving(lifespan_app(events)) as server:
        response = await exchange(server, request("GET", "/"))
        assert events == [("lifespan.startup", False)]  # not listening yet
    assert response.body == b"['db']"  # lifespan state reaches requests
    assert events == [("lifespan.startup", False), ("lifespan.shutdown", False)]


@pytest.mark.parametrize("how", ["failed", "raise"])
async def test_failed_startup_makes_serve_raise(how: str) -> None:
    events: list[Any] = []
    with pytest.raises(RuntimeError, match="lifespan startup failed") as failure:
        async with serving(lifespan_app(events, startup=how)):
            pass  # pragma: no cover
    assert events == [("lifespan.startup", False)]
    assert ("no config" in str(failure.value)) == (how == "failed")


@pytest.mark.parametrize("how", ["failed", "raise"])
async def test_failed_shutdown_is_logged(how: str, caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = []
    async with serving(lifespan_app(events, shutdown=how)):
        pass
    assert events[-1] == ("lifespan.shutdown", False)
    assert any("shutdown" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_app_without_lifespan_support() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"  # raises for lifespan, before any receive()
        await reply(b"plain")(scope, receive, send)

    async with serving(app) as server:
        response = await exchange(server, request("GET", "/"))
    assert response.body == b"plain"


async def test_bind_failure_runs_lifespan_shutdown() -> None:
    events: list[Any] = []
    async with serving(reply()) as busy:
        with pytest.raises(OSError):
            async with pubsock.serve(asgi=lifespan_app(events), port=busy.port):
                pass  # pragma: no cover
    assert [kind for kind, _ in events] == ["lifespan.startup", "lifespan.shutdown"]


# stop ------------------------------------------------------------------------------------------


async def test_stop_lets_a_running_request_finish_then_shuts_down() -> None:
    events: list[Any] = []
    release = asyncio.Event()
    started = asyncio.Event()
    life = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await life(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await release.wait()
        events.append("request finished")
        await send({"type": "http.response.body", "body": b"late"})

    server = await pubsock.serve(asgi=app, port=0)
    async with raw(server) as client:
        client.write(request("GET", "/"))
        await asyncio.wait_for(started.wait(), 5)
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        release.set()
        response = await client.read_response()
        await asyncio.wait_for(stopping, 5)
    assert response.body == b"late"
    assert response.header("connection") == "close"  # the server is stopping
    assert events[1:] == ["request finished", ("lifespan.shutdown", False)]


async def test_stop_cancels_an_endless_stream_after_close_timeout() -> None:
    events: list[Any] = []
    cancelled = asyncio.Event()
    life = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await life(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = await pubsock.serve(asgi=app, port=0, close_timeout=0.2)
    async with raw(server) as client:
        client.write(request("GET", "/"))
        assert (await client.read_head()).status == 200
        await asyncio.wait_for(server.stop(), 2)
        assert cancelled.is_set()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            while True:
                await client.read_chunk()
    assert events[-1] == ("lifespan.shutdown", False)


async def test_client_leaving_during_a_large_body_logs_nothing() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * (16 << 20)})  # one message: not drained

    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reports.append(context))
    try:
        async with serving(app) as server:
            async with raw(server, rcvbuf=4096) as client:
                client.write(request("GET", "/"))
                await client.read_head()
                client.writer.transport.abort()  # reset, with most of the body unsent
            await asyncio.sleep(0.2)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reports == []
