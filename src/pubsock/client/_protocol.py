"""One client connection as an asyncio Protocol on top of the sans-I/O core.

`ClientProtocol` performs the opening handshake, reads frames, answers pings, runs the
closing handshake with a timeout and reports what happens through four callbacks.
`WebSocket` (event listeners) and `ClientConnection` (``connect()``) are built on it.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import os
from collections.abc import Callable
from typing import TypeAlias, cast

from ..protocol import close as close_codes
from ..protocol import deflate
from ..protocol.events import Close, Ping, Pong, ProtocolError
from ..protocol.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, build_frame
from ..protocol.handshake import HandshakeError, check_switching_response, header_values
from ._exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from ._http import BodyReader, ResponseHead, parse_response_head
from ._options import ClientOptions

__all__ = ["ClientProtocol", "State", "OnClose", "OnMessage", "OnOpen", "OnPong"]


class State(enum.IntEnum):
    """The connection's state, numbered as the browser's ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


OnOpen: TypeAlias = Callable[["ClientProtocol"], None]
OnMessage: TypeAlias = Callable[[str | bytes], None]
OnPong: TypeAlias = Callable[[bytes], None]
OnClose: TypeAlias = Callable[[int, str, bool, "BaseException | None"], None]
"""``(code, reason, was_clean, error)``; ``error`` is set when the connection failed."""

_OK_CODES = frozenset({close_codes.NORMAL, close_codes.GOING_AWAY, close_codes.NO_STATUS})


class ClientProtocol(asyncio.Protocol):
    """The client side of one WebSocket connection.

    Before the handshake completes, `opened` resolves (or fails with the reason:
    `InvalidStatus`, `HandshakeError`, `ConnectionError`) and no callback runs. Once
    open, ``on_open`` runs first, then ``on_message``/``on_pong`` as frames arrive, and
    ``on_close`` exactly once when the TCP connection is gone; `closed` resolves after it.
    Callbacks must not raise.
    """

    def __init__(
        self,
        options: ClientOptions,
        loop: asyncio.AbstractEventLoop,
        *,
        on_open: OnOpen,
        on_message: OnMessage,
        on_close: OnClose,
        on_pong: OnPong | None = None,
    ) -> None:
        self._options = options
        self._loop = loop
        self._on_open = on_open
        self._on_message = on_message
        self._on_pong = on_pong
        self._on_close = on_close
        self.state = State.CONNECTING
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.subprotocol = ""
        """The subprotocol the server chose, ``""`` if none."""
        self.extensions = ""
        """The extensions in use, as the server announced them (``""`` if none)."""
        self.response: ResponseHead | None = None
        """The server's answer to the opening handshake, once received."""
        self._offer = deflate.client_offer() if options.per_message_deflate else None
        self._compressor: deflate.Compressor | None = None
        self._decompressor: deflate.Decompressor | None = None
        self._request, self._key = options.request(self._offer)
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._body: BodyReader | None = None
        self._reader: FrameReader | None = None
        self._close_sent: tuple[int, str] | None = None
        self._close_received: Close | None = None
        self._failure: tuple[int, str] | None = None
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            self._handshake_data(data)
            return
        for event in reader.feed(data):
            if type(event) is str or type(event) is bytes:
                if self.state is State.OPEN:
                    self._on_message(event)
            elif isinstance(event, Ping):
                if self._close_sent is None:
                    self._write(OP_PONG, event.data)
            elif isinstance(event, Pong):
                if self._on_pong is not None:
                    self._on_pong(event.data)
            elif isinstance(event, Close):
                self._peer_closed(event)
            elif isinstance(event, ProtocolError):
                # Acted on in the next loop iteration, so that an application woken by the messages
                # just received can still answer them (the reader has stopped in any case).
                self._loop.call_soon(self._fail, event.code, event.reason)

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain_waiters()

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        self.state = State.CLOSED
        self._cancel_timer()
        self._wake_drain_waiters()
        try:
            if previous is State.CONNECTING:
                self._lost_while_connecting(exc)
                return
            if not self.opened.done() or self.opened.cancelled() or self.opened.exception() is not None:
                return  # failed during the handshake: reported through `opened`
            if self._failure is not None:
                code, reason = self._failure
                was_clean = False
            elif self._close_received is not None:
                code, reason = self._close_received.code, self._close_received.reason
                was_clean = self._close_sent is not None
            else:
                code, reason, was_clean = close_codes.ABNORMAL, "", False
                if exc is not None:
                    self._error = exc
            self._options.logger.debug(
                "closed %s: %d %s%s", self._options.url.host_header, code, reason, "" if was_clean else " (not clean)"
            )
            self._on_close(code, reason, was_clean, self._error)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    # -- what the connection classes call -----------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet handed to the network; 0 when closed."""
        if self._transport is None or self.state is State.CLOSED:
            return 0
        return self._transport.get_write_buffer_size()

    def send(self, data: str | bytes | bytearray | memoryview) -> bool:
        """Send one message: ``str`` as text, bytes-like as binary.

        Returns False, sending nothing, unless the connection is open.

        Raises:
            TypeError: ``data`` is neither text nor bytes-like.
        """
        if isinstance(data, str):
            opcode, payload = OP_TEXT, data.encode("utf-8")
        elif isinstance(data, bytes):
            opcode, payload = OP_BINARY, data
        elif isinstance(data, (bytearray, memoryview)):
            opcode, payload = OP_BINARY, bytes(data)
        else:
            raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")
        if self.state is not State.OPEN:
            return False
        if self._compressor is not None and payload:
            self._write(opcode, self._compressor.compress(payload), rsv1=True)
        else:
            self._write(opcode, payload)
        return True

    def ping(self, data: bytes) -> bool:
        """Send a ping (at most 125 bytes); False if the connection is not open."""
        if self.state is not State.OPEN:
            return False
        self._write(OP_PING, data)
        return True

    def close(self, code: int = close_codes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (validated ``code``; ``reason`` at most 123 bytes).

        While connecting, abort the connection instead. The server's Close, then the end
        of the TCP connection, are awaited at most ``close_timeout`` each before aborting.
        Does nothing once closing.
        """
        if self.state is State.CONNECTING:
            self.abort()
        elif self.state is State.OPEN:
            self.state = State.CLOSING
            self._send_close(code, reason)
            self._start_timer(self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self._transport is not None:
            self._transport.abort()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark (or closed)."""
        if not self._write_paused or self.state is State.CLOSED:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def pause_reading(self) -> None:
        """Stop reading from the socket (flow control for a consumer that falls behind)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading after `pause_reading`."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close_exception(self) -> ConnectionClosed:
        """The `ConnectionClosed` that describes the connection's end (or its closing so far)."""
        if self._failure is not None:
            return ConnectionClosedError(*self._failure, False)
        received, sent = self._close_received, self._close_sent
        if received is not None:
            clean = sent is not None and self.state is State.CLOSED
            ok = clean and received.code in _OK_CODES
            return (ConnectionClosedOK if ok else ConnectionClosedError)(received.code, received.reason, clean)
        if sent is not None and self.state is not State.CLOSED:
            return (ConnectionClosedOK if sent[0] in _OK_CODES else ConnectionClosedError)(*sent, False)
        return ConnectionClosedError(close_codes.ABNORMAL, "", False)

    # -- opening handshake --------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        if self._body is not None:
            if self._body.feed(data):
                self._fail_handshake(self._invalid_status())
            return
        self._head += data
        try:
            parsed = parse_response_head(self._head)
        except HandshakeError as exc:
            self._fail_handshake(exc)
            return
        if parsed is None:
            return
        head, size = parsed
        rest = self._head[size:]
        self._head = b""
        self.response = head
        if head.status != 101:
            self._body = BodyReader(head)
            if self._body.feed(rest):
                self._fail_handshake(self._invalid_status())
            return
        try:
            self.subprotocol = check_switching_response(head.status, head.headers, self._key, self._options.protocols)
            self._negotiate_extensions(head)
        except HandshakeError as exc:
            self._fail_handshake(exc)
            return
        self._reader = FrameReader(False, self._options.max_payload_length, self._decompressor)
        self.state = State.OPEN
        self._options.logger.debug(
            "connected to %s%s", self._options.url.host_header, self._options.url.resource.partition("?")[0]
        )
        self.opened.set_result(None)
        self._on_open(self)
        if rest:
            self.data_received(rest)

    def _negotiate_extensions(self, head: ResponseHead) -> None:
        answer = ", ".join(value for value in header_values(head.headers, "sec-websocket-extensions") if value.strip())
        if not answer:
            return
        if self._offer is None:
            raise HandshakeError(f"the server answered with extensions that were not offered: {answer}")
        try:
            params = deflate.accept_client_response(answer, self._offer)
        except ValueError as exc:
            raise HandshakeError(f"invalid Sec-WebSocket-Extensions answer: {exc}") from None
        if params is not None:
            self._compressor = deflate.Compressor(params, "client")
            self._decompressor = deflate.Decompressor(params, "client")
            self.extensions = answer

    def _invalid_status(self) -> InvalidStatus:
        assert self.response is not None and self._body is not None
        head = self.response
        return InvalidStatus(head.status, head.reason, head.headers, self._body.body)

    def _fail_handshake(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    def _lost_while_connecting(self, exc: Exception | None) -> None:
        if self.opened.done():
            return
        if self._body is not None:
            self._body.eof()
            self.opened.set_exception(self._invalid_status())
            return
        error = ConnectionError("the connection closed during the opening handshake")
        error.__cause__ = exc
        self.opened.set_exception(error)

    # -- frames and closing -------------------------------------------------------------------

    def _write(self, opcode: int, payload: bytes, rsv1: bool = False) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(build_frame(opcode, payload, True, rsv1, os.urandom(4)))

    def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = (code, reason)
        self._write(OP_CLOSE, close_codes.build_close_body(code, reason))

    def _peer_closed(self, event: Close) -> None:
        self._close_received = event
        if self._close_sent is None:
            self.state = State.CLOSING
            self._send_close(event.code, event.reason)  # echo; a body-less Close (1005) is echoed empty
        # The closing handshake is complete: the server closes the TCP connection first (RFC 6455 §7.1.1).
        self._start_timer(self.abort)

    def _fail(self, code: int, reason: str) -> None:
        """The server broke the protocol: send Close with ``code`` and stop reading (RFC 6455 §7.1.7)."""
        if self.state is State.CLOSED:
            return
        self._failure = (code, reason)
        self._error = ConnectionClosedError(code, reason, False)
        if self._close_sent is None:
            self._send_close(code, reason)
        self.state = State.CLOSING
        self._start_timer(self.abort)

    def _start_timer(self, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        timeout = self._options.close_timeout
        if timeout is not None and self.state is not State.CLOSED:
            self._timer = self._loop.call_later(timeout, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake_drain_waiters(self) -> None:
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
