"""``LocalBus``: an in-process broker, for servers that share one event loop.

Servers whose ``LocalBroker`` objects share a bus share their topics, exactly
as nodes behind Redis or NATS do (envelopes, interest, echo suppression), with
no network. ``fail()`` and ``restore()`` simulate an outage. ``local://NAME``
URLs name process-wide buses.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Broker, Lost, Receive

__all__ = ["LocalBus", "LocalBroker", "named_bus"]

_named: dict[str, LocalBus] = {}


def named_bus(name: str) -> LocalBus:
    """The process-wide bus called ``name`` (created on first use)."""
    bus = _named.get(name)
    if bus is None:
        bus = _named[name] = LocalBus()
    return bus


class LocalBus:
    """Topics shared by the ``LocalBroker`` connections of one process."""

    def __init__(self) -> None:
        self.available = True
        self._members: dict[LocalBroker, None] = {}
        self._topics: dict[str, dict[LocalBroker, None]] = {}

    def subscribers(self, topic: str) -> int:
        """How many connections receive ``topic`` (Redis's ``PUBSUB NUMSUB``)."""
        return len(self._topics.get(topic, ()))

    def fail(self) -> None:
        """Simulate an outage: every connection breaks, new ones are refused until ``restore()``."""
        self.available = False
        for member in list(self._members):
            member._disconnect(ConnectionResetError("the local bus failed"))

    def restore(self) -> None:
        """End a simulated outage: connections succeed again."""
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise ConnectionRefusedError("the local bus is down")


class LocalBroker(Broker):
    """A connection to a ``LocalBus`` (by default the process-wide bus named "")."""

    def __init__(self, bus: LocalBus | None = None, *, name: str = "", **options: float) -> None:
        super().__init__(**options)
        self.bus = bus if bus is not None else named_bus(name)
        self.url = f"local://{name}"
        self._receive: Receive | None = None
        self._lost: Lost | None = None
        self._topics: set[str] = set()

    async def connect(self, receive: Receive, lost: Lost) -> None:
        self.bus._check()
        self._receive = receive
        self._lost = lost
        self.bus._members[self] = None

    async def subscribe(self, topics: Sequence[str]) -> None:
        self._check()
        for topic in topics:
            self.bus._topics.setdefault(topic, {})[self] = None
            self._topics.add(topic)

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        self._check()
        for topic in topics:
            self._forget(topic)

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        topics = self.bus._topics
        for topic, data in messages:
            for member in list(topics.get(topic, ())):
                if member._receive is not None:
                    member._receive(topic, data)

    async def close(self) -> None:
        self._disconnect(None)

    def _check(self) -> None:
        if self._receive is None:
            raise ConnectionResetError("not connected to the local bus")

    def _forget(self, topic: str) -> None:
        self._topics.discard(topic)
        members = self.bus._topics.get(topic)
        if members is not None:
            members.pop(self, None)
            if not members:
                del self.bus._topics[topic]

    def _disconnect(self, error: BaseException | None) -> None:
        lost = self._lost
        self._receive = self._lost = None
        self.bus._members.pop(self, None)
        for topic in list(self._topics):
            self._forget(topic)
        if lost is not None and error is not None:
            lost(error)
