"""Sans-I/O tests of ``Outbox`` and ``Hub`` (the output path), on a fake transport.

Each test runs against the pure-Python source and the compiled module. The fake
transport behaves like an asyncio transport with ``set_write_buffer_limits(high=0)``:
it accepts up to ``capacity`` bytes (the kernel), keeps the rest and calls
``pause_writing`` as soon as it holds anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from pubsock.protocol.frames import OP_BINARY, OP_TEXT, build_frame

BIG = 16384


@pytest.fixture(params=["_topics_py", "_topics_c"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test: the pure source or the compiled extension."""
    name = f"pubsock.server.{request.param}"
    if request.param == "_topics_c":
        pytest.importorskip(name, reason="the compiled extension is not built")
    return importlib.import_module(name)


class FakeTransport:
    """Records writes; ``capacity`` bytes are accepted at once (None = unlimited), the rest is held."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.writes: list[bytes] = []
        self.held = 0
        self.outbox: Any = None  # told pause()/resume(), as ServerWebSocket does from the protocol callbacks
        self.paused = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        accepted = len(data) if self.capacity is None else min(len(data), self.capacity)
        if self.capacity is not None:
            self.capacity -= accepted
        self.held += len(data) - accepted
        if self.held and not self.paused:
            self.paused = True
            self.outbox.pause()

    def get_write_buffer_size(self) -> int:
        return self.held

    def drain(self, nbytes: int) -> None:
        """The peer read ``nbytes`` of what was held."""
        self.held -= min(nbytes, self.held)
        if not self.held and self.paused:
            self.paused = False
            self.outbox.resume()

    def written(self) -> bytes:
        return b"".join(self.writes)


class FakeOwner:
    def __init__(self) -> None:
        self.over_limit = 0

    def _over_limit(self) -> None:
        self.over_limit += 1


class Loop:
    """Collects what the hub schedules; ``run()`` is the end of the loop iteration."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def schedule(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def run(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def hub(impl: ModuleType, loop: Loop) -> Any:
    return impl.Hub(loop.schedule)


def make_outbox(
    impl: ModuleType, hub: Any, capacity: int | None = None, limit: int = 0, close_on_limit: bool = False
) -> tuple[Any, FakeTransport, FakeOwner]:
    transport = FakeTransport(capacity)
    owner = FakeOwner()
    outbox = impl.Outbox(hub, transport, owner, limit, close_on_limit)
    transport.outbox = outbox
    return outbox, transport, owner


def text(payload: str) -> bytes:
    return build_frame(OP_TEXT, payload.encode())


def binary(size: int, fill: bytes = b"x") -> bytes:
    return build_frame(OP_BINARY, fill * size)


# Outbox ----------------------------------------------------------------------------------------


def test_big_message_threshold_is_16_kib(impl: ModuleType) -> None:
    assert impl.BIG_MESSAGE == BIG


def test_push_queues_until_the_end_of_the_iteration(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    assert outbox.push(text("a"), 1) == 1
    assert outbox.push(text("bc"), 2) == 2
    assert transport.writes == []
    assert outbox.buffered_amount == 3 + 4
    assert len(loop.callbacks) == 1  # one flush scheduled for the whole iteration
    loop.run()
    assert transport.writes == [text("a") + text("bc")]  # one write
    assert outbox.buffered_amount == 0
    loop.run()
    assert transport.writes == [text("a") + text("bc")]


@pytest.mark.parametrize("message", ["", "a", "é" * 62 + "a", "x" * 126, "y" * 70_000])
def test_push_text_queues_one_text_frame_of_the_utf8(impl: ModuleType, hub: Any, loop: Loop, message: str) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    size = len(message.encode())
    assert outbox.push_text(message) == size
    loop.run()
    assert b"".join(transport.writes) == text(message)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 70_000])
def test_push_binary_queues_one_binary_frame(impl: ModuleType, hub: Any, loop: Loop, size: int) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    assert outbox.push_binary(b"\x00" * size) == size
    loop.run()
    assert b"".join(transport.writes) == binary(size, b"\x00")


def test_push_text_answers_as_push_under_backpressure(impl: ModuleType, hub: Any, loop: Loop) -> None:
    by_text, text_transport, _ = make_outbox(impl, hub, capacity=0, limit=100)
    by_frame, frame_transport, _ = make_outbox(impl, hub, capacity=0, limit=100)
    answers = []
    for message in ["a" * 60, "b" * 30, "c" * 50, "d", "e" * 200]:
        answers.append((by_text.push_text(message), by_frame.push(text(message), len(message))))
        loop.run()
    assert answers == [(60, 60), (-1, -1), (-1, -1), (0, 0), (0, 0)]
    assert text_transport.written() == frame_transport.written()
    by_text.closed = True
    assert by_text.push_text("f") == 0


def test_one_flush_is_scheduled_for_all_outboxes(impl: ModuleType, hub: Any, loop: Loop) -> None:
    boxes = [make_outbox(impl, hub) for _ in range(3)]
    for outbox, _, _ in boxes:
        outbox.push(text("m"), 1)
        outbox.push(text("n"), 1)
    assert len(loop.callbacks) == 1
    loop.run()
    for _, transport, _ in boxes:
        assert transport.writes == [text("m") + text("n")]
    boxes[0][0].push(text("again"), 5)
    assert len(loop.callbacks) == 1  # scheduled anew after the flush ran
    loop.run()
    assert boxes[0][1].writes[-1] == text("again")


def test_single_frame_is_written_as_is(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    frame = text("only")
    outbox.push(frame, 4)
    loop.run()
    assert transport.writes == [frame]


def test_big_frame_is_written_at_once_after_the_queue(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    small = text("first")
    big = binary(BIG)
    assert outbox.push(small, 5) == 5
    assert outbox.push(big, BIG) == BIG
    assert transport.written() == small + big  # without waiting for the flush, in order
    assert outbox.buffered_amount == 0
    after = text("after")
    outbox.push(after, 5)
    loop.run()
    assert transport.written() == small + big + after


def test_frame_just_under_16_kib_waits_for_the_flush(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    frame = binary(BIG - 5)  # 4-byte header: 16383 bytes
    assert len(frame) == BIG - 1
    outbox.push(frame, BIG - 5)
    assert transport.writes == []
    loop.run()
    assert transport.writes == [frame]


def test_push_returns_minus_one_when_the_transport_holds_bytes(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub, capacity=10)
    assert outbox.push(text("a" * 20), 20) == 20  # queued: counts as sent, nothing was held yet
    loop.run()
    assert transport.held == 22 - 10
    assert outbox.paused
    assert outbox.buffered_amount == 12
    assert outbox.push(text("b"), 1) == -1  # still delivered
    loop.run()
    assert transport.written() == text("a" * 20) + text("b")
    assert outbox.buffered_amount == 15
    transport.drain(15)
    assert not outbox.paused
    assert outbox.buffered_amount == 0
    assert outbox.push(text("c"), 1) == 1


def test_limit_drops_once_buffered_amount_exceeds_it(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, owner = make_outbox(impl, hub, capacity=0, limit=100)
    frame = binary(60)  # 62 bytes
    assert outbox.push(frame, 60) == 60
    loop.run()
    assert outbox.buffered_amount == 62
    assert outbox.push(frame, 60) == -1  # 62 <= 100: written
    loop.run()
    assert outbox.buffered_amount == 124  # over the limit by less than one message
    assert outbox.push(frame, 60) == 0  # 124 > 100: dropped
    assert outbox.push(frame, 60) == 0
    loop.run()
    assert outbox.buffered_amount == 124
    assert transport.written() == frame * 2
    assert owner.over_limit == 0  # close_on_limit is off


def test_limit_with_one_byte(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """bun-semantics §5.3: with limit 1, a 1-byte send → 1, a 1 MiB send → -1, then → 0."""
    outbox, transport, _ = make_outbox(impl, hub, capacity=65536, limit=1)
    assert outbox.push(text("x"), 1) == 1
    mib = binary(1 << 20)
    assert outbox.push(mib, 1 << 20) == -1
    assert outbox.push(mib, 1 << 20) == 0
    assert transport.written() == text("x") + mib


def test_limit_zero_means_no_limit(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub, capacity=0, limit=0)
    frame = binary(BIG)
    results = [outbox.push(frame, BIG) for _ in range(64)]
    assert results == [-1] * 64
    assert outbox.buffered_amount == 64 * len(frame)


def test_queued_bytes_do_not_drop_messages_to_a_fast_peer(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """Frames queued in one iteration count as sent: a peer that takes everything loses nothing."""
    outbox, transport, _ = make_outbox(impl, hub, limit=1000)
    frames = [text(f"{i:03d}" + "m" * 97) for i in range(50)]  # 50 × 102 bytes = 5100 > limit
    results = [outbox.push(frame, 100) for frame in frames]
    assert results == [100] * 50
    loop.run()
    assert transport.written() == b"".join(frames)
    assert outbox.buffered_amount == 0


def test_queued_bytes_bound_a_slow_peer(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """A peer that takes nothing: at most the limit plus one message is ever held."""
    outbox, transport, _ = make_outbox(impl, hub, capacity=0, limit=1000)
    frame = text("m" * 100)
    results = [outbox.push(frame, 100) for _ in range(50)]
    assert 0 in results
    assert results.count(0) + results.count(100) + results.count(-1) == 50
    assert outbox.buffered_amount <= 1000 + len(frame)
    loop.run()
    assert transport.held <= 1000 + len(frame)
    assert transport.written() == frame * (50 - results.count(0))


def test_close_on_limit_tells_the_owner(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, owner = make_outbox(impl, hub, capacity=0, limit=10, close_on_limit=True)
    frame = binary(20)
    assert outbox.push(frame, 20) == 20
    loop.run()
    assert owner.over_limit == 0
    assert outbox.push(frame, 20) == 0
    assert owner.over_limit == 1


def test_closed_outbox_takes_nothing(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, owner = make_outbox(impl, hub)
    outbox.closed = True
    assert outbox.push(text("x"), 1) == 0
    outbox.queue(b"raw")
    outbox.push_control(b"\x88\x00")
    loop.run()
    assert transport.writes == []
    assert loop.callbacks == []
    assert outbox.buffered_amount == 0


def test_queue_ignores_the_limit_and_waits_for_the_flush(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub, capacity=0, limit=1)
    outbox.queue(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    outbox.queue(b"more")
    assert transport.writes == []
    assert outbox.buffered_amount == 0  # the 101 answer is not the socket's: Bun counts 0 in open
    assert outbox.push(text("x"), 1) == 1
    assert outbox.buffered_amount == 3
    loop.run()
    assert transport.writes == [b"HTTP/1.1 101 Switching Protocols\r\n\r\nmore" + text("x")]


def test_push_control_ignores_the_limit_and_writes_now(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub, capacity=0, limit=1)
    outbox.push(binary(10), 10)
    loop.run()
    assert outbox.push(binary(10), 10) == 0  # over the limit
    outbox.push_control(b"\x88\x02\x03\xe8")
    assert transport.written() == binary(10) + b"\x88\x02\x03\xe8"


def test_push_control_writes_after_the_queue(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    outbox.push(text("before"), 6)
    outbox.push_control(b"\x89\x00")
    assert transport.writes == [text("before") + b"\x89\x00"]


def test_explicit_flush_writes_everything_in_one_write(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    frames = [text(str(i)) for i in range(10)]
    for frame in frames:
        outbox.push(frame, len(frame) - 2)
    outbox.flush()
    assert transport.writes == [b"".join(frames)]
    outbox.flush()
    loop.run()  # the scheduled hub flush finds nothing left
    assert transport.writes == [b"".join(frames)]


def test_pause_and_resume_track_the_transport(impl: ModuleType, hub: Any, loop: Loop) -> None:
    outbox, transport, _ = make_outbox(impl, hub)
    transport.held = 500
    outbox.pause()
    assert outbox.paused
    assert outbox.buffered_amount == 500
    transport.held = 0
    outbox.resume()
    assert not outbox.paused
    assert outbox.buffered_amount == 0


# Hub: subscriptions -----------------------------------------------------------------------------


def test_subscribe_and_unsubscribe(impl: ModuleType, hub: Any) -> None:
    a, _, _ = make_outbox(impl, hub)
    b, _, _ = make_outbox(impl, hub)
    assert hub.subscriber_count("room") == 0
    assert hub.subscribe(a, "room") is True
    assert hub.subscribe(a, "room") is True  # already subscribed: still True, no duplicate
    assert hub.subscribe(b, "room") is True
    assert hub.subscribe(a, "other") is True
    assert hub.subscriber_count("room") == 2
    assert list(a.topics) == ["room", "other"]
    assert hub.unsubscribe(a, "room") is True
    assert hub.unsubscribe(a, "room") is False
    assert hub.unsubscribe(a, "never") is False
    assert hub.subscriber_count("room") == 1
    assert hub.unsubscribe(b, "room") is True
    assert hub.subscriber_count("room") == 0
    assert "room" not in hub.topics  # empty topics are forgotten
    assert hub.subscriber_count("") == 0


def test_subscribe_on_a_closed_outbox_fails(impl: ModuleType, hub: Any) -> None:
    a, _, _ = make_outbox(impl, hub)
    a.closed = True
    assert hub.subscribe(a, "room") is False
    assert hub.subscriber_count("room") == 0
    assert list(a.topics) == []


def test_unsubscribe_all(impl: ModuleType, hub: Any) -> None:
    a, _, _ = make_outbox(impl, hub)
    b, _, _ = make_outbox(impl, hub)
    for topic in ("t1", "t2", "t3"):
        hub.subscribe(a, topic)
    hub.subscribe(b, "t2")
    hub.unsubscribe_all(a)
    assert list(a.topics) == []
    assert [hub.subscriber_count(t) for t in ("t1", "t2", "t3")] == [0, 1, 0]
    hub.unsubscribe_all(a)


def test_unicode_topics_are_exact_strings(impl: ModuleType, hub: Any, loop: Loop) -> None:
    a, ta, _ = make_outbox(impl, hub)
    b, tb, _ = make_outbox(impl, hub)
    hub.subscribe(a, "café")
    hub.subscribe(b, "cafe\u0301")  # a different string that looks the same
    frame = text("hi")
    assert hub.publish("café", frame, 2, None) == 2
    assert hub.publish("Café", frame, 2, None) == 0
    loop.run()
    assert ta.writes == [frame]
    assert tb.writes == []


# Hub: publish -----------------------------------------------------------------------------------


def test_publish_reaches_every_subscriber_but_the_sender(impl: ModuleType, hub: Any, loop: Loop) -> None:
    boxes = [make_outbox(impl, hub) for _ in range(3)]
    outsider, to, _ = make_outbox(impl, hub)
    for outbox, _, _ in boxes:
        hub.subscribe(outbox, "room")
    frame = text("msg0")
    assert hub.publish("room", frame, 4, boxes[0][0]) == 4
    assert hub.publish("room", frame, 4, None) == 4
    assert hub.publish("room", frame, 4, outsider) == 4  # the sender need not be subscribed
    loop.run()
    assert boxes[0][1].writes == [frame * 2]
    assert boxes[1][1].writes == [frame * 3]
    assert boxes[2][1].writes == [frame * 3]
    assert to.writes == []


def test_publish_without_recipients_returns_zero(impl: ModuleType, hub: Any, loop: Loop) -> None:
    a, ta, _ = make_outbox(impl, hub)
    frame = text("x")
    assert hub.publish("nobody", frame, 1, None) == 0
    hub.subscribe(a, "room")
    assert hub.publish("room", frame, 1, a) == 0  # the sender is the only subscriber
    loop.run()
    assert ta.writes == []


def test_publish_empty_payload_returns_zero_but_sends(impl: ModuleType, hub: Any, loop: Loop) -> None:
    a, ta, _ = make_outbox(impl, hub)
    hub.subscribe(a, "room")
    frame = build_frame(OP_TEXT, b"")
    assert hub.publish("room", frame, 0, None) == 0
    loop.run()
    assert ta.writes == [frame]


def test_publish_returns_minus_one_when_any_subscriber_is_backpressured(
    impl: ModuleType, hub: Any, loop: Loop
) -> None:
    fast, tf, _ = make_outbox(impl, hub)
    slow, ts, _ = make_outbox(impl, hub, capacity=0, limit=1000)
    hub.subscribe(fast, "room")
    hub.subscribe(slow, "room")
    frame = text("hello")
    assert hub.publish("room", frame, 5, None) == 5  # queued: counts as sent
    loop.run()
    assert slow.paused
    assert hub.publish("room", frame, 5, None) == -1
    loop.run()
    assert tf.written() == frame * 2
    assert ts.written() == frame * 2


def test_publish_returns_zero_when_any_subscriber_drops(impl: ModuleType, hub: Any, loop: Loop) -> None:
    fast, tf, _ = make_outbox(impl, hub)
    slow, ts, owner = make_outbox(impl, hub, capacity=0, limit=10)
    hub.subscribe(fast, "room")
    hub.subscribe(slow, "room")
    frame = text("x" * 20)
    assert hub.publish("room", frame, 20, None) == 20
    loop.run()
    assert hub.publish("room", frame, 20, None) == 0  # dropped for slow ...
    loop.run()
    assert tf.written() == frame * 2  # ... delivered to fast
    assert ts.written() == frame
    assert owner.over_limit == 0


def test_publish_drop_wins_over_backpressure(impl: ModuleType, hub: Any, loop: Loop) -> None:
    full, _, _ = make_outbox(impl, hub, capacity=0, limit=10)
    busy, tb, _ = make_outbox(impl, hub, capacity=0, limit=10_000)
    hub.subscribe(full, "room")
    hub.subscribe(busy, "room")
    frame = text("x" * 20)
    assert hub.publish("room", frame, 20, None) == 20
    loop.run()
    assert full.paused and busy.paused
    assert hub.publish("room", frame, 20, None) == 0  # dropped for one, backpressured for the other
    loop.run()
    assert tb.written() == frame * 2


def test_publish_close_on_limit_tells_owners_after_the_fan_out(impl: ModuleType, hub: Any, loop: Loop) -> None:
    order: list[str] = []
    a, ta, _ = make_outbox(impl, hub, capacity=0, limit=1, close_on_limit=True)
    b, tb, _ = make_outbox(impl, hub)

    class Owner:
        def _over_limit(self) -> None:
            order.append(f"over:{len(tb.writes)}:{b.size}")

    a.owner = Owner()
    hub.subscribe(a, "room")
    hub.subscribe(b, "room")
    frame = text("hello")
    hub.publish("room", frame, 5, None)
    loop.run()
    assert hub.publish("room", frame, 5, None) == 0
    assert order == [f"over:1:{len(frame)}"]  # b got its frame queued before a's owner was told


def test_publish_big_frames_skip_the_queue_in_order(impl: ModuleType, hub: Any, loop: Loop) -> None:
    a, ta, _ = make_outbox(impl, hub)
    hub.subscribe(a, "room")
    small = text("small")
    big = binary(BIG)
    hub.publish("room", small, 5, None)
    assert hub.publish("room", big, BIG, None) == BIG
    assert ta.writes == [small + big]  # the queue went first, in the same write
    hub.publish("room", small, 5, None)
    loop.run()
    assert ta.written() == small + big + small


def test_publish_and_push_keep_call_order(impl: ModuleType, hub: Any, loop: Loop) -> None:
    a, ta, _ = make_outbox(impl, hub)
    hub.subscribe(a, "room")
    frames = []
    for i in range(6):
        frame = text(f"m{i}")
        frames.append(frame)
        if i % 2:
            a.push(frame, 2)
        else:
            hub.publish("room", frame, 2, None)
    loop.run()
    assert ta.writes == [b"".join(frames)]


def test_queued_publishes_survive_unsubscribing_the_last_topic(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """Bun PR #32852: a publish queued in this iteration is still written after the last unsubscribe."""
    a, ta, _ = make_outbox(impl, hub)
    hub.subscribe(a, "room")
    frame = text("last words")
    assert hub.publish("room", frame, 10, None) == 10
    assert hub.unsubscribe(a, "room") is True
    assert hub.subscriber_count("room") == 0
    loop.run()
    assert ta.writes == [frame]


def test_many_publishes_to_fast_subscribers_with_a_small_limit(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """Publishes queued in one iteration do not count against the limit while the peers keep up."""
    boxes = [make_outbox(impl, hub, limit=1024) for _ in range(3)]
    for outbox, _, _ in boxes:
        hub.subscribe(outbox, "room")
    frames = [text(f"{i:04d}" + "p" * 96) for i in range(100)]
    results = [hub.publish("room", frame, 100, None) for frame in frames]
    assert results == [100] * 100
    loop.run()
    for _, transport, _ in boxes:
        assert transport.written() == b"".join(frames)


def test_publish_to_a_slow_subscriber_stays_bounded(impl: ModuleType, hub: Any, loop: Loop) -> None:
    """The issue's case in miniature: a 64 KiB limit, 1000 publishes of 8-20 KB, a peer that stalls."""
    limit = 64 * 1024
    slow, ts, _ = make_outbox(impl, hub, capacity=0, limit=limit)
    fast, tf, _ = make_outbox(impl, hub, limit=limit)
    hub.subscribe(slow, "room")
    hub.subscribe(fast, "room")
    sizes = [8000 + (i * 7919) % 12001 for i in range(1000)]
    results = []
    highest = 0
    for i, size in enumerate(sizes):
        results.append(hub.publish("room", binary(size, bytes([i % 251])), size, None))
        highest = max(highest, slow.buffered_amount)
        if i % 10 == 9:
            loop.run()
    loop.run()
    assert results.count(0) > 900  # dropped for the slow subscriber
    assert set(results) <= {0, -1, *sizes}
    assert highest <= limit + 20004  # the limit plus one message (20000 bytes and a 4-byte header)
    assert ts.held <= limit + 20004
    assert tf.written() == b"".join(binary(size, bytes([i % 251])) for i, size in enumerate(sizes))


def test_publish_compressed_uses_each_subscribers_compressor(impl: ModuleType, hub: Any, loop: Loop) -> None:
    class Reverse:
        """A stand-in compressor with context takeover: its own frame per subscriber."""

        share_key = None

        def compress(self, payload: bytes) -> bytes:
            return payload[::-1]

    plain, tp, _ = make_outbox(impl, hub)
    packed, tc, _ = make_outbox(impl, hub)
    packed.compressor = Reverse()
    hub.subscribe(plain, "room")
    hub.subscribe(packed, "room")
    payload = b"abc"
    frame = build_frame(OP_TEXT, payload)
    assert hub.publish_compressed("room", frame, OP_TEXT, payload, None) == 3
    loop.run()
    assert tp.writes == [frame]
    assert tc.writes == [build_frame(OP_TEXT, b"cba", True, True)]
