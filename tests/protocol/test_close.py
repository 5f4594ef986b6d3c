"""Close codes (RFC 6455 §7.4) and close frame bodies."""

from __future__ import annotations

import pytest

from pubsock.protocol import close
from pubsock.protocol._frames_py import OP_CLOSE, FrameReader, build_frame
from pubsock.protocol.close import MAX_REASON_BYTES, build_close_body, encode_reason, is_valid_code
from pubsock.protocol.events import Close


def test_code_constants() -> None:
    assert (close.NORMAL, close.GOING_AWAY, close.PROTOCOL_ERROR, close.UNSUPPORTED_DATA) == (1000, 1001, 1002, 1003)
    assert (close.NO_STATUS, close.ABNORMAL, close.INVALID_DATA, close.POLICY_VIOLATION) == (1005, 1006, 1007, 1008)
    assert (close.MESSAGE_TOO_BIG, close.INTERNAL_ERROR, close.SERVICE_RESTART) == (1009, 1011, 1012)
    assert MAX_REASON_BYTES == 123  # 125 bytes of control frame payload, less the code


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3001, 3999, 4000, 4998, 4999])
def test_valid_codes(code: int) -> None:
    assert is_valid_code(code)


@pytest.mark.parametrize(
    "code",
    [-1, 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 0xFFFF, 0x10000],
)
def test_invalid_codes(code: int) -> None:
    # 1004 is reserved; 1005, 1006 and 1015 must never be on the wire; 1016-2999 are unassigned.
    assert not is_valid_code(code)


def test_valid_codes_exhaustively() -> None:
    valid = {code for code in range(0x10000) if is_valid_code(code)}
    assert valid == {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}


@pytest.mark.parametrize("reason", ["", "bye", "x" * 122, "x" * 123, "€" * 41, "é" * 61 + "x", "\U0001f600" * 30])
def test_short_reasons_are_kept(reason: str) -> None:
    assert encode_reason(reason) == reason.encode()


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param("x" * 124, "x" * 123, id="ascii"),
        pytest.param("x" * 1000, "x" * 123, id="long-ascii"),
        pytest.param("é" * 62, "é" * 61, id="2-byte-cut-in-the-middle"),  # 124 bytes -> 122
        pytest.param("x" + "é" * 62, "x" + "é" * 61, id="2-byte-boundary"),  # 123 bytes fit exactly
        pytest.param("€" * 42, "€" * 41, id="3-byte-boundary"),  # 126 -> 123
        pytest.param("x" + "€" * 41, "x" + "€" * 40, id="3-byte-cut-after-1"),  # 124 -> 121
        pytest.param("xy" + "€" * 41, "xy" + "€" * 40, id="3-byte-cut-after-2"),  # 125 -> 122
        pytest.param("\U0001f600" * 31, "\U0001f600" * 30, id="4-byte-cut"),  # 124 -> 120
        pytest.param("abc" + "\U0001f600" * 30, "abc" + "\U0001f600" * 30, id="4-byte-boundary"),  # 123
        pytest.param("abcd" + "\U0001f600" * 30, "abcd" + "\U0001f600" * 29, id="4-byte-cut-after-3"),  # 124 -> 120
    ],
)
def test_long_reasons_are_cut_on_a_character_boundary(reason: str, expected: str) -> None:
    encoded = encode_reason(reason)
    assert encoded == expected.encode()
    assert len(encoded) <= MAX_REASON_BYTES
    assert reason.startswith(encoded.decode())


@pytest.mark.parametrize("prefix", range(0, 8))
@pytest.mark.parametrize("char", ["é", "€", "\U0001f600"])
def test_cut_keeps_as_many_characters_as_fit(prefix: int, char: str) -> None:
    reason = "x" * prefix + char * 100
    encoded = encode_reason(reason)
    kept = encoded.decode()
    assert reason.startswith(kept)
    assert len(encoded) <= MAX_REASON_BYTES < len(encoded) + len(char.encode())


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1000, "", b"\x03\xe8"),
        (1001, "going away", b"\x03\xe9going away"),
        (1002, "Received an incorrectly masked frame", b"\x03\xeaReceived an incorrectly masked frame"),
        (4999, "é", b"\x13\x87\xc3\xa9"),
        (3000, "x" * 200, b"\x0b\xb8" + b"x" * 123),
    ],
)
def test_build_close_body(code: int, reason: str, expected: bytes) -> None:
    assert build_close_body(code, reason) == expected


def test_build_close_body_default_reason() -> None:
    assert build_close_body(1000) == b"\x03\xe8"


@pytest.mark.parametrize("reason", ["", "ignored"])
def test_no_status_gives_an_empty_body(reason: str) -> None:
    assert build_close_body(1005, reason) == b""


def test_longest_body_fits_a_control_frame() -> None:
    assert len(build_close_body(1000, "€" * 100)) <= 125


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1012, 3000, 4999])
@pytest.mark.parametrize("reason", ["", "bye", "é" * 200])
def test_close_body_round_trip_through_the_reader(code: int, reason: str) -> None:
    data = build_frame(OP_CLOSE, build_close_body(code, reason), mask=b"\x01\x02\x03\x04")
    assert FrameReader(True, 1 << 20).feed(data) == [Close(code, encode_reason(reason).decode())]


def test_no_status_round_trip_through_the_reader() -> None:
    data = build_frame(OP_CLOSE, build_close_body(1005))
    assert FrameReader(False, 1 << 20).feed(data) == [Close(1005, "")]
