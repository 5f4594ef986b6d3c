"""Run an ASGI 3 app (Starlette, FastAPI, ...) for the HTTP requests that ``fetch`` leaves unanswered.

``serve(asgi=app, websocket=handlers)`` routes a request to the app when there is
no ``fetch``, or when ``fetch`` returns None without upgrading. The app sees:

* an ``http`` scope for ordinary requests. The body is already read, so the
  first ``receive()`` returns all of it; the next one waits for the response to
  complete or the client to leave and returns ``http.disconnect``. Response
  bodies are written as they are sent (``more_body``), with ``Content-Length``
  when the app gives one or sends the body in one message, chunked otherwise
  (close-delimited for HTTP/1.0); each ``send()`` waits while the transport's
  buffer is full. ``send()`` raises ``ConnectionResetError`` (an ``OSError``,
  ASGI spec 2.4) once the client has gone.
* a ``websocket`` scope for a WebSocket handshake (a GET with ``Upgrade:
  websocket``). ASGI WebSocket sessions are not run: the app upgrades the
  request to a *pubsock* WebSocket, served by the ``websocket=`` handlers, with
  ``pubsock.asgi.upgrade(scope, data=...)``, after which whatever it sends is
  ignored. ``websocket.close`` before that is answered 403, a denial response
  (``websocket.http.response``) is sent as is, and ``websocket.accept`` is
  answered 403 and raises ``RuntimeError``.
* a ``lifespan`` scope: startup runs before the server listens (a failure makes
  ``serve()`` raise), shutdown at the end of ``stop()``. An app that raises or
  returns before its first ``receive()`` is taken not to support lifespan.

Every scope carries ``scope["extensions"]["pubsock"] = {"server": server, ...}``
(and ``"request"``, the pubsock ``Request``, for HTTP and WebSocket scopes);
``pubsock.asgi.get_server(scope)`` returns the server, to publish to topics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..protocol.handshake import UpgradeCheck, check_upgrade_request
from .response import HeadersInput, Response, reason_phrase

if TYPE_CHECKING:
    from ..server.server import Server
    from .connection import HttpConnection
    from .request import Request

__all__ = ["ASGIApp", "AsgiAdapter", "Receive", "Scope", "Send", "get_server", "upgrade"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SPEC = {"version": "3.0", "spec_version": "2.4"}
SHUTDOWN_GRACE = 5.0  # seconds stop() lets running ASGI requests finish before cancelling them (or close_timeout)
NATIVE_WEBSOCKET = (
    "pubsock does not run ASGI WebSocket sessions: upgrade with pubsock.asgi.upgrade(scope) "
    "and serve the socket with the websocket= handlers"
)
_FORBIDDEN: Message = {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain;charset=utf-8")]}


def _extension(scope: Scope) -> dict[str, Any]:
    try:
        ext: dict[str, Any] = scope["extensions"]["pubsock"]
    except (KeyError, TypeError):
        raise LookupError("this ASGI scope does not come from a pubsock server") from None
    return ext


def get_server(scope: Scope) -> Server:
    """Return the pubsock ``Server`` running the app (e.g. ``get_server(request.scope).publish(...)``).

    Raises:
        LookupError: ``scope`` does not come from a pubsock server.
    """
    server: Server = _extension(scope)["server"]
    return server


def upgrade(scope: Scope, *, headers: HeadersInput = None, data: Any = None) -> bool:
    """Turn the WebSocket handshake behind ``scope`` into a pubsock WebSocket (``server.upgrade``).

    The socket is served by the server's ``websocket=`` handlers (``open`` runs
    before this returns) and can subscribe to topics. Call it from the app's
    WebSocket endpoint (a ``websocket`` scope); once it returns True the app's
    part is over: what it sends for this scope is ignored.

    Returns:
        True when the 101 answer is queued; False when the request cannot be
        upgraded (then answer it, e.g. ``websocket.close`` for a 403).

    Raises:
        LookupError: ``scope`` does not come from a pubsock server.
        RuntimeError: the server has no ``websocket`` handlers.
    """
    ext = _extension(scope)
    request = ext.get("request")
    if request is None:
        return False
    server: Server = ext["server"]
    return server.upgrade(request, headers=headers, data=data)


class AsgiAdapter:
    """The server's bridge to one ASGI app: per-request exchanges and the lifespan protocol."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server
        self.state: dict[str, Any] = {}  # lifespan state; each request gets a shallow copy
        self._running: dict[asyncio.Task[Any], _HttpExchange] = {}
        self._lifespan: _Lifespan | None = None

    def handle(self, request: Request) -> Awaitable[Response | None]:
        """Run the app for ``request``; the awaitable gives a Response to send, or None once answered."""
        headers = request.headers
        websocket = (
            request.method == "GET"
            and "upgrade" in headers
            and check_upgrade_request(headers.multi_items()) is not UpgradeCheck.NOT_WEBSOCKET
        )
        return (_WebSocketExchange if websocket else _HttpExchange)(self, request).run()

    async def startup(self) -> None:
        """Run lifespan startup.

        Raises:
            RuntimeError: the app reported a failed startup, or raised during it.
        """
        self._lifespan = _Lifespan(self)
        await self._lifespan.startup()

    async def shutdown(self) -> None:
        """Let running requests finish (cancelled after ``close_timeout``, default 5 s), then run lifespan shutdown."""
        if self._running:
            grace = SHUTDOWN_GRACE if self.server.close_timeout is None else self.server.close_timeout
            _, pending = await asyncio.wait(list(self._running), timeout=grace)
            for task in pending:
                exchange = self._running.get(task)
                if exchange is not None:
                    exchange.abort()
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.shutdown()


class _HttpExchange:
    """One request handled by the app: its scope, ``receive`` and ``send``, and the response writer."""

    def __init__(self, adapter: AsgiAdapter, request: Request) -> None:
        connection = request._connection
        assert connection is not None and connection.transport is not None
        self.adapter = adapter
        self.request = request
        self.connection: HttpConnection = connection
        self.logger: logging.Logger = adapter.server.logger
        self.start: Message | None = None  # http.response.start, kept until the first body message
        self.head_sent = False
        self.complete = False
        self.request_read = False
        self.send_body = True  # False for HEAD, 1xx, 204 and 304
        self.chunked = False
        self.remaining: int | None = None  # bytes still owed to the Content-Length the app gave
        self._settled: asyncio.Future[None] | None = None  # done once the response is complete

    # the scope ---------------------------------------------------------------------------------

    def scope(self, kind: str, scheme: str) -> Scope:
        request, transport = self.request, self.connection.transport
        assert transport is not None
        target = request.target
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            raw_path, query = parts.path or "/", parts.query
        else:
            raw_path, _, query = target.partition("?")
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        return {
            "type": kind,
            "asgi": dict(SPEC),
            "http_version": request.http_version,
            "scheme": scheme,
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in request.headers.multi_items()],
            "client": (peer[0], peer[1]) if isinstance(peer, tuple) else None,
            "server": (sock[0], sock[1]) if isinstance(sock, tuple) else None,
            "state": dict(self.adapter.state),
            "extensions": {"pubsock": {"server": self.adapter.server, "request": request}},
        }

    # running the app ---------------------------------------------------------------------------

    async def run(self) -> Response | None:
        task = asyncio.current_task()
        assert task is not None
        self.adapter._running[task] = self
        try:
            return await self._call()
        finally:
            del self.adapter._running[task]
            if self._settled is not None and not self._settled.done():
                self._settled.set_result(None)

    def make_scope(self) -> Scope:
        scope = self.scope("http", self.connection.scheme)
        scope["method"] = self.request.method
        return scope

    async def _call(self) -> Response | None:
        request = self.request
        try:
            await self.adapter.app(self.make_scope(), self.receive, self.send)
        except Exception as exc:  # noqa: BLE001 - user code
            if self.connection.closed:
                self.logger.debug("the ASGI app raised after the client left: %s %s", request.method, request.target, exc_info=exc)
                return None
            self.logger.error("the ASGI app raised for %s %s", request.method, request.target, exc_info=exc)
            return self._unfinished()
        if self.complete or self.connection.closed or (request.answered and not self.head_sent):
            return None  # answered, gone, or upgraded (or answered 426) through pubsock
        self.logger.error("the ASGI app returned without completing an answer to %s %s", request.method, request.target)
        return self._unfinished()

    def _unfinished(self) -> Response | None:
        """The app stopped short: a 500 if nothing was sent yet, else cut the connection."""
        if self.complete:
            return None
        if not self.head_sent:
            return Response("Internal Server Error", status=500)
        self.request.keep_alive = False
        return None

    def abort(self) -> None:
        """Drop the connection (server stop)."""
        transport = self.connection.transport
        if transport is not None and not self.connection.closed:
            transport.abort()

    def _settle(self) -> None:
        self.complete = True
        if self._settled is not None and not self._settled.done():
            self._settled.set_result(None)

    async def _wait_settled(self) -> None:
        """Wait until the response is complete or the client has gone."""
        if self.complete or self.connection.closed:
            return
        if self._settled is None:
            self._settled = asyncio.get_running_loop().create_future()
        await asyncio.wait((self._settled, self.connection.lost), return_when=asyncio.FIRST_COMPLETED)

    # receive and send --------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.request_read:
            self.request_read = True
            return {"type": "http.request", "body": self.request._body, "more_body": False}
        await self._wait_settled()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start sent twice")
            self._check_open()
            self.start = message
        elif kind == "http.response.body":
            if self.start is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body sent after the response completed")
            self._check_open()
            await self._write(message.get("body", b""), bool(message.get("more_body", False)))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    def _check_open(self) -> None:
        if self.connection.closed:
            raise ConnectionResetError("the client closed the connection")

    # the response writer -----------------------------------------------------------------------

    async def _write(self, body: bytes | bytearray | memoryview, more: bool) -> None:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"http.response.body: body must be bytes, not {type(body).__name__}")
        parts: list[bytes | bytearray | memoryview] = []
        if not self.head_sent:
            parts.append(self._head(None if more else len(body)))
        if body and self.send_body:
            if self.remaining is not None:
                if len(body) > self.remaining:
                    raise RuntimeError("the response body is longer than its Content-Length")
                self.remaining -= len(body)
            if self.chunked:
                parts += (b"%x\r\n" % len(body), body, b"\r\n")
            else:
                parts.append(body)
        if not more:
            if self.chunked:
                parts.append(b"0\r\n\r\n")
            if self.remaining:
                self.logger.error("the ASGI app sent %d bytes less than its Content-Length", self.remaining)
                self.request.keep_alive = False
            if self.adapter.server._stopping:
                self.request.keep_alive = False
            self._settle()
        self.head_sent = self.request.answered = True
        transport = self.connection.transport
        assert transport is not None
        transport.writelines(parts)
        if more:
            await self.connection.drain()

    def _head(self, length: int | None) -> bytes:
        """Build the response head; ``length`` is the whole body's size when it came in one message."""
        start = self.start
        assert start is not None
        request = self.request
        status = start["status"]
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise ValueError(f"http.response.start: invalid status {status!r}")
        head = bytearray(b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("latin-1")))
        content_length: int | None = None
        for name, value in start.get("headers", ()):
            if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
                raise TypeError("http.response.start: header names and values must be bytes")
            if not name or any(c in name for c in b"\r\n\0:") or any(c in value for c in b"\r\n\0"):
                raise ValueError(f"http.response.start: invalid header {bytes(name)!r}")
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.strip().isdigit() or content_length not in (None, int(value)):
                    raise ValueError(f"http.response.start: invalid Content-Length {bytes(value)!r}")
                content_length = int(value)
                continue  # written below, once
            elif lowered == b"transfer-encoding":
                continue  # the server frames the body
            elif lowered == b"connection":
                if b"close" in value.lower():
                    request.keep_alive = False
                continue
            head += name + b": " + value + b"\r\n"
        has_body = status >= 200 and status not in (204, 304)
        self.send_body = has_body and request.method != "HEAD"
        if content_length is not None:
            head += b"Content-Length: %d\r\n" % content_length
            if self.send_body:
                self.remaining = content_length
        elif self.send_body:
            if length is not None:
                head += b"Content-Length: %d\r\n" % length
            elif request.http_version == "1.1":
                head += b"Transfer-Encoding: chunked\r\n"
                self.chunked = True
            else:
                request.keep_alive = False  # HTTP/1.0: the body ends when the connection closes
        if self.adapter.server._stopping:
            request.keep_alive = False
        if not request.keep_alive:
            head += b"Connection: close\r\n"
        elif request.http_version == "1.0":
            head += b"Connection: keep-alive\r\n"
        return bytes(head + b"\r\n")


class _WebSocketExchange(_HttpExchange):
    """A WebSocket handshake handled by the app: upgraded through pubsock, denied, or refused."""

    def make_scope(self) -> Scope:
        request = self.request
        scope = self.scope("websocket", "wss" if self.connection.scheme == "https" else "ws")
        scope["subprotocols"] = [
            token.strip() for value in request.headers.get_all("sec-websocket-protocol") for token in value.split(",") if token.strip()
        ]
        scope["extensions"]["websocket.http.response"] = {}
        return scope

    async def receive(self) -> Message:
        if not self.request_read:
            self.request_read = True
            return {"type": "websocket.connect"}
        if not self.request.answered:
            await self._wait_settled()
        return {"type": "websocket.disconnect", "code": 1006, "reason": ""}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.request.answered and not self.head_sent:
            return  # upgraded through pubsock (or answered 426): the app's part is over
        if kind == "websocket.http.response.start":
            await super().send({**message, "type": "http.response.start"})
        elif kind == "websocket.http.response.body":
            await super().send({**message, "type": "http.response.body"})
        elif kind in ("websocket.close", "websocket.accept") and self.start is None:
            await super().send(_FORBIDDEN)
            await super().send({"type": "http.response.body", "body": b"Forbidden"})
            if kind == "websocket.accept":
                raise RuntimeError(NATIVE_WEBSOCKET)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} before the WebSocket was accepted: " + NATIVE_WEBSOCKET)


class _Lifespan:
    """The lifespan protocol: one long-running call of the app."""

    def __init__(self, adapter: AsgiAdapter) -> None:
        self.adapter = adapter
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.reply: asyncio.Future[Message] | None = None
        self.phase = ""  # lifespan.startup, then lifespan.shutdown
        self.received = False  # the app called receive(): it speaks lifespan
        self.supported = False

    async def _receive(self) -> Message:
        self.received = True
        return await self.events.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if self.reply is None or self.reply.done() or kind not in (f"{self.phase}.complete", f"{self.phase}.failed"):
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        self.reply.set_result(message)

    async def _main(self, scope: Scope) -> None:
        await self.adapter.app(scope, self._receive, self._send)

    async def _call(self, event: str) -> Message | None:
        """Send ``event``; return the app's answer, or None if the app ended without one."""
        assert self.task is not None
        self.phase = event
        self.reply = asyncio.get_running_loop().create_future()
        self.events.put_nowait({"type": event})
        await asyncio.wait((self.task, self.reply), return_when=asyncio.FIRST_COMPLETED)
        return self.reply.result() if self.reply.done() else None

    async def startup(self) -> None:
        server = self.adapter.server
        scope: Scope = {"type": "lifespan", "asgi": dict(SPEC), "state": self.adapter.state, "extensions": {"pubsock": {"server": server}}}
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        reply = await self._call("lifespan.startup")
        if reply is None:
            error = None if self.task.cancelled() else self.task.exception()
            if self.received and error is not None:
                raise RuntimeError(f"ASGI lifespan startup failed: {error!r}") from error
            server.logger.debug("the ASGI app does not support lifespan", exc_info=error)
            return
        if reply["type"] == "lifespan.startup.failed":
            await asyncio.wait((self.task,), timeout=1.0)
            if self.task.done() and not self.task.cancelled():
                self.task.exception()  # retrieved: the message says what failed
            raise RuntimeError(f"ASGI lifespan startup failed: {reply.get('message', '')}")
        self.supported = True

    async def shutdown(self) -> None:
        task = self.task
        if not self.supported or task is None:
            return
        logger = self.adapter.server.logger
        reply = await self._call("lifespan.shutdown")
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            logger.error("ASGI lifespan shutdown failed: %s", reply.get("message", ""))
        done, _ = await asyncio.wait((task,), timeout=SHUTDOWN_GRACE)
        if not done:
            task.cancel()
        elif not task.cancelled() and task.exception() is not None:
            logger.error("the ASGI app raised during lifespan shutdown", exc_info=task.exception())
