"""The events a `WebSocket` dispatches to its listeners, as in the browser's model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._websocket import WebSocket

__all__ = ["CloseEvent", "ErrorEvent", "Event", "MessageEvent"]


@dataclass(frozen=True, slots=True, eq=False)
class Event:
    """An event without data (``"open"``); ``target`` is the socket that fired it."""

    type: str
    target: WebSocket


@dataclass(frozen=True, slots=True, eq=False)
class MessageEvent(Event):
    """A message: ``data`` is ``str`` for text, else per the socket's ``binary_type``."""

    data: str | bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True, eq=False)
class CloseEvent(Event):
    """The connection closed; fired exactly once per socket, always last.

    ``code`` is 1006 when it was lost (or never opened) without a Close frame;
    ``was_clean`` is True when both Close frames were exchanged.
    """

    code: int
    reason: str
    was_clean: bool


@dataclass(frozen=True, slots=True, eq=False)
class ErrorEvent(Event):
    """The connection failed (``error`` says why); a ``"close"`` event follows."""

    error: BaseException

    @property
    def message(self) -> str:
        """The error's text."""
        return str(self.error) or type(self.error).__name__
