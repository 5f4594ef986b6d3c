"""``Server``: listen, dispatch ``fetch``, upgrade, publish, stop; plus ``serve()`` and ``run()``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl as _ssl
from collections.abc import Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from ..http.asgi import ASGIApp, AsgiAdapter
from ..http.connection import HttpConnection
from ..http.request import Request
from ..http.response import HeadersInput, Response, normalize_headers
from ..protocol import deflate
from ..protocol.frames import build_frame
from ..protocol.handshake import (
    UPGRADE_REQUIRED_RESPONSE,
    UpgradeCheck,
    build_switching_response,
    read_upgrade_request,
)
from .handlers import WebSocketConfig
from .stats import METRICS_CONTENT_TYPE, Counters, ServerStats, prometheus_text
from .topics import Hub, Outbox
from .websocket import ServerWebSocket, _check_topic, _payload

if TYPE_CHECKING:
    from ..brokers import Broker, BrokerLink

__all__ = ["Server", "serve", "run", "FetchHandler", "ErrorHandler"]

FetchResult = Union[Response, None, Awaitable[Union[Response, None]]]
FetchHandler = Callable[[Request, "Server"], FetchResult]
ErrorHandler = Callable[[Exception], Union[Response, Awaitable[Response]]]
TLSInput = Union[_ssl.SSLContext, Mapping[str, str], None]

IGNORED_UPGRADE_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "content-length", "transfer-encoding"}
)
IDLE_TICK = 4  # seconds: the granularity of idle timeouts and pings (Bun's timer wheel)
STOP_GRACE = 5.0  # seconds close_active waits for Close handshakes before terminating (without close_timeout)


def _tls_context(tls: TLSInput) -> _ssl.SSLContext | None:
    if tls is None or isinstance(tls, _ssl.SSLContext):
        return tls
    if isinstance(tls, Mapping) and "certfile" in tls:
        context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls["certfile"], tls.get("keyfile"), tls.get("password"))
        return context
    raise TypeError("tls must be an ssl.SSLContext or a mapping with 'certfile' (and 'keyfile')")


def _not_found(request: Request, server: Server) -> Response:
    return Response("Not Found", status=404)


def _negotiate_deflate(options: deflate.DeflateOptions, offers: list[str]) -> tuple[str, Any, Any] | None:
    """The answer to a handshake's permessage-deflate offers with its decompressor and compressor, or None."""
    agreed = deflate.negotiate_server(options, offers)
    if agreed is None:
        return None
    extension, params = agreed
    compressor, decompressor = options.codecs(params)
    return extension, decompressor, compressor


class Server:
    """A running pubsock server. Create it with ``serve()`` or ``run()``."""

    def __init__(
        self,
        fetch: FetchHandler | None = None,
        *,
        websocket: object = None,
        asgi: ASGIApp | None = None,
        error: ErrorHandler | None = None,
        hostname: str = "127.0.0.1",
        port: int = 3000,
        reuse_port: bool = False,
        tls: TLSInput = None,
        max_request_body_size: int = 128 * 1024 * 1024,
        max_header_size: int = 16 * 1024,
        max_header_count: int = 100,
        request_timeout: float = 10.0,
        close_timeout: float | None = None,
        # Observability (docs/observability.md)
        metrics_path: str | None = None,
        # Scale-out (docs/scale-out.md)
        broker: str | Broker | None = None,
        on_broker_disconnect: Callable[[Server, BaseException | None], object] | None = None,
        on_broker_reconnect: Callable[[Server], object] | None = None,
        logger: logging.Logger | str = "pubsock.server",
    ) -> None:
        if fetch is not None and not callable(fetch):
            raise TypeError(f"fetch must be callable, not {type(fetch).__name__}")
        if asgi is not None and not callable(asgi):
            raise TypeError(f"asgi must be an ASGI 3 app (callable), not {type(asgi).__name__}")
        if error is not None and not callable(error):
            raise TypeError(f"error must be callable, not {type(error).__name__}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
        if metrics_path is not None and (not isinstance(metrics_path, str) or not metrics_path.startswith("/")):
            raise ValueError(f"metrics_path must be None or a path starting with '/', got {metrics_path!r}")
        self._fetch: FetchHandler = fetch if fetch is not None else _not_found
        self._config = WebSocketConfig(websocket) if websocket is not None else None
        # the ASGI app answers what fetch leaves (returns None without upgrading), or everything without fetch
        self._asgi = AsgiAdapter(asgi, self) if asgi is not None else None
        self._error = error
        self.hostname = hostname
        self.port = port
        self.reuse_port = reuse_port
        self.tls = _tls_context(tls)
        self.max_request_body_size = max_request_body_size
        self.max_header_size = max_header_size
        self.max_header_count = max_header_count
        self.request_timeout = request_timeout
        # seconds a peer has to finish the Close handshake (default 10), and the grace that
        # stop(close_active=True) gives open websockets (default STOP_GRACE)
        self.close_timeout = close_timeout
        # the server answers GET/HEAD on this path itself, before fetch, with prometheus_text(stats())
        self.metrics_path = metrics_path
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tcp_server: asyncio.base_events.Server | None = None
        self._hub: Hub = Hub(self._call_soon)
        self._sockets: dict[ServerWebSocket, None] = {}  # open websockets, in open order
        self._live: dict[ServerWebSocket, None] = {}  # websockets whose TCP connection is not closed yet
        self._connections: set[HttpConnection] = set()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None
        self._link: BrokerLink | None = None
        self._counts = Counters()  # stats(): the hot counters are in the Hub and in each socket's FrameReader
        if broker is not None:
            from ..brokers import BrokerLink, resolve_broker

            self._link = BrokerLink(
                resolve_broker(broker),
                self._deliver_remote,
                self._hub.subscriber_count,
                on_disconnect=None if on_broker_disconnect is None else lambda exc: on_broker_disconnect(self, exc),
                on_reconnect=None if on_broker_reconnect is None else lambda: on_broker_reconnect(self),
            )

    # lifecycle ---------------------------------------------------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.call_soon(callback)

    async def start(self) -> None:
        """Bind and start listening (``serve()`` calls this)."""
        self._loop = asyncio.get_running_loop()
        if self._asgi is not None:
            await self._asgi.startup()  # lifespan startup, before listening; raises if it fails
        try:
            self._tcp_server = await self._create_server()
        except BaseException:
            if self._asgi is not None:
                await self._asgi.shutdown()
            raise
        sockname = self._tcp_server.sockets[0].getsockname()
        self.port = sockname[1]
        if self._link is not None:
            await self._link.start()  # returns after the first attempt: a broker outage never stops the server
        if self._config is not None and self._config.idle_timeout:
            self._sweeper = self._loop.call_later(IDLE_TICK, self._sweep)
        self.logger.debug("listening on %s", self.url)

    async def _create_server(self) -> asyncio.base_events.Server:
        assert self._loop is not None
        return await self._loop.create_server(
            lambda: HttpConnection(self),
            self.hostname,
            self.port,
            ssl=self.tls,
            ssl_handshake_timeout=(self.request_timeout or None) if self.tls else None,
            reuse_port=self.reuse_port or None,
            backlog=1024,
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:3000/``."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    @property
    def pending_websockets(self) -> int:
        """The number of open websockets (Bun's name)."""
        return len(self._sockets)

    def stats(self) -> ServerStats:
        """Return the server's counters and gauges as a new plain dict (keys in ``ServerStats``).

        Counters count from the server's creation; the call costs O(open sockets + topics).
        Without a broker, ``broker`` is ``"absent"`` and the broker counters are 0.
        """
        counts = self._counts
        messages_in = counts.gone_messages_in
        bytes_in = counts.gone_bytes_in
        for ws in self._live:
            reader = ws._reader
            messages_in += reader.messages_received
            bytes_in += reader.bytes_received
        hub = self._hub
        link = self._link
        # the Hub counts every publish it fans out, the remote ones too (each counted by the link as received)
        publishes = hub.publishes + counts.unhubbed_publishes
        if link is not None:
            publishes -= link.received - counts.unhubbed_remote
        return {
            "websockets_open": len(self._sockets),
            "websockets_opened": counts.opened,
            "topics": len(hub.topics),
            "subscriptions": sum(map(len, hub.topics.values())),
            "messages_in": messages_in,
            "bytes_in": bytes_in,
            "messages_out": hub.messages_out,
            "bytes_out": hub.bytes_out,
            "publishes": publishes,
            "dropped": hub.dropped,
            "reads_paused": counts.reads_paused,
            "closed_backpressure": counts.closed_backpressure,
            "closed_idle_timeout": counts.closed_idle_timeout,
            "closed_too_big": counts.closed_too_big,
            "closed_protocol_error": counts.closed_protocol_error,
            "broker": "absent" if link is None else link.state,
            "broker_published": 0 if link is None else link.published,
            "broker_received": 0 if link is None else link.received,
            "broker_failed_publishes": 0 if link is None else link.failed_publishes,
            "broker_outages": 0 if link is None else link.outages,
            "broker_reconnects": 0 if link is None else link.reconnects,
        }

    async def stop(self, close_active: bool = False) -> None:
        """Stop accepting connections; return once every websocket has closed.

        With ``close_active``, open websockets get a 1001 Close (after what was
        queued for them) and those still connected after a grace period
        (``close_timeout``, default 5 s) are terminated. Idle HTTP connections
        are closed either way.
        """
        self._stopping = True
        if self._tcp_server is not None:
            self._tcp_server.close()
        for connection in list(self._connections):
            connection.close_idle()
        if close_active:
            for ws in list(self._sockets):
                ws.close(1001, "Server stopping")
            if self._live:
                try:
                    grace = STOP_GRACE if self.close_timeout is None else self.close_timeout
                    await asyncio.wait_for(self._wait_closed(), grace)
                except asyncio.TimeoutError:
                    for ws in list(self._live):
                        ws.terminate()
        await self._wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._hub.flush()
        if self._asgi is not None:
            await self._asgi.shutdown()  # running ASGI requests (grace, then cancelled), lifespan shutdown
        if self._link is not None:
            await self._link.close()  # last: publishes made by close handlers still go out

    async def _wait_closed(self) -> None:
        while self._live or self._sockets:
            self._stopped.clear()
            await self._stopped.wait()

    def reload(self, *, fetch: FetchHandler | None = None, websocket: object = None) -> None:
        """Swap handlers without dropping connections; new websocket options apply to open sockets too."""
        if fetch is not None:
            if not callable(fetch):
                raise TypeError(f"fetch must be callable, not {type(fetch).__name__}")
            self._fetch = fetch
        if websocket is not None:
            config = WebSocketConfig(websocket)
            if config.open is None and config.message is None:
                return
            self._config = config
            for ws in self._live:
                ws._reconfigure(config)
            if self._sweeper is None and config.idle_timeout and self._loop is not None and not self._stopping:
                self._sweeper = self._loop.call_later(IDLE_TICK, self._sweep)

    # HTTP --------------------------------------------------------------------------------------

    def _connection_opened(self, connection: HttpConnection) -> None:
        self._connections.add(connection)

    def _connection_closed(self, connection: HttpConnection) -> None:
        self._connections.discard(connection)

    def _dispatch(self, request: Request) -> Response | None | Awaitable[Response | None]:
        """Call ``fetch`` (then the ASGI app if it returns None); exceptions become the ``error`` handler's answer or a 500."""
        if self.metrics_path is not None and request.target.partition("?")[0] == self.metrics_path:
            return self._metrics(request)
        if self._asgi is not None and self._fetch is _not_found:
            return self._asgi.handle(request)
        try:
            result = self._fetch(request, self)
        except Exception as exc:  # noqa: BLE001 - user code
            return self._fetch_failed(request, exc)
        if isinstance(result, Awaitable):
            return self._await_fetch(request, result)
        if result is None and self._asgi is not None and not request.answered:
            return self._asgi.handle(request)
        return result

    def _metrics(self, request: Request) -> Response:
        """Answer ``metrics_path``: the Prometheus text exposition of ``stats()``."""
        if request.method not in ("GET", "HEAD"):
            return Response("Method Not Allowed", status=405, headers={"Allow": "GET, HEAD"})
        return Response(prometheus_text(self.stats()), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _await_fetch(self, request: Request, pending: Awaitable[Response | None]) -> Response | None:
        try:
            result = await pending
        except Exception as exc:  # noqa: BLE001 - user code
            outcome = self._fetch_failed(request, exc)
            return await outcome if isinstance(outcome, Awaitable) else outcome
        if result is None and self._asgi is not None and not request.answered:
            return await self._asgi.handle(request)
        return result

    def _fetch_failed(self, request: Request, exc: Exception) -> Response | Awaitable[Response]:
        if self._error is not None:
            try:
                answer = self._error(exc)
            except Exception:  # noqa: BLE001 - user code
                self.logger.exception("the error handler raised")
            else:
                if isinstance(answer, Awaitable):
                    return self._await_error(answer)
                if isinstance(answer, Response):
                    return answer
                self.logger.error("the error handler returned %r, not a Response", answer)
        else:
            self.logger.error("fetch raised for %s %s", request.method, request.target, exc_info=exc)
        return Response("Internal Server Error", status=500)

    async def _await_error(self, answer: Awaitable[Response]) -> Response:
        try:
            result = await answer
        except Exception:  # noqa: BLE001 - user code
            self.logger.exception("the error handler raised")
            return Response("Internal Server Error", status=500)
        return result if isinstance(result, Response) else Response("Internal Server Error", status=500)

    # WebSocket ---------------------------------------------------------------------------------

    def upgrade(self, request: Request, headers: HeadersInput = None, data: Any = None) -> bool:
        """Turn ``request`` into a WebSocket; ``open`` runs before this returns.

        Returns:
            True when the 101 answer is queued; False when the request cannot be
            upgraded (not a WebSocket handshake, bad key, already answered or
            upgraded, server stopping). A missing or unsupported
            ``Sec-WebSocket-Version`` is answered 426 by the server itself.

        Raises:
            RuntimeError: the server has no ``websocket`` handlers.
            TypeError: ``request`` is not a Request or ``headers`` has the wrong type.
        """
        config = self._config
        if config is None:
            raise RuntimeError("server.upgrade() needs websocket handlers: pass websocket= to serve()")
        if not isinstance(request, Request):
            raise TypeError(f"upgrade needs a pubsock.Request, not {type(request).__name__}")
        extra = normalize_headers(headers)
        connection = request._connection
        if self._stopping or connection is None or request.answered:
            self.logger.debug("upgrade refused: server stopping or request already answered")
            return False
        verdict, key, offers = read_upgrade_request(request.headers.multi_items())
        if verdict is UpgradeCheck.BAD_VERSION:
            self.logger.debug("upgrade refused: %s", verdict.value)
            connection.answer_directly(request, UPGRADE_REQUIRED_RESPONSE)
            return False
        if verdict is not UpgradeCheck.OK:
            self.logger.debug("upgrade refused: %s", verdict.value)
            return False
        answer_headers = []
        for name, value in extra:
            lowered = name.lower()
            if lowered in IGNORED_UPGRADE_HEADERS:
                continue
            if lowered == "sec-websocket-protocol":
                value = value.split(",")[0].strip()
            answer_headers.append((name, value))
        inflater = compressor = None
        if config.deflate is not None and offers:
            negotiated = _negotiate_deflate(config.deflate, offers)
            if negotiated is not None:
                extension, inflater, compressor = negotiated
                answer_headers.append(("Sec-WebSocket-Extensions", extension))
        head = build_switching_response(key, answer_headers)
        tail = connection.take_over(request)
        if tail is None:
            return False
        transport = connection.transport
        assert transport is not None
        ws = ServerWebSocket(self, config, transport, data, connection.remote_address, inflater, compressor)
        transport.set_protocol(ws)
        self._sockets[ws] = None
        self._live[ws] = None
        self._counts.opened += 1
        ws._start(head, tail)
        return True

    def publish(self, topic: str, data: str | bytes | bytearray | memoryview, compress: bool = True) -> int:
        """Send ``data`` to every subscriber of ``topic``.

        Returns:
            0 if nobody received it or any subscriber dropped it; -1 if any
            subscriber is backpressured (still delivered); else the payload size.

        Raises:
            TypeError: ``topic`` is not a str, ``data`` not text or bytes-like, ``compress`` not a bool.
            ValueError: ``topic`` is empty.
        """
        opcode, payload = _payload(data, compress)
        _check_topic(topic)
        if self._config is None:
            self._counts.unhubbed_publishes += 1
            if self._link is not None:  # a node without websockets can still publish to the others
                self._link.publish(topic, opcode, payload, compress)
            return 0
        return self._publish(topic, opcode, payload, compress, None)

    def subscriber_count(self, topic: str) -> int:
        """Return how many sockets of this server are subscribed to ``topic`` (0 for '').

        Local: with a broker, subscribers on other nodes are not counted.
        """
        if type(topic) is not str:
            raise TypeError(f"topic must be a str, not {type(topic).__name__}")
        return self._hub.subscriber_count(topic)

    def _publish(self, topic: str, opcode: int, payload: bytes, compress: bool, sender: Outbox | None) -> int:
        if self._link is not None:
            self._link.publish(topic, opcode, payload, compress)
        frame = build_frame(opcode, payload)
        if compress and payload and self._config is not None and self._config.deflate is not None:
            return self._hub.publish_compressed(topic, frame, opcode, payload, sender)
        return self._hub.publish(topic, frame, len(payload), sender)

    def _deliver_remote(self, topic: str, opcode: int, payload: bytes, compress: bool) -> None:
        """A publish from another node (through the broker): every local subscriber gets it."""
        if self._config is None:
            self._counts.unhubbed_remote += 1
            return
        frame = build_frame(opcode, payload)
        if compress and payload and self._config.deflate is not None:
            self._hub.publish_compressed(topic, frame, opcode, payload, None)
        else:
            self._hub.publish(topic, frame, len(payload), None)

    @property
    def broker_link(self) -> BrokerLink | None:
        """The connection to the broker (state and counters); None without a broker."""
        return self._link

    def _subscribe(self, outbox: Outbox, topic: str) -> bool:
        subscribed = self._hub.subscribe(outbox, topic)
        if subscribed and self._link is not None:
            self._link.want(topic)
        return subscribed

    def _unsubscribe(self, outbox: Outbox, topic: str) -> bool:
        unsubscribed = self._hub.unsubscribe(outbox, topic)
        if unsubscribed and self._link is not None:
            self._link.left((topic,))
        return unsubscribed

    def _socket_closed(self, ws: ServerWebSocket, outbox: Outbox) -> None:
        """``ws`` stopped being open: it leaves its topics and the open count."""
        topics = list(outbox.topics) if self._link is not None and outbox.topics else None
        self._hub.unsubscribe_all(outbox)
        if topics is not None and self._link is not None:
            self._link.left(topics)
        self._sockets.pop(ws, None)
        self._stopped.set()

    def _socket_gone(self, ws: ServerWebSocket) -> None:
        """``ws``'s TCP connection closed."""
        if ws in self._live:
            reader = ws._reader  # its counts join the totals of the sockets gone
            self._counts.gone_messages_in += reader.messages_received
            self._counts.gone_bytes_in += reader.bytes_received
        self._live.pop(ws, None)
        self._stopped.set()

    def _sweep(self) -> None:
        """Advance every socket's idle clock; runs every few seconds."""
        assert self._loop is not None
        for ws in list(self._sockets):
            ws._idle_tick(IDLE_TICK)
        self._sweeper = self._loop.call_later(IDLE_TICK, self._sweep)

    def __repr__(self) -> str:
        return f"<pubsock.Server {self.url}>"


class serve:  # noqa: N801 - used like a function: ``async with serve(...) as server``
    """Start a server: ``async with pubsock.serve(fetch, websocket=...) as server:``.

    Also ``server = await pubsock.serve(...)``; then call ``await server.stop()``.
    Leaving the ``async with`` block stops the server with ``close_active=True``.
    Keyword arguments are those of ``Server``.
    """

    def __init__(self, fetch: FetchHandler | None = None, **options: Any) -> None:
        self.server = Server(fetch, **options)

    async def _start(self) -> Server:
        await self.server.start()
        return self.server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.server.stop(close_active=True)


def run(fetch: FetchHandler | None = None, *, use_uvloop: bool | None = None, **options: Any) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (a second signal exits at once).

    Runs on uvloop when it is installed (``use_uvloop=False`` to opt out).
    Keyword arguments are those of ``Server``.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serve(fetch, **options) as server:
            stopping = asyncio.Event()

            def on_signal() -> None:
                if stopping.is_set():
                    os._exit(1)
                stopping.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            server.logger.info("pubsock listening on %s", server.url)
            await stopping.wait()
            server.logger.info("stopping")

    if use_uvloop is not False:
        try:
            import uvloop
        except ImportError:
            if use_uvloop:
                raise
        else:
            uvloop.run(main())
            return
    asyncio.run(main())
