"""The broker interface: what a transport between pubsock nodes must do.

A ``Broker`` is one node's connection to a message bus (Redis, NATS, or the
in-process ``LocalBus``). It speaks in topics and opaque bytes; node ids,
envelopes, interest tracking, reconnection and outage accounting live in
``BrokerLink``, which drives exactly one ``Broker``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

__all__ = ["Broker", "Receive", "Lost", "MAX_BACKOFF"]

Receive = Callable[[str, bytes], None]
"""``receive(topic, data)``: one message that arrived on a subscribed topic."""

Lost = Callable[[BaseException | None], None]
"""``lost(error)``: the connection broke (called at most once per ``connect``)."""

MAX_BACKOFF = 0.25  # seconds: the longest pause between two reconnection attempts


class Broker(abc.ABC):
    """One node's connection to a message bus, as ``BrokerLink`` drives it.

    The link calls ``connect``, ``subscribe``, ``unsubscribe`` and ``publish``
    from one task, one call at a time; ``close`` may come at any moment.
    A broker object serves one server: give each server its own.

    Options shared by every broker:
        unsubscribe_delay: seconds a topic's channel stays subscribed after its
            last local subscriber left (a client that reconnects causes no churn).
        max_backoff: the longest pause between reconnection attempts (at most 0.25 s).
        connect_timeout: seconds one connection attempt may take.
    """

    url: str = ""
    """Where the broker is, for log lines (no password)."""

    _in_use = False  # set while a BrokerLink (one server) drives this object

    def __init__(
        self,
        *,
        unsubscribe_delay: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        connect_timeout: float = 2.0,
    ) -> None:
        if unsubscribe_delay < 0:
            raise ValueError(f"unsubscribe_delay must be >= 0, got {unsubscribe_delay!r}")
        if not 0 < max_backoff <= MAX_BACKOFF:
            raise ValueError(f"max_backoff must be in (0, {MAX_BACKOFF}], got {max_backoff!r}")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be > 0, got {connect_timeout!r}")
        self.unsubscribe_delay = float(unsubscribe_delay)
        self.max_backoff = float(max_backoff)
        self.connect_timeout = float(connect_timeout)

    @abc.abstractmethod
    async def connect(self, receive: Receive, lost: Lost) -> None:
        """Open the connection, with no subscriptions.

        Afterwards call ``receive(topic, data)`` for every message on a
        subscribed topic, in arrival order, without awaiting anything in
        between (the node delivers it at once and never blocks), and
        ``lost(error)`` once if the connection breaks.

        Raises:
            Exception: the broker cannot be reached (any exception: the link
                retries after a short pause).
        """

    @abc.abstractmethod
    async def subscribe(self, topics: Sequence[str]) -> None:
        """Start receiving ``topics`` (never empty, never already subscribed)."""

    @abc.abstractmethod
    async def unsubscribe(self, topics: Sequence[str]) -> None:
        """Stop receiving ``topics`` (never empty, each subscribed)."""

    @abc.abstractmethod
    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> int | None:
        """Send ``(topic, data)`` messages, in this order.

        Returns:
            How many of them the broker refused while the connection stays
            usable (e.g. over its size limit); None or 0 if it took them all.

        Raises:
            Exception: the connection failed; messages not yet sent are lost.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; safe to call at any time, more than once."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
