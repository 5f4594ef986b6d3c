"""Fuzz the frame reader (RFC 6455 §5) in both roles, with and without an inflater.

Input: one flags byte (bit 0: server role, i.e. masked frames expected; bit 1: an
inflater; bits 2-3: the kind of limit; bits 4-6: the inflater's parameters), the limit,
one byte seeding how the stream is cut into feeds, then the stream.

Properties, for the pure reader and the compiled one when it is built:
- ``feed`` returns only the documented events and never raises;
- messages stay within ``max_payload_length``, control payloads within 125 bytes,
  close codes are valid, protocol errors carry 1002, 1007 or 1009;
- a Close or a ProtocolError is the last event, the reader is then ``done`` and
  ignores everything after it;
- one feed, random feeds and byte-by-byte feeds give the same events;
- the pure and the compiled reader give the same events.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Input, chunks, instrumented, main  # noqa: E402

with instrumented(__name__ == "__main__"):
    from pubsock.protocol import _frames_py
    from pubsock.protocol.close import is_valid_code
    from pubsock.protocol.deflate import Decompressor, DeflateParams
    from pubsock.protocol.events import Close, Ping, Pong, ProtocolError

try:
    from pubsock.protocol import _frames_c
except ImportError:  # not built
    _frames_c = None  # type: ignore[assignment]

IMPLEMENTATIONS = [_frames_py] if _frames_c is None else [_frames_py, _frames_c]
BYTEWISE = 1024  # bytes fed one at a time (quadratic in a frame's size, so only a prefix)
TRAILER = b"\x81\x80\x00\x00\x00\x00\x81\x00\x88\x00"  # a text frame both ways and a Close


class Finding(AssertionError):
    """A property of the frame reader does not hold."""


def _limit(inp: Input, kind: int) -> int:
    if kind == 0:
        return inp.byte()  # tiny, down to 0
    if kind == 1:
        return inp.uint(2)
    if kind == 2:
        return 16 * 1024 * 1024  # the default
    return inp.uint(3)


def _decoded(data: bytes) -> tuple[bool, int, bool, bool, int, bytes]:
    inp = Input(data)
    flags = inp.byte()
    limit = _limit(inp, (flags >> 2) & 3)
    seed = inp.byte()
    return bool(flags & 1), limit, bool(flags & 2), (flags >> 4) & 7, seed, inp.rest()


def _inflater(masked: bool, deflate: bool, params: int) -> Decompressor | None:
    if not deflate:
        return None
    bits = (9, 12, 15, 8)[params & 3]
    agreed = DeflateParams(
        server_no_context_takeover=bool(params & 4),
        client_no_context_takeover=bool(params & 4),
        server_max_window_bits=bits,
        client_max_window_bits=bits,
    )
    return Decompressor(agreed, "server" if masked else "client")


def _check_events(events: list[object], limit: int, done: bool) -> None:
    for i, event in enumerate(events):
        kind = type(event)
        if kind is str:
            assert isinstance(event, str)
            if len(event.encode("utf-8", "surrogatepass")) > limit:
                raise Finding(f"text message of {len(event)} chars over the limit {limit}")
        elif kind is bytes:
            assert isinstance(event, bytes)
            if len(event) > limit:
                raise Finding(f"binary message of {len(event)} bytes over the limit {limit}")
        elif kind is Ping or kind is Pong:
            data = event.data  # type: ignore[union-attr]
            if type(data) is not bytes or len(data) > 125:
                raise Finding(f"bad control payload {data!r}")
        elif kind is Close:
            assert isinstance(event, Close)
            if not (event.code == 1005 and event.reason == "") and not is_valid_code(event.code):
                raise Finding(f"close code {event.code} is not valid")
            if type(event.reason) is not str:
                raise Finding(f"close reason {event.reason!r} is not a str")
        elif kind is ProtocolError:
            assert isinstance(event, ProtocolError)
            if event.code not in (1002, 1007, 1009):
                raise Finding(f"protocol error with code {event.code}")
        else:
            raise Finding(f"undocumented event {event!r}")
        if kind in (Close, ProtocolError) and i != len(events) - 1:
            raise Finding(f"{event!r} is followed by {events[i + 1:]!r}")
    last_stops = bool(events) and type(events[-1]) in (Close, ProtocolError)
    if done != last_stops:
        raise Finding(f"reader.done is {done} after {events[-1:]!r}")


def _run(impl: object, masked: bool, limit: int, deflate: bool, params: int, pieces: list[bytes]) -> list[object]:
    reader = impl.FrameReader(masked, limit, _inflater(masked, deflate, params))  # type: ignore[attr-defined]
    events: list[object] = []
    for piece in pieces:
        stopped = reader.done
        new = reader.feed(piece)
        if stopped and new:
            raise Finding(f"a done reader returned {new!r}")
        events.extend(new)
    _check_events(events, limit, reader.done)
    if reader.done and reader.feed(TRAILER):
        raise Finding("a done reader returned events for more input")
    return events


def test_one_input(data: bytes) -> None:
    masked, limit, deflate, params, seed, stream = _decoded(data)
    bytewise = [stream[i : i + 1] for i in range(min(len(stream), BYTEWISE))] + [stream[BYTEWISE:]]
    reference: list[object] | None = None
    for impl in IMPLEMENTATIONS:
        for pieces in ([stream], chunks(stream, seed), bytewise):
            events = _run(impl, masked, limit, deflate, params, pieces)
            if reference is None:
                reference = events
            elif events != reference:
                raise Finding(
                    f"{impl.__name__} with {len(pieces)} feeds: {events!r:.500}"
                    f" differs from the pure reader's single feed {reference!r:.500}"
                )


if __name__ == "__main__":
    main("frames", test_one_input)
