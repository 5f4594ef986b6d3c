"""``server.stats()`` and the ``metrics_path`` endpoint: exact counter values after scripted sessions.

Over real loopback sockets: messages and bytes in and out, publishes, drops under a small
backpressure limit, closes by ``close_on_backpressure_limit``, by idle timeout (the socket's
``_idle_tick``, as the server's sweeper calls it) and by protocol failures; the Prometheus
text parsed back; a server without a broker reports the link as absent, one with a local
broker as up. Sans-I/O: the hub's counters on a fake transport, both implementations.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import pubsock
from _clients import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, App, RawClient, connected, next_iteration, serving, wait_for
from pubsock.brokers import LocalBroker, LocalBus
from pubsock.protocol.frames import build_frame
from pubsock.server.stats import METRICS, METRICS_CONTENT_TYPE, ServerStats, prometheus_text
from rawws import RawClient as HttpClient, build_frame as client_frame

pytestmark = pytest.mark.timeout(30)

SMALL = 4096  # SO_RCVBUF / SO_SNDBUF of a stalled peer (the kernel doubles it)

ZERO: ServerStats = {
    "websockets_open": 0,
    "websockets_opened": 0,
    "topics": 0,
    "subscriptions": 0,
    "messages_in": 0,
    "bytes_in": 0,
    "messages_out": 0,
    "bytes_out": 0,
    "publishes": 0,
    "dropped": 0,
    "reads_paused": 0,
    "closed_backpressure": 0,
    "closed_idle_timeout": 0,
    "closed_too_big": 0,
    "closed_protocol_error": 0,
    "broker": "absent",
    "broker_published": 0,
    "broker_received": 0,
    "broker_failed_publishes": 0,
    "broker_outages": 0,
    "broker_reconnects": 0,
}


def expect(**changes: int | str) -> ServerStats:
    """The stats of a fresh broker-less server, with ``changes``."""
    stats: dict[str, object] = {**ZERO}
    for key, value in changes.items():
        assert key in stats, key
        stats[key] = value
    return stats  # type: ignore[return-value]


def out(opcode: int, payload: bytes) -> int:
    """The size of the (unmasked) frame the server sends for ``payload``."""
    return len(build_frame(opcode, payload))


def inbound(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (rawws.build_frame: _clients.client_frame fails on lengths that are multiples of 4)."""
    return client_frame(opcode, payload, fin=fin)


async def settle() -> None:
    """Let the server read what the clients wrote and flush its answers."""
    for _ in range(5):
        await next_iteration()
        await asyncio.sleep(0.01)


# the scripted session -------------------------------------------------------------------------


async def test_a_fresh_server_counts_nothing() -> None:
    app = App()
    async with serving(app) as server:
        assert server.stats() == ZERO
        assert list(server.stats()) == list(ServerStats.__annotations__)  # stable keys, in the documented order


async def test_messages_bytes_and_publishes_are_counted_exactly() -> None:
    app = App()
    app.on_open = lambda ws: ws.subscribe("room")
    app.on_message = lambda ws, message: ws.publish("room", message)  # to the two others
    async with serving(app) as server, connected(server.port, "a", "b", "c") as (a, b, c):
        assert server.stats() == expect(websockets_open=3, websockets_opened=3, topics=1, subscriptions=3)
        sent_in = [
            inbound(OP_TEXT, b"hello"),
            inbound(OP_BINARY, bytes(300)),  # a 16-bit length
            inbound(OP_TEXT, b"frag", fin=False),  # one message in two frames
            inbound(0, b"mented"),
            inbound(OP_PING, b"p"),  # bytes in, but not a message; its pong is not a message out
        ]
        for frame in sent_in:
            assert a.transport is not None
            a.transport.write(frame)
        await b.until(3)
        await a.until(1)  # the pong
        assert a.messages == [(OP_PONG, b"p")]
        assert server.publish("room", "all") == 3
        assert app.sockets[1].send("direct") == 6
        assert server.publish("nobody-here", "lost") == 0  # a publish, but no message out
        await c.until(4)
        await b.until(5)
        expected_out = 2 * (out(OP_TEXT, b"hello") + out(OP_BINARY, bytes(300)) + out(OP_TEXT, b"fragmented"))
        expected_out += 3 * out(OP_TEXT, b"all") + out(OP_TEXT, b"direct")
        stats = server.stats()
        assert stats == expect(
            websockets_open=3,
            websockets_opened=3,
            topics=1,
            subscriptions=3,
            messages_in=3,
            bytes_in=sum(map(len, sent_in)),
            messages_out=2 * 3 + 3 + 1,
            bytes_out=expected_out,
            publishes=3 + 2,
        )
        # the clients received exactly the counted bytes, plus the pong
        assert a.bytes_received + b.bytes_received + c.bytes_received == expected_out + out(OP_PONG, b"p")

        # a socket's counts outlive its connection
        a.abort()
        await wait_for(lambda: len(server._live) == 2, what="a gone")
        after = server.stats()
        assert after == {**stats, "websockets_open": 2, "subscriptions": 2}
        app.sockets[1].subscribe("other")
        app.sockets[2].subscribe("other")
        assert server.stats()["topics"] == 2
        assert server.stats()["subscriptions"] == 4


async def test_one_read_of_many_messages_counts_each() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        batch = b"".join(inbound(OP_TEXT, str(i).encode()) for i in range(100))
        assert a.transport is not None
        a.transport.write(batch)
        await wait_for(lambda: len(app.received) == 100, what="100 messages")
        stats = server.stats()
        assert (stats["messages_in"], stats["bytes_in"]) == (100, len(batch))


# backpressure ---------------------------------------------------------------------------------


def numbered(i: int, size: int) -> bytes:
    head = f"{i:06d}|".encode()
    return head + bytes([i % 256]) * (size - len(head))


async def stall(app: App, port: int, name: str) -> tuple[RawClient, pubsock.ServerWebSocket]:
    client = await RawClient.connect(port, f"/?name={name}", rcvbuf=SMALL)
    client.pause_reading()
    return client, app.by_name[name]


async def test_sends_dropped_under_a_small_backpressure_limit() -> None:
    app = App(backpressure_limit=16 * 1024, sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port, "slow")
        try:
            results: list[int] = []
            while results.count(0) < 3:
                results.append(ws.send(numbered(len(results), 8000)))
                await next_iteration()
                assert len(results) < 200, "never dropped"
            queued = [r for r in results if r != 0]
            stats = server.stats()
            assert stats["dropped"] == 3
            assert stats["messages_out"] == len(queued)
            assert stats["bytes_out"] == len(queued) * out(OP_BINARY, bytes(8000))
            assert stats["closed_backpressure"] == 0
            assert stats["websockets_open"] == 1
        finally:
            await client.close()


async def test_a_publish_drops_only_for_the_stalled_subscriber() -> None:
    app = App(backpressure_limit=16 * 1024, sndbuf={"slow": SMALL})
    app.on_open = lambda ws: ws.subscribe("room")
    async with serving(app) as server, connected(server.port, "fast") as (fast,):
        slow, _ = await stall(app, server.port, "slow")
        try:
            results: list[int] = []
            while 0 not in results:
                results.append(server.publish("room", numbered(len(results), 8000)))
                await next_iteration()
                assert len(results) < 200, "never dropped"
            n = len(results)
            stats = server.stats()
            assert stats["publishes"] == n
            assert stats["dropped"] == 1  # the slow one, once; the fast one got all n
            assert stats["messages_out"] == 2 * n - 1
            assert stats["bytes_out"] == (2 * n - 1) * out(OP_BINARY, bytes(8000))
            await fast.until(n)
        finally:
            await slow.close()


async def test_a_close_by_close_on_backpressure_limit() -> None:
    app = App(backpressure_limit=16 * 1024, close_on_backpressure_limit=True, sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port, "slow")
        try:
            results: list[int] = []
            while not results or results[-1] != 0:
                results.append(ws.send(numbered(len(results), 8000)))
                await next_iteration()
                assert len(results) < 200, "never dropped"
            assert app.closes == [(ws, 1006, "")]
            assert ws.send(b"after") == 0  # a closed socket: neither a message out nor a drop
            stats = server.stats()
            assert stats["closed_backpressure"] == 1
            assert stats["dropped"] == 1
            assert stats["messages_out"] == len(results) - 1
            assert stats["websockets_open"] == 0
            assert stats["websockets_opened"] == 1
        finally:
            await client.close()


# closes by the server -------------------------------------------------------------------------


async def test_closes_by_idle_timeout_with_and_without_pings() -> None:
    for app in (App(idle_timeout=8, send_pings=False), App(idle_timeout=8, send_pings=True)):
        async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
            quiet, lively = app.sockets
            for _ in range(3):
                quiet._idle_tick(4)
                lively._idle_tick(4)
                lively._idle = 0  # as inbound data does
            assert (quiet.ready_state, lively.ready_state) == (3, 1)
            assert app.closes == [(quiet, 1006, "WebSocket timed out from inactivity")]
            assert server.stats() == expect(
                websockets_open=1,
                websockets_opened=2,
                subscriptions=0,
                closed_idle_timeout=1,
            )
            quiet._idle_tick(4)  # a closed socket is not counted again
            assert server.stats()["closed_idle_timeout"] == 1


async def test_closes_by_protocol_failure_by_cause() -> None:
    app = App(max_payload_length=100)
    async with serving(app) as server, connected(server.port, "big", "bad", "fine") as (big, bad, fine):
        assert big.transport is not None and bad.transport is not None
        big.transport.write(inbound(OP_BINARY, bytes(101)))
        bad.transport.write(b"\x81\x05hello")  # unmasked
        fine.send_close(1000)
        await wait_for(lambda: len(app.closes) == 3, what="three closes")
        stats = server.stats()
        assert (stats["closed_too_big"], stats["closed_protocol_error"]) == (1, 1)
        assert (stats["closed_idle_timeout"], stats["closed_backpressure"]) == (0, 0)  # a client's close is none of these
        assert stats["websockets_open"] == 0
        assert stats["messages_in"] == 0
        assert stats["bytes_in"] == len(inbound(OP_BINARY, bytes(101))) + 7 + len(inbound(0x8, b"\x03\xe8"))


# the link -------------------------------------------------------------------------------------


async def test_a_broker_less_server_reports_the_link_absent() -> None:
    app = App()
    async with serving(app) as server:
        assert server.broker_link is None
        stats = server.stats()
        assert stats["broker"] == "absent"
        assert [stats[key] for key in stats if key.startswith("broker_")] == [0] * 5  # type: ignore[literal-required]
        assert 'pubsock_broker_state{state="absent"} 1' in prometheus_text(stats).splitlines()


def upgrade(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    return None if server.upgrade(request) else pubsock.Response("", status=400)


async def test_a_server_with_a_broker_reports_its_link() -> None:
    bus = LocalBus()
    app, other = App(), App()
    app.on_open = other.on_open = lambda ws: ws.subscribe("room")
    async with (
        pubsock.serve(upgrade, websocket=app, port=0, broker=LocalBroker(bus)) as server,
        pubsock.serve(upgrade, websocket=other, port=0, broker=LocalBroker(bus)) as node,
        pubsock.serve(upgrade, port=0, broker=LocalBroker(bus)) as bare,  # no websocket handlers
        connected(node.port, "there") as (there,),
    ):
        assert server.stats()["broker"] == "up"
        await wait_for(lambda: bus.subscribers("room") == 1, what="interest")
        server.publish("room", "to the others")
        bare.publish("room", "from a node without websockets")
        await there.until(2)
        assert there.texts() == ["to the others", "from a node without websockets"]
        stats, remote, bare_stats = server.stats(), node.stats(), bare.stats()
        assert (stats["publishes"], stats["broker_published"], stats["broker_received"]) == (1, 1, 0)
        assert (remote["publishes"], remote["broker_published"], remote["broker_received"]) == (0, 0, 2)
        assert (remote["messages_out"], remote["bytes_out"]) == (2, there.bytes_received)
        assert (bare_stats["publishes"], bare_stats["broker_published"]) == (1, 1)
        bus.fail()
        await wait_for(lambda: server.stats()["broker"] == "down", what="down")
        server.publish("room", "lost")
        stats = server.stats()
        assert (stats["broker_failed_publishes"], stats["broker_outages"], stats["publishes"]) == (1, 1, 2)
        bus.restore()
        await wait_for(lambda: server.stats()["broker"] == "up", what="up again")
        assert server.stats()["broker_reconnects"] == 1


# the metrics endpoint -------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([a-z_]+)="([a-z_]+)"\})? (\d+)$')


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, str], int]]:
    """Parse Prometheus text: ({name: (type, help)}, {(name, label value): value})."""
    assert text.endswith("\n")
    described: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, str], int] = {}
    helps: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helps and name not in described, line  # HELP, then TYPE, once per metric
            described[name] = (kind, helps[name])
        else:
            match = SAMPLE.match(line)
            assert match, line
            name, label, label_value, value = match.groups()
            assert name in described, f"{name} sampled before its TYPE"
            samples[name, label_value or ""] = int(value)
    return described, samples


async def get(port: int, target: str, method: str = "GET") -> Any:
    client = await HttpClient.connect(port)
    try:
        client.write(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return await client.read_response(head_request=method == "HEAD")
    finally:
        await client.close()


async def test_the_metrics_endpoint_serves_prometheus_text() -> None:
    fetched: list[str] = []

    def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
        fetched.append(request.target)
        if server.upgrade(request, data=request.query.get("name")):
            return None
        return pubsock.Response("app")

    app = App()
    app.on_open = lambda ws: ws.subscribe("room")
    async with pubsock.serve(fetch, websocket=app, port=0, metrics_path="/metrics") as server:
        async with connected(server.port, "a", "b") as (a, b):
            a.send("hi")
            server.publish("room", "x")
            await b.until(1)
            await a.until(1)
            fetched.clear()
            response = await get(server.port, "/metrics")
            stats = server.stats()
        assert fetched == []  # answered by the server itself
        assert response.status == 200
        assert response.header("content-type") == METRICS_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
        described, samples = parse_exposition(response.body.decode())
        for name, (kind, help_text) in described.items():
            assert name.startswith("pubsock_") and help_text
            assert kind in ("counter", "gauge")
            assert name.endswith("_total") == (kind == "counter"), name
        for key, (name, _, _) in METRICS.items():
            if key == "broker":
                assert {state: samples[name, state] for state in ("absent", "starting", "up", "down")} == {
                    "absent": 1, "starting": 0, "up": 0, "down": 0
                }
            elif key.startswith("closed_"):
                assert samples[name, key[len("closed_"):]] == 0
            else:
                assert samples[name, ""] == stats[key], key  # type: ignore[literal-required]
        assert samples["pubsock_websockets_open", ""] == 2
        assert samples["pubsock_messages_received_total", ""] == 1
        assert samples["pubsock_messages_sent_total", ""] == 2
        assert samples["pubsock_publishes_total", ""] == 1
        assert len(samples) == len(METRICS) + 3  # four broker states for one key

        # a query string still names the path; HEAD has no body; other methods, 405; other paths go to fetch
        assert (await get(server.port, "/metrics?x=1")).status == 200
        head = await get(server.port, "/metrics", "HEAD")
        assert (head.status, head.body) == (200, b"")
        post = await get(server.port, "/metrics", "POST")
        assert (post.status, post.header("allow")) == (405, "GET, HEAD")
        assert fetched == []
        other = await get(server.port, "/metrics/more")
        assert (other.status, other.body, fetched) == (200, b"app", ["/metrics/more"])


async def test_without_metrics_path_fetch_answers_every_path() -> None:
    async with pubsock.serve(lambda r, s: pubsock.Response("app"), port=0) as server:
        assert server.metrics_path is None
        assert (await get(server.port, "/metrics")).body == b"app"


def test_metrics_path_must_be_a_path() -> None:
    for bad in ("metrics", "", 3):
        with pytest.raises(ValueError, match="metrics_path"):
            pubsock.Server(metrics_path=bad)  # type: ignore[arg-type]


def test_prometheus_text_of_given_stats() -> None:
    stats = expect(messages_in=7, closed_too_big=2, broker="down", broker_failed_publishes=4)
    lines = prometheus_text(stats).splitlines()
    assert "pubsock_messages_received_total 7" in lines
    assert 'pubsock_websockets_closed_total{cause="too_big"} 2' in lines
    assert 'pubsock_websockets_closed_total{cause="backpressure"} 0' in lines
    assert 'pubsock_broker_state{state="down"} 1' in lines
    assert 'pubsock_broker_state{state="up"} 0' in lines
    assert "pubsock_broker_failed_publishes_total 4" in lines
    assert lines.count("# TYPE pubsock_websockets_closed_total counter") == 1


# the hub's counters, sans-I/O -----------------------------------------------------------------


@pytest.fixture(params=["_topics_py", "_topics_c"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    name = f"pubsock.server.{request.param}"
    if request.param == "_topics_c":
        pytest.importorskip(name, reason="the compiled extension is not built")
    return importlib.import_module(name)


class Transport:
    """Accepts everything until ``held`` is set: then holds that many bytes (a stalled peer)."""

    def __init__(self) -> None:
        self.written = 0
        self.held = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return self.held


class Owner:
    def __init__(self) -> None:
        self.over_limit = 0

    def _over_limit(self) -> None:
        self.over_limit += 1


class Compressor:
    """A stand-in with context takeover (``share_key`` None): its own frame per subscriber."""

    share_key = None

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def compress(self, payload: bytes) -> bytes:
        return payload[: len(payload) // self.factor]


def test_hub_counters(impl: ModuleType) -> None:
    scheduled: list[Callable[[], None]] = []
    hub = impl.Hub(scheduled.append)
    boxes = [impl.Outbox(hub, Transport(), Owner(), 1000, False) for _ in range(3)]
    for box in boxes:
        hub.subscribe(box, "room")
    assert (hub.messages_out, hub.bytes_out, hub.dropped, hub.publishes) == (0, 0, 0, 0)
    frame = build_frame(OP_TEXT, b"hello")
    assert hub.publish("room", frame, 5, boxes[0]) == 5
    assert hub.publish("nobody", frame, 5, None) == 0
    assert hub.publishes == 2
    assert (hub.messages_out, hub.bytes_out) == (2, 2 * len(frame))
    boxes[0].queue(b"HTTP/1.1 101 ...")  # not a message
    boxes[0].push_control(b"\x89\x00")  # nor a control frame
    assert boxes[0].push(frame, 5) == 5
    assert (hub.messages_out, hub.bytes_out) == (3, 3 * len(frame))

    # a stalled subscriber over its limit drops; the others still count
    boxes[1].paused = True
    boxes[1].transport.held = 2000
    boxes[1].backlog = 2000
    assert hub.publish("room", frame, 5, None) == 0
    assert (hub.messages_out, hub.dropped) == (5, 1)
    assert boxes[1].push(frame, 5) == 0
    assert (hub.messages_out, hub.bytes_out, hub.dropped) == (5, 5 * len(frame), 2)

    # compressed publishes count the frame each subscriber got
    boxes[1].paused = False
    boxes[1].transport.held = boxes[1].backlog = 0
    boxes[0].compressor = Compressor(2)
    boxes[2].compressor = Compressor(4)
    payload = b"x" * 40
    plain = build_frame(OP_TEXT, payload)
    assert hub.publish_compressed("room", plain, OP_TEXT, payload, None) == 40
    sizes = [len(build_frame(OP_TEXT, b"x" * 20, True, True)), len(plain), len(build_frame(OP_TEXT, b"x" * 10, True, True))]
    assert (hub.messages_out, hub.bytes_out, hub.dropped) == (8, 5 * len(frame) + sum(sizes), 2)
    assert hub.publishes == 4
    for callback in scheduled:
        callback()
