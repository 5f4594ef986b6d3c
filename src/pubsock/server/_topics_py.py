"""The output path: per-socket outboxes, the topic registry and the publish fan-out.

Pure-Python source, compiled by Cython as ``_topics_c`` with ``_topics_c.pxd``;
``topics.py`` picks one of the two.

Every frame a socket sends, directly or through a topic, is appended by reference
to that socket's ``Outbox``; the hub writes each non-empty outbox once per
event-loop iteration (one ``transport.write`` of all its frames). A publish
builds its frame once and costs one append per subscriber.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol.deflate import compress_shared
from ..protocol.frames import OP_BINARY, OP_TEXT, build_frame, frame_header

BIG_MESSAGE = 16384  # frames this large are written at once instead of waiting for the flush
# A queue this large is written at once too, as uWS drains a subscriber's queue early: a burst of publishes
# then reaches the kernel (and the reader on another core) while the iteration is still producing it.
EARLY_FLUSH = 262144
# Every outbox's ``topics`` until its first subscribe (most of a socket's life, for many): one shared empty
# dict instead of one per socket. Only ``Hub.subscribe`` adds topics, and it gives the outbox its own dict.
_NO_TOPICS: dict[str, None] = {}
# The headers of final text and binary frames under 126 bytes, by length: ``push_text``'s and ``push_binary``'s
# common case is one concatenation.
_TEXT_HEADERS = [frame_header(OP_TEXT, length) for length in range(126)]
_BINARY_HEADERS = [frame_header(OP_BINARY, length) for length in range(126)]


class Outbox:
    """One socket's queue of outgoing frames, with its backpressure state.

    ``transport`` is an ``asyncio.WriteTransport``; ``owner`` is the socket object,
    told through ``owner._over_limit()`` when a frame was dropped with
    ``close_on_limit`` set. ``frames`` is None while nothing is queued, and
    ``topics`` a shared empty dict until the first subscribe (an idle socket
    keeps neither a list nor a dict of its own); only ``Hub`` changes ``topics``.
    ``congested`` says that queue and transport hold more than half of ``limit``
    (the socket's input flow control reads it).
    """

    def __init__(self, hub: Hub, transport: Any, owner: Any, limit: int, close_on_limit: bool) -> None:
        self.hub = hub
        self.transport = transport
        self.owner = owner
        self.limit = limit
        self.close_on_limit = close_on_limit
        self.frames: list[bytes] | None = None
        self.size = 0
        self.backlog = 0
        self.paused = False
        self.closed = False
        self.topics: dict[str, None] = _NO_TOPICS
        self.compressor: Any = None  # the socket's permessage-deflate Compressor, if negotiated
        self.congested = False

    @property
    def buffered_amount(self) -> int:
        """Bytes queued here or in the transport, not yet accepted by the kernel."""
        if self.paused:  # ``backlog`` is only refreshed on writes; the transport drains in between
            return self.size + self.transport.get_write_buffer_size()  # type: ignore[no-any-return]
        return self.size + self.backlog

    def push(self, frame: bytes, payload_length: int) -> int:
        """Queue one frame; return ``payload_length``, -1 (backpressure) or 0 (dropped or closed)."""
        if self.closed:
            return 0
        hub = self.hub
        if self.limit and self.size + self.backlog > self.limit and self._must_drop():
            hub.dropped += 1
            if self.close_on_limit:
                self.owner._over_limit()
            return 0
        self._append(frame)
        hub.messages_out += 1
        hub.bytes_out += len(frame)
        if len(frame) >= BIG_MESSAGE:
            self.flush()
        if self.paused:
            return -1
        return payload_length

    def push_text(self, text: str) -> int:
        """Queue ``text`` as one uncompressed text frame; return as ``push`` (the payload is its UTF-8)."""
        return self._push_message(_TEXT_HEADERS, text.encode("utf-8"))

    def push_binary(self, payload: bytes) -> int:
        """Queue ``payload`` as one uncompressed binary frame; return as ``push``."""
        return self._push_message(_BINARY_HEADERS, payload)

    def _push_message(self, short_headers: list[bytes], payload: bytes) -> int:
        n = len(payload)
        if n < 126:
            return self.push(short_headers[n] + payload, n)
        return self.push(build_frame(short_headers[0][0] & 0x0F, payload), n)  # (the opcode, from a header)

    def _must_drop(self) -> bool:
        """Queue and transport hold more than ``limit``: is it the peer's fault?

        Frames queued in this iteration count as sent (uWS's cork buffer), so the
        queue is written now and only what the transport could not pass on counts.
        """
        if self.frames:
            self.flush()
        if self.paused:
            self.backlog = self.transport.get_write_buffer_size()
            self._update_congestion()
        return self.size + self.backlog > self.limit

    def queue(self, data: bytes) -> None:
        """Queue bytes for the next flush outside the socket's accounting (the 101 answer).

        They ignore the backpressure limit and are not counted in ``buffered_amount``
        (Bun's ``getBufferedAmount()`` is 0 in ``open``).
        """
        if not self.closed:
            self._append(data)
            self.size -= len(data)

    def push_control(self, frame: bytes) -> None:
        """Queue a control frame, ignoring the backpressure limit, and write it now."""
        if not self.closed:
            self._append(frame)
            self.flush()

    def _append(self, frame: bytes) -> None:
        frames = self.frames
        if frames is None:  # the first frame since the last flush: the hub writes this outbox at its next flush
            hub = self.hub
            hub.dirty.append(self)
            if not hub.scheduled:
                hub.scheduled = True
                hub.schedule(hub.flush)
            self.frames = [frame]
        else:
            frames.append(frame)
        self.size += len(frame)
        if self.limit and self.size + self.backlog > self.limit >> 1:
            self.congested = True
        if self.size >= EARLY_FLUSH:
            self.flush()

    def flush(self) -> None:
        """Write every queued frame in one ``transport.write``."""
        frames = self.frames
        if not frames:
            return
        self.frames = None
        self.size = 0
        if len(frames) == 1:
            self.transport.write(frames[0])
        else:
            self.transport.write(b"".join(frames))
        if self.paused:
            self.backlog = self.transport.get_write_buffer_size()
        self._update_congestion()

    def pause(self) -> None:
        """The transport's buffer is no longer empty (``pause_writing``)."""
        self.paused = True
        self.backlog = self.transport.get_write_buffer_size()
        self._update_congestion()

    def resume(self) -> None:
        """The transport's buffer drained (``resume_writing``)."""
        self.paused = False
        self.backlog = 0
        self._update_congestion()

    def _update_congestion(self) -> None:
        self.congested = self.limit != 0 and self.size + self.backlog > self.limit >> 1


class Hub:
    """The topic registry of one server and the once-per-iteration flush of its outboxes.

    ``schedule`` is ``loop.call_soon`` (or an equivalent taking a callback).

    Counters (the server's ``stats()``), kept here because the work is here:
        messages_out: messages queued by ``push`` (sends) and by a publish (one per subscriber).
        bytes_out: the size of those frames, headers included.
        dropped: messages dropped over a socket's backpressure limit (a send, or one subscriber of a publish).
        publishes: calls of ``publish`` and ``publish_compressed`` (local publishes and remote ones).
    """

    def __init__(self, schedule: Callable[[Callable[[], None]], object]) -> None:
        self.schedule = schedule
        self.topics: dict[str, dict[Outbox, None]] = {}
        self.dirty: list[Outbox] = []
        self.scheduled = False
        self.messages_out = 0
        self.bytes_out = 0
        self.dropped = 0
        self.publishes = 0

    def flush(self) -> None:
        """Write every outbox that has frames queued; runs once per loop iteration."""
        self.scheduled = False
        while self.dirty:
            dirty = self.dirty
            self.dirty = []
            for outbox in dirty:
                outbox.flush()

    def subscribe(self, outbox: Outbox, topic: str) -> bool:
        """Add ``outbox`` to ``topic``; False when it is closed."""
        if outbox.closed:
            return False
        topics = outbox.topics
        if topic not in topics:
            if topics is _NO_TOPICS:
                topics = outbox.topics = {}
            topics[topic] = None
            subscribers = self.topics.get(topic)
            if subscribers is None:
                subscribers = self.topics[topic] = {}
            subscribers[outbox] = None
        return True

    def unsubscribe(self, outbox: Outbox, topic: str) -> bool:
        """Remove ``outbox`` from ``topic``; True only if it was subscribed."""
        if topic not in outbox.topics:
            return False
        del outbox.topics[topic]
        subscribers = self.topics[topic]
        del subscribers[outbox]
        if not subscribers:
            del self.topics[topic]
        return True

    def unsubscribe_all(self, outbox: Outbox) -> None:
        """Remove ``outbox`` from every topic."""
        for topic in list(outbox.topics):
            self.unsubscribe(outbox, topic)

    def subscriber_count(self, topic: str) -> int:
        """Return how many sockets are subscribed to ``topic``."""
        subscribers = self.topics.get(topic)
        return 0 if subscribers is None else len(subscribers)

    def publish(self, topic: str, frame: bytes, payload_length: int, sender: Outbox | None) -> int:
        """Queue ``frame`` for every subscriber of ``topic`` but ``sender``.

        Returns 0 if nobody received it or any subscriber dropped it, -1 if any
        subscriber is backpressured (it is still delivered), else ``payload_length``.
        """
        self.publishes += 1
        return self._fan_out(topic, frame, payload_length, sender, 0, None)

    def publish_compressed(self, topic: str, frame: bytes, opcode: int, payload: bytes, sender: Outbox | None) -> int:
        """As ``publish``, compressing for subscribers that negotiated permessage-deflate.

        ``frame`` is the uncompressed frame of ``payload``. Subscribers whose
        compressors share a key get one shared compressed frame; those with
        context takeover get their own, compressed in publish order.
        """
        self.publishes += 1
        return self._fan_out(topic, frame, len(payload), sender, opcode, payload)

    def _fan_out(
        self, topic: str, frame: bytes, payload_length: int, sender: Outbox | None, opcode: int, payload: bytes | None
    ) -> int:
        subscribers = self.topics.get(topic)
        if subscribers is None:
            return 0
        shared: dict[Any, bytes] | None = None
        plain = frame
        recipients = 0
        dropped = 0
        compressed_bytes = 0
        backpressured = False
        over_limit: list[Outbox] | None = None
        big = len(frame) >= BIG_MESSAGE
        for outbox in subscribers:
            if outbox is sender:
                continue
            recipients += 1
            if outbox.limit and outbox.size + outbox.backlog > outbox.limit and outbox._must_drop():
                dropped += 1
                if outbox.close_on_limit:
                    if over_limit is None:
                        over_limit = []
                    over_limit.append(outbox)
                continue
            if payload is not None and outbox.compressor is not None:
                key = outbox.compressor.share_key
                if key is None:
                    frame = build_frame(opcode, outbox.compressor.compress(payload), True, True)
                else:
                    if shared is None:
                        shared = {}
                    frame = shared.get(key)  # type: ignore[assignment]
                    if frame is None:
                        frame = shared[key] = build_frame(opcode, compress_shared(key, payload), True, True)
                big = len(frame) >= BIG_MESSAGE
                compressed_bytes += len(frame)
            elif payload is not None:
                frame = plain
                big = len(frame) >= BIG_MESSAGE
                compressed_bytes += len(frame)
            outbox._append(frame)
            if big:
                outbox.flush()
            if outbox.paused:
                backpressured = True
        delivered = recipients - dropped
        self.messages_out += delivered
        self.dropped += dropped
        # every frame is ``plain`` unless compressing, where each frame was counted as it was chosen
        self.bytes_out += compressed_bytes if payload is not None else delivered * len(plain)
        if over_limit is not None:
            for outbox in over_limit:
                outbox.owner._over_limit()
        if dropped or not recipients:
            return 0
        if backpressured:
            return -1
        return payload_length
