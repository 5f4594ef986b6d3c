"""One HTTP/1.1 connection on httptools: parsing, ``fetch`` dispatch, responses, limits.

Requests on a connection are answered one at a time, in order (pipelining);
bytes that arrive while a request is being answered wait in a buffer. An
upgrade hands the transport to a ``ServerWebSocket`` with every byte that
followed the request head.

``request_timeout`` is a deadline, not an idle timer: a request head must be
complete that long after the server started waiting for it, or the connection
is closed (an idle keep-alive connection, or a slowloris client that trickles
bytes); a request body must make progress at least that often.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

import httptools

from .multidict import Headers
from .request import Request
from .response import Response, reason_phrase

if TYPE_CHECKING:
    from ..server.server import Server

__all__ = ["HttpConnection", "simple_response"]

HIGH_WATER = 1 << 20  # pause reading when this much unparsed input waits
LINGER = 5.0  # seconds an error answer waits for the client to stop sending before the connection is aborted


def simple_response(status: int, text: str, close: bool = True, extra: str = "") -> bytes:
    """Return a complete plain-text response the server sends on its own (errors, limits)."""
    body = text.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason_phrase(status)}\r\n{extra}"
        f"Content-Type: text/plain;charset=utf-8\r\nContent-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return head.encode("latin-1") + b"\r\n" + body


class _LimitExceeded(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class HttpConnection(asyncio.Protocol):
    """The server side of one HTTP/1.1 connection until it closes or is upgraded."""

    # Defaults read from the class until first set (a connection that is upgraded after one request sets
    # few of them): immutable values only, since instances share them.
    remote_address: str | None = None
    _current: Request | None = None
    _paused_reading = False
    _closed = False
    _upgrade_tail: bytes | None = None
    _failure: tuple[int, str] | None = None
    _dispatching = False  # a parse error, answered after the requests before it
    _upgraded = False
    _timer: asyncio.TimerHandle | None = None
    _write_ready: asyncio.Future[None] | None = None
    _lost: asyncio.Future[None] | None = None  # created on demand (the ASGI adapter's http.disconnect)
    # per-request parse state, reset by on_message_begin
    _url = b""
    _headers: list[tuple[str, str]]
    _head_size = 0
    _body: list[bytes]
    _body_size = 0
    _in_head = False  # a request head has begun and is not complete
    _head_began = False  # ... and it began in the read being parsed
    _head_read = 0  # bytes of the later reads that arrived while the head was incomplete
    _in_body = False  # a request body is being received
    _body_progress = False  # body bytes arrived since the timer was armed

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._requests: collections.deque[Request] = collections.deque()
        self._pending = bytearray()

    @property
    def scheme(self) -> str:
        """``https`` behind TLS, else ``http``."""
        return "https" if self.server.tls else "http"

    @property
    def server_host(self) -> str:
        """The server's ``host:port``, for URLs of requests without a Host header."""
        return f"{self.server.hostname}:{self.server.port}"

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote_address = peer[0] if isinstance(peer, tuple) else None
        self.server._connection_opened(self)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        self.server._connection_closed(self)
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_exception(ConnectionResetError("the client closed the connection"))
            self._write_ready.exception()  # a writer that was not waiting must not log "never retrieved"
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        self._write_ready = None

    def data_received(self, data: bytes) -> None:
        if self._closed or self._upgraded or self._failure is not None:
            return
        if self._current is not None or self._upgrade_tail is not None:
            self._pending += data
            if len(self._pending) > HIGH_WATER and not self._paused_reading:
                assert self.transport is not None
                self.transport.pause_reading()
                self._paused_reading = True
            return
        self._parse(data)

    # parsing -----------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        parser = self._parser
        assert parser is not None  # (None only once upgraded, and nothing is parsed then)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_tail = data[upgrade.args[0] :]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _LimitExceeded):
                self._failure = (cause.status, cause.text)
            else:
                self._failure = (400, "Bad Request")
        except httptools.HttpParserError:
            self._failure = (400, "Bad Request")
        if self._in_head and self._failure is None:
            # httptools buffers a header line until it ends, so the callbacks cannot bound it: count the
            # reads that arrive while a head is incomplete (the first may hold the previous request's end)
            if self._head_began:
                self._head_began = False
            else:
                self._head_read += len(data)
                if self._head_read > self.server.max_header_size:
                    self._failure = (431, "Request Header Fields Too Large")
        self._next_request()

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._body = []
        self._body_size = 0
        self._in_head = True
        self._head_began = True
        self._head_read = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.server.max_header_size:
            raise _LimitExceeded(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.server.max_header_size or len(self._headers) >= self.server.max_header_count:
            raise _LimitExceeded(431, "Request Header Fields Too Large")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        body = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == "content-length":
                if value.isdigit() and int(value) > self.server.max_request_body_size:
                    raise _LimitExceeded(413, "Payload Too Large")
                body = body or value.strip("0 \t") != ""
            elif lowered == "transfer-encoding":
                body = True
        if body:
            self._in_body = True
            self._body_progress = False
            self._arm_timer()

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.server.max_request_body_size:
            raise _LimitExceeded(413, "Payload Too Large")
        self._body_progress = True
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._in_body:
            self._in_body = False
            self._cancel_timer()
        parser = self._parser
        assert parser is not None
        request = Request(
            parser.get_method().decode("ascii"),
            self._url.decode("latin-1"),
            Headers(self._headers),
            b"".join(self._body),
            parser.get_http_version(),
            self,
        )
        request.keep_alive = parser.should_keep_alive()
        self._requests.append(request)
        self._body = []

    # dispatch ----------------------------------------------------------------------------------

    def _next_request(self) -> None:
        """Answer the next parsed request, or go back to reading input."""
        if self._dispatching:
            return  # a synchronous answer finished inside the loop below, which goes on by itself
        self._dispatching = True
        try:
            self._dispatch_loop()
        finally:
            self._dispatching = False

    def _dispatch_loop(self) -> None:
        # a loop, not recursion: thousands of pipelined requests answered synchronously must not
        # exhaust the stack
        while self._current is None and not self._closed and not self._upgraded:
            if not self._requests:
                if self._failure is not None:
                    # the requests parsed before the bad input are answered first, in order
                    self._fail(*self._failure)
                    return
                if self._upgrade_tail is not None:
                    # an upgrade request whose app did not upgrade: the rest is parsed as HTTP again
                    tail, self._upgrade_tail = self._upgrade_tail, None
                    self._parser = httptools.HttpRequestParser(self)
                    self._pending[:0] = tail
                if self._pending:
                    data = bytes(self._pending)
                    self._pending.clear()
                    self._resume_reading()
                    self._parse(data)
                    continue
                self._resume_reading()
                if self._timer is None:  # a deadline: more bytes of the same request do not postpone it
                    self._arm_timer()
                return
            request = self._requests.popleft()
            self._current = request
            outcome = self.server._dispatch(request)
            if isinstance(outcome, Awaitable):
                asyncio.ensure_future(self._answer_later(request, outcome))
                return
            self._answer(request, outcome)

    async def _answer_later(self, request: Request, outcome: Awaitable[Response | None]) -> None:
        self._answer(request, await outcome)

    def _answer(self, request: Request, response: Response | None) -> None:
        """Send ``fetch``'s answer unless the request was upgraded or already answered."""
        if self._upgraded or self._closed:
            return
        if not request.answered:
            request.answered = True
            if response is None:
                self.server.logger.error("fetch returned None for %s %s without upgrading", request.method, request.target)
                response = Response("Internal Server Error", status=500)
            elif not isinstance(response, Response):
                self.server.logger.error(
                    "fetch returned %s for %s %s, not a Response", type(response).__name__, request.method, request.target
                )
                response = Response("Internal Server Error", status=500)
            if self.server._stopping:
                request.keep_alive = False  # the server stops: this is the connection's last answer
            body = response.body
            if isinstance(body, (str, bytes, bytearray, memoryview)) or body is None or not _has_body(response.status):
                self._write_fixed(request, response)
            else:
                asyncio.ensure_future(self._write_streamed(request, response))
                return
        self._finish(request)

    def _finish(self, request: Request) -> None:
        self._current = None
        if not request.keep_alive:
            self._close()
            return
        self._next_request()

    def _head(self, request: Request, response: Response, length: int | None) -> bytearray:
        head = bytearray(f"HTTP/1.1 {response.status} {reason_phrase(response.status)}\r\n".encode("latin-1"))
        has_type = False
        for name, value in response.headers:
            lowered = name.lower()
            if lowered in ("content-length", "transfer-encoding", "connection"):
                continue
            has_type = has_type or lowered == "content-type"
            head += f"{name}: {value}\r\n".encode("latin-1")
        if not has_type and isinstance(response.body, str):
            head += b"Content-Type: text/plain;charset=utf-8\r\n"
        if length is None:
            head += b"Transfer-Encoding: chunked\r\n"
        elif response.status >= 200 and response.status not in (204, 304):
            head += b"Content-Length: %d\r\n" % length
        if not request.keep_alive:
            head += b"Connection: close\r\n"
        head += b"\r\n"
        return head

    def _write_fixed(self, request: Request, response: Response) -> None:
        body = response.body
        if isinstance(body, str):
            data = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
        else:
            data = b""
        message = self._head(request, response, len(data))
        if request.method != "HEAD" and _has_body(response.status):
            message += data
        assert self.transport is not None
        self.transport.write(message)

    async def _write_streamed(self, request: Request, response: Response) -> None:
        assert self.transport is not None
        transport = self.transport
        transport.write(self._head(request, response, None))
        try:
            async for chunk in _chunks(response.body):
                if self._closed:
                    return
                if chunk and request.method != "HEAD":
                    transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    if self._write_ready is not None:
                        await self._write_ready
        except ConnectionError:
            return
        except Exception:
            # the head is sent: the only honest signal left is to cut the connection
            self.server.logger.exception("streaming the response body of %s %s failed", request.method, request.target)
            self._close()
            return
        if not self._closed:
            if request.method != "HEAD":  # a HEAD answer has no body, not even the last chunk
                transport.write(b"0\r\n\r\n")
            self._finish(request)

    # upgrade -----------------------------------------------------------------------------------

    def take_over(self, request: Request) -> bytes | None:
        """Hand the connection to a WebSocket: return the bytes that followed the request, or None if it cannot."""
        if self._closed or self._upgraded or request is not self._current or request.answered:
            return None
        request.answered = True
        self._upgraded = True
        self._cancel_timer()
        tail = (self._upgrade_tail or b"") + bytes(self._pending)
        self._upgrade_tail = None
        self._pending = bytearray()
        self.server._connection_closed(self)
        # Drop the references back to this object (the parser holds its bound methods, the request is
        # answered): without the cycles it is freed as soon as the upgrade returns, not by the cyclic GC.
        self._parser = None
        self._current = None
        return tail

    def answer_directly(self, request: Request, message: bytes) -> None:
        """Send ``message`` as the answer to ``request`` (e.g. 426); ``fetch``'s own answer is discarded."""
        if request.answered or self._closed:
            return
        request.answered = True
        request.keep_alive = False
        if request.method == "HEAD":  # the head only: an answer to HEAD has no body
            head, end, _ = message.partition(b"\r\n\r\n")
            message = head + end
        assert self.transport is not None
        self.transport.write(message)

    # for the ASGI adapter ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed or closing (no more answers can be sent)."""
        return self._closed

    @property
    def lost(self) -> asyncio.Future[None]:
        """A future done once the connection is closed or closing (never done after an upgrade)."""
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
            if self._closed:
                self._lost.set_result(None)
        return self._lost

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark.

        Raises:
            ConnectionResetError: the connection was lost meanwhile.
        """
        if self._write_ready is not None:
            await self._write_ready

    # helpers -----------------------------------------------------------------------------------

    def _fail(self, status: int, text: str) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        transport.write(simple_response(status, text))
        if not transport.can_write_eof():
            self._close()
            return
        # Lingering close: half-close after the answer and drop what still arrives until the client
        # closes. Closing with unread input would make the kernel reset the connection, and a reset
        # can destroy the answer before the client reads it (e.g. a 413 during a large upload).
        self._closed = True
        self._cancel_timer()
        transport.write_eof()
        self._resume_reading()
        self._timer = asyncio.get_running_loop().call_later(LINGER, transport.abort)

    def _close(self) -> None:
        if not self._closed and self.transport is not None:
            self._closed = True
            self._cancel_timer()
            self.transport.close()

    def close_idle(self) -> None:
        """Close the connection if no request is in progress (server stop)."""
        if self._current is None:
            self._close()

    def _resume_reading(self) -> None:
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        timeout = self.server.request_timeout
        if timeout:
            # the server's loop (asyncio.get_running_loop() costs a getpid() system call)
            loop = self.server._loop or asyncio.get_running_loop()
            self._timer = loop.call_later(timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._current is not None or self._closed:
            return  # a request is being answered: the deadline restarts when the next one is awaited
        if self._in_body and self._body_progress:
            self._body_progress = False
            self._arm_timer()
            return
        if self._in_head or self._in_body:
            self.server.logger.debug("request from %s timed out", self.remote_address)
        self._close()  # as Bun: no answer, the connection is cut


def _has_body(status: int) -> bool:
    """Whether a response with ``status`` may carry a body (not 1xx, 204, 304)."""
    return status >= 200 and status not in (204, 304)


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    """Yield a streamed body's chunks as bytes (sync or async iterable of str/bytes)."""
    if isinstance(body, AsyncIterable):
        async for chunk in body:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
    else:
        for chunk in body:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
