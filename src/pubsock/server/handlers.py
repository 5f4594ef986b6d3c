"""WebSocket handlers and options, declared once per server (Bun's ``websocket`` object)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..protocol.deflate import DeflateOptions
    from .websocket import ServerWebSocket

__all__ = ["WebSocketHandler", "WebSocketConfig", "HANDLER_NAMES"]

HANDLER_NAMES = ("open", "message", "close", "drain", "error", "ping", "pong")
OPTION_NAMES = (
    "max_payload_length",
    "idle_timeout",
    "backpressure_limit",
    "close_on_backpressure_limit",
    "send_pings",
    "publish_to_self",
    "per_message_deflate",
)


class WebSocketHandler:
    """Optional base class for a server's handlers: override what you need.

    Options are class attributes (Bun's defaults shown); ``None`` means the default.
    """

    max_payload_length: int | None = 16 * 1024 * 1024
    idle_timeout: int | None = 120
    backpressure_limit: int | None = 16 * 1024 * 1024
    close_on_backpressure_limit: bool | None = False
    send_pings: bool | None = True
    publish_to_self: bool | None = False
    per_message_deflate: bool | Mapping[str, str | bool] | None = False

    def open(self, ws: ServerWebSocket) -> Any:
        """A socket opened (runs inside ``server.upgrade()``)."""

    def message(self, ws: ServerWebSocket, message: str | bytes | bytearray | memoryview) -> Any:
        """A message arrived: ``str`` for text, bytes per ``ws.binary_type`` for binary."""

    def close(self, ws: ServerWebSocket, code: int, reason: str) -> Any:
        """The socket closed; runs exactly once per opened socket."""


def _int_option(name: str, value: object, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return max(value, 0)


def _bool_option(name: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def idle_timeout_option(value: object) -> int:
    """Normalize ``idle_timeout`` as Bun does: negatives → 0 (off), 1-7 → 8, over 960 → ``ValueError``."""
    seconds = _int_option("idle_timeout", value, 120)
    if seconds > 960:
        raise ValueError(f"idle_timeout must be at most 960 seconds, got {seconds}")
    if 0 < seconds < 8:
        return 8
    return seconds


class WebSocketConfig:
    """The validated handlers and options of one server.

    Each handler is the callable or None; ``is_async`` names the ``async def`` ones.
    """

    __slots__ = (*HANDLER_NAMES, "is_async", *OPTION_NAMES, "deflate")

    open: Callable[..., Any] | None
    message: Callable[..., Any] | None
    close: Callable[..., Any] | None
    drain: Callable[..., Any] | None
    error: Callable[..., Any] | None
    ping: Callable[..., Any] | None
    pong: Callable[..., Any] | None
    max_payload_length: int
    idle_timeout: int
    backpressure_limit: int
    close_on_backpressure_limit: bool
    send_pings: bool
    publish_to_self: bool
    per_message_deflate: object
    deflate: DeflateOptions | None

    def __init__(self, source: object) -> None:
        """Read handlers and options from an object's attributes or a mapping's keys.

        Raises:
            TypeError: a handler is not callable, an option has the wrong type, or
                no handler besides ``error`` is given.
            ValueError: an option is out of range.
        """
        if isinstance(source, Mapping):
            unknown = set(source) - set(HANDLER_NAMES) - set(OPTION_NAMES)
            if unknown:
                raise TypeError(f"websocket: unknown keys {sorted(unknown)}; expected handlers {HANDLER_NAMES} or options {OPTION_NAMES}")

            def lookup(name: str) -> object:
                return source.get(name)

        else:

            def lookup(name: str) -> object:
                return getattr(source, name, None)

        self.is_async: frozenset[str] = frozenset()
        asynchronous = set()
        for name in HANDLER_NAMES:
            handler = lookup(name)
            if handler is not None and not callable(handler):
                raise TypeError(f"websocket.{name} must be callable, not {type(handler).__name__}")
            if handler is not None and _is_default(source, name):
                handler = None  # WebSocketHandler's empty defaults cost nothing
            setattr(self, name, handler)
            if handler is not None and inspect.iscoroutinefunction(handler):
                asynchronous.add(name)
        self.is_async = frozenset(asynchronous)
        if not any(getattr(self, name) is not None for name in HANDLER_NAMES if name != "error"):
            if not isinstance(source, WebSocketHandler):
                raise TypeError("websocket needs at least one of open, message, close, drain, ping, pong")
        self.max_payload_length = _int_option("max_payload_length", lookup("max_payload_length"), 16 * 1024 * 1024)
        self.idle_timeout = idle_timeout_option(lookup("idle_timeout"))
        self.backpressure_limit = _int_option("backpressure_limit", lookup("backpressure_limit"), 16 * 1024 * 1024)
        self.close_on_backpressure_limit = _bool_option(
            "close_on_backpressure_limit", lookup("close_on_backpressure_limit"), False
        )
        self.send_pings = _bool_option("send_pings", lookup("send_pings"), True)
        self.publish_to_self = _bool_option("publish_to_self", lookup("publish_to_self"), False)
        self.per_message_deflate = lookup("per_message_deflate")
        self.deflate = _deflate_options(self.per_message_deflate)


def _is_default(source: object, name: str) -> bool:
    """Whether ``source.name`` is WebSocketHandler's do-nothing default."""
    if not isinstance(source, WebSocketHandler):
        return False
    return getattr(type(source), name, None) is getattr(WebSocketHandler, name, None)


def _deflate_options(value: object) -> DeflateOptions | None:
    if value is None or value is False:
        return None
    from ..protocol.deflate import DeflateOptions

    return DeflateOptions.from_option(value)
