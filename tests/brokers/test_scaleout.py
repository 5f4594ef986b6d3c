"""Scale-out through real brokers: every test runs against Redis and against NATS, on both event loops.

Two nodes are two ``Server`` objects with a broker connection each (in one process, so that the test can
look inside them); ``test_processes.py`` does the same with separate processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from urllib.parse import quote

import pytest

import pubsock
from pubsock.brokers import BrokerLink

from .conftest import BrokerServer
from .helpers import Client, Node, StalledClient, node, path, sequence, wait_until, wait_until_async

pytestmark = pytest.mark.timeout(60)


def link(server: pubsock.Server) -> BrokerLink:
    assert server.broker_link is not None
    return server.broker_link


async def subscriptions(broker: BrokerServer, topic: str, expected: int, timeout: float = 5.0) -> None:
    """Wait until the broker sends ``topic`` to ``expected`` connections."""
    await wait_until_async(lambda: broker.subscriptions(topic) == expected, timeout, f"{expected} subscriptions to {topic!r}")


async def test_every_publish_reaches_every_subscriber_once_in_order(broker: BrokerServer) -> None:
    handlers = {"a": Node(publish_to_self=True), "b": Node(publish_to_self=True)}
    async with node(broker.url, handlers["a"]) as a, node(broker.url, handlers["b"]) as b:
        names = ["a0", "a1", "a2", "b0", "b1", "b2"]
        clients = [await Client.connect((a if n[0] == "a" else b).port, n, path(n, "room", "room")) for n in names]
        await subscriptions(broker, "room", 2)
        count = 40

        async def talk(client: Client) -> None:
            for i in range(count):
                await client.send(f"{client.name}:{i}")

        await asyncio.gather(*(talk(c) for c in clients))
        for client in clients:
            await client.until(count * len(clients), timeout=10)
        await asyncio.sleep(0.1)  # nothing more arrives: exactly once
        for client in clients:
            assert len(client.messages) == count * len(clients), client.name
            for publisher in names:
                assert sequence(client.messages, publisher) == list(range(count)), (client.name, publisher)
        assert link(a).published == link(b).published == count * 3
        assert link(a).received == link(b).received == count * 3  # own echoes are not counted nor delivered
        for client in clients:
            await client.close()


async def test_a_node_without_subscribers_gets_none_of_the_topic(broker: BrokerServer) -> None:
    url = broker.url + "&unsubscribe_delay=0.1"
    async with node(url) as a, node(url) as b:
        listener = await Client.connect(a.port, "l", path("l", "room"))
        talker = await Client.connect(b.port, "t", path("t", "other", "room"))
        await subscriptions(broker, "room", 1)
        await subscriptions(broker, "other", 1)
        for i in range(30):
            await talker.send(f"t:{i}")
        await listener.until(30)
        assert link(b).received == 0 and link(b).published == 30
        assert link(b).topics == ["other"]
        assert await asyncio.to_thread(broker.subscriptions, "room") == 1
        visitor = await Client.connect(b.port, "v", path("v", "room"))  # first local subscriber on b
        await subscriptions(broker, "room", 2)
        await visitor.close()  # last one leaves: b unsubscribes after the delay
        await subscriptions(broker, "room", 1)
        for client in (listener, talker):
            await client.close()


@pytest.mark.parametrize(
    "topics",
    [("a.b", "a.*", "a.>", "a"), ("with space", "with\tspace", "%41", "A"), ("ünï", "\U0001f600", "x" * 2000, "x" * 2001)],
)
async def test_topic_names_never_cross(broker: BrokerServer, topics: tuple[str, ...]) -> None:
    async with node(broker.url) as a, node(broker.url) as b:
        listeners = {}
        for i, topic in enumerate(topics):
            listeners[topic] = await Client.connect(b.port, f"l{i}", f"/?name=l{i}&sub={quote(topic, safe='')}")
        for topic in topics:
            await subscriptions(broker, topic, 1)
            a.publish(topic, f"to {topic}")
        for topic, listener in listeners.items():
            await listener.until(1)
        await asyncio.sleep(0.05)
        for topic, listener in listeners.items():
            assert listener.messages == [f"to {topic}"], topic
            await listener.close()


async def test_binary_payloads_cross_intact_and_oversize_ones_are_counted(broker: BrokerServer) -> None:
    async with node(broker.url) as a, node(broker.url) as b:
        listener = await Client.connect(b.port, "l", path("l", "room"))
        await subscriptions(broker, "room", 1)
        payload = os.urandom(512 * 1024) + b"\r\n*3\r\n$7\r\nPUBLISH\r\n"
        a.publish("room", payload)
        a.publish("room", b"")
        await listener.until(2)
        assert listener.messages == [payload, b""]
        if broker.kind == "nats":  # the server's max_payload is 1 MB: the broker refuses, the link stays up
            a.publish("room", b"x" * (2 * 1024 * 1024))
            await wait_until(lambda: link(a).failed_publishes == 1)
            a.publish("room", b"after")
            await listener.until(3)
            assert listener.messages[2] == b"after" and link(a).connected and link(a).outages == 0
        await listener.close()


async def test_broker_killed_and_restarted_mid_stream(own_broker: BrokerServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pubsock.broker")
    events: dict[str, list[str]] = {"a": [], "b": []}

    def hooks(name: str) -> dict[str, object]:
        return {
            "on_broker_disconnect": lambda server, error: events[name].append("down"),
            "on_broker_reconnect": lambda server: events[name].append("up"),
        }

    async with node(own_broker.url, **hooks("a")) as a, node(own_broker.url, **hooks("b")) as b:
        local = await Client.connect(a.port, "local", path("local", "room"))
        remote = await Client.connect(b.port, "remote", path("remote", "room"))
        await subscriptions(own_broker, "room", 2)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        sent = 0

        async def publisher() -> None:
            nonlocal sent
            while not stop.is_set():
                a.publish("room", f"p:{sent}")
                sent += 1
                await asyncio.sleep(0.004)

        task = loop.create_task(publisher())
        await remote.until(50)
        await asyncio.to_thread(own_broker.kill)
        await wait_until(lambda: not link(a).connected and not link(b).connected, what="both nodes see the outage")
        await asyncio.sleep(0.3)
        before_restart = len(remote.messages)
        await asyncio.to_thread(own_broker.start)
        restarted = loop.time()
        await wait_until(lambda: len(remote.messages) > before_restart, timeout=1.0, what="delivery resumed within 1 s")
        resumed = remote.arrivals[before_restart]
        await remote.until(before_restart + 50)
        stop.set()
        await task
        await local.until(sent)
        await subscriptions(own_broker, "room", 2, timeout=1.0)  # both nodes subscribed again

        assert resumed - restarted <= 1.0
        seqs = sequence(remote.messages, "p")
        gaps = [(x, y) for x, y in zip(seqs, seqs[1:]) if y != x + 1]
        assert len(gaps) == 1 and gaps[0][0] < gaps[0][1], gaps  # one contiguous window lost, no duplicates
        assert seqs[0] == 0
        assert sequence(local.messages, "p") == list(range(sent))  # local delivery never stopped
        assert not local.closed.is_set() and not remote.closed.is_set()  # no client socket closed
        assert events == {"a": ["down", "up"], "b": ["down", "up"]}
        assert link(a).failed_publishes > 0 and link(a).outages == 1 and link(a).reconnects == 1
        down = [r for r in caplog.records if "is down" in r.getMessage()]
        assert len(down) == 1  # node a logged its dropped publishes once
        await local.close()
        await remote.close()


async def test_a_stalled_subscriber_does_not_stall_its_node(broker: BrokerServer) -> None:
    handlers = Node(backpressure_limit=64 * 1024)
    async with node(broker.url) as a, node(broker.url, handlers) as b:
        stalled = await StalledClient.connect(b.port, path("stalled", "room"))
        reader = await Client.connect(b.port, "reader", path("reader", "room"))
        await subscriptions(broker, "room", 1)
        before = await asyncio.to_thread(_pubsub_clients, broker)
        chunk = b"m" * (16 * 1024)
        total = 600  # ~10 MB through the broker, most of it more than the stalled socket can take
        for i in range(total):
            a.publish("room", i.to_bytes(4, "big") + chunk)
            if i % 20 == 19:
                await asyncio.sleep(0)  # let the link's task send
        await reader.until(total, timeout=20)
        assert [int.from_bytes(m[:4], "big") for m in reader.messages] == list(range(total))  # type: ignore[index]
        stuck = handlers.sockets["stalled"]
        assert stuck.ready_state == 1 and stuck.buffered_amount > 64 * 1024  # it stopped reading; it was dropped for
        assert link(b).connected and link(b).outages == 0 and link(b).received == total
        assert await asyncio.to_thread(_pubsub_clients, broker) == before  # the broker did not cut the node's link
        health = await Client.connect(b.port, "late", path("late", "room"))  # the node still serves new clients
        a.publish("room", b"late")
        await health.until(1)
        stalled.close()
        for client in (reader, health):
            await client.close()


def _pubsub_clients(broker: BrokerServer) -> object:
    """Identifiers of the broker's subscribing connections (Redis client ids, NATS connection ids)."""
    if broker.kind == "redis":
        listing = broker.redis_command("CLIENT", "LIST", "TYPE", "pubsub")
        assert isinstance(listing, str)
        return sorted(line.split()[0] for line in listing.splitlines() if "name=pubsock-sub" in line)
    connz = broker.monitor("connz?limit=1024")
    return sorted(c["cid"] for c in connz["connections"])  # type: ignore[index, union-attr]
