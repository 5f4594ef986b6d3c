"""`WebSocket`: the browser's client API (event listeners), connecting in the background."""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, overload

from ..protocol import close as close_codes
from ._events import CloseEvent, ErrorEvent, Event, MessageEvent
from ._exceptions import InvalidStateError
from ._opening import open_connection
from ._options import DEFAULT_MAX_PAYLOAD_LENGTH, ClientOptions, HeadersLike, ProtocolsLike
from ._protocol import ClientProtocol

__all__ = ["BinaryType", "WebSocket"]

BinaryType: TypeAlias = Literal["bytes", "bytearray", "memoryview"]
_BINARY_TYPES: Final = ("bytes", "bytearray", "memoryview")
_E = TypeVar("_E", bound=Event)
_Callback: TypeAlias = Callable[[Any], object]


class _Entry:
    """One registered listener; ``attribute`` marks the slot of an ``on<type>`` attribute."""

    __slots__ = ("callback", "once", "attribute", "removed")

    def __init__(self, callback: _Callback, once: bool, attribute: bool) -> None:
        self.callback = callback
        self.once = once
        self.attribute = attribute
        self.removed = False


class _Handler(Generic[_E]):
    """An ``on<type>`` attribute, with HTML event handler semantics: setting it adds a listener
    slot (at the end), setting it again replaces the function in that slot, None removes it."""

    def __init__(self, type: str) -> None:
        self._type = type

    @overload
    def __get__(self, instance: None, owner: type[WebSocket]) -> _Handler[_E]: ...
    @overload
    def __get__(self, instance: WebSocket, owner: type[WebSocket]) -> Callable[[_E], object] | None: ...
    def __get__(self, instance: WebSocket | None, owner: type[WebSocket]) -> _Handler[_E] | _Callback | None:
        if instance is None:
            return self
        entry = instance._attribute_entry(self._type)
        return None if entry is None else entry.callback

    def __set__(self, instance: WebSocket, value: Callable[[_E], object] | None) -> None:
        instance._set_attribute(self._type, value)


class WebSocket:
    """A WebSocket client with the browser's API, connecting in the background.

    Create it inside a running event loop; it connects at once, then fires ``"open"``,
    ``"message"`` events, and finally exactly one ``"close"`` event (preceded by
    ``"error"`` when the connection failed). Listeners may be plain functions or
    coroutine functions (run as tasks); an exception in a listener is logged and the
    other listeners still run.

    Raises (at creation):
        InvalidURL: the URL is not a ``ws://``/``wss://`` URL (or ``http(s)://``).
        ValueError: CR/LF/NUL in a header (named in the message); an invalid or
            repeated subprotocol; ``ssl`` with a ``ws://`` URL.
        TypeError: an option of the wrong type.
        RuntimeError: no event loop is running.
    """

    CONNECTING: Final = 0
    OPEN: Final = 1
    CLOSING: Final = 2
    CLOSED: Final = 3

    onopen: _Handler[Event] = _Handler("open")
    """Called with an `Event` when the connection opens."""
    onmessage: _Handler[MessageEvent] = _Handler("message")
    """Called with a `MessageEvent` for each message."""
    onclose: _Handler[CloseEvent] = _Handler("close")
    """Called with a `CloseEvent` once the connection is closed."""
    onerror: _Handler[ErrorEvent] = _Handler("error")
    """Called with an `ErrorEvent` when the connection fails (before ``close``)."""

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
        logger: logging.Logger | str = "pubsock.client",
    ) -> None:
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
        self._loop = asyncio.get_running_loop()
        self._ready_state = self.CONNECTING  # until open; then the protocol's state
        self._protocol: ClientProtocol | None = None
        self._binary_type: BinaryType = "bytes"
        self._listeners: dict[str, list[_Entry]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._connecting = self._loop.create_task(self._connect())
        self._connecting.add_done_callback(self._connect_done)

    def __repr__(self) -> str:
        return f"<WebSocket {self.url} ready_state={self.ready_state}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, normalized (``http`` → ``ws``, percent-encoding, no default port)."""
        return str(self._options.url)

    @property
    def ready_state(self) -> int:
        """0 connecting, 1 open, 2 closing (either side started the closing handshake), 3 closed."""
        if self._protocol is not None:
            return int(self._protocol.state)
        return self._ready_state

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet handed to the network; 0 before open and after close."""
        return 0 if self._protocol is None else self._protocol.buffered_amount

    @property
    def protocol(self) -> str:
        """The subprotocol the server selected; ``""`` if none (or not open yet)."""
        return "" if self._protocol is None else self._protocol.subprotocol

    @property
    def extensions(self) -> str:
        """The extensions in use, as the server's handshake named them; ``""`` if none."""
        return "" if self._protocol is None else self._protocol.extensions

    @property
    def binary_type(self) -> BinaryType:
        """The type of binary message data: ``"bytes"`` (default), ``"bytearray"`` or ``"memoryview"``."""
        return self._binary_type

    @binary_type.setter
    def binary_type(self, value: BinaryType) -> None:
        if value not in _BINARY_TYPES:
            raise ValueError(f"binary_type must be one of {', '.join(map(repr, _BINARY_TYPES))}, not {value!r}")
        self._binary_type = value

    # -- sending and closing ----------------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        Once closing or closed the message is discarded, as in browsers. Sending does
        not wait; watch `buffered_amount` to avoid queueing without bound (or use
        ``connect()``, whose ``send`` waits).

        Raises:
            InvalidStateError: still connecting.
            TypeError: ``data`` is neither text nor bytes-like.
        """
        if self._protocol is not None:
            self._protocol.send(data)  # discarded unless open
        elif self._ready_state == self.CONNECTING:
            raise InvalidStateError("send() was called before the connection opened")
        elif not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")

    def close(self, code: int = close_codes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the ``"close"`` event follows.

        While connecting, the attempt is abandoned (``"error"``, then ``"close"`` with
        1006). Does nothing when already closing or closed.

        Raises:
            TypeError: ``code`` is not an int or ``reason`` not a str.
            ValueError: ``code`` is neither 1000 nor 3000–4999, or ``reason`` is
                longer than 123 bytes in UTF-8.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int, not {type(code).__name__}")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        if code != close_codes.NORMAL and not 3000 <= code <= 4999:
            raise ValueError(f"close code must be 1000 or from 3000 to 4999, got {code}")
        if len(reason.encode("utf-8")) > close_codes.MAX_REASON_BYTES:
            raise ValueError(f"the close reason is longer than {close_codes.MAX_REASON_BYTES} bytes in UTF-8")
        if self._protocol is not None:
            self._protocol.close(code, reason)  # does nothing once closing
        elif self._ready_state == self.CONNECTING:
            self._ready_state = self.CLOSING
            self._connecting.cancel()

    # -- listeners --------------------------------------------------------------------------

    @overload
    def add_event_listener(
        self, type: Literal["message"], listener: Callable[[MessageEvent], object], *, once: bool = False
    ) -> None: ...
    @overload
    def add_event_listener(
        self, type: Literal["close"], listener: Callable[[CloseEvent], object], *, once: bool = False
    ) -> None: ...
    @overload
    def add_event_listener(
        self, type: Literal["error"], listener: Callable[[ErrorEvent], object], *, once: bool = False
    ) -> None: ...
    @overload
    def add_event_listener(self, type: str, listener: Callable[[Event], object], *, once: bool = False) -> None: ...
    def add_event_listener(self, type: str, listener: _Callback, *, once: bool = False) -> None:
        """Call ``listener(event)`` for each event of ``type``, after those added before.

        Adding the same listener twice for a type does nothing. ``once=True`` removes it
        after its first call.

        Raises:
            TypeError: ``listener`` is not callable.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        entries = self._listeners.setdefault(type, [])
        if not any(not entry.attribute and entry.callback == listener for entry in entries):
            entries.append(_Entry(listener, once, attribute=False))

    def remove_event_listener(self, type: str, listener: Callable[[_E], object]) -> None:
        """Stop calling ``listener`` for ``type`` (also during a dispatch in progress)."""
        entries = self._listeners.get(type, [])
        for entry in entries:
            if not entry.attribute and entry.callback == listener:
                self._remove(type, entry)
                return

    def _remove(self, type: str, entry: _Entry) -> None:
        entry.removed = True
        self._listeners[type].remove(entry)

    def _attribute_entry(self, type: str) -> _Entry | None:
        for entry in self._listeners.get(type, ()):
            if entry.attribute:
                return entry
        return None

    def _set_attribute(self, type: str, value: _Callback | None) -> None:
        if value is not None and not callable(value):
            raise TypeError(f"on{type} must be callable or None, not {type(value).__name__}")
        entry = self._attribute_entry(type)
        if value is None:
            if entry is not None:
                self._remove(type, entry)
        elif entry is not None:
            entry.callback = value  # keeps its place among the listeners, as in browsers
        else:
            self._listeners.setdefault(type, []).append(_Entry(value, once=False, attribute=True))

    def _dispatch(self, event: Event) -> None:
        for entry in list(self._listeners.get(event.type, ())):
            if entry.removed:
                continue
            if entry.once:
                self._remove(event.type, entry)
            try:
                result = entry.callback(event)
            except Exception:
                self._options.logger.exception("error in a %r listener of %s", event.type, self.url)
                continue
            if inspect.isawaitable(result):
                self._spawn(result)

    def _spawn(self, awaitable: Awaitable[object]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._options.logger.error("error in a listener of %s", self.url, exc_info=task.exception())

    # -- connection callbacks ---------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            await open_connection(
                self._options, on_open=self._opened, on_message=self._message, on_close=self._closed
            )
        except Exception as exc:
            if self._protocol is None:
                self._failed(exc)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() and self._protocol is None:  # close() while connecting, or the loop is ending
            self._failed(ConnectionAbortedError("the connection was abandoned before it opened"))

    def _failed(self, error: BaseException) -> None:
        self._options.logger.debug("could not connect to %s: %s", self.url, error)
        self._ready_state = self.CLOSED
        self._dispatch(ErrorEvent("error", self, error))
        self._dispatch(CloseEvent("close", self, close_codes.ABNORMAL, "", False))

    def _opened(self, protocol: ClientProtocol) -> None:
        self._protocol = protocol
        self._dispatch(Event("open", self))

    def _message(self, data: str | bytes) -> None:
        if type(data) is bytes and self._binary_type != "bytes":
            converted = bytearray(data) if self._binary_type == "bytearray" else memoryview(data)
            self._dispatch(MessageEvent("message", self, converted))
        else:
            self._dispatch(MessageEvent("message", self, data))

    def _closed(self, code: int, reason: str, was_clean: bool, error: BaseException | None) -> None:
        if error is not None:
            self._dispatch(ErrorEvent("error", self, error))
        self._dispatch(CloseEvent("close", self, code, reason, was_clean))
