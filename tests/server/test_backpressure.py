"""Backpressure over real loopback sockets: -1 and 0 results, buffered_amount, drain, limits.

bun-semantics.md §5.2 (publish results), §5.3 (backpressure and drops), §5.4 (drain).
A client "stops reading" by pausing its transport; its small SO_RCVBUF and the
server socket's small SO_SNDBUF make backpressure come after a few kilobytes.
"""

from __future__ import annotations

import asyncio

import pytest

import pubsock
from _clients import OP_BINARY, OP_CLOSE, OP_TEXT, App, RawClient, connected, next_iteration, serving, wait_for

pytestmark = pytest.mark.timeout(30)

SMALL = 4096  # SO_RCVBUF / SO_SNDBUF for stalled peers (the kernel doubles it)


def numbered(i: int, size: int) -> bytes:
    """A payload of ``size`` bytes that says which message it is."""
    head = f"{i:06d}|".encode()
    return head + bytes([i % 256]) * (size - len(head))


def is_stall(results: list[int], ok: int) -> bool:
    """A stalled peer's results: ``ok`` first, only ``ok``/-1 up to a -1, then only 0.

    While the kernel still moves bytes into the peer's receive buffer the
    transport may empty again, so ``ok`` and -1 can alternate before the drops.
    """
    if 0 not in results or -1 not in results or results[0] != ok:
        return False
    first_drop = results.index(0)
    return (
        results.index(-1) < first_drop
        and set(results[:first_drop]) <= {ok, -1}
        and set(results[first_drop:]) == {0}
    )


async def stall(app: App, server_port: int, name: str = "slow") -> tuple[RawClient, pubsock.ServerWebSocket]:
    """Connect a client that does not read; return it with its server-side socket."""
    client = await RawClient.connect(server_port, f"/?name={name}", rcvbuf=SMALL)
    client.pause_reading()
    return client, app.by_name[name]


async def test_send_to_a_stalled_client_returns_minus_one_then_zero() -> None:
    limit = 64 * 1024
    app = App(backpressure_limit=limit, sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            results, amounts = [], []
            for i in range(40):
                results.append(ws.send(numbered(i, 10000)))
                amounts.append(ws.buffered_amount)
                await next_iteration()
            assert is_stall(results, 10000), results
            first_minus_one = results.index(-1)
            assert amounts[first_minus_one] > 10004
            # grows up to the limit, then stays put: bounded by the limit plus one message
            assert max(amounts) <= limit + 10004
            first_drop = results.index(0)
            assert amounts[first_drop - 1] > limit
            assert set(amounts[first_drop - 1 :]) == {amounts[-1]}
            assert ws.buffered_amount == amounts[-1]
            drains = len(app.drains)  # the kernel may have taken some before the peer stalled
            # the client reads again: everything not dropped arrives, in order, byte-exact
            client.resume_reading()
            kept = [numbered(i, 10000) for i, r in enumerate(results) if r != 0]
            messages = await client.until(len(kept))
            assert messages == [(OP_BINARY, payload) for payload in kept]
            await wait_for(lambda: len(app.drains) > drains, what="drain")
            assert len(app.drains) <= results.count(-1)
            assert set(app.drains) == {ws}
            assert ws.buffered_amount == 0
            assert ws.send(b"again") == 5
            assert (await client.until(len(kept) + 1))[-1] == (OP_BINARY, b"again")
        finally:
            await client.close()


async def test_limit_one_byte_then_one_mib_then_drop() -> None:
    """§5.3: with limit 1, a 1-byte send → 1, a 1 MiB send → -1, the next → 0 (same iteration)."""
    app = App(backpressure_limit=1, sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            mib = b"m" * (1 << 20)
            assert ws.send(b"x") == 1
            assert ws.send(mib) == -1
            assert ws.send(mib) == 0
            assert ws.send("t") == 0
            assert 1 << 19 < ws.buffered_amount <= (1 << 20) + 10
            client.resume_reading()
            assert await client.until(2) == [(OP_BINARY, b"x"), (OP_BINARY, mib)]
            await wait_for(lambda: app.drains, what="drain")
        finally:
            await client.close()


async def test_small_limit_does_not_drop_a_burst_to_a_client_that_reads() -> None:
    """Messages queued in one iteration count as sent while the peer keeps up (§5.3)."""
    app = App(backpressure_limit=1024)
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        wa, wb = app.by_name["a"], app.by_name["b"]
        wb.subscribe("room")
        payloads = [numbered(i, 200) for i in range(100)]  # 20 KB in one iteration, limit 1 KiB
        assert [wa.send(p) for p in payloads] == [200] * 100
        assert [wa.publish("room", p) for p in payloads] == [200] * 100
        assert [server.publish("room", p) for p in payloads] == [200] * 100
        assert await a.until(100) == [(OP_BINARY, p) for p in payloads]
        assert await b.until(200) == [(OP_BINARY, p) for p in payloads * 2]


async def test_a_client_that_does_not_read_is_not_read_and_loses_nothing() -> None:
    """Input flow control: an echo to a peer that floods without reading pauses its input, never drops."""
    app = App(backpressure_limit=64 * 1024, sndbuf=SMALL)
    results: list[int] = []
    app.on_message = lambda ws, message: results.append(ws.send(message))
    payloads = [numbered(i, 1000) for i in range(1000)]  # 1 MB of echoes, limit 64 KiB
    async with serving(app) as server:
        client, ws = await stall(app, server.port, "flood")
        try:
            for payload in payloads:
                client.send(payload)  # what the kernel does not take waits in the client's transport
            await wait_for(lambda: ws._input_paused, what="the server to stop reading the client")
            assert server.stats()["reads_paused"] >= 1
            handled = len(app.received)
            await asyncio.sleep(0.2)
            assert len(app.received) == handled < len(payloads)  # nothing read while its output waits
            assert ws.buffered_amount <= 64 * 1024
            client.resume_reading()
            assert await client.until(len(payloads)) == [(OP_BINARY, p) for p in payloads]
        finally:
            client.abort()
    assert 0 not in results and -1 in results


async def test_buffered_amount_follows_what_the_peer_reads() -> None:
    """``buffered_amount`` is what the kernel has not accepted yet: it shrinks as the peer reads,
    and the limit applies to what is still buffered, not to what was buffered at the last write."""
    mib = 1 << 20
    app = App(sndbuf=SMALL, backpressure_limit=3 * mib // 4)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            assert ws.send(b"r" * mib) == -1
            assert ws.buffered_amount > mib - 100_000
            assert ws.send(b"dropped") == 0  # over the limit
            client.pause_at = mib // 2  # read about half, then stall again
            client.resume_reading()
            await wait_for(lambda: client.bytes_received >= mib // 2, timeout=5, what="half of it")
            await wait_for(lambda: ws.buffered_amount < mib // 2 + 100, timeout=2, what="buffered_amount to shrink")
            assert ws.buffered_amount >= mib // 2 - 200_000  # the rest is still waiting
            assert app.drains == []
            assert ws.send(b"accepted") == -1  # under the limit again, still backpressured
            client.resume_reading()
            assert await client.until(2) == [(OP_BINARY, b"r" * mib), (OP_BINARY, b"accepted")]
            await wait_for(lambda: app.drains, what="drain")
            assert ws.buffered_amount == 0
        finally:
            await client.close()


async def test_buffered_amount_is_zero_when_closed() -> None:
    app = App(sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            assert ws.send(b"z" * 200_000) == -1
            assert ws.buffered_amount > 100_000
            ws.terminate()
            assert app.closes == [(ws, 1006, "")]  # before terminate() returned
            assert ws.buffered_amount == 0
            assert ws.send(b"more") == 0
            client.resume_reading()  # a paused transport would not notice the reset
            await asyncio.wait_for(client.lost, 5)
        finally:
            await client.close()
        assert app.drains == []


async def test_publish_returns_minus_one_then_zero_for_a_stalled_subscriber() -> None:
    limit = 32 * 1024
    app = App(backpressure_limit=limit, sndbuf={"slow": SMALL})
    async with serving(app) as server, connected(server.port, "fast") as (fast,):
        slow, ws_slow = await stall(app, server.port)
        try:
            ws_slow.subscribe("room")
            app.by_name["fast"].subscribe("room")
            results = []
            for i in range(60):
                results.append(server.publish("room", numbered(i, 5000)))
                await next_iteration()
            assert is_stall(results, 5000), results
            assert ws_slow.buffered_amount <= limit + 5004
            # the reader got everything, the stalled one everything but the drops
            assert await fast.until(60) == [(OP_BINARY, numbered(i, 5000)) for i in range(60)]
            slow.resume_reading()
            kept = [(OP_BINARY, numbered(i, 5000)) for i, r in enumerate(results) if r != 0]
            assert await slow.until(len(kept)) == kept
            # a publish from a socket skips it, so the drops are the stalled socket's only
            assert app.by_name["fast"].publish("room", "hi") == 2
            assert (await slow.until(len(kept) + 1))[-1] == (OP_TEXT, b"hi")
        finally:
            await slow.close()


async def test_issue_case_backpressured_subscriber_with_1000_publishes_of_8_to_20_kb() -> None:
    """A stalled subscriber, a 64 KiB limit, 1000 publishes of 8-20 KB: some 0s, memory bounded,
    the two readers on the same topic receive all 1000 byte-exact and in order."""
    limit = 64 * 1024
    app = App(backpressure_limit=limit, sndbuf={"slow": SMALL})
    app.on_open = lambda ws: ws.subscribe("room")
    sizes = [8000 + (i * 7919) % 12001 for i in range(1000)]
    async with serving(app) as server, connected(server.port, "r1", "r2") as readers:
        slow, ws_slow = await stall(app, server.port)
        try:
            assert server.subscriber_count("room") == 3
            results, highest = [], 0
            for i, size in enumerate(sizes):
                results.append(server.publish("room", numbered(i, size)))
                highest = max(highest, ws_slow.buffered_amount)
                await asyncio.sleep(0)
            assert results.count(0) > 500
            assert set(results) <= {0, -1, *sizes}
            assert highest <= limit + max(sizes) + 4  # the limit plus one message, never more
            expected = [(OP_BINARY, numbered(i, size)) for i, size in enumerate(sizes)]
            for reader in readers:
                assert await reader.until(1000) == expected
            slow.resume_reading()
            kept = [expected[i] for i, r in enumerate(results) if r != 0]
            assert await slow.until(len(kept)) == kept  # exactly the publishes that did not return 0
            await next_iteration()
            assert len(slow.messages) == len(kept)
        finally:
            await slow.close()


async def test_drain_fires_after_minus_one() -> None:
    app = App(sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            results = [ws.send(numbered(i, 50_000)) for i in range(4)]
            await next_iteration()
            assert ws.send(b"end") == -1
            assert app.drains == []
            client.resume_reading()
            await client.until(5)
            await wait_for(lambda: app.drains, what="drain")
            await next_iteration()
            # at least one drain, at most one per -1 result (Bun: exactly one per -1)
            assert 1 <= len(app.drains) <= results.count(-1) + 1
            assert set(app.drains) == {ws}
        finally:
            await client.close()


async def test_no_drain_after_close_under_backpressure() -> None:
    app = App(sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            payload = b"q" * 300_000
            assert ws.send(payload) == -1
            ws.close(4000, "bye")
            assert app.closes == [(ws, 4000, "bye")]
            assert ws.ready_state == 3
            assert ws.send(b"late") == 0
            client.resume_reading()
            # the Close frame goes after the data already buffered, and nothing after it
            messages = await client.until(2)
            assert messages[0] == (OP_BINARY, payload)
            assert messages[1] == (OP_CLOSE, b"\x0f\xa0bye")
            client.send_close(4000)
            await asyncio.wait_for(client.lost, 5)
            await next_iteration()
            assert app.drains == []  # the buffer drained while closing: no drain
            assert len(client.messages) == 2
        finally:
            await client.close()


async def test_drain_loop_delivers_2048_sends_of_4_kib_byte_exact() -> None:
    """Send until -1, continue in ``drain``: every message arrives, in order, nothing dropped."""
    count, size = 2048, 4096
    app = App(backpressure_limit=64 * 1024, sndbuf=SMALL)
    results: list[int] = []
    sent = 0

    def pump(ws: pubsock.ServerWebSocket) -> None:
        nonlocal sent
        while sent < count:
            result = ws.send(numbered(sent, size))
            results.append(result)
            assert result != 0
            sent += 1
            if result == -1:
                return  # wait for drain

    app.on_drain = pump
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            pump(ws)
            assert results[-1] == -1  # stalled: the pump waits for drain
            assert sent < count
            await asyncio.sleep(0.05)  # the client reads slowly at first ...
            client.resume_reading()  # ... then normally
            messages = await client.until(count, timeout=20)
            assert messages == [(OP_BINARY, numbered(i, size)) for i in range(count)]
            assert 0 not in results
            assert len(results) == count
            # §5.4: each -1 earns one drain (a send in drain that hits -1 again earns another);
            # one more may follow the last batch, which returned no -1 but filled the transport
            assert results.count(-1) >= 2
            assert results.count(-1) <= len(app.drains) <= results.count(-1) + 1
        finally:
            await client.close()


async def test_2048_sends_of_4_kib_in_one_burst_arrive_byte_exact() -> None:
    count, size = 2048, 4096
    app = App(sndbuf=SMALL)  # default limit: 16 MiB
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            results = [ws.send(numbered(i, size)) for i in range(count)]
            await next_iteration()
            assert set(results) <= {size, -1}
            assert ws.buffered_amount > 8 * 1024 * 1024 - 100_000
            assert ws.send(b"tail") == -1
            await asyncio.sleep(0.05)
            client.resume_reading()
            messages = await client.until(count + 1, timeout=20)
            assert messages == [(OP_BINARY, numbered(i, size)) for i in range(count)] + [(OP_BINARY, b"tail")]
            await wait_for(lambda: app.drains, what="drain")
        finally:
            await client.close()


async def test_8_mib_sends_arrive_byte_exact_under_backpressure() -> None:
    big = 8 * 1024 * 1024
    app = App(sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            first = bytes(range(256)) * (big // 256)
            second = "€" * (big // 3)  # text: 3 bytes per character
            assert ws.send(first) == -1
            assert ws.buffered_amount > big - 200_000
            assert ws.send(second) == -1
            assert ws.send(b"third") == -1
            await asyncio.sleep(0.05)
            client.resume_reading()
            messages = await client.until(3, timeout=20)
            assert messages[0] == (OP_BINARY, first)
            assert messages[1] == (OP_TEXT, second.encode())
            assert messages[2] == (OP_BINARY, b"third")
            await wait_for(lambda: app.drains, what="drain")
            assert ws.buffered_amount == 0
        finally:
            await client.close()


async def test_8_mib_publish_to_a_stalled_subscriber() -> None:
    big = 8 * 1024 * 1024
    app = App(sndbuf={"slow": SMALL})
    async with serving(app) as server, connected(server.port, "fast") as (fast,):
        slow, ws_slow = await stall(app, server.port)
        try:
            ws_slow.subscribe("room")
            app.by_name["fast"].subscribe("room")
            payload = bytes(range(251)) * (big // 251)
            assert server.publish("room", payload) == -1
            assert await fast.until(1, timeout=20) == [(OP_BINARY, payload)]
            slow.resume_reading()
            assert await slow.until(1, timeout=20) == [(OP_BINARY, payload)]
        finally:
            await slow.close()


async def test_close_on_backpressure_limit_closes_with_1006() -> None:
    app = App(backpressure_limit=16 * 1024, close_on_backpressure_limit=True, sndbuf=SMALL)
    async with serving(app) as server:
        client, ws = await stall(app, server.port)
        try:
            results = []
            for i in range(30):
                results.append(ws.send(numbered(i, 8000)))
                if results[-1] == 0:
                    break
                assert app.closes == []
                await next_iteration()
            assert is_stall(results, 8000), results
            assert app.closes == [(ws, 1006, "")]  # at once, inside send()
            drains = len(app.drains)  # some may have come while the kernel still took bytes
            assert ws.ready_state == 3
            assert ws.send(b"x") == 0
            assert ws.buffered_amount == 0
            client.resume_reading()
            await asyncio.wait_for(client.lost, 5)
            assert OP_CLOSE not in [opcode for opcode, _ in client.messages]  # no Close handshake
            assert len(app.drains) == drains
        finally:
            await client.close()


async def test_close_on_backpressure_limit_through_publish() -> None:
    app = App(backpressure_limit=16 * 1024, close_on_backpressure_limit=True, sndbuf={"slow": SMALL})
    app.on_open = lambda ws: ws.subscribe("room")
    order: list[str] = []
    app.on_close = lambda ws, code, reason: order.append(f"close {ws.data} {code}")
    async with serving(app) as server, connected(server.port, "fast") as (fast,):
        slow, ws_slow = await stall(app, server.port)
        try:
            results = []
            for i in range(30):
                results.append(server.publish("room", numbered(i, 8000)))
                order.append(f"published {i}")
                await next_iteration()
                if results[-1] == 0:
                    break
            assert results[-1] == 0
            n = len(results)
            assert order[-2:] == ["close slow 1006", f"published {n - 1}"]
            assert app.closes == [(ws_slow, 1006, "")]
            assert server.subscriber_count("room") == 1
            assert ws_slow.subscriptions == []
            slow.resume_reading()
            await asyncio.wait_for(slow.lost, 5)
            assert await fast.until(n) == [(OP_BINARY, numbered(i, 8000)) for i in range(n)]
            assert server.publish("room", "after") == 5  # the closed one no longer counts
        finally:
            await slow.close()
