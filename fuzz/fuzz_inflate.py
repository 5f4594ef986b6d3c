"""Fuzz the permessage-deflate inflater (RFC 7692) with small limits.

Input: one flags byte (bits 0-1: window bits; bit 2: no context takeover; bit 3: the
role; bit 4: round-trip mode), then records.

Raw mode: each record is a header byte (bit 7: fin; bits 0-1: the kind of limit), the
limit, a length byte and that many bytes of fragment. ``Decompressor.decompress``
must return at most ``limit`` bytes or raise ``PayloadTooBig`` or
``InvalidDeflateData`` (nothing else), and agree with a plain ``zlib`` inflater fed the
same bytes without a limit: the same output, ``PayloadTooBig`` only when that
output is over the limit, ``InvalidDeflateData`` only when zlib failed.

Round-trip mode: records are messages (a length byte, then the bytes), compressed by
the peer's `Compressor`, cut into fragments; they must inflate to themselves within
a limit of exactly their size, and fail with ``PayloadTooBig`` one byte under it.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Input, chunks, instrumented, main  # noqa: E402

with instrumented(__name__ == "__main__"):
    from pubsock.protocol.deflate import (
        Compressor,
        Decompressor,
        DeflateParams,
        InvalidDeflateData,
        PayloadTooBig,
    )

TAIL = b"\x00\x00\xff\xff"


class Finding(AssertionError):
    """A property of the inflater does not hold."""


def _params(flags: int) -> tuple[DeflateParams, str, bool]:
    bits = (9, 12, 15, 8)[flags & 3]
    reset = bool(flags & 4)
    params = DeflateParams(reset, reset, bits, bits)
    return params, ("client" if flags & 8 else "server"), reset


def _limit(inp: Input, kind: int) -> int:
    if kind == 0:
        return inp.byte()
    if kind == 1:
        return inp.byte() - 8  # small, sometimes negative
    if kind == 2:
        return inp.uint(2)
    return 1 << 20


def _raw(inp: Input, params: DeflateParams, role: str, reset: bool) -> None:
    decompressor = Decompressor(params, role)  # type: ignore[arg-type]
    wbits = -max(9, params.server_max_window_bits)
    reference: zlib._Decompress | None = None
    while inp.remaining:
        header = inp.byte()
        fin = bool(header & 0x80)
        limit = _limit(inp, header & 3)
        fragment = inp.take(inp.byte())
        if reference is None:
            reference = zlib.decompressobj(wbits)
        expected: bytes | None
        if reference.eof:
            expected = b""
        else:
            try:
                expected = reference.decompress(fragment + TAIL if fin else fragment)
            except zlib.error:
                expected = None
        try:
            output = decompressor.decompress(fragment, fin, limit)
        except PayloadTooBig:
            if expected is not None and len(expected) <= limit:
                raise Finding(f"PayloadTooBig, but the fragment inflates to {len(expected)} <= {limit} bytes") from None
            reference = None  # the next message starts afresh
            continue
        except InvalidDeflateData:
            if expected is not None:
                raise Finding(f"InvalidDeflateData, but zlib inflated {len(expected)} bytes") from None
            reference = None
            continue
        if type(output) is not bytes:
            raise Finding(f"decompress returned {type(output).__name__}")
        if len(output) > limit:
            raise Finding(f"{len(output)} bytes returned, over the limit {limit}")
        if expected is None:
            raise Finding(f"zlib failed on data the inflater took ({len(output)} bytes)")
        if output != expected:
            raise Finding(f"inflated {output[:64]!r}... ({len(output)}), zlib {expected[:64]!r}... ({len(expected)})")
        if fin and (reset or reference.eof):
            reference = None


def _round_trip(inp: Input, params: DeflateParams, role: str) -> None:
    peer = "client" if role == "server" else "server"
    compressor = Compressor(params, peer)  # type: ignore[arg-type]
    decompressor = Decompressor(params, role)  # type: ignore[arg-type]
    seed = inp.byte()
    first = True
    while inp.remaining:
        message = inp.take(inp.byte()) * (1 + (seed & 7))
        payload = compressor.compress(message)
        if message and (first or params.server_no_context_takeover):
            # one byte under the size must fail (checked on a fresh inflater, which can read
            # the message only when it does not refer to earlier ones)
            spare = Decompressor(params, role)  # type: ignore[arg-type]
            try:
                _inflate(spare, chunks(payload, seed), len(message) - 1)
            except PayloadTooBig:
                pass
            else:
                raise Finding(f"a {len(message)}-byte message inflated within {len(message) - 1} bytes")
        try:
            output = _inflate(decompressor, chunks(payload, seed), len(message))
        except (PayloadTooBig, InvalidDeflateData) as exc:
            raise Finding(f"{exc!r} on a {len(message)}-byte message the compressor made") from exc
        if output != message:
            raise Finding(f"round trip of {len(message)} bytes gave {len(output)} different bytes")
        first = False


def _inflate(decompressor: Decompressor, fragments: list[bytes], limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    for i, fragment in enumerate(fragments):
        part = decompressor.decompress(fragment, i == len(fragments) - 1, limit - size)
        if len(part) > limit - size:
            raise Finding(f"{len(part)} bytes returned, over the limit {limit - size}")
        size += len(part)
        out.append(part)
    return b"".join(out)


def test_one_input(data: bytes) -> None:
    inp = Input(data)
    flags = inp.byte()
    params, role, reset = _params(flags)
    if flags & 16:
        _round_trip(inp, params, role)
    else:
        _raw(inp, params, role, reset)


if __name__ == "__main__":
    main("inflate", test_one_input)
