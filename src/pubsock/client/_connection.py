"""``connect()``: the Pythonic client, with awaitable ``send``/``recv`` and async iteration."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Final

from ..protocol import close as close_codes
from ._exceptions import ConnectionClosed, ConnectionClosedOK
from ._http import ResponseHead
from ._opening import open_connection
from ._options import DEFAULT_MAX_PAYLOAD_LENGTH, ClientOptions, HeadersLike, ProtocolsLike
from ._protocol import ClientProtocol, State

__all__ = ["ClientConnection", "connect"]

DEFAULT_MAX_QUEUE: Final = 16


class ClientConnection:
    """An open client connection, as returned by ``await connect(...)``.

    Received messages wait in a queue of at most ``max_queue`` messages; past that, reading
    from the socket pauses until `recv` catches up (so pings go unanswered meanwhile).
    """

    def __init__(self, options: ClientOptions, max_queue: int) -> None:
        """Internal: use `connect`."""
        self._options = options
        self._high = max(1, max_queue)
        self._low = self._high // 4
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._paused = False
        self._recv_waiter: asyncio.Future[None] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._protocol: ClientProtocol | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.url} ready_state={self.ready_state}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, normalized as in `WebSocket.url`."""
        return str(self._options.url)

    @property
    def ready_state(self) -> int:
        """1 open, 2 closing, 3 closed."""
        return int(self._open_protocol.state)

    @property
    def protocol(self) -> str:
        """The subprotocol the server selected; ``""`` if none."""
        return self._open_protocol.subprotocol

    @property
    def extensions(self) -> str:
        """The extensions in use, as the server's handshake named them; ``""`` if none."""
        return self._open_protocol.extensions

    @property
    def response(self) -> ResponseHead:
        """The server's ``101`` answer: ``status``, ``reason``, ``headers``."""
        response = self._open_protocol.response
        assert response is not None
        return response

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet handed to the network; 0 when closed."""
        return self._open_protocol.buffered_amount

    @property
    def close_code(self) -> int | None:
        """How the connection ended (see `ConnectionClosed.code`); None until it is closed."""
        protocol = self._open_protocol
        return protocol.close_exception().code if protocol.state is State.CLOSED else None

    @property
    def close_reason(self) -> str | None:
        """The close reason; None until the connection is closed."""
        protocol = self._open_protocol
        return protocol.close_exception().reason if protocol.state is State.CLOSED else None

    @property
    def _open_protocol(self) -> ClientProtocol:
        assert self._protocol is not None, "the connection is not open yet"
        return self._protocol

    # -- receiving --------------------------------------------------------------------------

    async def recv(self) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Messages received before the connection closed are returned first.

        Raises:
            ConnectionClosedOK: the connection closed normally (1000, 1001, 1005).
            ConnectionClosedError: it closed otherwise.
            RuntimeError: another task is already waiting in ``recv``.
        """
        protocol = self._open_protocol
        while not self._messages:
            if protocol.state is State.CLOSED:
                raise protocol.close_exception()
            if self._recv_waiter is not None:
                raise RuntimeError("recv() is already waiting for a message in another task")
            self._recv_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._recv_waiter
            finally:
                self._recv_waiter = None
        message = self._messages.popleft()
        if self._paused and len(self._messages) <= self._low:
            self._paused = False
            protocol.resume_reading()
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over messages until the connection closes.

        The iteration ends after a normal closure; `ConnectionClosedError` is raised otherwise.
        """
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    # -- sending ----------------------------------------------------------------------------

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a message (``str`` as text, bytes-like as binary), then wait while the
        transport's buffer is above its high-water mark (backpressure).

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: ``data`` is neither text nor bytes-like.
        """
        protocol = self._open_protocol
        if not protocol.send(data):
            raise protocol.close_exception()
        await protocol.drain()

    async def ping(self, data: bytes | bytearray | memoryview = b"") -> asyncio.Future[float]:
        """Send a ping; return a future that gives the round-trip time in seconds when the pong arrives.

        Without ``data``, 4 random bytes are sent. A pong also answers all earlier pings.

        Raises:
            ConnectionClosed: the connection is closing or closed (the future also fails so).
            ValueError: ``data`` is longer than 125 bytes or already awaits its pong.
        """
        protocol = self._open_protocol
        payload = bytes(data) if data else os.urandom(4)
        if len(payload) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        if payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        if not protocol.ping(payload):
            raise protocol.close_exception()
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[payload] = (waiter, time.monotonic())
        await protocol.drain()
        return waiter

    # -- closing ----------------------------------------------------------------------------

    async def close(self, code: int = close_codes.NORMAL, reason: str = "") -> None:
        """Run the closing handshake and wait until the connection is closed.

        Takes at most about twice ``close_timeout``; then the connection is dropped.
        Does nothing more than wait when already closing or closed.

        Raises:
            TypeError: ``code`` is not an int or ``reason`` not a str.
            ValueError: ``code`` may not be sent (valid: 1000–1003, 1007–1014,
                3000–4999), or ``reason`` is longer than 123 bytes in UTF-8.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, not {type(code).__name__}")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        if not close_codes.is_valid_code(code):
            raise ValueError(f"close code {code} may not be sent (1000-1003, 1007-1014, 3000-4999)")
        if len(reason.encode("utf-8")) > close_codes.MAX_REASON_BYTES:
            raise ValueError(f"the close reason is longer than {close_codes.MAX_REASON_BYTES} bytes in UTF-8")
        protocol = self._open_protocol
        protocol.close(code, reason)
        await asyncio.shield(protocol.closed)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, by either side."""
        await asyncio.shield(self._open_protocol.closed)

    # -- protocol callbacks -----------------------------------------------------------------

    def _opened(self, protocol: ClientProtocol) -> None:
        self._protocol = protocol

    def _message(self, data: str | bytes) -> None:
        self._messages.append(data)
        if len(self._messages) >= self._high and not self._paused:
            self._paused = True
            self._open_protocol.pause_reading()
        self._wake_receiver()

    def _pong(self, data: bytes) -> None:
        if data not in self._pings:
            return
        now = time.monotonic()
        for payload in list(self._pings):
            waiter, sent = self._pings.pop(payload)
            if not waiter.done():
                waiter.set_result(now - sent)
            if payload == data:
                break

    def _closed(self, code: int, reason: str, was_clean: bool, error: BaseException | None) -> None:
        self._wake_receiver()
        if self._pings:
            exc = self._open_protocol.close_exception()
            for waiter, _ in self._pings.values():
                if not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # nobody may await it: don't log "never retrieved"
            self._pings.clear()

    def _wake_receiver(self) -> None:
        if self._recv_waiter is not None and not self._recv_waiter.done():
            self._recv_waiter.set_result(None)


class connect:  # noqa: N801 - used like a function, as ``serve``
    """Open a WebSocket connection: ``async with connect(url) as ws:`` or ``ws = await connect(url)``.

    The options are `WebSocket`'s, plus ``max_queue`` (messages received and not yet
    read before reading pauses). They are checked here, at once; the connection opens
    when awaited. Leaving the ``async with`` block closes it with 1000.

    Raises (at once):
        InvalidURL, ValueError, TypeError: as `WebSocket`.
    Raises (when awaited):
        OSError: the TCP or TLS connection failed (e.g. `ConnectionRefusedError`,
            `ssl.SSLCertVerificationError`).
        InvalidStatus: the server answered with another status than 101 (``status``,
            ``headers`` and ``body`` are available).
        HandshakeError: the server's 101 answer is invalid, e.g. a wrong
            ``Sec-WebSocket-Accept``.
        ConnectionError: the connection closed during the handshake.
        TimeoutError: connecting took longer than ``open_timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        protocols: ProtocolsLike | None = None,
        per_message_deflate: bool = True,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float | None = 10,
        max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH,
        close_timeout: float | None = 10,
        max_queue: int = DEFAULT_MAX_QUEUE,
        logger: logging.Logger | str = "pubsock.client",
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int):
            raise TypeError(f"max_queue must be an int, not {type(max_queue).__name__}")
        self._options = ClientOptions.create(
            url,
            headers=headers,
            protocols=protocols,
            per_message_deflate=per_message_deflate,
            ssl=ssl,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            max_payload_length=max_payload_length,
            logger=logger,
        )
        self._max_queue = max_queue
        self._connection: ClientConnection | None = None

    def __await__(self) -> Generator[object, None, ClientConnection]:
        return self._open().__await__()

    async def _open(self) -> ClientConnection:
        connection = ClientConnection(self._options, self._max_queue)
        await open_connection(
            self._options,
            on_open=connection._opened,
            on_message=connection._message,
            on_close=connection._closed,
            on_pong=connection._pong,
        )
        return connection

    async def __aenter__(self) -> ClientConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._connection is not None
        await self._connection.close()
