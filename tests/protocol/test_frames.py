"""Sans-I/O tests of RFC 6455 framing: bytes in, events out; calls in, bytes out.

Every test that takes the ``frames`` fixture runs against the pure-Python source
(``_frames_py``) and, when it is built, the Cython-compiled module (``_frames_c``).
Frames fed to the reader are encoded by :func:`frame` below, written from RFC 6455
§5.2 independently of the code under test.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest

import pubsock.protocol
from pubsock.protocol import _frames_py, events
from pubsock.protocol import frames as frames_module
from pubsock.protocol.events import Close, Ping, Pong, ProtocolError

# RFC 6455 §5.2 ---------------------------------------------------------------------------------

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10  # bits of a frame's first byte
RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]

MASK = bytes.fromhex("37fa213d")  # the key of the masked examples in RFC 6455 §5.7

BAD_MASK = ProtocolError(1002, "Received an incorrectly masked frame")
BAD_RSV1 = ProtocolError(1002, "Received unexpected RSV1 bit")
BAD_RSV = ProtocolError(1002, "Received unexpected RSV bits")
BAD_OPCODE = ProtocolError(1002, "Received unknown opcode")
BAD_UTF8 = ProtocolError(1007, "Received invalid UTF-8")
TOO_BIG = ProtocolError(1009, "Received too big message")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    flags: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """Encode one frame: masked (as a client sends it) unless ``mask`` is None.

    ``flags`` are extra bits of the first byte (RSV1, RSV2, RSV3); ``length``
    overrides the encoded payload length (to send a header alone).
    """
    n = len(payload) if length is None else length
    head = bytearray([(FIN if fin else 0) | flags | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 0x10000:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frame(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    """Encode one unmasked frame, as a server sends it."""
    return frame(opcode, payload, mask=None, **kwargs)


def close_body(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# Fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(params=["_frames_py", "_frames_c"], ids=["py", "c"])
def frames(request: pytest.FixtureRequest) -> ModuleType:
    """The framing implementation under test: the pure source, then the compiled one."""
    name: str = request.param
    try:
        module = importlib.import_module(f"pubsock.protocol.{name}")
    except ImportError:  # pragma: no cover - depends on the build
        pytest.skip(f"{name} is not built")
    if name == "_frames_c" and (module.__file__ or "").endswith(".py"):  # pragma: no cover
        pytest.skip("_frames_c is the build's source copy, not a compiled module")
    return module


def server_reader(frames: ModuleType, max_payload_length: int = 1 << 20, inflater: object = None) -> Any:
    """A reader on the server side: it expects masked frames."""
    return frames.FrameReader(True, max_payload_length, inflater)


def client_reader(frames: ModuleType, max_payload_length: int = 1 << 20, inflater: object = None) -> Any:
    """A reader on the client side: it expects unmasked frames."""
    return frames.FrameReader(False, max_payload_length, inflater)


def feed_bytewise(reader: Any, data: bytes) -> list[events.Event]:
    """Feed ``data`` one byte at a time; return every event, in order."""
    out: list[events.Event] = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    return out


def feed_frames(reader: Any, chunks: Sequence[bytes]) -> list[list[events.Event]]:
    """Feed each chunk separately; return the events each one produced."""
    return [reader.feed(chunk) for chunk in chunks]


class StubInflater:
    """Stands in for a permessage-deflate decompressor and records its calls.

    It "inflates" with ``inflate`` (doubling by default, so that the output is
    visibly the inflater's), or raises ``error``.
    """

    def __init__(
        self, inflate: Callable[[bytes], bytes] = lambda data: data * 2, error: Exception | None = None
    ) -> None:
        self.inflate = inflate
        self.error = error
        self.calls: list[tuple[bytes, bool, int]] = []

    def decompress(self, fragment: bytes, fin: bool, limit: int) -> bytes:
        self.calls.append((fragment, fin, limit))
        if self.error is not None:
            raise self.error
        return self.inflate(fragment)


# Choosing the implementation ----------------------------------------------------------------------


@pytest.fixture
def reload_frames(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Let a test reload ``frames`` under a patched environment; restore it afterwards."""
    monkeypatch.delenv("PUBSOCK_NO_EXTENSIONS", raising=False)
    yield monkeypatch
    monkeypatch.undo()
    importlib.reload(frames_module)


def test_frames_uses_the_compiled_module_when_built(reload_frames: pytest.MonkeyPatch) -> None:
    importlib.reload(frames_module)
    try:
        compiled = importlib.import_module("pubsock.protocol._frames_c")
    except ImportError:  # pragma: no cover - depends on the build
        assert frames_module.FrameReader is _frames_py.FrameReader
    else:
        assert frames_module.FrameReader is compiled.FrameReader
        assert frames_module.COMPILED is not (compiled.__file__ or "").endswith(".py")


def test_frames_pure_python_on_request(reload_frames: pytest.MonkeyPatch) -> None:
    reload_frames.setenv("PUBSOCK_NO_EXTENSIONS", "1")
    importlib.reload(frames_module)
    assert frames_module.COMPILED is False
    assert frames_module.FrameReader is _frames_py.FrameReader


def test_frames_falls_back_when_not_built(reload_frames: pytest.MonkeyPatch) -> None:
    reload_frames.delattr(pubsock.protocol, "_frames_c", raising=False)
    reload_frames.setitem(sys.modules, "pubsock.protocol._frames_c", None)  # makes the import fail
    importlib.reload(frames_module)
    assert frames_module.COMPILED is False
    for name in frames_module.__all__:
        if name != "COMPILED":
            assert getattr(frames_module, name) is getattr(_frames_py, name)


# Constants, masking and the frame builder ------------------------------------------------------


def test_opcodes_are_rfc_6455s(frames: ModuleType) -> None:
    assert (frames.OP_CONTINUATION, frames.OP_TEXT, frames.OP_BINARY) == (CONT, TEXT, BINARY)
    assert (frames.OP_CLOSE, frames.OP_PING, frames.OP_PONG) == (CLOSE, PING, PONG)


def test_apply_mask_rfc_example(frames: ModuleType) -> None:
    assert frames.apply_mask(b"Hello", MASK) == bytes.fromhex("7f9f4d5158")
    assert frames.apply_mask(bytes.fromhex("7f9f4d5158"), MASK) == b"Hello"


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 63, 64, 65, 127, 1000, 65537])
def test_apply_mask_matches_byte_by_byte_xor(frames: ModuleType, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    masked = frames.apply_mask(data, MASK)
    assert type(masked) is bytes
    assert masked == naive_mask(data, MASK)
    assert frames.apply_mask(masked, MASK) == data


@pytest.mark.parametrize("data", [b"\x00\x00\x00\x00\x00", b"\xff" * 9, b"ab\x00"])
def test_apply_mask_keeps_edge_bytes(frames: ModuleType, data: bytes) -> None:
    # Leading and trailing zero bytes must survive (the pure version goes through an int).
    assert frames.apply_mask(data, MASK) == naive_mask(data, MASK)
    assert frames.apply_mask(data, b"\x00\x00\x00\x00") == data


def test_apply_mask_accepts_bytearray(frames: ModuleType) -> None:
    assert frames.apply_mask(bytearray(b"Hello"), MASK) == bytes.fromhex("7f9f4d5158")
    assert frames.apply_mask(bytearray(b"x" * 100), MASK) == naive_mask(b"x" * 100, MASK)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 64, 65, 1000])
def test_apply_mask_compiled_branch_in_source(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    # The compiled build XORs in a C loop (_xor_copy); run that branch of the source too.
    monkeypatch.setattr(_frames_py, "_COMPILED", True)
    data = bytes(range(size % 256)) * (size // 256 + 1)
    data = data[:size]
    assert _frames_py.apply_mask(data, MASK) == naive_mask(data, MASK)
    assert _frames_py.apply_mask(bytearray(data), MASK) == naive_mask(data, MASK)


@pytest.mark.parametrize("scratch_size", [8, 1 << 16])
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 1000])
def test_reader_compiled_unmask_branch_in_source(monkeypatch: pytest.MonkeyPatch, size: int, scratch_size: int) -> None:
    # The compiled reader unmasks into its scratch buffer (or, over its size, into a new bytearray);
    # every event still carries bytes or str.
    monkeypatch.setattr(_frames_py, "_COMPILED", True)
    monkeypatch.setattr(_frames_py, "SCRATCH_SIZE", scratch_size)
    text = "é" * (size // 2) + "a" * (size % 2)
    data = bytes(range(256)) * (size // 256 + 1)
    stream = (
        frame(TEXT, text.encode(), mask=MASK)
        + frame(BINARY, data[:size], mask=MASK)
        + frame(BINARY, data[:size], fin=False, mask=MASK)
        + frame(CONT, b"tail", mask=MASK)
        + frame(PING, data[:size % 126], mask=MASK)
    )
    events = _frames_py.FrameReader(True, 1 << 20).feed(stream)
    assert events == [text, data[:size], data[:size] + b"tail", Ping(data[: size % 126])]
    assert [type(e) for e in events[1:3]] == [bytes, bytes] and type(events[3].data) is bytes
    bad = frame(TEXT, b"ok\xff" + b"a" * size, mask=MASK)
    assert _frames_py.FrameReader(True, 1 << 20).feed(bad) == [BAD_UTF8]


@pytest.mark.parametrize(
    ("opcode", "length", "fin", "rsv1", "expected"),
    [
        (TEXT, 0, True, False, "8100"),
        (TEXT, 5, True, False, "8105"),
        (BINARY, 125, True, False, "827d"),
        (BINARY, 126, True, False, "827e007e"),
        (BINARY, 256, True, False, "827e0100"),  # RFC 6455 §5.7
        (BINARY, 0xFFFF, True, False, "827effff"),
        (BINARY, 0x10000, True, False, "827f0000000000010000"),  # RFC 6455 §5.7
        (BINARY, 1 << 32, True, False, "827f0000000100000000"),
        (TEXT, 3, False, False, "0103"),
        (CONT, 2, True, False, "8002"),
        (CONT, 2, False, False, "0002"),
        (TEXT, 3, True, True, "c103"),
        (TEXT, 3, False, True, "4103"),
        (CLOSE, 2, True, False, "8802"),
        (PING, 0, True, False, "8900"),
        (PONG, 125, True, False, "8a7d"),
    ],
)
def test_frame_header(frames: ModuleType, opcode: int, length: int, fin: bool, rsv1: bool, expected: str) -> None:
    assert frames.frame_header(opcode, length, fin, rsv1) == bytes.fromhex(expected)
    masked = bytes.fromhex(expected)
    masked = masked[:1] + bytes([masked[1] | 0x80]) + masked[2:] + MASK
    assert frames.frame_header(opcode, length, fin, rsv1, MASK) == masked


def test_frame_header_defaults(frames: ModuleType) -> None:
    assert frames.frame_header(BINARY, 3) == b"\x82\x03"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # RFC 6455 §5.7 examples
        ((TEXT, b"Hello"), "810548656c6c6f"),
        ((TEXT, b"Hello", True, False, MASK), "818537fa213d7f9f4d5158"),
        ((TEXT, b"Hel", False), "010348656c"),
        ((CONT, b"lo"), "80026c6f"),
        ((PING, b"Hello"), "890548656c6c6f"),
        ((PONG, b"Hello", True, False, MASK), "8a8537fa213d7f9f4d5158"),
        # flags, empty payloads
        ((BINARY, b""), "8200"),
        ((BINARY, b"", True, False, MASK), "828037fa213d"),
        ((TEXT, b"z", True, True), "c1017a"),
        ((TEXT, b"z", False, True, MASK), "418137fa213d" + naive_mask(b"z", MASK).hex()),
    ],
)
def test_build_frame(frames: ModuleType, args: tuple[Any, ...], expected: str) -> None:
    assert frames.build_frame(*args) == bytes.fromhex(expected)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 0xFFFF, 0x10000, 70_000])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_build_frame_matches_rfc_encoding(frames: ModuleType, size: int, masked: bool) -> None:
    payload = bytes(i % 251 for i in range(size))
    mask = MASK if masked else None
    assert frames.build_frame(BINARY, payload, mask=mask) == frame(BINARY, payload, mask=mask)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 0xFFFF, 0x10000, 70_000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("masked", [True, False], ids=["client-to-server", "server-to-client"])
def test_build_then_read_round_trip(frames: ModuleType, size: int, opcode: int, masked: bool) -> None:
    payload = bytes(97 + i % 26 for i in range(size))
    data = frames.build_frame(opcode, payload, mask=MASK if masked else None)
    message = payload.decode() if opcode == TEXT else payload
    result = frames.FrameReader(masked, 1 << 20).feed(data)
    assert result == [message]
    assert type(result[0]) is type(message)


def test_build_fragments_then_read_round_trip(frames: ModuleType) -> None:
    parts = [frames.build_frame(TEXT, "h€".encode()[:2], fin=False, mask=MASK)]
    parts.append(frames.build_frame(CONT, "h€".encode()[2:] + b"!", fin=False, mask=MASK))
    parts.append(frames.build_frame(PING, b"p", mask=MASK))
    parts.append(frames.build_frame(CONT, b"", mask=MASK))
    assert server_reader(frames).feed(b"".join(parts)) == [Ping(b"p"), "h€!"]


# Reading: payload lengths and how the bytes arrive -----------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 0xFFFF, 0x10000, 100_000], ids=lambda n: f"{n}B")
@pytest.mark.parametrize("side", ["server", "client"])
def test_every_length_encoding(frames: ModuleType, size: int, side: str) -> None:
    payload = bytes(i % 256 for i in range(size))
    if side == "server":
        reader, data = server_reader(frames), frame(BINARY, payload)
    else:
        reader, data = client_reader(frames), server_frame(BINARY, payload)
    result = reader.feed(data)
    assert result == [payload]
    assert type(result[0]) is bytes
    assert not reader.done


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 0x10000])
@pytest.mark.parametrize("side", ["server", "client"])
def test_header_fed_byte_by_byte(frames: ModuleType, size: int, side: str) -> None:
    # Every prefix of the header (2, 4 or 10 bytes, plus the mask) must wait for more.
    payload = b"x" * size
    reader = server_reader(frames) if side == "server" else client_reader(frames)
    data = frame(BINARY, payload) if side == "server" else server_frame(BINARY, payload)
    header_size = len(data) - size
    assert feed_bytewise(reader, data[: header_size - 1]) == []
    if size:
        assert reader.feed(data[header_size - 1 : -1]) == []  # the header, then all but one byte
    assert reader.feed(data[-1:]) == [payload]


def test_small_frames_fed_byte_by_byte(frames: ModuleType) -> None:
    data = (
        frame(TEXT, "héllo".encode())
        + frame(PING, b"?")
        + frame(BINARY, b"\x00\x01", fin=False)
        + frame(PONG)
        + frame(CONT, b"\x02")
        + frame(TEXT, b"")
        + frame(CLOSE, close_body(1000, b"bye"))
    )
    reader = server_reader(frames)
    assert feed_bytewise(reader, data) == ["héllo", Ping(b"?"), Pong(b""), b"\x00\x01\x02", "", Close(1000, "bye")]


def test_many_frames_in_one_feed(frames: ModuleType) -> None:
    data = b"".join(frame(TEXT, f"message {i}".encode()) for i in range(100))
    data += frame(BINARY, b"\xff" * 200) + frame(PING, b"1") + frame(PONG, b"2") + frame(TEXT, "x".encode() * 70_000)
    expected: list[events.Event] = [f"message {i}" for i in range(100)]
    expected += [b"\xff" * 200, Ping(b"1"), Pong(b"2"), "x" * 70_000]
    assert server_reader(frames).feed(data) == expected


def test_partial_frame_after_complete_ones_is_kept(frames: ModuleType) -> None:
    reader = server_reader(frames)
    second = frame(BINARY, b"abcdef" * 50)
    assert reader.feed(frame(TEXT, b"one") + second[:7]) == ["one"]
    assert reader.feed(second[7:100]) == []
    assert reader.feed(second[100:] + frame(TEXT, b"three")[:1]) == [b"abcdef" * 50]
    assert reader.feed(frame(TEXT, b"three")[1:]) == ["three"]


def test_empty_feed(frames: ModuleType) -> None:
    reader = server_reader(frames)
    assert reader.feed(b"") == []
    assert reader.feed(b"\x81") == []
    assert reader.feed(b"") == []
    assert reader.feed(frame(TEXT, b"ok")[1:]) == ["ok"]


def test_reader_attributes(frames: ModuleType) -> None:
    inflater = StubInflater()
    reader = frames.FrameReader(True, 1234, inflater)
    assert (reader.expect_masked, reader.max_payload_length, reader.inflater) == (True, 1234, inflater)
    assert reader.done is False
    assert frames.FrameReader(False, 0).inflater is None


def test_64_bit_length_with_high_bit_set(frames: ModuleType) -> None:
    # RFC 6455 §5.2: "the most significant bit MUST be 0". Detected from the header alone.
    header = bytes([FIN | BINARY, 0x80 | 127]) + bytes.fromhex("8000000000000001") + MASK
    reader = server_reader(frames, max_payload_length=(1 << 62))
    assert reader.feed(header) == [ProtocolError(1002, "Received invalid frame length")]
    assert reader.done


def test_64_bit_length_huge_but_valid(frames: ModuleType) -> None:
    header = bytes([FIN | BINARY, 0x80 | 127]) + bytes.fromhex("7fffffffffffffff") + MASK
    assert server_reader(frames).feed(header) == [TOO_BIG]


def test_non_minimal_length_encodings_are_accepted(frames: ModuleType) -> None:
    # RFC 6455 asks senders for the minimal encoding; readers (like Bun's) take any.
    data16 = bytes([FIN | TEXT, 126]) + (2).to_bytes(2, "big") + b"hi"
    data64 = bytes([FIN | TEXT, 127]) + (2).to_bytes(8, "big") + b"yo"
    assert client_reader(frames).feed(data16 + data64) == ["hi", "yo"]


# Reading: masking, RSV bits, opcodes ----------------------------------------------------------------


def test_server_rejects_unmasked_frame(frames: ModuleType) -> None:
    reader = server_reader(frames)
    assert reader.feed(server_frame(TEXT, b"Hello")) == [BAD_MASK]
    assert reader.done


def test_client_rejects_masked_frame(frames: ModuleType) -> None:
    reader = client_reader(frames)
    assert reader.feed(frame(TEXT, b"Hello")) == [BAD_MASK]
    assert reader.done


@pytest.mark.parametrize("opcode", [TEXT, BINARY, CLOSE, PING, PONG])
def test_masking_is_checked_on_every_opcode(frames: ModuleType, opcode: int) -> None:
    assert server_reader(frames).feed(server_frame(opcode)) == [BAD_MASK]
    assert client_reader(frames).feed(frame(opcode)) == [BAD_MASK]


def test_masking_is_checked_before_the_payload_arrives(frames: ModuleType) -> None:
    assert server_reader(frames).feed(server_frame(BINARY, b"x" * 1000)[:4]) == [BAD_MASK]


def test_rsv1_without_inflater(frames: ModuleType) -> None:
    assert server_reader(frames).feed(frame(TEXT, b"x", flags=RSV1)) == [BAD_RSV1]
    assert client_reader(frames).feed(server_frame(BINARY, b"x", flags=RSV1)) == [BAD_RSV1]


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
def test_rsv1_on_control_frame(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames, inflater=StubInflater())
    assert reader.feed(frame(opcode, flags=RSV1)) == [BAD_RSV1]


def test_rsv1_on_continuation_frame(frames: ModuleType) -> None:
    inflater = StubInflater()
    reader = server_reader(frames, inflater=inflater)
    assert reader.feed(frame(TEXT, b"ab", fin=False, flags=RSV1)) == []
    assert reader.feed(frame(CONT, b"cd", flags=RSV1)) == [BAD_RSV1]
    assert inflater.calls == [(b"ab", False, 1 << 20)]


@pytest.mark.parametrize("flags", [RSV2, RSV3, RSV2 | RSV3, RSV1 | RSV2, RSV1 | RSV3])
@pytest.mark.parametrize("with_inflater", [False, True])
def test_rsv2_rsv3(frames: ModuleType, flags: int, with_inflater: bool) -> None:
    reader = server_reader(frames, inflater=StubInflater() if with_inflater else None)
    assert reader.feed(frame(BINARY, b"x", flags=flags)) == [BAD_RSV]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(opcode, b"x")) == [BAD_OPCODE]
    assert reader.done


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcode_inside_fragmented_message(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(TEXT, b"a", fin=False)) == []
    assert reader.feed(frame(opcode)) == [BAD_OPCODE]


@pytest.mark.parametrize("opcode", [3, 7])
def test_reserved_data_opcode_with_rsv1_and_inflater(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames, inflater=StubInflater())
    assert reader.feed(frame(opcode, b"x", flags=RSV1)) == [BAD_OPCODE]


# Reading: control frames and fragmentation -------------------------------------------------------


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
def test_fragmented_control_frame(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(opcode, b"", fin=False)) == [ProtocolError(1002, "Received fragmented control frame")]


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG])
@pytest.mark.parametrize("length", [126, 0xFFFF, 0x10000])
def test_control_frame_over_125_bytes(frames: ModuleType, opcode: int, length: int) -> None:
    # Detected from the header alone, before the payload arrives.
    reader = server_reader(frames)
    header = frame(opcode, length=length)
    assert reader.feed(header) == [ProtocolError(1002, "Received too big control frame")]


@pytest.mark.parametrize("side", ["server", "client"])
def test_control_frames_of_125_bytes(frames: ModuleType, side: str) -> None:
    body = bytes(range(125))
    encode = frame if side == "server" else server_frame
    reader = server_reader(frames) if side == "server" else client_reader(frames)
    data = encode(PING, body) + encode(PONG, body) + encode(CLOSE, close_body(1000, b"r" * 123))
    assert reader.feed(data) == [Ping(body), Pong(body), Close(1000, "r" * 123)]


def test_ping_pong_payloads_are_bytes(frames: ModuleType) -> None:
    ping, pong = server_reader(frames).feed(frame(PING, b"a") + frame(PONG, b"b"))
    assert type(ping.data) is bytes and type(pong.data) is bytes


@pytest.mark.parametrize("fin", [True, False])
def test_stray_continuation(frames: ModuleType, fin: bool) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(CONT, b"x", fin=fin)) == [ProtocolError(1002, "Received unexpected continuation frame")]


def test_continuation_after_a_complete_message(frames: ModuleType) -> None:
    reader = server_reader(frames)
    data = frame(BINARY, b"a", fin=False) + frame(CONT, b"b") + frame(CONT, b"c")
    assert reader.feed(data) == [b"ab", ProtocolError(1002, "Received unexpected continuation frame")]


@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_data_frame_inside_fragmented_message(frames: ModuleType, first: int, second: int, fin: bool) -> None:
    reader = server_reader(frames)
    data = frame(first, b"a", fin=False) + frame(CONT, b"b", fin=False) + frame(second, b"c", fin=fin)
    assert reader.feed(data) == [ProtocolError(1002, "Expected a continuation frame")]


def test_fragmented_text_with_interleaved_control_frames(frames: ModuleType) -> None:
    reader = server_reader(frames)
    results = feed_frames(
        reader,
        [
            frame(TEXT, b"Hel", fin=False),
            frame(PING, b"1"),
            frame(CONT, b"", fin=False),
            frame(PONG, b"2"),
            frame(CONT, b"lo, ", fin=False),
            frame(PING),
            frame(CONT, b"world"),
            frame(TEXT, b"next"),
        ],
    )
    assert results == [[], [Ping(b"1")], [], [Pong(b"2")], [], [Ping(b"")], ["Hello, world"], ["next"]]


def test_fragmented_binary_with_interleaved_control_frames(frames: ModuleType) -> None:
    reader = client_reader(frames)
    data = (
        server_frame(BINARY, b"\x00", fin=False)
        + server_frame(PING, b"p")
        + server_frame(CONT, b"\x01\x02", fin=False)
        + server_frame(CONT, b"", fin=False)
        + server_frame(PONG)
        + server_frame(CONT, b"\x03")
        + server_frame(BINARY, b"\x04")
    )
    result = reader.feed(data)
    assert result == [Ping(b"p"), Pong(b""), b"\x00\x01\x02\x03", b"\x04"]
    assert type(result[2]) is bytes


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_fragmented_message_of_empty_fragments(frames: ModuleType, opcode: int) -> None:
    data = frame(opcode, fin=False) + frame(CONT, fin=False) + frame(CONT)
    assert server_reader(frames).feed(data) == ["" if opcode == TEXT else b""]


def test_fragmented_messages_back_to_back(frames: ModuleType) -> None:
    reader = server_reader(frames)
    data = frame(TEXT, b"a", fin=False) + frame(CONT, b"b") + frame(BINARY, b"c", fin=False) + frame(CONT, b"d")
    data += frame(TEXT, b"e", fin=False) + frame(CONT, b"f", fin=False) + frame(CONT, b"g")
    assert reader.feed(data) == ["ab", b"cd", "efg"]


def test_close_inside_fragmented_message(frames: ModuleType) -> None:
    reader = server_reader(frames)
    data = frame(TEXT, b"a", fin=False) + frame(CLOSE, close_body(1001)) + frame(CONT, b"b")
    assert reader.feed(data) == [Close(1001, "")]


# Reading: UTF-8 ----------------------------------------------------------------------------------

INVALID_UTF8 = [
    pytest.param(b"\xff", id="ff"),
    pytest.param(b"\x80", id="lone-continuation"),
    pytest.param(b"\xc0\xaf", id="overlong-2"),
    pytest.param(b"\xe0\x80\xaf", id="overlong-3"),
    pytest.param(b"\xf0\x80\x80\xaf", id="overlong-4"),
    pytest.param(b"\xed\xa0\x80", id="surrogate"),
    pytest.param(b"\xf4\x90\x80\x80", id="above-U+10FFFF"),
    pytest.param(b"\xf5\x80\x80\x80", id="f5"),
    pytest.param(b"caf\xc3", id="truncated-2"),
    pytest.param(b"\xe2\x82", id="truncated-3"),
    pytest.param(b"\xf0\x9f\x98", id="truncated-4"),
    pytest.param(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", id="autobahn-6.3.1"),
]


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_invalid_utf8_in_single_frame(frames: ModuleType, payload: bytes) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(TEXT, payload) + frame(TEXT, b"after")) == [BAD_UTF8]
    assert reader.done


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_invalid_utf8_is_fine_in_binary(frames: ModuleType, payload: bytes) -> None:
    assert server_reader(frames).feed(frame(BINARY, payload)) == [payload]


@pytest.mark.parametrize(
    "text",
    ["", "ascii", "κόσμε", "€", "\U0001f600", "\x00\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff"],
)
def test_valid_utf8_in_single_frame(frames: ModuleType, text: str) -> None:
    assert server_reader(frames).feed(frame(TEXT, text.encode())) == [text]


@pytest.mark.parametrize("text", ["€", "\U0001f600", "aé€\U0001f600z", "κόσμε", "\ud7ff\ue000", "\U0010ffff"])
def test_code_points_split_across_fragments_at_every_byte(frames: ModuleType, text: str) -> None:
    data = text.encode()
    for cut in range(len(data) + 1):
        reader = server_reader(frames)
        first, second = data[:cut], data[cut:]
        assert reader.feed(frame(TEXT, first, fin=False)) == []
        assert reader.feed(frame(CONT, second)) == [text]


@pytest.mark.parametrize("text", ["€", "\U0001f600"])
def test_code_point_one_byte_per_fragment(frames: ModuleType, text: str) -> None:
    data = text.encode()
    reader = server_reader(frames)
    chunks = [frame(TEXT, data[:1], fin=False)]
    chunks += [frame(CONT, data[i : i + 1], fin=i == len(data) - 1) for i in range(1, len(data))]
    assert feed_frames(reader, chunks) == [[]] * (len(data) - 1) + [[text]]


@pytest.mark.parametrize(
    ("fragments", "fails_at"),
    [
        # Autobahn 6.4.1: the second fragment makes the text invalid (U+110000).
        pytest.param([b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", b"\xf4\x90\x80\x80", b"edited"], 1, id="6.4.1"),
        # Autobahn 6.4.2: the sequence is cut right after its first byte.
        pytest.param([b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", b"\x90", b"\x80\x80edited"], 1, id="6.4.2"),
        pytest.param([b"ok", b"\xff", b"never"], 1, id="invalid-start-byte"),
        pytest.param([b"\xff", b"never"], 0, id="first-fragment"),
        pytest.param([b"a", b"\xe2\x82", b"\x28", b"never"], 2, id="bad-continuation"),
        pytest.param([b"a", b"", b"\xc0", b"\x80"], 2, id="overlong"),
        # Surrogates (U+D800-U+DFFF) are invalid from their second byte on.
        pytest.param([b"a", b"\xed\xa0", b"\x80"], 1, id="surrogate-in-one-fragment"),
        pytest.param([b"a\xed", b"\xbf", b"\xbf"], 1, id="surrogate-split"),
        pytest.param([b"\xed", b"", b"\xa0\x80zz"], 2, id="surrogate-after-empty-fragment"),
        # Only the end of the message shows that the last sequence is cut short.
        pytest.param([b"a", b"\xf0\x9f", b"\x98"], 2, id="truncated-at-end"),
        pytest.param([b"\xe2", b"\x82"], 1, id="truncated-at-end-of-two"),
    ],
)
def test_invalid_utf8_across_fragments_fails_fast(
    frames: ModuleType, fragments: list[bytes], fails_at: int
) -> None:
    reader = server_reader(frames)
    last = len(fragments) - 1
    chunks = [frame(TEXT if i == 0 else CONT, part, fin=i == last) for i, part in enumerate(fragments)]
    expected: list[list[events.Event]] = [[] for _ in chunks]
    expected[fails_at] = [BAD_UTF8]
    assert feed_frames(reader, chunks) == expected
    assert reader.done


def test_invalid_utf8_in_fragment_with_control_frames_around(frames: ModuleType) -> None:
    reader = server_reader(frames)
    data = frame(TEXT, b"a", fin=False) + frame(PING, b"1") + frame(CONT, b"\xff", fin=False) + frame(PING, b"2")
    assert reader.feed(data) == [Ping(b"1"), BAD_UTF8]


def test_client_side_checks_utf8_too(frames: ModuleType) -> None:
    assert client_reader(frames).feed(server_frame(TEXT, b"\xff")) == [BAD_UTF8]


# Reading: max_payload_length -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 10, 125, 126, 0xFFFF, 0x10000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_single_frame_at_the_limit(frames: ModuleType, limit: int, opcode: int) -> None:
    payload = b"a" * limit
    result = server_reader(frames, max_payload_length=limit).feed(frame(opcode, payload))
    assert result == [payload.decode() if opcode == TEXT else payload]


@pytest.mark.parametrize("limit", [0, 10, 125, 126, 0xFFFF, 0x10000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_single_frame_over_the_limit_fails_from_its_header(frames: ModuleType, limit: int, opcode: int) -> None:
    reader = server_reader(frames, max_payload_length=limit)
    assert reader.feed(frame(opcode, length=limit + 1)) == [TOO_BIG]  # no payload sent
    assert reader.done


def test_frame_over_the_limit_on_the_client_side(frames: ModuleType) -> None:
    assert client_reader(frames, max_payload_length=3).feed(server_frame(BINARY, b"four")) == [TOO_BIG]


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_reassembled_message_at_the_limit(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames, max_payload_length=300)
    data = frame(opcode, b"a" * 100, fin=False) + frame(CONT, b"b" * 150, fin=False) + frame(CONT, b"c" * 50)
    expected = b"a" * 100 + b"b" * 150 + b"c" * 50
    assert reader.feed(data) == [expected.decode() if opcode == TEXT else expected]
    # The count starts again with the next message.
    expected = b"d" * 200 + b"e" * 100
    data = frame(opcode, b"d" * 200, fin=False) + frame(CONT, b"e" * 100)
    assert reader.feed(data) == [expected.decode() if opcode == TEXT else expected]


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_reassembled_message_over_the_limit_fails_from_a_header(frames: ModuleType, opcode: int) -> None:
    reader = server_reader(frames, max_payload_length=300)
    chunks = [
        frame(opcode, b"a" * 100, fin=False),
        frame(PING, b"x" * 100),  # control frames don't count
        frame(CONT, b"b" * 150, fin=False),
        frame(CONT, length=51),  # header only: 301 bytes in all
    ]
    assert feed_frames(reader, chunks) == [[], [Ping(b"x" * 100)], [], [TOO_BIG]]


def test_reassembled_message_over_the_limit_with_a_final_fragment(frames: ModuleType) -> None:
    reader = server_reader(frames, max_payload_length=10)
    data = frame(BINARY, b"12345", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b"123456")
    assert reader.feed(data) == [TOO_BIG]


# Reading: Close frames -----------------------------------------------------------------------------

INVALID_CLOSE_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 0xFFFF]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]


def test_close_with_empty_body(frames: ModuleType) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(CLOSE)) == [Close(1005, "")]
    assert reader.done


def test_close_with_one_byte_body(frames: ModuleType) -> None:
    assert server_reader(frames).feed(frame(CLOSE, b"\x03")) == [ProtocolError(1002, "Received invalid close frame")]


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_close_with_invalid_code(frames: ModuleType, code: int) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(CLOSE, close_body(code, b"why"))) == [ProtocolError(1002, "Received invalid close code")]
    assert reader.done


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_close_with_valid_code(frames: ModuleType, code: int) -> None:
    assert server_reader(frames).feed(frame(CLOSE, close_body(code))) == [Close(code, "")]
    assert client_reader(frames).feed(server_frame(CLOSE, close_body(code, b"reason"))) == [Close(code, "reason")]


@pytest.mark.parametrize("reason", ["bye", "κόσμε", "\U0001f600" * 30, "é" * 61 + "x"])
def test_close_reason_is_decoded(frames: ModuleType, reason: str) -> None:
    assert server_reader(frames).feed(frame(CLOSE, close_body(1000, reason.encode()))) == [Close(1000, reason)]


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"a\xf4\x90\x80\x80"])
def test_close_reason_with_invalid_utf8(frames: ModuleType, reason: bytes) -> None:
    reader = server_reader(frames)
    assert reader.feed(frame(CLOSE, close_body(1000, reason))) == [BAD_UTF8]
    assert reader.done


def test_close_body_split_across_feeds(frames: ModuleType) -> None:
    assert feed_bytewise(server_reader(frames), frame(CLOSE, close_body(4000, b"done"))) == [Close(4000, "done")]


# Reading: nothing after Close or a protocol error ---------------------------------------------------

ENDINGS = [
    pytest.param(frame(CLOSE, close_body(1000)), Close(1000, ""), id="close"),
    pytest.param(frame(CLOSE), Close(1005, ""), id="empty-close"),
    pytest.param(frame(CLOSE, b"\x03\xe8\xff"), BAD_UTF8, id="close-bad-reason"),
    pytest.param(server_frame(TEXT, b"x"), BAD_MASK, id="bad-mask"),
    pytest.param(frame(TEXT, b"\xff"), BAD_UTF8, id="bad-utf8"),
    pytest.param(frame(BINARY, b"x" * 11), TOO_BIG, id="too-big"),
    pytest.param(frame(5), BAD_OPCODE, id="bad-opcode"),
]


@pytest.mark.parametrize(("ending", "event"), ENDINGS)
def test_nothing_after_the_end(frames: ModuleType, ending: bytes, event: events.Event) -> None:
    reader = server_reader(frames, max_payload_length=10)
    after = frame(TEXT, b"more") + frame(PING) + frame(CLOSE, close_body(1000))
    # In the same feed ...
    assert reader.feed(frame(TEXT, b"first") + ending + after) == ["first", event]
    assert reader.done
    # ... and in later ones, whatever they hold.
    assert reader.feed(after) == []
    assert reader.feed(b"\xff\xff\xff") == []
    assert reader.done


@pytest.mark.parametrize(("ending", "event"), ENDINGS)
def test_nothing_after_the_end_bytewise(frames: ModuleType, ending: bytes, event: events.Event) -> None:
    reader = server_reader(frames, max_payload_length=10)
    data = frame(PING, b"a") + ending + frame(TEXT, b"b") + frame(PING)
    assert feed_bytewise(reader, data) == [Ping(b"a"), event]


# Reading: permessage-deflate through an inflater -------------------------------------------------


def test_compressed_single_frame(frames: ModuleType) -> None:
    inflater = StubInflater()
    reader = server_reader(frames, max_payload_length=100, inflater=inflater)
    assert reader.feed(frame(TEXT, b"ab", flags=RSV1)) == ["abab"]
    assert reader.feed(frame(BINARY, b"\x00", flags=RSV1)) == [b"\x00\x00"]
    assert inflater.calls == [(b"ab", True, 100), (b"\x00", True, 100)]


def test_uncompressed_frames_bypass_the_inflater(frames: ModuleType) -> None:
    inflater = StubInflater()
    reader = server_reader(frames, inflater=inflater)
    data = frame(TEXT, b"plain") + frame(BINARY, b"a", fin=False) + frame(CONT, b"b") + frame(PING, b"p")
    assert reader.feed(data) == ["plain", b"ab", Ping(b"p")]
    assert inflater.calls == []


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_compressed_fragmented_message(frames: ModuleType, opcode: int) -> None:
    inflater = StubInflater()
    reader = server_reader(frames, max_payload_length=100, inflater=inflater)
    data = (
        frame(opcode, b"ab", fin=False, flags=RSV1)
        + frame(PING, b"!")
        + frame(CONT, b"cde", fin=False)
        + frame(CONT, b"f")
        + frame(opcode, b"plain")
    )
    expected = "ababcdecdeff" if opcode == TEXT else b"ababcdecdeff"
    plain = "plain" if opcode == TEXT else b"plain"
    assert reader.feed(data) == [Ping(b"!"), expected, plain]
    # Each call may inflate what is left of the limit.
    assert inflater.calls == [(b"ab", False, 100), (b"cde", False, 96), (b"f", True, 90)]


def test_compressed_text_split_code_point(frames: ModuleType) -> None:
    reader = server_reader(frames, inflater=StubInflater(inflate=lambda data: data))
    euro = "€".encode()
    data = frame(TEXT, euro[:1], fin=False, flags=RSV1) + frame(CONT, euro[1:])
    assert reader.feed(data) == ["€"]


def test_compressed_text_with_invalid_utf8(frames: ModuleType) -> None:
    reader = server_reader(frames, inflater=StubInflater(inflate=lambda data: b"\xff"))
    assert reader.feed(frame(TEXT, b"x", flags=RSV1)) == [BAD_UTF8]


@pytest.mark.parametrize("fin", [True, False])
def test_inflater_raising_payload_too_big(frames: ModuleType, fin: bool) -> None:
    # The error class is shared by both implementations: an inflater needn't know which one runs.
    reader = server_reader(frames, inflater=StubInflater(error=_frames_py.PayloadTooBigError("too big")))
    assert reader.feed(frame(BINARY, b"x", fin=fin, flags=RSV1) + frame(TEXT, b"never")) == [TOO_BIG]
    assert reader.done


def test_payload_too_big_error_is_shared(frames: ModuleType) -> None:
    assert frames.PayloadTooBigError is _frames_py.PayloadTooBigError is events.PayloadTooBigError


@pytest.mark.parametrize("error", [ValueError("bad data"), RuntimeError("boom"), KeyError("x")])
def test_inflater_raising_other_errors(frames: ModuleType, error: Exception) -> None:
    reader = server_reader(frames, inflater=StubInflater(error=error))
    assert reader.feed(frame(TEXT, b"x", flags=RSV1)) == [ProtocolError(1007, "Received invalid compressed data")]
    assert reader.done


def test_inflater_error_on_a_later_fragment(frames: ModuleType) -> None:
    inflater = StubInflater()
    reader = server_reader(frames, inflater=inflater)
    assert reader.feed(frame(BINARY, b"ok", fin=False, flags=RSV1)) == []
    inflater.error = _frames_py.PayloadTooBigError()
    assert reader.feed(frame(CONT, b"more")) == [TOO_BIG]


def test_inflater_output_over_the_limit(frames: ModuleType) -> None:
    # An inflater that returns too much instead of raising is still held to the limit.
    reader = server_reader(frames, max_payload_length=10, inflater=StubInflater(inflate=lambda data: b"y" * 11))
    assert reader.feed(frame(BINARY, b"x", flags=RSV1)) == [TOO_BIG]


def test_inflater_output_over_the_limit_in_a_later_fragment(frames: ModuleType) -> None:
    inflater = StubInflater(inflate=lambda data: data * 5)
    reader = server_reader(frames, max_payload_length=10, inflater=inflater)
    chunks = [frame(TEXT, b"a", fin=False, flags=RSV1), frame(CONT, b"b", fin=False), frame(CONT, b"c")]
    assert feed_frames(reader, chunks) == [[], [], [TOO_BIG]]  # 5, 10, then 15 bytes
    assert inflater.calls == [(b"a", False, 10), (b"b", False, 5), (b"c", True, 0)]


def test_inflater_output_at_the_limit(frames: ModuleType) -> None:
    reader = server_reader(frames, max_payload_length=10, inflater=StubInflater(inflate=lambda data: data * 5))
    data = frame(TEXT, b"a", fin=False, flags=RSV1) + frame(CONT, b"b")
    assert reader.feed(data) == ["aaaaabbbbb"]


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_compressed_frame_size_allows_deflate_overhead(frames: ModuleType, opcode: int) -> None:
    # A compressed frame may be a little larger than the message it inflates to;
    # the reader allows limit + limit / 256 + 64 wire bytes, then the inflater decides.
    limit = 1000
    slack = limit + (limit >> 8) + 64
    reader = server_reader(frames, max_payload_length=limit, inflater=StubInflater(inflate=lambda data: data[:limit]))
    assert reader.feed(frame(opcode, b"a" * slack, flags=RSV1)) == ["a" * limit if opcode == TEXT else b"a" * limit]
    reader = server_reader(frames, max_payload_length=limit, inflater=StubInflater())
    assert reader.feed(frame(opcode, flags=RSV1, length=slack + 1)) == [TOO_BIG]


def test_compressed_continuation_size_allows_deflate_overhead(frames: ModuleType) -> None:
    limit = 1000
    slack = limit + (limit >> 8) + 64
    reader = server_reader(frames, max_payload_length=limit, inflater=StubInflater(inflate=lambda data: b""))
    assert reader.feed(frame(BINARY, b"a" * 500, fin=False, flags=RSV1)) == []
    assert reader.feed(frame(CONT, b"b" * slack, fin=False)) == []
    assert reader.feed(frame(CONT, length=slack + 1)) == [TOO_BIG]
