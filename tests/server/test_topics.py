"""Topics over real loopback sockets: subscribe/unsubscribe, publish recipients, return values, order.

bun-semantics.md §3 (topics), §5.1 (recipients), §5.2 (return values), §5.5 (order).
"""

from __future__ import annotations

import asyncio

import pytest

import pubsock
from _clients import OP_BINARY, OP_TEXT, App, RawClient, client_frame, connected, next_iteration, serving, wait_for

pytestmark = pytest.mark.timeout(30)


async def test_subscribe_is_true_also_when_already_subscribed() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a"):
        ws = app.by_name["a"]
        assert ws.subscriptions == []
        assert ws.is_subscribed("room") is False
        assert ws.subscribe("room") is True
        assert ws.subscribe("room") is True
        assert ws.is_subscribed("room") is True
        assert ws.subscriptions == ["room"]
        assert server.subscriber_count("room") == 1


async def test_unsubscribe_is_true_only_if_subscribed() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a"):
        ws = app.by_name["a"]
        assert ws.unsubscribe("room") is False
        ws.subscribe("room")
        assert ws.unsubscribe("room") is True
        assert ws.unsubscribe("room") is False
        assert ws.is_subscribed("room") is False
        assert ws.subscriptions == []
        assert server.subscriber_count("room") == 0


async def test_subscriptions_lists_each_topic_once_in_order() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a"):
        ws = app.by_name["a"]
        for topic in ("b", "a", "c", "a", "b"):
            ws.subscribe(topic)
        assert ws.subscriptions == ["b", "a", "c"]
        ws.unsubscribe("a")
        assert ws.subscriptions == ["b", "c"]
        subscriptions = ws.subscriptions
        subscriptions.append("not mine")  # a copy: changing it changes nothing
        assert ws.subscriptions == ["b", "c"]


async def test_subscriptions_are_empty_inside_close_and_after() -> None:
    app = App()
    seen: list[object] = []
    app.on_close = lambda ws, code, reason: seen.append(
        (ws.subscriptions, ws.is_subscribed("room"), ws.subscribe("again"), ws.unsubscribe("room"))
    )
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        ws = app.by_name["a"]
        ws.subscribe("room")
        ws.subscribe("other")
        app.by_name["b"].subscribe("room")
        assert server.subscriber_count("room") == 2
        a.send_close(1000)
        await wait_for(lambda: app.closes, what="close handler")
        assert seen == [([], False, False, False)]
        assert app.closes == [(ws, 1000, "")]
        # after close: every topic call works and says "not subscribed"
        assert ws.subscriptions == []
        assert ws.subscribe("room") is False
        assert ws.is_subscribed("room") is False
        assert ws.unsubscribe("room") is False
        assert ws.subscriptions == []
        assert server.subscriber_count("room") == 1
        assert server.subscriber_count("other") == 0


async def test_subscribe_after_the_peer_is_gone_is_false() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        ws.subscribe("room")
        a.abort()
        await wait_for(lambda: app.closes, what="close handler")
        assert app.closes == [(ws, 1006, "")]
        assert ws.ready_state == 3
        assert ws.subscribe("room") is False
        assert ws.subscriptions == []
        assert server.subscriber_count("room") == 0


async def assert_nothing_more(client: RawClient, ws: pubsock.ServerWebSocket, seen: int) -> None:
    """``client`` received nothing after its first ``seen`` messages: a marker sent now comes next."""
    ws.send("marker")
    messages = await client.until(seen + 1)
    assert messages[seen:] == [(OP_TEXT, b"marker")]


async def test_ws_publish_reaches_everyone_but_the_sender() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b", "c") as (a, b, c):
        for name in "abc":
            app.by_name[name].subscribe("room")
        assert app.by_name["a"].publish("room", "hello") == 5
        for client in (b, c):
            assert await client.until(1) == [(OP_TEXT, b"hello")]
        await assert_nothing_more(a, app.by_name["a"], 0)


async def test_ws_publish_with_publish_to_self_reaches_the_sender_too() -> None:
    app = App(publish_to_self=True)
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        for name in "ab":
            app.by_name[name].subscribe("room")
        assert app.by_name["a"].publish("room", "hello") == 5
        for client in (a, b):
            assert await client.until(1) == [(OP_TEXT, b"hello")]


async def test_publish_to_self_only_subscriber_counts_as_recipient() -> None:
    app = App(publish_to_self=True)
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        ws.subscribe("room")
        assert ws.publish("room", "me") == 2
        assert await a.until(1) == [(OP_TEXT, b"me")]


async def test_ws_publish_from_an_unsubscribed_socket() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        app.by_name["b"].subscribe("room")
        assert app.by_name["a"].is_subscribed("room") is False
        assert app.by_name["a"].publish("room", b"\x00\x01") == 2
        assert await b.until(1) == [(OP_BINARY, b"\x00\x01")]
        await assert_nothing_more(a, app.by_name["a"], 0)


async def test_ws_publish_from_the_close_handler_reaches_the_others() -> None:
    app = App()
    results: list[int] = []
    app.on_close = lambda ws, code, reason: results.append(ws.publish("room", f"{ws.data} left"))
    async with serving(app) as server, connected(server.port, "a", "b", "c") as (a, b, c):
        for name in "abc":
            app.by_name[name].subscribe("room")
        a.send_close(1000)
        for client in (b, c):
            assert (await client.until(1))[0] == (OP_TEXT, b"a left")
        assert results == [6]


async def test_ws_publish_from_close_with_publish_to_self_does_not_reach_the_closed_socket() -> None:
    app = App(publish_to_self=True)
    results: list[int] = []
    app.on_close = lambda ws, code, reason: results.append(ws.publish("room", "bye"))
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        for name in "ab":
            app.by_name[name].subscribe("room")
        app.by_name["a"].close(1000)
        assert results == [3]
        assert await b.until(1) == [(OP_TEXT, b"bye")]
        assert await a.until(1) == [(0x8, b"\x03\xe8")]  # only its Close frame


async def test_ws_publish_when_nobody_else_is_subscribed_returns_zero() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        assert ws.publish("nobody", "x") == 0
        ws.subscribe("room")
        assert ws.publish("room", "x") == 0  # the sender is the only subscriber
        await assert_nothing_more(a, ws, 0)


async def test_server_publish_reaches_every_subscriber() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b", "c") as (a, b, c):
        for name in "ab":
            app.by_name[name].subscribe("room")
        assert server.subscriber_count("room") == 2
        assert server.publish("room", "msg0") == 4
        assert server.publish("room", b"bin") == 3
        assert server.publish("room", bytearray(b"ba")) == 2
        assert server.publish("room", memoryview(b"0123456789")[2:5]) == 3
        assert server.publish("room", "") == 0  # an empty message is sent, but counts 0
        assert server.publish("nobody", "msg0") == 0
        expected = [(OP_TEXT, b"msg0"), (OP_BINARY, b"bin"), (OP_BINARY, b"ba"), (OP_BINARY, b"234"), (OP_TEXT, b"")]
        for client in (a, b):
            assert await client.until(5) == expected
        await assert_nothing_more(c, app.by_name["c"], 0)


async def test_publish_return_value_is_the_utf8_length() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        app.by_name["b"].subscribe("room")
        assert app.by_name["a"].publish("room", "héllo €") == len("héllo €".encode())
        assert app.by_name["a"].publish_text("room", "💬") == 4
        assert app.by_name["a"].publish_binary("room", b"\xff" * 300) == 300
        assert await b.until(3) == [
            (OP_TEXT, "héllo €".encode()),
            (OP_TEXT, "💬".encode()),
            (OP_BINARY, b"\xff" * 300),
        ]


async def test_subscriber_count() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        assert server.subscriber_count("room") == 0
        assert server.subscriber_count("") == 0
        app.by_name["a"].subscribe("room")
        app.by_name["b"].subscribe("room")
        app.by_name["b"].subscribe("room")
        assert server.subscriber_count("room") == 2
        app.by_name["a"].unsubscribe("room")
        assert server.subscriber_count("room") == 1
        b.abort()
        await wait_for(lambda: server.subscriber_count("room") == 0, what="b to leave the room")
        with pytest.raises(TypeError):
            server.subscriber_count(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            server.subscriber_count(b"room")  # type: ignore[arg-type]


async def test_unicode_topics() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        topic = "чат/💬 room"
        assert app.by_name["a"].subscribe(topic) is True
        assert app.by_name["b"].subscribe("чат/💬 ROOM") is True
        assert app.by_name["a"].subscriptions == [topic]
        assert server.subscriber_count(topic) == 1
        assert server.publish(topic, "привет") == len("привет".encode())
        assert await a.until(1) == [(OP_TEXT, "привет".encode())]
        await assert_nothing_more(b, app.by_name["b"], 0)


async def test_topic_argument_errors() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a"):
        ws = app.by_name["a"]
        for call in (ws.subscribe, ws.unsubscribe, ws.is_subscribed):
            with pytest.raises(TypeError):
                call(None)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                call(b"room")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            ws.subscribe("")
        for publish in (ws.publish, ws.publish_text, server.publish):
            with pytest.raises(ValueError):
                publish("", "x")
            with pytest.raises(TypeError):
                publish(1, "x")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            ws.publish_binary("", b"x")
        with pytest.raises(TypeError):
            ws.publish_binary(None, b"x")  # type: ignore[arg-type]
        assert ws.subscriptions == []


async def test_data_and_compress_type_errors() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        ws = app.by_name["a"]
        app.by_name["b"].subscribe("room")
        for bad in (None, 1, 1.5, ["x"], {"x": 1}):
            with pytest.raises(TypeError):
                ws.publish("room", bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                server.publish("room", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.publish_text("room", b"bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.publish_binary("room", "text")  # type: ignore[arg-type]
        for bad_compress in (1, 0, None, "yes"):
            with pytest.raises(TypeError):
                ws.publish("room", "x", bad_compress)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                ws.publish_text("room", "x", compress=bad_compress)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                ws.publish_binary("room", b"x", compress=bad_compress)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                server.publish("room", "x", bad_compress)  # type: ignore[arg-type]
        # nothing was sent by the failed calls; compress=True without deflate is ignored
        assert ws.publish("room", "ok", compress=True) == 2
        assert server.publish("room", "ok2", compress=False) == 3
        assert await b.until(2) == [(OP_TEXT, b"ok"), (OP_TEXT, b"ok2")]


async def test_one_socket_sees_sends_and_publishes_in_call_order() -> None:
    app = App()
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        wa, wb = app.by_name["a"], app.by_name["b"]
        wb.subscribe("room")
        expected: list[tuple[int, bytes]] = []
        for i in range(40):
            size = (5, 20000, 100, 70000)[i % 4]  # small ones queue, big ones go at once
            payload = f"{i:02d}".encode() * (size // 2)
            kind = i % 3
            if kind == 0:
                assert wb.send(payload) in (len(payload), -1)
            elif kind == 1:
                assert wa.publish_binary("room", payload) in (len(payload), -1)
            else:
                assert server.publish("room", payload) in (len(payload), -1)
            expected.append((OP_BINARY, payload))
            if i % 10 == 9:
                await next_iteration()
        assert await b.until(40) == expected


async def test_order_inside_a_message_handler() -> None:
    """A handler that publishes and sends: the receiver sees the messages in call order."""
    app = App()

    def on_message(ws: pubsock.ServerWebSocket, message: object) -> None:
        ws.publish("room", f"p1:{message}")
        app.by_name["b"].send(f"s:{message}")
        ws.publish("room", f"p2:{message}")

    app.on_message = on_message
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        app.by_name["b"].subscribe("room")
        for i in range(3):
            a.send(str(i))
        assert await b.until(9) == [(OP_TEXT, f"{k}:{i}".encode()) for i in range(3) for k in ("p1", "s", "p2")]


async def test_queued_publishes_survive_an_unsubscribe_of_the_last_topic() -> None:
    """Bun PR #32852: publish, then unsubscribe in the same iteration: the message still arrives."""
    app = App()
    async with serving(app) as server, connected(server.port, "a") as (a,):
        ws = app.by_name["a"]
        ws.subscribe("room")
        assert server.publish("room", "one") == 3
        assert server.publish("room", "two") == 3
        assert ws.unsubscribe("room") is True
        assert ws.subscriptions == []
        assert server.publish("room", "three") == 0
        assert await a.until(2) == [(OP_TEXT, b"one"), (OP_TEXT, b"two")]
        await assert_nothing_more(a, ws, 2)


async def test_ten_clients_thousand_messages_each_exact_counts_and_order() -> None:
    """The issue's load case: every client receives all 10 × 1000 messages, per sender in order."""
    app = App(publish_to_self=True)
    results: list[int] = []
    app.on_open = lambda ws: ws.subscribe("room")
    app.on_message = lambda ws, message: results.append(ws.publish("room", f"{ws.data}:{message}"))
    names = [f"c{i}" for i in range(10)]
    count = 1000
    async with serving(app) as server, connected(server.port, *names) as clients:
        assert server.subscriber_count("room") == 10
        for client in clients:  # each client sends its 1000 messages in one burst
            assert client.transport is not None
            client.transport.write(b"".join(client_frame(OP_TEXT, str(i).encode()) for i in range(count)))
        total = len(names) * count
        await asyncio.gather(*(client.until(total, timeout=20) for client in clients))
        await next_iteration()
        for client in clients:
            received = client.texts()
            assert len(received) == total  # nothing lost, nothing duplicated
            per_sender: dict[str, list[int]] = {name: [] for name in names}
            for text in received:
                sender, _, number = text.partition(":")
                per_sender[sender].append(int(number))
            for name in names:
                assert per_sender[name] == list(range(count)), name
        assert len(results) == total
        assert 0 not in results
        assert set(results) <= {-1, 4, 5, 6}  # "cN:" + 1-3 digits, or -1 under backpressure


async def test_topics_belong_to_one_server() -> None:
    app1, app2 = App(), App()
    app1.on_open = app2.on_open = lambda ws: ws.subscribe("room")
    async with serving(app1) as s1, serving(app2) as s2:
        async with connected(s1.port, "a") as (a,), connected(s2.port, "b") as (b,):
            assert s1.subscriber_count("room") == 1
            assert s2.subscriber_count("room") == 1
            assert s1.publish("room", "one") == 3
            assert app2.by_name["b"].publish("room", "two") == 0  # b is alone in its server's room
            assert await a.until(1) == [(OP_TEXT, b"one")]
            await assert_nothing_more(b, app2.by_name["b"], 0)


async def test_topic_calls_on_a_socket_kept_after_server_stop() -> None:
    """§5.12: after ``stop()`` a retained socket answers without raising and reaches nobody."""
    app = App()
    app.on_open = lambda ws: ws.subscribe("room")
    async with serving(app) as server, connected(server.port, "a", "b") as (a, b):
        ws = app.by_name["a"]
    assert len(app.closes) == 2
    assert ws.ready_state == 3
    assert ws.subscriptions == []
    assert ws.subscribe("room") is False
    assert ws.is_subscribed("room") is False
    assert ws.unsubscribe("room") is False
    assert ws.publish("room", "x") == 0
    assert ws.send("x") == 0
    assert server.subscriber_count("room") == 0
    assert server.publish("room", "x") == 0
