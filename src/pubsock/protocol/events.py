"""Events produced by the frame reader.

A complete data message is delivered as its payload itself: ``str`` for a text
message, ``bytes`` for a binary one. Control frames and failures are the small
frozen classes below.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Ping", "Pong", "Close", "ProtocolError", "Event", "PayloadTooBigError"]


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping frame from the peer; answer it with a pong carrying ``data``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong frame from the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame from the peer; ``code`` is 1005 when it carried no body."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol: close with ``code`` and ``reason``, read nothing more."""

    code: int
    reason: str


Event = str | bytes | Ping | Pong | Close | ProtocolError


class PayloadTooBigError(Exception):
    """Raised by an inflater whose output would pass its limit; the reader closes with 1009.

    Defined here, not in the framing module, so that the pure and the compiled
    reader catch the same class.
    """
