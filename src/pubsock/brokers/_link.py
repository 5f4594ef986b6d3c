"""``BrokerLink``: one server's side of scale-out, on top of one ``Broker``.

It keeps the broker subscribed to exactly the topics with local subscribers
(subscribing on the first, unsubscribing a short delay after the last), wraps
each publish in an envelope with the node id and drops its own echoes, and
survives broker outages: publishes are counted as failed (and logged once per
outage), the connection is retried forever with a capped backoff, every topic
with local interest is subscribed again, and hooks report the outage.

One task talks to the broker. ``publish`` only appends to a list, so neither
a publish nor a slow broker ever blocks the event loop, and the broker's
reader delivers into the server's topics synchronously, so a slow WebSocket
never stalls it (the socket's own backpressure rules apply instead).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ..server.calls import start_coroutine
from ._base import Broker
from ._envelope import HEADER_SIZE, NODE_ID_SIZE, OPCODES, VERSION, header

__all__ = ["BrokerLink", "Deliver"]

Deliver = Callable[[str, int, bytes, bool], None]
"""``deliver(topic, opcode, payload, compress)``: hand a remote publish to local subscribers."""

MAX_PENDING_BYTES = 32 * 1024 * 1024  # envelopes waiting for the broker beyond this are dropped
CLOSE_TIMEOUT = 2.0  # seconds ``close`` waits to hand queued publishes to the broker

logger = logging.getLogger("pubsock.broker")

_STARTING, _UP, _DOWN = "starting", "up", "down"


class BrokerLink:
    """A server's connection to its broker: interest, envelopes, reconnection, accounting.

    Attributes (read-only for users):
        node_id: this node's 16-byte id, carried in every envelope it sends.
        connected: whether the broker is reachable now.
        published: envelopes handed to the broker.
        received: envelopes from other nodes delivered locally.
        failed_publishes: publishes that did not reach the broker (link down,
            queue over its limit, or lost when the connection broke).
        outages: how many times the link went down (or could not come up).
        reconnects: how many times it came back after an outage.
    """

    def __init__(
        self,
        broker: Broker,
        deliver: Deliver,
        has_subscribers: Callable[[str], int],
        *,
        on_disconnect: Callable[[BaseException | None], object] | None = None,
        on_reconnect: Callable[[], object] | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        if broker._in_use:
            raise ValueError(f"{broker!r} already serves another server: give each server its own broker object")
        broker._in_use = True  # until close()
        self.broker = broker
        self.node_id = os.urandom(NODE_ID_SIZE)
        self.connected = False
        self.published = 0
        self.received = 0
        self.failed_publishes = 0
        self.outages = 0
        self.reconnects = 0
        self._deliver = deliver
        self._has_subscribers = has_subscribers
        self._on_disconnect = on_disconnect
        self._on_reconnect = on_reconnect
        self._max_pending_bytes = max_pending_bytes
        self._headers = {
            (opcode, compress): header(self.node_id, opcode, compress) for opcode in OPCODES for compress in (False, True)
        }
        self._wanted: dict[str, None] = {}  # topics with local subscribers, or within the unsubscribe delay
        self._subscribed: set[str] = set()  # topics subscribed at the broker on this connection
        self._to_subscribe: dict[str, None] = {}
        self._to_unsubscribe: dict[str, None] = {}
        self._leaving: dict[str, asyncio.TimerHandle] = {}
        self._outgoing: list[tuple[str, bytes]] = []
        self._outgoing_bytes = 0
        self._state = _STARTING
        self._lost = False
        self._lost_error: BaseException | None = None
        self._generation = 0
        self._closing = False
        self._outage_logged = False
        self._overflow_logged = False
        self._outage_started = 0.0
        self._failed_at_outage = 0
        self._wake = asyncio.Event()
        self._first_attempt: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; return after the first attempt succeeded or failed."""
        self._loop = asyncio.get_running_loop()
        self._first_attempt = self._loop.create_future()
        self._task = self._loop.create_task(self._run(), name=f"pubsock broker link {self.broker.url}")
        await asyncio.shield(self._first_attempt)

    async def close(self) -> None:
        """Hand queued publishes to the broker (for a short while), then disconnect."""
        if self._closing:
            return
        self._closing = True
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        self._wake.set()
        task = self._task
        if task is not None:
            if self.connected:
                try:
                    await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
                except asyncio.TimeoutError:
                    pass
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self.connected = False
        await self._close_broker()
        self.broker._in_use = False
        if self._outgoing:
            self._drop(len(self._outgoing))

    # the publish path --------------------------------------------------------------------------

    def publish(self, topic: str, opcode: int, payload: bytes, compress: bool) -> None:
        """Queue one publish for the other nodes (never blocks, never raises for an outage)."""
        if not self.connected or self._outgoing_bytes > self._max_pending_bytes:
            self._drop(1)
            return
        data = self._headers[opcode, compress] + payload
        self._outgoing.append((topic, data))
        self._outgoing_bytes += len(data)
        if len(self._outgoing) == 1:
            self._wake.set()

    def _drop(self, count: int) -> None:
        """Count publishes that will not reach the broker; log once per outage or overflow."""
        self.failed_publishes += count
        if self._closing:
            return
        if self.connected:
            if not self._overflow_logged:
                self._overflow_logged = True
                logger.warning(
                    "broker %s cannot keep up: publishes are dropped while %d bytes wait for it",
                    self.broker.url,
                    self._outgoing_bytes,
                )
        elif not self._outage_logged:
            self._outage_logged = True
            logger.warning("broker %s is down: publishes to other nodes are dropped until it is back", self.broker.url)

    def _receive(self, topic: str, data: bytes) -> None:
        """A message from the broker: deliver it locally unless it is our own echo."""
        if len(data) < HEADER_SIZE or data[0] != VERSION or data.startswith(self.node_id, 2):
            return
        flags = data[1]
        opcode = flags & 0x7F  # bits 4-6 are reserved: an envelope that sets them is not ours to read
        if opcode not in OPCODES:
            return
        self.received += 1
        self._deliver(topic, opcode, data[HEADER_SIZE:], flags >= 0x80)

    # interest ----------------------------------------------------------------------------------

    def want(self, topic: str) -> None:
        """``topic`` has a local subscriber: make sure the broker sends it to us."""
        timer = self._leaving.pop(topic, None)
        if timer is not None:
            timer.cancel()
            return
        if topic in self._wanted or self._closing:
            return
        self._wanted[topic] = None
        if topic in self._to_unsubscribe:
            del self._to_unsubscribe[topic]  # still subscribed at the broker
        elif topic not in self._subscribed:
            self._to_subscribe[topic] = None
            self._wake.set()

    def left(self, topics: Iterable[str]) -> None:
        """Subscribers left ``topics``: unsubscribe those with none left, after the delay."""
        if self._closing:
            return
        loop = self._loop or asyncio.get_running_loop()
        delay = self.broker.unsubscribe_delay
        for topic in topics:
            if topic in self._wanted and topic not in self._leaving and not self._has_subscribers(topic):
                self._leaving[topic] = loop.call_later(delay, self._leave, topic)

    def _leave(self, topic: str) -> None:
        del self._leaving[topic]
        if self._has_subscribers(topic):
            return
        del self._wanted[topic]
        self._to_subscribe.pop(topic, None)
        if topic in self._subscribed:
            self._to_unsubscribe[topic] = None
            self._wake.set()

    @property
    def state(self) -> Literal["starting", "up", "down"]:
        """``"starting"`` until the first connection, then ``"up"`` or ``"down"`` (reconnecting, or closed)."""
        if self.connected:
            return "up"
        return "starting" if self._state == _STARTING else "down"

    @property
    def topics(self) -> list[str]:
        """The topics this node wants from the broker (local interest, or leaving after the delay)."""
        return list(self._wanted)

    # the connection task -----------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                try:
                    await self._connect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                    await self._close_broker()
                    self._went_down(exc)
                    delay = min(self.broker.max_backoff, 0.025 * 2**attempt) * random.uniform(0.5, 1.0)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                attempt = 0
                self._came_up()
                error = await self._pump()
                self.connected = False
                if not self._closing:
                    self._went_down(error)  # before anything else counts against the outage
                if self._outgoing:
                    self._drop(len(self._outgoing))
                    self._outgoing = []
                    self._outgoing_bytes = 0
                await self._close_broker()
        finally:
            self.connected = False
            self._first_done()

    async def _connect(self) -> None:
        self._lost = False
        self._lost_error = None
        self._generation += 1
        self._subscribed = set()
        self._to_unsubscribe.clear()
        self._to_subscribe = dict.fromkeys(self._wanted)
        generation = self._generation

        def lost(error: BaseException | None) -> None:
            if generation == self._generation:  # not a late report from an earlier connection
                self._connection_lost(error)

        await asyncio.wait_for(self.broker.connect(self._receive, lost), self.broker.connect_timeout)
        topics = list(self._to_subscribe)
        self._to_subscribe.clear()
        self._subscribed.update(topics)
        if topics:
            await asyncio.wait_for(self.broker.subscribe(topics), self.broker.connect_timeout)
        if self._lost:
            raise ConnectionError("the broker connection broke while subscribing") from self._lost_error

    def _connection_lost(self, error: BaseException | None) -> None:
        self._lost = True
        self._lost_error = error
        self._wake.set()
        if self._state == _UP and not self._closing:
            self._went_down(error)  # the outage starts now: publishes from here on count against it

    async def _pump(self) -> BaseException | None:
        """Carry subscriptions and publishes to the broker until the connection breaks or we close."""
        broker = self.broker
        while True:
            if not (self._outgoing or self._to_subscribe or self._to_unsubscribe or self._lost or self._closing):
                self._wake.clear()
                await self._wake.wait()
            if self._lost:
                return self._lost_error
            batch: list[tuple[str, bytes]] = []
            try:
                if self._to_unsubscribe:
                    topics = list(self._to_unsubscribe)
                    self._to_unsubscribe.clear()
                    self._subscribed.difference_update(topics)
                    await broker.unsubscribe(topics)
                if self._to_subscribe:
                    topics = list(self._to_subscribe)
                    self._to_subscribe.clear()
                    self._subscribed.update(topics)
                    await broker.subscribe(topics)
                while self._outgoing and not self._lost:
                    batch = self._outgoing
                    self._outgoing = []
                    self._outgoing_bytes = 0
                    refused = await broker.publish(batch) or 0
                    self.published += len(batch) - refused
                    self.failed_publishes += refused
                    batch = []
                self._overflow_logged = False
            except asyncio.CancelledError:
                self._drop(len(batch))
                raise
            except Exception as exc:  # noqa: BLE001 - a broken connection: reconnect
                self._drop(len(batch))
                return exc
            if self._closing and not self._outgoing:
                return None

    async def _close_broker(self) -> None:
        try:
            await asyncio.wait_for(self.broker.close(), self.broker.connect_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail; it is gone either way
            logger.debug("closing broker %s: %r", self.broker.url, exc)

    # state changes -----------------------------------------------------------------------------

    def _first_done(self) -> None:
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)

    def _came_up(self) -> None:
        assert self._loop is not None
        state, self._state = self._state, _UP
        self.connected = True
        self._first_done()
        if state == _STARTING:
            logger.info("broker %s connected", self.broker.url)
            return
        self.reconnects += 1
        lost = self.failed_publishes - self._failed_at_outage
        logger.warning(
            "broker %s is back after %.2f s; %d publishes were dropped meanwhile; %d topics subscribed again",
            self.broker.url,
            self._loop.time() - self._outage_started,
            lost,
            len(self._subscribed),
        )
        self._outage_logged = False
        self._call_hook(self._on_reconnect, "on_broker_reconnect")

    def _went_down(self, error: BaseException | None) -> None:
        assert self._loop is not None
        self._first_done()
        if self._state == _DOWN:
            logger.debug("broker %s: still unreachable (%r)", self.broker.url, error)
            return
        self._state = _DOWN
        self.connected = False
        self.outages += 1
        self._outage_started = self._loop.time()
        self._failed_at_outage = self.failed_publishes
        logger.warning("broker %s unreachable (%s); reconnecting", self.broker.url, _describe(error))
        self._call_hook(self._on_disconnect, "on_broker_disconnect", error)

    def _call_hook(self, hook: Callable[..., object] | None, name: str, *args: Any) -> None:
        if hook is None:
            return

        def failed(exc: BaseException) -> None:
            logger.error("the %s hook raised", name, exc_info=exc)

        try:
            result = hook(*args)
        except Exception as exc:  # noqa: BLE001 - user code: logged, the link goes on
            failed(exc)
            return
        if asyncio.iscoroutine(result):
            start_coroutine(result, failed)

    def __repr__(self) -> str:
        state = "connected" if self.connected else self._state
        return f"<BrokerLink {self.broker.url} {state} topics={len(self._wanted)}>"


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "connection closed"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
