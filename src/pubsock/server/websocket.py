"""``ServerWebSocket``: one asyncio protocol per upgraded connection.

Inbound bytes go through the sans-I/O ``FrameReader``; handlers are the server's
(declared once). Outbound frames go to the socket's ``Outbox`` and are written
once per loop iteration. Semantics follow Bun's ``ServerWebSocket``
(``reference/bun-semantics.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ..protocol import close as close_codes
from ..protocol.events import Close, Event, Ping, Pong, ProtocolError
from ..protocol.frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, build_frame
from .calls import start_coroutine
from .topics import Outbox

if TYPE_CHECKING:
    from .handlers import WebSocketConfig
    from .server import Server

__all__ = ["ServerWebSocket", "BinaryType"]

T = TypeVar("T")
BinaryType = Literal["bytes", "bytearray", "memoryview"]
BytesLike = bytes | bytearray | memoryview

OPEN = 1
CLOSING = 2  # the close handler ran; waiting for the peer's Close or the TCP close
CLOSED = 3  # the TCP connection is gone

CLOSE_TIMEOUT = 10.0  # seconds to wait for the peer's Close after ours (unless the server sets close_timeout)
BARE_PING = b"\x89\x00"
TIMED_OUT_REASON = "WebSocket timed out from inactivity"

logger = logging.getLogger("pubsock.server")


def _check_topic(topic: object) -> str:
    if type(topic) is not str:
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    if not topic:
        raise ValueError("topic must not be empty")
    return topic


def _payload(data: object, compress: object) -> tuple[int, bytes]:
    """Return ``(opcode, payload)`` for ``send``-like methods, checking argument types."""
    if type(compress) is not bool:
        raise TypeError(f"compress must be a bool, not {type(compress).__name__}")
    if type(data) is str:
        return OP_TEXT, data.encode("utf-8")
    if type(data) is bytes:
        return OP_BINARY, data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return OP_BINARY, bytes(data)
    raise TypeError(f"data must be str, bytes, bytearray or memoryview, not {type(data).__name__}")


class _Cork:
    """``with ws.cork():`` — writes made inside go out in one write at exit."""

    __slots__ = ("_outbox",)

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._outbox.flush()


class ServerWebSocket(asyncio.Protocol):
    """The server side of one WebSocket connection.

    Every member works on a closed socket: sends return 0, topic calls return
    False, ``subscriptions`` is empty, nothing raises but argument errors.
    """

    __slots__ = (
        "data",
        "_server",
        "_config",
        "_transport",
        "_reader",
        "_outbox",
        "_binary_type",
        "_remote_address",
        "_state",
        "_idle",
        "_pinged_at",
        "_close_timer",
        "_compressor",
        "_input_paused",
        "_waiting",
    )

    def __init__(
        self,
        server: Server,
        config: WebSocketConfig,
        transport: asyncio.Transport,
        data: Any,
        remote_address: str | None,
        inflater: Any = None,
        compressor: Any = None,
    ) -> None:
        self.data = data
        self._server = server
        self._config = config
        self._transport = transport
        self._reader = FrameReader(True, config.max_payload_length, inflater)
        self._outbox = Outbox(
            server._hub, transport, self, config.backpressure_limit, config.close_on_backpressure_limit
        )
        self._binary_type: BinaryType = "bytes"
        self._remote_address = remote_address
        self._state = OPEN
        self._idle = 0
        self._pinged_at = -1
        self._close_timer: asyncio.TimerHandle | None = None
        self._compressor = compressor
        self._outbox.compressor = compressor
        self._input_paused = False
        self._waiting: list[Event] | None = None  # events held back by input flow control

    # properties --------------------------------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """1 while open; 3 once ``close()``/``terminate()`` was called or the peer is gone."""
        return 1 if self._state == OPEN else 3

    @property
    def remote_address(self) -> str | None:
        """The peer's IP address without the port; None once closed."""
        return self._remote_address if self._state == OPEN else None

    @property
    def binary_type(self) -> BinaryType:
        """How binary messages and ping/pong payloads are delivered: bytes, bytearray or memoryview."""
        return self._binary_type

    @binary_type.setter
    def binary_type(self, value: BinaryType) -> None:
        if value not in ("bytes", "bytearray", "memoryview"):
            raise ValueError(f"binary_type must be 'bytes', 'bytearray' or 'memoryview', not {value!r}")
        self._binary_type = value

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for this socket that the kernel has not accepted yet; 0 when closed."""
        if self._state == CLOSED:
            return 0
        return self._outbox.buffered_amount

    @property
    def subscriptions(self) -> list[str]:
        """The topics this socket is subscribed to, each once; ``[]`` when closed."""
        return list(self._outbox.topics)

    # sending -----------------------------------------------------------------------------------

    def send(self, data: str | BytesLike, compress: bool = False) -> int:
        """Send one message: ``str`` as text, bytes-like as binary.

        Returns:
            The payload size in bytes; -1 if it was buffered under backpressure
            (it is still delivered, and ``drain`` follows); 0 if it was dropped
            over ``backpressure_limit``, the socket is closed, or it was empty.

        Raises:
            TypeError: ``data`` is not text or bytes-like, or ``compress`` is not a bool.
        """
        kind = type(data)
        if compress is False and (kind is str or kind is bytes):  # the hot paths, spelled out
            if self._state != OPEN:
                return 0
            if not self._config.send_pings:
                self._idle = 0
            if kind is str:
                return self._outbox.push_text(data)  # type: ignore[arg-type]
            return self._outbox.push_binary(data)  # type: ignore[arg-type]
        opcode, payload = _payload(data, compress)
        return self._send(opcode, payload, compress)

    def send_text(self, data: str, compress: bool = False) -> int:
        """Send a text message; as ``send``, but ``data`` must be a ``str``."""
        if type(data) is not str:
            raise TypeError(f"send_text needs a str, not {type(data).__name__}")
        return self.send(data, compress)

    def send_binary(self, data: BytesLike, compress: bool = False) -> int:
        """Send a binary message; as ``send``, but ``data`` must be bytes-like."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_binary needs bytes, bytearray or memoryview, not {type(data).__name__}")
        return self.send(data, compress)

    def _send(self, opcode: int, payload: bytes, compress: bool) -> int:
        if self._state != OPEN:
            return 0
        if not self._config.send_pings:
            self._idle = 0
        compressor = self._compressor
        if compress and compressor is not None and payload:
            frame = build_frame(opcode, compressor.compress(payload), True, True)
        else:
            frame = build_frame(opcode, payload)
        return self._outbox.push(frame, len(payload))

    def ping(self, data: str | BytesLike = b"") -> int:
        """Send a ping; returns as ``send``. Payloads over 125 bytes raise ``ValueError``."""
        return self._control(OP_PING, data)

    def pong(self, data: str | BytesLike = b"") -> int:
        """Send an unsolicited pong; returns as ``send``. Payloads over 125 bytes raise ``ValueError``."""
        return self._control(OP_PONG, data)

    def _control(self, opcode: int, data: str | BytesLike) -> int:
        payload = _payload(data, False)[1]
        if len(payload) > 125:
            raise ValueError(f"ping/pong payloads are at most 125 bytes, got {len(payload)}")
        return self._send(opcode, payload, False)

    # topics ------------------------------------------------------------------------------------

    def subscribe(self, topic: str) -> bool:
        """Subscribe to ``topic``; True when subscribed (also if already), False when closed.

        Raises:
            TypeError: ``topic`` is not a str.  ValueError: it is empty.
        """
        return self._server._subscribe(self._outbox, _check_topic(topic))

    def unsubscribe(self, topic: str) -> bool:
        """Unsubscribe from ``topic``; True only if it was subscribed."""
        return self._server._unsubscribe(self._outbox, _check_topic(topic))

    def is_subscribed(self, topic: str) -> bool:
        """Whether this socket is subscribed to ``topic``; False when closed."""
        return _check_topic(topic) in self._outbox.topics

    def publish(self, topic: str, data: str | BytesLike, compress: bool = False) -> int:
        """Send ``data`` to every subscriber of ``topic`` except this socket (unless ``publish_to_self``).

        Returns:
            0 if nobody received it or any subscriber dropped it; -1 if any
            subscriber is backpressured (still delivered); else the payload size.
            On a closed socket it behaves as ``server.publish``.
        """
        opcode, payload = _payload(data, compress)
        sender = None if self._config.publish_to_self or self._state != OPEN else self._outbox
        return self._server._publish(_check_topic(topic), opcode, payload, compress, sender)

    def publish_text(self, topic: str, data: str, compress: bool = False) -> int:
        """As ``publish``, but ``data`` must be a ``str``."""
        if type(data) is not str:
            raise TypeError(f"publish_text needs a str, not {type(data).__name__}")
        return self.publish(topic, data, compress)

    def publish_binary(self, topic: str, data: BytesLike, compress: bool = False) -> int:
        """As ``publish``, but ``data`` must be bytes-like."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"publish_binary needs bytes, bytearray or memoryview, not {type(data).__name__}")
        return self.publish(topic, data, compress)

    # cork --------------------------------------------------------------------------------------

    @overload
    def cork(self) -> _Cork: ...

    @overload
    def cork(self, callback: Callable[[ServerWebSocket], T]) -> T | None: ...

    def cork(self, callback: Callable[[ServerWebSocket], T] | None = None) -> T | None | _Cork:
        """Batch the writes of ``callback(ws)`` into one; return its result (its exception propagates).

        Without ``callback``, return a context manager: ``with ws.cork(): ...``.
        On a closed socket ``callback`` is not called and None is returned.
        """
        if callback is None:
            return _Cork(self._outbox)
        if not callable(callback):
            raise TypeError(f"cork needs a callable, not {type(callback).__name__}")
        if self._state != OPEN:
            return None
        try:
            return callback(self)
        finally:
            self._outbox.flush()

    # closing -----------------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the ``close`` handler runs before this returns.

        Raises:
            TypeError: ``code`` is not an int or ``reason`` not a str.
            ValueError: ``code`` is not one peers accept (1000-1003, 1007-1014, 3000-4999).
        """
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"close code must be an int, not {type(code).__name__}")
        if not isinstance(reason, str):
            raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
        if not close_codes.is_valid_code(code):
            raise ValueError(f"close code {code} is not valid: use 1000-1003, 1007-1014 or 3000-4999")
        if self._state != OPEN:
            return
        reason_bytes = close_codes.encode_reason(reason)
        self._outbox.push_control(build_frame(OP_CLOSE, code.to_bytes(2, "big") + reason_bytes))
        self._arm_close_timer()
        self._closed(code, reason_bytes.decode("utf-8"))

    def terminate(self) -> None:
        """Close the TCP connection at once, without a Close frame; ``close`` gets (1006, "")."""
        if self._state == CLOSED:
            return
        state, self._state = self._state, CLOSED
        self._outbox.closed = True
        self._transport.abort()
        if state == OPEN:
            self._closed(close_codes.ABNORMAL, "")

    def _resume_input(self) -> None:
        """Go on with the events that waited and read from the peer again (input flow control)."""
        if self._input_paused:
            self._input_paused = False
            waiting, self._waiting = self._waiting, None
            if self._state == CLOSED:
                return
            if waiting is not None:
                self._dispatch(waiting)
            if not self._input_paused and self._state != CLOSED:
                self._transport.resume_reading()

    def _closed(self, code: int, reason: str) -> None:
        """The socket stops being open: drop its topics, then run the ``close`` handler once."""
        if self._state == OPEN:
            self._state = CLOSING
            self._resume_input()  # the peer's Close must be read
        self._outbox.closed = True
        self._server._socket_closed(self, self._outbox)
        handler = self._config.close
        if handler is not None:
            self._call(handler, "close", code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: send Close(code, reason), report it, close TCP."""
        if self._state == OPEN:
            if code == close_codes.MESSAGE_TOO_BIG:
                self._server._counts.closed_too_big += 1
            else:
                self._server._counts.closed_protocol_error += 1
            self._outbox.push_control(build_frame(OP_CLOSE, close_codes.build_close_body(code, reason)))
            self._closed(code, reason)
        if self._state == CLOSED:
            return
        transport = self._transport
        if not transport.can_write_eof():
            transport.close()
            return
        # Half-close and drop further input until the peer closes: closing with unread input (the
        # rest of an oversized frame) would reset the connection and could destroy the Close frame.
        transport.write_eof()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        """Drop the connection if the Close handshake has not finished in time."""
        if self._close_timer is None:
            timeout = self._server.close_timeout
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT if timeout is None else timeout, self._transport.abort
            )

    def _over_limit(self) -> None:
        """A frame was dropped with ``close_on_backpressure_limit`` set: drop the connection."""
        if self._state == OPEN:
            self._server._counts.closed_backpressure += 1
            self._transport.pause_reading()
            self.terminate()

    def _timed_out(self) -> None:
        if self._state == OPEN:
            self._server._counts.closed_idle_timeout += 1
            self._state = CLOSED
            self._outbox.closed = True
            self._transport.abort()
            self._closed(close_codes.ABNORMAL, TIMED_OUT_REASON)

    def _idle_tick(self, seconds: int) -> None:
        """Advance the idle clock (called by the server every few seconds)."""
        if self._state != OPEN:
            return
        self._idle += seconds
        timeout = self._config.idle_timeout
        if not timeout:
            return
        if not self._config.send_pings:
            if self._idle >= timeout:
                self._timed_out()
            return
        margin = 4 if timeout < 16 else 8 if timeout < 32 else 16
        if self._pinged_at >= 0:
            if self._idle <= self._pinged_at:
                self._pinged_at = -1  # something arrived since the ping
            elif self._idle - self._pinged_at >= margin:
                self._timed_out()
                return
        if self._pinged_at < 0 and self._idle >= timeout - margin:
            self._pinged_at = self._idle
            self._outbox.push_control(BARE_PING)

    # asyncio.Protocol --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._idle = 0
        if self._state == CLOSED:
            return
        self._dispatch(self._reader.feed(data))

    def _dispatch(self, events: list[Event]) -> None:
        """Run the handlers for ``events`` in order, then write what they sent this socket.

        Input flow control: once this socket's unsent output is over half its
        ``backpressure_limit``, the rest of the events wait (with the socket's reading
        paused, so TCP slows the peer) until the output has drained. A peer that does
        not read what it is sent is not read either, so what its handlers send it is
        delayed, not dropped (the check comes between messages). Other sockets are not
        affected.
        """
        config = self._config
        message = config.message
        outbox = self._outbox
        remaining = iter(events)
        for event in remaining:
            kind = type(event)
            if kind is str or kind is bytes:
                if self._state != OPEN or message is None:
                    continue
                if kind is bytes and self._binary_type != "bytes":
                    event = self._binary(event)  # type: ignore[arg-type,assignment]
                try:  # _call, inlined: one handler call per message is the cost that matters
                    result = message(self, event)
                except Exception as exc:  # noqa: BLE001 - user code: reported, the socket lives on
                    self._handler_failed("message", exc)
                    continue
                if result is not None and asyncio.iscoroutine(result):
                    start_coroutine(result, lambda exc: self._handler_failed("message", exc))
            elif kind is Ping:
                if self._state == OPEN:
                    outbox.push_control(build_frame(OP_PONG, event.data))  # type: ignore[union-attr]
                    if config.ping is not None:
                        self._call(config.ping, "ping", self._binary(event.data))  # type: ignore[union-attr]
            elif kind is Pong:
                if self._state == OPEN and config.pong is not None:
                    self._call(config.pong, "pong", self._binary(event.data))  # type: ignore[union-attr]
            elif kind is Close:
                self._peer_closed(event.code, event.reason)  # type: ignore[union-attr]
            else:
                assert isinstance(event, ProtocolError)
                self._fail(event.code, event.reason)
            if outbox.congested and self._state == OPEN and self._flush_or_hold():
                self._waiting = list(remaining) or None
                return
        # Uncork: what the handlers sent this socket in answer to this read goes out now, in one
        # write, as uWebSockets does after a data callback. Frames queued for other sockets
        # still wait for the end of the loop iteration, so a fan-out stays one write per socket.
        self._flush_or_hold()

    def _flush_or_hold(self) -> bool:
        """Write what is queued; if more than half the limit still waits, stop reading and return True."""
        outbox = self._outbox
        outbox.flush()
        if outbox.congested and self._state == OPEN:  # (the kernel did not take it all, or others filled it)
            self._input_paused = True
            self._server._counts.reads_paused += 1
            self._transport.pause_reading()
            return True
        return False

    def _peer_closed(self, code: int, reason: str) -> None:
        if self._state == OPEN:
            self._outbox.push_control(build_frame(OP_CLOSE, close_codes.build_close_body(code, reason)))
            self._closed(code, reason)
        if self._state != CLOSED:
            self._transport.close()
            self._arm_close_timer()  # a peer that stops reading would keep the echoed Close buffered

    def pause_writing(self) -> None:
        self._outbox.pause()

    def resume_writing(self) -> None:
        self._outbox.resume()
        self._idle = 0
        self._resume_input()
        if self._state == OPEN and self._config.drain is not None:
            self._call(self._config.drain, "drain")

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        state, self._state = self._state, CLOSED
        self._outbox.closed = True
        if state == OPEN:
            self._closed(close_codes.ABNORMAL, "")
        self._outbox.frames = []
        self._outbox.size = 0
        self._server._socket_gone(self)

    def eof_received(self) -> bool | None:
        return None

    # handlers ----------------------------------------------------------------------------------

    def _binary(self, data: bytes) -> BytesLike:
        kind = self._binary_type
        if kind == "bytes":
            return data
        if kind == "bytearray":
            return bytearray(data)
        return memoryview(data)

    def _call(self, handler: Callable[..., Any], name: str, *args: Any) -> None:
        """Call a handler; report what it raises (sync or async) to ``error`` or the log."""
        try:
            result = handler(self, *args)
        except Exception as exc:  # noqa: BLE001 - user code: reported, the socket lives on
            self._handler_failed(name, exc)
            return
        if result is not None and asyncio.iscoroutine(result):
            start_coroutine(result, lambda exc: self._handler_failed(name, exc))

    def _handler_failed(self, name: str, exc: BaseException) -> None:
        error = self._config.error
        if error is not None and name != "error":
            self._call(error, "error", exc)
        else:
            logger.error("websocket %s handler raised", name, exc_info=exc)
        if name == "open":
            self.terminate()

    def _reconfigure(self, config: WebSocketConfig) -> None:
        """Apply a reloaded server's handlers and limits."""
        self._config = config
        self._reader.max_payload_length = config.max_payload_length
        self._outbox.limit = config.backpressure_limit
        self._outbox.close_on_limit = config.close_on_backpressure_limit

    def _start(self, head: bytes, tail: bytes) -> None:
        """Queue the 101 answer, run ``open`` (inside ``upgrade()``), then feed ``tail`` in order."""
        self._outbox.queue(head)
        self._transport.set_write_buffer_limits(high=0)
        if self._config.open is not None:
            self._call(self._config.open, "open")
        if tail:
            self._transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._feed_tail, tail)

    def _feed_tail(self, tail: bytes) -> None:
        if self._state != CLOSED:
            self._transport.resume_reading()
            self.data_received(tail)

    def __repr__(self) -> str:
        return f"<ServerWebSocket {self._remote_address} ready_state={self.ready_state}>"
