"""Sans-I/O tests of the reader's limits on fragmented messages (pure and compiled).

A fragmented message may have at most ``max(MIN_FRAGMENTS, max_payload_length //
FRAGMENT_COST)`` fragments: the size limit alone never ends a stream of empty
continuation frames. Sizes and UTF-8 across fragments are also checked here where
they combine with fragmentation; single-frame cases live in ``test_frames.py``.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from pubsock.protocol import _frames_py
from pubsock.protocol.deflate import Decompressor, DeflateParams
from pubsock.protocol.events import Ping, ProtocolError

CONT, TEXT, BINARY, PING = 0x0, 0x1, 0x2, 0x9
MASK = bytes.fromhex("37fa213d")
TOO_MANY = ProtocolError(1009, "Received too many fragments")
TOO_BIG = ProtocolError(1009, "Received too big message")
BAD_UTF8 = ProtocolError(1007, "Received invalid UTF-8")
MIN_FRAGMENTS = _frames_py.MIN_FRAGMENTS
FRAGMENT_COST = _frames_py.FRAGMENT_COST
SMALL = 64 * 1024  # a max_payload_length whose fragment limit is MIN_FRAGMENTS


@pytest.fixture(params=["_frames_py", "_frames_c"], ids=["py", "c"])
def frames(request: pytest.FixtureRequest) -> ModuleType:
    name: str = request.param
    try:
        module = importlib.import_module(f"pubsock.protocol.{name}")
    except ImportError:  # pragma: no cover - depends on the build
        pytest.skip(f"{name} is not built")
    if name == "_frames_c" and (module.__file__ or "").endswith(".py"):  # pragma: no cover
        pytest.skip("_frames_c is the build's source copy, not a compiled module")
    return module


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, masked: bool = True) -> bytes:
    """Encode one frame (RFC 6455 §5.2), masked as a client sends it unless ``masked`` is False."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head.append(bit | n)
    elif n < 0x10000:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return bytes(head) + payload
    return bytes(head) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def fragmented(opcode: int, parts: list[bytes], masked: bool = True) -> bytes:
    """A message sent as ``parts``, one frame each (at least two)."""
    out = [frame(opcode, parts[0], fin=False, masked=masked)]
    out += [frame(CONT, part, fin=False, masked=masked) for part in parts[1:-1]]
    out.append(frame(CONT, parts[-1], masked=masked))
    return b"".join(out)


def reader(frames: ModuleType, max_payload_length: int = SMALL, inflater: Any = None, masked: bool = True) -> Any:
    return frames.FrameReader(masked, max_payload_length, inflater)


def limit_for(max_payload_length: int) -> int:
    return max(MIN_FRAGMENTS, max_payload_length // FRAGMENT_COST)


def test_the_limit_is_the_same_in_both_implementations(frames: ModuleType) -> None:
    assert (frames.MIN_FRAGMENTS, frames.FRAGMENT_COST) == (MIN_FRAGMENTS, FRAGMENT_COST)
    assert MIN_FRAGMENTS >= 1024
    # Autobahn 9.3.1 / 9.4.1 send 4 MiB in 64-byte fragments: the default 16 MiB limit must allow it
    assert limit_for(16 * 1024 * 1024) >= (4 * 1024 * 1024) // 64


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_with_the_most_fragments_allowed(frames: ModuleType, opcode: int) -> None:
    parts = [b"a"] + [b""] * (MIN_FRAGMENTS - 2) + [b"b"]
    events = reader(frames).feed(fragmented(opcode, parts))
    assert events == (["ab"] if opcode == TEXT else [b"ab"])


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_one_fragment_too_many_fails_with_1009(frames: ModuleType, opcode: int) -> None:
    parts = [b"a"] + [b""] * (MIN_FRAGMENTS - 1) + [b"b"]
    r = reader(frames)
    assert r.feed(fragmented(opcode, parts)) == [TOO_MANY]
    assert r.done
    assert r.feed(frame(opcode, b"after")) == []  # nothing is read after the failure


def test_the_extra_fragment_fails_from_its_header(frames: ModuleType) -> None:
    r = reader(frames)
    assert r.feed(frame(BINARY, b"x", fin=False) + frame(CONT, b"x", fin=False) * (MIN_FRAGMENTS - 1)) == []
    assert r.feed(frame(CONT, b"y" * 100, fin=False)[:2]) == [TOO_MANY]  # two header bytes are enough


def test_endless_empty_fragments_end_with_1009(frames: ModuleType) -> None:
    r = reader(frames)
    events = r.feed(frame(BINARY, b"", fin=False))
    empty = frame(CONT, b"", fin=False)
    fed = 0
    while not events and fed < 10 * MIN_FRAGMENTS:
        events = r.feed(empty * 256)
        fed += 256
    assert events == [TOO_MANY]
    assert fed <= MIN_FRAGMENTS + 256


def test_empty_fragments_fed_one_at_a_time(frames: ModuleType) -> None:
    r = reader(frames)
    assert r.feed(frame(TEXT, b"", fin=False)) == []
    empty = frame(CONT, b"", fin=False)
    for _ in range(MIN_FRAGMENTS - 1):
        assert r.feed(empty) == []
    assert r.feed(empty) == [TOO_MANY]


def test_the_limit_grows_with_max_payload_length(frames: ModuleType) -> None:
    size = FRAGMENT_COST * (MIN_FRAGMENTS + 1000)
    limit = limit_for(size)
    assert limit == MIN_FRAGMENTS + 1000
    r = reader(frames, size)
    assert r.feed(fragmented(BINARY, [b"z"] * limit)) == [b"z" * limit]
    assert r.feed(fragmented(BINARY, [b"z"] * (limit + 1))) == [TOO_MANY]


def test_the_count_restarts_with_each_message(frames: ModuleType) -> None:
    r = reader(frames)
    parts = [b"p"] * MIN_FRAGMENTS
    assert r.feed(fragmented(TEXT, parts) + fragmented(BINARY, parts) + fragmented(TEXT, parts)) == [
        "p" * MIN_FRAGMENTS,
        b"p" * MIN_FRAGMENTS,
        "p" * MIN_FRAGMENTS,
    ]
    assert r.feed(frame(BINARY, b"single")) == [b"single"]


def test_control_frames_between_fragments_do_not_count(frames: ModuleType) -> None:
    r = reader(frames)
    data = frame(BINARY, b"a", fin=False)
    for _ in range(MIN_FRAGMENTS - 2):
        data += frame(PING, b"") + frame(CONT, b"", fin=False)
    data += frame(PING, b"") + frame(CONT, b"b")
    events = r.feed(data)
    assert events[-1] == b"ab"
    assert events[:-1] == [Ping(b"")] * (MIN_FRAGMENTS - 1)


def test_lowering_max_payload_length_applies_to_the_fragment_limit(frames: ModuleType) -> None:
    size = FRAGMENT_COST * (MIN_FRAGMENTS * 2)
    r = reader(frames, size)
    assert r.feed(frame(BINARY, b"", fin=False) + frame(CONT, b"", fin=False) * (MIN_FRAGMENTS + 10)) == []
    r.max_payload_length = SMALL  # as server.reload() does for open sockets
    assert r.feed(frame(CONT, b"", fin=False)) == [TOO_MANY]


def test_client_side_reader_has_the_same_limit(frames: ModuleType) -> None:
    r = reader(frames, masked=False)
    assert r.feed(fragmented(BINARY, [b"c"] * MIN_FRAGMENTS, masked=False)) == [b"c" * MIN_FRAGMENTS]
    assert r.feed(fragmented(BINARY, [b"c"] * (MIN_FRAGMENTS + 1), masked=False)) == [TOO_MANY]


# Combined with permessage-deflate and UTF-8 ----------------------------------------------------


def compressed_parts(data: bytes, count: int) -> list[bytes]:
    """``data`` deflated (RFC 7692: raw deflate, tail removed) and cut into ``count`` fragments."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    body = body[:-4]
    step = max(1, -(-len(body) // count))
    parts = [body[i : i + step] for i in range(0, len(body), step)]
    return parts + [b""] * (count - len(parts))


def compressed_message(opcode: int, parts: list[bytes]) -> bytes:
    out = [frame(opcode, parts[0], fin=False, rsv1=True)]
    out += [frame(CONT, part, fin=False) for part in parts[1:-1]]
    out.append(frame(CONT, parts[-1]))
    return b"".join(out)


def inflater() -> Decompressor:
    """The server's inflater for client messages (context takeover, 15-bit window)."""
    return Decompressor(DeflateParams(), "server")


def test_compressed_message_fragment_limit(frames: ModuleType) -> None:
    r = reader(frames, SMALL, inflater())
    assert r.feed(compressed_message(BINARY, compressed_parts(b"q" * 100, MIN_FRAGMENTS))) == [b"q" * 100]
    assert r.feed(compressed_message(BINARY, compressed_parts(b"q" * 100, MIN_FRAGMENTS + 1))) == [TOO_MANY]


def test_compressed_fragments_inflating_over_the_limit(frames: ModuleType) -> None:
    # a few hundred compressed bytes inflate past max_payload_length: 1009 before the whole bomb is inflated
    r = reader(frames, 64 * 1024, inflater())
    events = r.feed(compressed_message(BINARY, compressed_parts(b"\0" * (1 << 20), 8)))
    assert events == [TOO_BIG]


def test_many_small_fragments_over_the_size_limit(frames: ModuleType) -> None:
    r = reader(frames, 1000)
    assert r.feed(fragmented(TEXT, [b"x" * 10] * 100)) == ["x" * 1000]
    assert r.feed(fragmented(TEXT, [b"x" * 10] * 100 + [b"y"])) == [TOO_BIG]


def split_everywhere(data: bytes) -> Iterator[list[bytes]]:
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


@pytest.mark.parametrize("bad", [b"\xc3\x28", b"\xe2\x82\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"])
def test_invalid_utf8_split_across_fragments(frames: ModuleType, bad: bytes) -> None:
    data = b"ok " + bad + b" end"
    for parts in split_everywhere(data):
        assert reader(frames).feed(fragmented(TEXT, parts)) == [BAD_UTF8], parts


def test_valid_utf8_split_across_many_fragments(frames: ModuleType) -> None:
    text = "€𝄞ü" * 50
    data = text.encode()
    assert reader(frames).feed(fragmented(TEXT, [data[i : i + 1] for i in range(len(data))])) == [text]
