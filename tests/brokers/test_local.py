"""Scale-out semantics on the in-process ``LocalBus``: no network between nodes, deterministic outages.

Everything here holds for Redis and NATS too (``test_scaleout.py`` runs the same checks on them);
the in-process bus makes the link's own rules (interest, echoes, accounting, hooks) quick to pin down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

import pubsock
from pubsock.brokers import BrokerLink, LocalBroker, LocalBus

from .helpers import Client, Node, node, path, sequence, wait_until


class CountingBroker(LocalBroker):
    """A LocalBroker that records the calls the link makes."""

    def __init__(self, bus: LocalBus, **options: float) -> None:
        super().__init__(bus, **options)
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.connects: list[float] = []

    async def connect(self, receive, lost) -> None:  # type: ignore[no-untyped-def]
        self.connects.append(asyncio.get_running_loop().time())
        await super().connect(receive, lost)

    async def subscribe(self, topics: Sequence[str]) -> None:
        self.calls.append(("subscribe", tuple(topics)))
        await super().subscribe(topics)

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        self.calls.append(("unsubscribe", tuple(topics)))
        await super().unsubscribe(topics)


def link(server: pubsock.Server) -> BrokerLink:
    assert server.broker_link is not None
    return server.broker_link


async def test_publish_reaches_every_node_and_skips_only_the_sender() -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus)) as a, node(LocalBroker(bus)) as b:
        ann = await Client.connect(a.port, "ann", path("ann", "room", "room"))
        amy = await Client.connect(a.port, "amy", path("amy", "room"))
        bob = await Client.connect(b.port, "bob", path("bob", "room", "room"))
        await wait_until(lambda: bus.subscribers("room") == 2, what="both nodes subscribed")
        await ann.send("from ann")
        await bob.send(b"from bob")
        await amy.until(2)
        await wait_until(lambda: len(bob.messages) == 1 and len(ann.messages) == 1)
        assert sorted(amy.messages, key=str) == [b"from bob", "from ann"]  # text stays text, binary stays binary
        assert bob.messages == ["from ann"]  # the sender is skipped on its own node only
        assert ann.messages == [b"from bob"]
        assert a.publish("room", "all") == 3 and b.publish("room", "all") == 3
        await wait_until(lambda: all(len(c.messages) >= 3 for c in (ann, bob)) and len(amy.messages) >= 4)
        assert amy.messages[2:] == ["all", "all"] and ann.messages[1:] == ["all", "all"]
        assert (link(a).received, link(b).received) == (2, 2)
        for client in (ann, amy, bob):
            await client.close()


async def test_publish_to_self_holds_locally_and_echoes_are_dropped() -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus), Node(publish_to_self=True)) as a, node(LocalBroker(bus)) as b:
        ann = await Client.connect(a.port, "ann", path("ann", "room", "room"))
        bob = await Client.connect(b.port, "bob", path("bob", "room"))
        await wait_until(lambda: bus.subscribers("room") == 2)
        for i in range(20):
            await ann.send(f"ann:{i}")
        await ann.until(20)
        await bob.until(20)
        await asyncio.sleep(0.05)
        assert sequence(ann.messages, "ann") == list(range(20))  # once each: its own echo through the bus is dropped
        assert sequence(bob.messages, "ann") == list(range(20))
        assert link(a).received == 0 and link(b).received == 20
        await ann.close()
        await bob.close()


async def test_subscriber_count_is_local() -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus)) as a, node(LocalBroker(bus)) as b:
        clients = [await Client.connect(a.port, f"a{i}", path(f"a{i}", "room")) for i in range(2)]
        clients.append(await Client.connect(b.port, "b", path("b", "room")))
        assert a.subscriber_count("room") == 2 and b.subscriber_count("room") == 1
        assert "other nodes" in (pubsock.Server.subscriber_count.__doc__ or "")
        for client in clients:
            await client.close()


async def test_a_node_without_subscribers_gets_no_traffic() -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus)) as a, node(LocalBroker(bus)) as b:
        ann = await Client.connect(a.port, "ann", path("ann", "room", "room"))
        amy = await Client.connect(a.port, "amy", path("amy", "room"))
        bob = await Client.connect(b.port, "bob", path("bob", "other", "room"))  # publishes to room, not subscribed
        for i in range(10):
            await ann.send(f"ann:{i}")
            await bob.send(f"bob:{i}")
        await amy.until(20)
        assert bus.subscribers("room") == 1 and bus.subscribers("other") == 1
        assert link(b).received == 0 and link(b).published == 10 and link(a).published == 10
        assert link(b).topics == ["other"] and link(a).topics == ["room"]
        for client in (ann, amy, bob):
            await client.close()


async def test_subscribe_on_first_unsubscribe_after_delay_without_churn() -> None:
    bus = LocalBus()
    broker = CountingBroker(bus, unsubscribe_delay=0.2)
    async with node(broker) as a:
        first = await Client.connect(a.port, "x", path("x", "room"))
        second = await Client.connect(a.port, "y", path("y", "room"))
        await wait_until(lambda: bus.subscribers("room") == 1)
        await first.close()
        await second.close()
        await wait_until(lambda: a.subscriber_count("room") == 0)
        again = await Client.connect(a.port, "x", path("x", "room"))  # a client reconnects within the delay
        await asyncio.sleep(0.3)
        assert broker.calls == [("subscribe", ("room",))]
        await again.close()
        await wait_until(lambda: bus.subscribers("room") == 0, timeout=2, what="the delayed unsubscribe")
        assert broker.calls == [("subscribe", ("room",)), ("unsubscribe", ("room",))]
        assert link(a).topics == []


async def test_ws_unsubscribe_releases_the_channel() -> None:
    bus = LocalBus()
    handlers = Node()
    handlers.message = lambda ws, message: ws.unsubscribe("room")  # type: ignore[method-assign]
    async with node(LocalBroker(bus, unsubscribe_delay=0.0), handlers) as a:
        client = await Client.connect(a.port, "x", path("x", "room"))
        await wait_until(lambda: bus.subscribers("room") == 1)
        await client.send("leave")
        await wait_until(lambda: bus.subscribers("room") == 0)
        await client.close()


async def test_publishes_from_close_handlers_reach_other_nodes_on_stop() -> None:
    bus = LocalBus()
    handlers = Node()
    handlers.on_close = lambda ws: ws.publish("room", f"{ws.data['name']} left")
    async with node(LocalBroker(bus)) as b:
        watcher = await Client.connect(b.port, "w", path("w", "room"))
        async with node(LocalBroker(bus), handlers) as a:
            await Client.connect(a.port, "ann", path("ann", "x"))
            await wait_until(lambda: bus.subscribers("room") == 1)
        await watcher.until(1)
        assert watcher.messages == ["ann left"]
        await watcher.close()


async def test_outage_keeps_sockets_counts_logs_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pubsock.broker")
    bus = LocalBus()
    events: list[str] = []

    def down(server: pubsock.Server, error: BaseException | None) -> None:
        events.append(f"down {type(error).__name__}")

    async def up(server: pubsock.Server) -> None:  # async hooks work too
        events.append("up")

    broker = CountingBroker(bus)
    hooks = {"on_broker_disconnect": down, "on_broker_reconnect": up}
    async with node(broker, **hooks) as a, node(LocalBroker(bus)) as b:
        ann = await Client.connect(a.port, "ann", path("ann", "room", "room"))
        bob = await Client.connect(b.port, "bob", path("bob", "room"))
        await wait_until(lambda: bus.subscribers("room") == 2)
        await ann.send("ann:0")
        await bob.until(1)
        bus.fail()
        await wait_until(lambda: not link(a).connected)
        for i in range(1, 101):
            await ann.send(f"ann:{i}")
        await wait_until(lambda: link(a).failed_publishes == 100)
        assert events == ["down ConnectionResetError"]
        down_logs = [r for r in caplog.records if "is down" in r.getMessage()]
        assert len(down_logs) == 1  # once per outage, not per message
        await asyncio.sleep(0.6)  # several refused attempts: still one disconnect
        gaps = [later - earlier for earlier, later in zip(broker.connects[1:], broker.connects[2:])]
        assert gaps and max(gaps) <= 0.25 + 0.05  # capped backoff
        bus.restore()
        await wait_until(lambda: link(a).connected and link(b).connected, timeout=1.0, what="reconnection within 1 s")
        await wait_until(lambda: bus.subscribers("room") == 2, timeout=1.0, what="resubscription")
        await wait_until(lambda: events == ["down ConnectionResetError", "up"])
        await ann.send("ann:101")
        await bob.until(2)
        assert sequence(bob.messages, "ann") == [0, 101]
        assert not ann.closed.is_set() and not bob.closed.is_set()  # no client socket closed
        assert (link(a).outages, link(a).reconnects) == (1, 1)
        assert any("is back" in r.getMessage() and "100 publishes" in r.getMessage() for r in caplog.records)
        await ann.close()
        await bob.close()


async def test_a_broker_down_at_startup_does_not_stop_the_server() -> None:
    bus = LocalBus()
    bus.fail()
    events: list[str] = []
    hooks = {"on_broker_disconnect": lambda s, e: events.append("down"), "on_broker_reconnect": lambda s: events.append("up")}
    async with node(LocalBroker(bus), **hooks) as a:
        client = await Client.connect(a.port, "x", path("x", "room", "room"))
        assert not link(a).connected and events == ["down"]
        assert a.publish("room", "local only") == 10  # local delivery goes on
        await client.until(1)
        bus.restore()
        await wait_until(lambda: bus.subscribers("room") == 1, timeout=1.0)
        assert events == ["down", "up"] and link(a).failed_publishes == 1
        await client.close()


async def test_hook_exceptions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalBus()

    def broken(server: pubsock.Server, error: BaseException | None) -> None:
        raise RuntimeError("hook bug")

    async with node(LocalBroker(bus), on_broker_disconnect=broken) as a:
        bus.fail()
        await wait_until(lambda: not link(a).connected)
        await wait_until(lambda: any("on_broker_disconnect hook raised" in r.getMessage() for r in caplog.records))
        bus.restore()


async def test_a_queue_that_outgrows_its_limit_drops_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus)) as a:
        link(a)._max_pending_bytes = 1000
        for _ in range(50):
            a.publish("room", b"x" * 100)  # all in one iteration: the link's task has no chance to send
        accepted = 9  # 118-byte envelopes: the queue takes more while it holds at most 1000 bytes
        assert link(a).failed_publishes == 50 - accepted
        assert len([r for r in caplog.records if "cannot keep up" in r.getMessage()]) == 1
        await wait_until(lambda: link(a).published == accepted)


async def test_a_server_without_websocket_handlers_can_still_publish_to_other_nodes() -> None:
    bus = LocalBus()
    async with node(LocalBroker(bus)) as b, pubsock.serve(port=0, broker=LocalBroker(bus)) as http_only:
        client = await Client.connect(b.port, "x", path("x", "room"))
        await wait_until(lambda: bus.subscribers("room") == 1)
        assert http_only.publish("room", "from the API node") == 0  # no local subscriber
        await client.until(1)
        assert client.messages == ["from the API node"]
        await client.close()


async def test_compressed_publishes_are_compressed_by_the_receiving_node() -> None:
    bus = LocalBus()
    from websockets.asyncio.client import connect

    async with node(LocalBroker(bus)) as a, node(LocalBroker(bus), Node(per_message_deflate=True)) as b:
        async with connect(f"ws://127.0.0.1:{b.port}{path('x', 'room')}") as ws:
            assert ws.response is not None and "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
            await wait_until(lambda: bus.subscribers("room") == 1)
            a.publish("room", "z" * 10000, compress=True)
            assert await asyncio.wait_for(ws.recv(), 5) == "z" * 10000


def test_local_urls_name_process_wide_buses() -> None:
    first = pubsock.brokers.broker_from_url("local://chat")
    second = pubsock.brokers.broker_from_url("local://chat?unsubscribe_delay=0.5")
    other = pubsock.brokers.broker_from_url("local://")
    assert isinstance(first, LocalBroker) and isinstance(second, LocalBroker) and isinstance(other, LocalBroker)
    assert first.bus is second.bus and other.bus is not first.bus
    assert second.unsubscribe_delay == 0.5


async def test_a_broker_object_serves_one_server_at_a_time() -> None:
    broker = LocalBroker(LocalBus())
    async with node(broker):
        with pytest.raises(ValueError, match="already serves another server"):
            pubsock.Server(broker=broker)
    async with node(broker) as again:  # free again once its server stopped
        assert link(again).connected


class FlakyBroker(LocalBroker):
    """Fails the first subscribe and the first publish batch, as a connection that breaks at that moment."""

    def __init__(self, bus: LocalBus) -> None:
        super().__init__(bus)
        self.fail_subscribe = 1
        self.fail_publish = 0

    async def subscribe(self, topics: Sequence[str]) -> None:
        if self.fail_subscribe:
            self.fail_subscribe -= 1
            raise ConnectionResetError("broke while subscribing")
        await super().subscribe(topics)

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> int | None:
        if self.fail_publish:
            self.fail_publish -= 1
            raise ConnectionResetError("broke while publishing")
        return await super().publish(messages)


async def test_a_connection_that_breaks_while_subscribing_or_publishing_is_retried() -> None:
    bus = LocalBus()
    broker = FlakyBroker(bus)
    async with node(broker) as a, node(LocalBroker(bus)) as b:
        client = await Client.connect(a.port, "x", path("x", "room", "room"))  # subscribe fails once
        await wait_until(lambda: bus.subscribers("room") == 1, timeout=1.0)
        assert link(a).outages == 1 and link(a).reconnects == 1
        remote = await Client.connect(b.port, "r", path("r", "room"))
        await wait_until(lambda: bus.subscribers("room") == 2)
        broker.fail_publish = 1
        await client.send("lost")  # the batch that breaks is counted, the link reconnects
        await wait_until(lambda: link(a).reconnects == 2, timeout=1.0)
        await client.send("after")
        await remote.until(1)
        assert remote.messages == ["after"] and link(a).failed_publishes == 1 and link(a).outages == 2
        for c in (client, remote):
            await c.close()


async def test_interest_that_comes_back_before_the_unsubscribe_is_sent_keeps_the_channel() -> None:
    bus = LocalBus()
    broker = CountingBroker(bus)
    async with node(broker) as a:
        client = await Client.connect(a.port, "x", path("x", "room"))
        await wait_until(lambda: bus.subscribers("room") == 1)
        await client.close()
        the_link = link(a)
        await wait_until(lambda: "room" in the_link._leaving)  # the unsubscribe delay runs
        the_link._leaving["room"].cancel()
        the_link._leave("room")  # as if the delay ran out: an unsubscribe is queued...
        assert the_link._to_unsubscribe == {"room": None}
        the_link.want("room")  # ...and a subscriber arrives before the link's task sent it
        the_link.want("room")
        await asyncio.sleep(0.05)
        assert broker.calls == [("subscribe", ("room",))] and bus.subscribers("room") == 1
        assert the_link.topics == ["room"]
