"""RFC 6455 framing: the frame builder, masking and the message reader.

This is the pure-Python source. The same file is compiled by Cython (with
``_frames_c.pxd``) into ``_frames_c``; ``frames.py`` picks one of the two.
"""

from __future__ import annotations

import codecs
from typing import Protocol

from .close import is_valid_code
from .events import Close, Event, Ping, Pong, ProtocolError
from .events import PayloadTooBigError as PayloadTooBigError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_COMPILED = not __file__.endswith(".py")

# A fragmented message may have at most max(MIN_FRAGMENTS, max_payload_length // FRAGMENT_COST) fragments,
# so that a stream of tiny or empty fragments cannot go on forever (the size limit alone never ends it).
MIN_FRAGMENTS = 4096
FRAGMENT_COST = 64
_utf8_incremental = codecs.getincrementaldecoder("utf-8")


class Inflater(Protocol):
    """What the reader needs from a permessage-deflate decompressor."""

    def decompress(self, fragment: bytes | bytearray, fin: bool, limit: int) -> bytes:
        """Inflate one frame of a compressed message; raise when over ``limit``."""
        ...


def apply_mask(data: bytes | bytearray, mask: bytes) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` (masking and unmasking)."""
    n = len(data)
    if _COMPILED:
        return bytes(_xor_copy(data if type(data) is bytes else bytes(data), 0, n, mask, 0))
    if n == 0:
        return b""
    repeated = mask * ((n >> 2) + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated[:n], "little")
    return value.to_bytes(n, "little")


def _xor_copy(src: bytes, start: int, end: int, key: bytes, key_start: int) -> bytearray:
    """Return ``src[start:end]`` XOR-ed with the 4 bytes of ``key`` at ``key_start``, in one copy."""
    out = bytearray(end - start)
    _xor_into(out, src, start, end, key, key_start)
    return out


def _xor_into(out: bytearray, src: bytes, start: int, end: int, key: bytes, key_start: int) -> None:
    """Write ``src[start:end]`` XOR-ed with the 4 bytes of ``key`` at ``key_start`` to the start of ``out``.

    Compiled only: ``out``, ``src`` and ``key`` are C pointers there, and the loop runs four bytes a step.
    Uncompiled, ``apply_mask``'s big-integer XOR is faster.
    """
    n = end - start
    m0, m1, m2, m3 = key[key_start], key[key_start + 1], key[key_start + 2], key[key_start + 3]
    whole = n & ~3
    i = 0
    while i < whole:
        out[i] = src[start + i] ^ m0
        out[i + 1] = src[start + i + 1] ^ m1
        out[i + 2] = src[start + i + 2] ^ m2
        out[i + 3] = src[start + i + 3] ^ m3
        i += 4
    for i in range(whole, n):
        out[i] = src[start + i] ^ key[key_start + (i & 3)]


# The compiled reader unmasks payloads up to this size here, then copies them once into the message (bytes,
# or str by decoding). One buffer serves every reader: between the unmasking and the copy there is no Python
# code, no release of the GIL and no allocation of a GC-tracked object, so no other feed can run in between.
SCRATCH_SIZE = 1 << 16
_SCRATCH = bytearray(SCRATCH_SIZE)


def frame_header(opcode: int, length: int, fin: bool = True, rsv1: bool = False, mask: bytes | None = None) -> bytes:
    """Return the header of a frame carrying ``length`` payload bytes."""
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        header = bytes((b0, mask_bit | length))
    elif length < 0x10000:
        header = bytes((b0, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((b0, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask is not None:
        header += mask
    return header


# The headers of final, unmasked frames with payloads under 126 bytes, by opcode and length:
# the common case of build_frame costs one concatenation.
_SHORT_HEADERS = [[bytes((0x80 | opcode, length)) for length in range(126)] for opcode in range(16)]


def build_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """Return one complete frame; with ``mask`` (4 bytes) the payload is masked, as a client must."""
    if mask is None and fin and not rsv1 and len(payload) < 126:
        return _SHORT_HEADERS[opcode][len(payload)] + payload
    if mask is not None:
        return frame_header(opcode, len(payload), fin, rsv1, mask) + apply_mask(payload, mask)
    return frame_header(opcode, len(payload), fin, rsv1) + payload


class FrameReader:
    """Turns received bytes into messages and control events (sans-I/O).

    ``expect_masked`` is True on the server side (client frames must be masked)
    and False on the client side (server frames must not be). Messages larger
    than ``max_payload_length`` bytes (after reassembly and inflation) fail
    with 1009, as do messages of more than ``max(MIN_FRAGMENTS,
    max_payload_length // FRAGMENT_COST)`` fragments. After a ``Close`` or a
    ``ProtocolError`` the reader ignores all further input.

    ``bytes_received`` counts the bytes fed, ``messages_received`` the text and
    binary messages completed (for the server's ``stats()``).
    """

    def __init__(self, expect_masked: bool, max_payload_length: int, inflater: Inflater | None = None) -> None:
        self.expect_masked = expect_masked
        self.max_payload_length = max_payload_length
        self.inflater = inflater
        self._buffer = b""
        self._done = False
        self._frag_opcode = 0
        self._frag_compressed = False
        self._frag_size = 0
        self._frag_count = 0
        # created by the first fragment of a fragmented message (most sockets never get one)
        self._frag_parts: list[bytes | bytearray] | None = None
        self._frag_text: list[str] | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self.bytes_received = 0
        self.messages_received = 0

    @property
    def done(self) -> bool:
        """Whether the reader has stopped (after a Close or a protocol error)."""
        return self._done

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data`` and return the events it completes, in order."""
        events: list[Event] = []
        self.bytes_received += len(data)
        if self._done:
            return events
        buf = self._buffer + data if self._buffer else data
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                header = 4
            elif length == 127:
                if n - pos < 10:
                    break
                if buf[pos + 2] & 0x80:
                    events.append(ProtocolError(1002, "Received invalid frame length"))
                    self._fail()
                    return events
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            error = self._check_header(b0, b1, length)
            if error is not None:
                events.append(error)
                self._fail()
                return events
            masked = b1 & 0x80
            if masked:
                header += 4
            end = pos + header + length
            if end > n:
                break
            payload: bytes | bytearray
            if not masked:
                payload = buf[pos + header : end]
            elif _COMPILED and length <= SCRATCH_SIZE:
                scratch = _SCRATCH  # a C pointer when compiled: slicing it makes bytes, or a str by decoding
                _xor_into(scratch, buf, pos + header, end, buf, pos + header - 4)
                if b0 == 0x81:  # a whole text message, uncompressed: the common case, decoded straight
                    pos = end
                    self._frag_compressed = False  # (_check_header ruled out an unfinished message)
                    try:
                        events.append(scratch[:length].decode("utf-8"))
                    except UnicodeDecodeError:
                        events.append(ProtocolError(1007, "Received invalid UTF-8"))
                        self._fail()
                        return events
                    self.messages_received += 1
                    continue
                payload = scratch[:length]
            elif _COMPILED:
                payload = _xor_copy(buf, pos + header, end, buf, pos + header - 4)
            else:
                payload = apply_mask(buf[pos + header : end], buf[pos + header - 4 : pos + header])
            pos = end
            event = self._frame(b0, payload)
            if event is not None:
                events.append(event)
                if self._done:
                    return events
                if not b0 & 0x08:  # not a control frame: a data frame's event is a complete message
                    self.messages_received += 1
        self._buffer = bytes(buf[pos:]) if pos < n else b""
        return events

    def _fail(self) -> None:
        self._done = True
        self._buffer = b""
        self._frag_parts = None
        self._frag_text = None
        self._decoder = None

    def _check_header(self, b0: int, b1: int, length: int) -> ProtocolError | None:
        """Validate a frame header before its payload arrives (fail fast)."""
        opcode = b0 & 0x0F
        if bool(b1 & 0x80) != self.expect_masked:
            return ProtocolError(1002, "Received an incorrectly masked frame")
        if b0 & 0x30:
            return ProtocolError(1002, "Received unexpected RSV bits")
        if b0 & 0x40 and (self.inflater is None or opcode == OP_CONTINUATION or opcode >= OP_CLOSE):
            return ProtocolError(1002, "Received unexpected RSV1 bit")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                return ProtocolError(1002, "Received unknown opcode")
            if not b0 & 0x80:
                return ProtocolError(1002, "Received fragmented control frame")
            if length > 125:
                return ProtocolError(1002, "Received too big control frame")
            return None
        if opcode == OP_CONTINUATION:
            if not self._frag_opcode:
                return ProtocolError(1002, "Received unexpected continuation frame")
            if self._frag_count >= MIN_FRAGMENTS and self._frag_count >= self.max_payload_length // FRAGMENT_COST:
                return ProtocolError(1009, "Received too many fragments")
        elif opcode > OP_BINARY:
            return ProtocolError(1002, "Received unknown opcode")
        elif self._frag_opcode:
            return ProtocolError(1002, "Expected a continuation frame")
        limit = self.max_payload_length
        if b0 & 0x40 or (opcode == OP_CONTINUATION and self._frag_compressed):
            limit += (limit >> 8) + 64  # compressed data may be slightly larger than its inflation
        elif opcode == OP_CONTINUATION:
            limit -= self._frag_size
        if length > limit:
            return ProtocolError(1009, "Received too big message")
        return None

    def _frame(self, b0: int, payload: bytes | bytearray) -> Event | None:
        """Handle one complete, validated frame; return the event it completes.

        ``payload`` is a bytearray when the compiled reader unmasked it outside its scratch buffer (over
        ``SCRATCH_SIZE``): it becomes bytes (or str) here.
        """
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode >= OP_CLOSE:
            return self._control(opcode, bytes(payload))
        if opcode != OP_CONTINUATION:
            self._frag_opcode = opcode
            self._frag_compressed = bool(b0 & 0x40)
        if self._frag_compressed:
            assert self.inflater is not None
            try:
                payload = self.inflater.decompress(payload, bool(fin), self.max_payload_length - self._frag_size)
            except PayloadTooBigError:
                self._fail()
                return ProtocolError(1009, "Received too big message")
            except Exception:
                self._fail()
                return ProtocolError(1007, "Received invalid compressed data")
            if len(payload) > self.max_payload_length - self._frag_size:
                self._fail()
                return ProtocolError(1009, "Received too big message")
        if fin and not self._frag_parts:
            # The whole message is in this frame: the common, fast path.
            text = self._frag_opcode == OP_TEXT
            self._frag_opcode = 0
            self._frag_size = 0
            self._frag_count = 0
            if text:
                if self._decoder is None:
                    try:
                        return payload.decode("utf-8")
                    except UnicodeDecodeError:
                        self._fail()
                        return ProtocolError(1007, "Received invalid UTF-8")
                return self._finish_text(payload)
            return payload if type(payload) is bytes else bytes(payload)
        self._frag_size += len(payload)
        self._frag_count += 1
        if self._frag_opcode == OP_TEXT:
            # Text never fills _frag_parts, so its last fragment took the path above: this is not it.
            if self._decoder is None:
                self._decoder = _utf8_incremental()
                self._frag_text = []
            try:
                self._frag_text.append(self._decoder.decode(payload, False))  # type: ignore[union-attr]
            except UnicodeDecodeError:
                self._fail()
                return ProtocolError(1007, "Received invalid UTF-8")
            # CPython's decoder waits for the third byte of a surrogate (ED A0-BF) before it
            # fails; no third byte can make it valid, so fail fast here.
            pending = self._decoder.getstate()[0]
            if len(pending) > 1 and pending[0] == 0xED and pending[1] >= 0xA0:
                self._fail()
                return ProtocolError(1007, "Received invalid UTF-8")
            return None
        parts = self._frag_parts
        if parts is None:
            parts = self._frag_parts = []
        parts.append(payload)
        if not fin:
            return None
        message = b"".join(parts)
        self._frag_parts = None
        self._frag_opcode = 0
        self._frag_size = 0
        self._frag_count = 0
        return message

    def _finish_text(self, payload: bytes | bytearray) -> Event:
        """Complete a fragmented text message with its last fragment."""
        assert self._decoder is not None and self._frag_text is not None
        try:
            self._frag_text.append(self._decoder.decode(payload, True))
        except UnicodeDecodeError:
            self._fail()
            return ProtocolError(1007, "Received invalid UTF-8")
        message = "".join(self._frag_text)
        self._frag_text = None
        self._decoder = None
        return message

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        self._fail()
        if not payload:
            return Close(1005, "")
        if len(payload) == 1:
            return ProtocolError(1002, "Received invalid close frame")
        code = (payload[0] << 8) | payload[1]
        if not is_valid_code(code):
            return ProtocolError(1002, "Received invalid close code")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return ProtocolError(1007, "Received invalid UTF-8")
        return Close(code, reason)
