"""Tests for pubsock.protocol.deflate: options, negotiation and the codec (no network)."""

from __future__ import annotations

import os
import random
import threading
import time
import tracemalloc
import types
import zlib

import pytest

from pubsock.protocol.deflate import (
    COMPRESSOR_PRESETS,
    DECOMPRESSOR_PRESETS,
    Compressor,
    CompressorPreset,
    Decompressor,
    DecompressorPreset,
    DeflateOptions,
    DeflateParams,
    InvalidDeflateData,
    PayloadTooBig,
    Role,
    accept_client_response,
    client_offer,
    compress_shared,
    negotiate_server,
)

HELLO = bytes.fromhex("f248cdc9c90700")  # RFC 7692 §7.2.3.1
HELLO_AGAIN = bytes.fromhex("f200110000")  # §7.2.3.2, with context takeover
HELLO_BFINAL = bytes.fromhex("f348cdc9c9070000")  # §7.2.3.4
HELLO_STORED = bytes.fromhex("000500faff48656c6c6f00")  # §7.2.3.3
TEXT = b"".join(b'{"user": "Alice%d", "text": "Hello World!"}\n' % (i % 7) for i in range(3000))


def options(value: object) -> DeflateOptions:
    parsed = DeflateOptions.from_option(value)
    assert parsed is not None
    return parsed


SHARED = options(True)
DEDICATED = options({"compress": "dedicated", "decompress": "dedicated"})
SMALL = options({"compress": "4KB", "decompress": "4KB"})  # 9-bit compressor, 12-bit inflater
SIZES = ["3KB", "4KB", "8KB", "16KB", "32KB", "64KB", "128KB", "256KB"]


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        False,
        {},
        {"compress": False},
        {"compress": None},
        {"compress": "disable"},
        {"decompress": "dedicated"},
    ],
)
def test_option_off(value: object) -> None:
    assert DeflateOptions.from_option(value) is None


def test_option_true_is_shared_both_ways() -> None:
    assert SHARED.compressor == CompressorPreset("shared", 15, 8, False)
    assert SHARED.decompressor == DecompressorPreset("shared", 15, False)
    assert options({"compress": True, "decompress": True}) == SHARED
    assert options({"compress": "shared", "decompress": "shared"}) == SHARED


@pytest.mark.parametrize("decompress", [None, False, "disable", "shared", True])
def test_option_decompressor_disabled_is_shared(decompress: object) -> None:
    value = {"compress": "8KB", "decompress": decompress}
    parsed = options(value if decompress is not None else {"compress": "8KB"})
    assert parsed.compressor == CompressorPreset("8KB", 10, 3, True)
    assert parsed.decompressor == DECOMPRESSOR_PRESETS["shared"]


@pytest.mark.parametrize(
    ("name", "bits", "mem_level"),
    [
        ("dedicated", 15, 8),
        ("256KB", 15, 8),
        ("128KB", 14, 7),
        ("64KB", 13, 6),
        ("32KB", 12, 5),
        ("16KB", 11, 4),
        ("8KB", 10, 3),
        ("4KB", 9, 2),
        ("3KB", 9, 1),
    ],
)
def test_option_compressor_table(name: str, bits: int, mem_level: int) -> None:
    assert options({"compress": name}).compressor == CompressorPreset(name, bits, mem_level, True)


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("dedicated", 15),
        ("256KB", 15),
        ("128KB", 15),
        ("64KB", 15),
        ("32KB", 15),
        ("16KB", 14),
        ("8KB", 13),
        ("4KB", 12),
        ("3KB", 12),
    ],
)
def test_option_decompressor_table(name: str, bits: int) -> None:
    parsed = options({"compress": True, "decompress": name})
    assert parsed.decompressor == DecompressorPreset(name, bits, True)


def test_option_presets_are_complete() -> None:
    expected = {"shared", "dedicated", *SIZES}
    assert set(COMPRESSOR_PRESETS) == set(DECOMPRESSOR_PRESETS) == expected


def test_option_accepts_any_mapping() -> None:
    assert options(types.MappingProxyType({"compress": "dedicated"})).compressor.dedicated


@pytest.mark.parametrize("value", [1, 0, "shared", ["compress"], 1.5])
def test_option_wrong_type(value: object) -> None:
    with pytest.raises(TypeError, match=r"per_message_deflate must be a bool, None or a mapping"):
        DeflateOptions.from_option(value)


def test_option_wrong_type_uses_option_name() -> None:
    with pytest.raises(TypeError, match=r"^perMessageDeflate must be"):
        DeflateOptions.from_option(3, option_name="perMessageDeflate")


@pytest.mark.parametrize("key", ["compress", "decompress"])
def test_option_entry_wrong_type(key: str) -> None:
    value = {"compress": True, key: 1}
    message = rf"per_message_deflate\['{key}'\] must be a bool or one of"
    with pytest.raises(TypeError, match=message):
        DeflateOptions.from_option(value)


@pytest.mark.parametrize("name", ["1KB", "SHARED", "dedicate", ""])
def test_option_unknown_preset(name: str) -> None:
    message = r"must be one of 'disable', 'shared', 'dedicated', '3KB', .*'256KB', got"
    with pytest.raises(ValueError, match=message) as info:
        DeflateOptions.from_option({"compress": name})
    for valid in SIZES:
        assert repr(valid) in str(info.value)
    with pytest.raises(ValueError, match=r"\['decompress'\] must be one of"):
        DeflateOptions.from_option({"compress": True, "decompress": name})


@pytest.mark.parametrize("value", [{"compres": True}, {"compress": True, "level": 9}, {1: True}])
def test_option_unknown_key(value: object) -> None:
    with pytest.raises(ValueError, match=r"accepts only the keys 'compress' and 'decompress'"):
        DeflateOptions.from_option(value)


# -- server negotiation ----------------------------------------------------------------------

PMD = "permessage-deflate"
SNCT = "server_no_context_takeover"
CNCT = "client_no_context_takeover"


@pytest.mark.parametrize(
    ("opts", "offer", "reply", "params"),
    [
        # Shared compressor and decompressor.
        (SHARED, PMD, f"{PMD}; {SNCT}; {CNCT}", DeflateParams(True, True, 15, 15)),
        (
            SHARED,
            f"{PMD}; client_max_window_bits",
            f"{PMD}; {SNCT}; {CNCT}",
            DeflateParams(True, True),
        ),
        (SHARED, f"{PMD}; {SNCT}", f"{PMD}; {SNCT}; {CNCT}", DeflateParams(True, True)),
        (SHARED, f"{PMD}; {CNCT}", f"{PMD}; {SNCT}; {CNCT}", DeflateParams(True, True)),
        (
            SHARED,
            f"{PMD}; server_max_window_bits=15",
            f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=15",
            DeflateParams(True, True),
        ),
        (
            SHARED,
            f"{PMD}; client_max_window_bits=10",
            f"{PMD}; {SNCT}; {CNCT}; client_max_window_bits=10",
            DeflateParams(True, True, 15, 10),
        ),
        # Dedicated 15-bit compressor and inflater.
        (DEDICATED, PMD, PMD, DeflateParams()),
        (DEDICATED, f"{PMD}; client_max_window_bits", PMD, DeflateParams()),
        (DEDICATED, f"{PMD}; {SNCT}", f"{PMD}; {SNCT}", DeflateParams(True, False)),
        (DEDICATED, f"{PMD}; {CNCT}", f"{PMD}; {CNCT}", DeflateParams(False, True)),
        (
            DEDICATED,
            f"{PMD}; {SNCT}; {CNCT}",
            f"{PMD}; {SNCT}; {CNCT}",
            DeflateParams(True, True),
        ),
        (
            DEDICATED,
            f"{PMD}; server_max_window_bits=10",
            f"{PMD}; server_max_window_bits=10",
            DeflateParams(False, False, 10, 15),
        ),
        (
            DEDICATED,
            f"{PMD}; server_max_window_bits=15",
            f"{PMD}; server_max_window_bits=15",
            DeflateParams(),
        ),
        (
            DEDICATED,
            f"{PMD}; client_max_window_bits=8",
            f"{PMD}; client_max_window_bits=8",
            DeflateParams(False, False, 15, 8),
        ),
        # Sized presets: the compressor announces its window, the inflater asks for its own.
        (SMALL, PMD, f"{PMD}; server_max_window_bits=9", DeflateParams(False, False, 9, 15)),
        (
            SMALL,
            f"{PMD}; client_max_window_bits",
            f"{PMD}; server_max_window_bits=9; client_max_window_bits=12",
            DeflateParams(False, False, 9, 12),
        ),
        (
            SMALL,
            f"{PMD}; client_max_window_bits=14",
            f"{PMD}; server_max_window_bits=9; client_max_window_bits=12",
            DeflateParams(False, False, 9, 12),
        ),
        (
            SMALL,
            f"{PMD}; client_max_window_bits=8",
            f"{PMD}; server_max_window_bits=9; client_max_window_bits=8",
            DeflateParams(False, False, 9, 8),
        ),
        (
            SMALL,
            f"{PMD}; server_max_window_bits=12",
            f"{PMD}; server_max_window_bits=9",
            DeflateParams(False, False, 9, 15),
        ),
        (
            SMALL,
            f"{PMD}; {SNCT}",
            f"{PMD}; {SNCT}; server_max_window_bits=9",
            DeflateParams(True, False, 9, 15),
        ),
        (
            options({"compress": "64KB"}),
            f"{PMD}; server_max_window_bits=11; client_max_window_bits",
            f"{PMD}; {CNCT}; server_max_window_bits=11",
            DeflateParams(False, True, 11, 15),
        ),
        # Quoted values (RFC 7692 §7.1), case and spacing.
        (
            DEDICATED,
            f'{PMD}; server_max_window_bits="10"; client_max_window_bits="9"',
            f"{PMD}; server_max_window_bits=10; client_max_window_bits=9",
            DeflateParams(False, False, 10, 9),
        ),
        (
            DEDICATED,
            "Permessage-Deflate ;Server_Max_Window_Bits = 12",
            f"{PMD}; server_max_window_bits=12",
            DeflateParams(False, False, 12, 15),
        ),
    ],
)
def test_negotiate_accepts(
    opts: DeflateOptions, offer: str, reply: str, params: DeflateParams
) -> None:
    assert negotiate_server(opts, offer) == (reply, params)
    assert negotiate_server(opts, [offer]) == (reply, params)


@pytest.mark.parametrize(
    "offer",
    [
        "",
        "x-webkit-deflate-frame",
        f"{PMD}; server_max_window_bits",
        f"{PMD}; server_max_window_bits=8",
        f"{PMD}; server_max_window_bits=16",
        f"{PMD}; server_max_window_bits=7",
        f"{PMD}; server_max_window_bits=010",
        f"{PMD}; server_max_window_bits=ten",
        f"{PMD}; client_max_window_bits=7",
        f"{PMD}; client_max_window_bits=16",
        f"{PMD}; client_max_window_bits=",
        f'{PMD}; client_max_window_bits=""',
        f'{PMD}; client_max_window_bits="10',
        f"{PMD}; {CNCT}; {CNCT}",
        f"{PMD}; client_max_window_bits; client_max_window_bits=10",
        f"{PMD}; {SNCT}=1",
        f'{PMD}; {CNCT}="x"',
        f"{PMD}; mux",
        f"{PMD};",
        f"{PMD}; client_max_window_bits; ",
        f"{PMD}; bad name",
    ],
)
@pytest.mark.parametrize("opts", [SHARED, DEDICATED, SMALL])
def test_negotiate_declines(opts: DeflateOptions, offer: str) -> None:
    assert negotiate_server(opts, offer) is None


@pytest.mark.parametrize("bits", range(9, 15))
def test_negotiate_shared_declines_lower_server_window(bits: int) -> None:
    assert negotiate_server(SHARED, f"{PMD}; server_max_window_bits={bits}") is None
    assert negotiate_server(DEDICATED, f"{PMD}; server_max_window_bits={bits}") is not None


def test_negotiate_accepts_no_context_takeover_with_a_window() -> None:
    """pubsock, unlike Bun: RFC 7692 allows the pair (Autobahn 13.5/13.6 offer it)."""
    offer = f"{PMD}; {CNCT}; client_max_window_bits; {SNCT}; server_max_window_bits=9"
    reply = f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=9"
    assert negotiate_server(DEDICATED, offer) == (reply, DeflateParams(True, True, 9, 15))
    assert negotiate_server(SMALL, offer) == (
        f"{reply}; client_max_window_bits=12",
        DeflateParams(True, True, 9, 12),
    )
    assert negotiate_server(SHARED, offer) is None  # the shared compressor has a 15-bit window


def test_negotiate_takes_first_acceptable_offer() -> None:
    offers = f"{PMD}; server_max_window_bits=8, {PMD}; {SNCT}, {PMD}"
    assert negotiate_server(DEDICATED, offers) == (f"{PMD}; {SNCT}", DeflateParams(True))
    # Parameters after a comma belong to the next offer.
    offers = f"{PMD}, server_max_window_bits=10"
    assert negotiate_server(DEDICATED, offers) == (PMD, DeflateParams())


def test_negotiate_skips_other_extensions() -> None:
    offers = ['x-webkit-deflate-frame; no_context_takeover, foo; a="b,c\\"d;e"', f"{PMD}; {CNCT}"]
    assert negotiate_server(DEDICATED, offers) == (f"{PMD}; {CNCT}", DeflateParams(False, True))
    assert negotiate_server(DEDICATED, ", ,mux, " + PMD) == (PMD, DeflateParams())


# -- client side -----------------------------------------------------------------------------


def test_client_offer() -> None:
    assert client_offer() == f"{PMD}; client_max_window_bits"
    assert client_offer(client_max_window_bits=False) == PMD
    assert (
        client_offer(
            client_max_window_bits=10,
            server_max_window_bits=12,
            client_no_context_takeover=True,
            server_no_context_takeover=True,
        )
        == f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=10"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"client_max_window_bits": 16}, {"client_max_window_bits": 7}, {"server_max_window_bits": 16}],
)
def test_client_offer_rejects_bad_window(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"_max_window_bits must be from 8 to 15"):
        client_offer(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offer", "response", "params"),
    [
        (client_offer(), "", None),
        (client_offer(), "  ", None),
        (client_offer(), PMD, DeflateParams()),
        (
            client_offer(),
            f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=10",
            DeflateParams(True, True, 12, 10),
        ),
        (client_offer(), f'{PMD}; client_max_window_bits="8"', DeflateParams(False, False, 15, 8)),
        (client_offer(client_no_context_takeover=True), PMD, DeflateParams(False, True)),
        (client_offer(client_max_window_bits=10), PMD, DeflateParams(False, False, 15, 10)),
        (
            client_offer(client_max_window_bits=10),
            f"{PMD}; client_max_window_bits=9",
            DeflateParams(False, False, 15, 9),
        ),
        (
            client_offer(server_max_window_bits=10),
            f"{PMD}; server_max_window_bits=10",
            DeflateParams(False, False, 10, 15),
        ),
        (
            client_offer(server_max_window_bits=10),
            f"{PMD}; server_max_window_bits=8",
            DeflateParams(False, False, 8, 15),
        ),
        (client_offer(server_no_context_takeover=True), f"{PMD}; {SNCT}", DeflateParams(True)),
        # The offer may hold other extensions: only permessage-deflate counts.
        ("foo, " + client_offer(), PMD, DeflateParams()),
    ],
)
def test_client_accepts(offer: str, response: str, params: DeflateParams | None) -> None:
    assert accept_client_response(response, offer) == params


@pytest.mark.parametrize(
    ("offer", "response", "message"),
    [
        (client_offer(), "x-webkit-deflate-frame", "not offered"),
        (client_offer(), f"{PMD}, foo", "not offered"),
        (client_offer(), f"{PMD}, {PMD}", "more than once"),
        (client_offer(), f"{PMD}; mux", "unknown parameter 'mux'"),
        (client_offer(), f"{PMD}; {SNCT}; {SNCT}", "malformed or repeated"),
        (client_offer(), f"{PMD};", "malformed or repeated"),
        (client_offer(), f"{PMD}; {CNCT}=1", "takes no value"),
        (client_offer(), f"{PMD}; server_max_window_bits", "server_max_window_bits without a"),
        (client_offer(), f"{PMD}; server_max_window_bits=16", "not an integer from 8 to 15"),
        (client_offer(), f"{PMD}; client_max_window_bits", "client_max_window_bits without a"),
        (client_offer(), f"{PMD}; client_max_window_bits=07", "not an integer from 8 to 15"),
        (
            client_offer(server_max_window_bits=10),
            f"{PMD}; server_max_window_bits=12",
            "above the offered 10",
        ),
        (client_offer(server_max_window_bits=10), PMD, "ignored server_max_window_bits"),
        (client_offer(server_no_context_takeover=True), PMD, "ignored server_no_context_takeover"),
        (
            client_offer(client_max_window_bits=False),
            f"{PMD}; client_max_window_bits=10",
            "client_max_window_bits, which was not offered",
        ),
        (
            client_offer(client_max_window_bits=10),
            f"{PMD}; client_max_window_bits=12",
            "above the offered 10",
        ),
        ("foo", PMD, "no valid permessage-deflate offer"),
        (f"{PMD}; server_max_window_bits=", PMD, "no valid permessage-deflate offer"),
    ],
)
def test_client_rejects(offer: str, response: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accept_client_response(response, offer)


# -- codec: RFC 7692 examples ----------------------------------------------------------------


def test_rfc_hello_with_context_takeover() -> None:
    compressor = Compressor(DeflateParams(), "server")
    assert compressor.compress(b"Hello") == HELLO
    assert compressor.compress(b"Hello") == HELLO_AGAIN
    decompressor = Decompressor(DeflateParams(), "client")
    assert decompressor.decompress(HELLO, True, 100) == b"Hello"
    assert decompressor.decompress(HELLO_AGAIN, True, 100) == b"Hello"


@pytest.mark.parametrize("role", ["server", "client"])
def test_rfc_hello_without_context_takeover(role: Role) -> None:
    compressor = Compressor(DeflateParams(True, True), role)
    assert compressor.compress(b"Hello") == HELLO
    assert compressor.compress(b"Hello") == HELLO
    decompressor = Decompressor(DeflateParams(True, True), role)
    assert decompressor.decompress(HELLO, True, 100) == b"Hello"
    assert decompressor.decompress(HELLO, True, 100) == b"Hello"


def test_rfc_fragments_and_stored_block() -> None:
    decompressor = Decompressor(DeflateParams(), "server")
    first = decompressor.decompress(HELLO[:3], False, 5)
    assert first + decompressor.decompress(HELLO[3:], True, 5 - len(first)) == b"Hello"
    assert decompressor.decompress(HELLO_STORED, True, 5) == b"Hello"


@pytest.mark.parametrize("padding", [b"", b"\x00" * 4, b"\x00" * 1000])
def test_rfc_bfinal_then_next_message(padding: bytes) -> None:
    decompressor = Decompressor(DeflateParams(), "server")  # context takeover
    assert decompressor.decompress(HELLO_BFINAL + padding, True, 5) == b"Hello"
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"
    assert decompressor.decompress(HELLO_AGAIN, True, 5) == b"Hello"


def test_bfinal_then_padding_in_later_fragments() -> None:
    decompressor = Decompressor(DeflateParams(), "client")
    assert decompressor.decompress(HELLO_BFINAL, False, 5) == b"Hello"
    assert decompressor.decompress(b"\x00" * 100, False, 5) == b""
    assert decompressor.decompress(b"\x00", True, 5) == b""
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"


def test_empty_message() -> None:
    for params in (DeflateParams(), DeflateParams(True, True)):
        compressor = Compressor(params, "server")
        assert compressor.compress(b"") == b"\x00"
        assert compressor.compress(memoryview(b"")) == b"\x00"
        decompressor = Decompressor(params, "client")
        assert decompressor.decompress(b"\x00", True, 0) == b""
        assert decompressor.decompress(compressor.compress(b"Hello"), True, 5) == b"Hello"
    assert compress_shared((15, 8, -1), b"") == b"\x00"


def test_bytes_like_inputs() -> None:
    compressor = Compressor(DeflateParams(), "client")
    decompressor = Decompressor(DeflateParams(), "server")
    for data in (b"Hello", bytearray(b"Hello"), memoryview(b"xxHelloxx")[2:7]):
        payload = compressor.compress(data)
        assert decompressor.decompress(memoryview(bytearray(payload)), True, 5) == b"Hello"


# -- codec: presets, roles, windows ----------------------------------------------------------


def inflate_raw(payloads: list[bytes], bits: int, reset: bool) -> list[bytes]:
    """Inflate with plain zlib, to check what the peer will see."""
    inflater = zlib.decompressobj(-bits)
    out = []
    for payload in payloads:
        if reset:
            inflater = zlib.decompressobj(-bits)
        out.append(inflater.decompress(payload + b"\x00\x00\xff\xff"))
    return out


MESSAGES = [TEXT[:100], TEXT[:5000], b"", TEXT[:100], os.urandom(3000), TEXT, TEXT[50:150]]


@pytest.mark.parametrize("compress", ["shared", "dedicated", *SIZES])
@pytest.mark.parametrize("decompress", ["shared", "dedicated", "4KB", "16KB"])
@pytest.mark.parametrize(
    "offer",
    [
        client_offer(),
        client_offer(client_max_window_bits=False),
        client_offer(server_no_context_takeover=True, client_no_context_takeover=True),
        client_offer(server_max_window_bits=10, client_max_window_bits=8),
    ],
)
def test_round_trip(compress: str, decompress: str, offer: str) -> None:
    opts = options({"compress": compress, "decompress": decompress})
    negotiated = negotiate_server(opts, offer)
    if compress == "shared" and "server_max_window_bits=10" in offer:
        assert negotiated is None  # the shared compressor only has 15 bits
        return
    assert negotiated is not None
    reply, params = negotiated
    assert accept_client_response(reply, offer) == params
    server_compressor, server_decompressor = opts.codecs(params)
    client_compressor = Compressor(params, "client")
    client_decompressor = Decompressor(params, "client")

    to_client = [server_compressor.compress(m) for m in MESSAGES]
    to_server = [client_compressor.compress(m) for m in MESSAGES]
    assert [client_decompressor.decompress(p, True, len(TEXT)) for p in to_client] == MESSAGES
    assert [server_decompressor.decompress(p, True, len(TEXT)) for p in to_server] == MESSAGES
    # Plain zlib with exactly the agreed windows decodes them too.
    server_bits = params.server_max_window_bits
    assert inflate_raw(to_client, server_bits, params.server_no_context_takeover) == MESSAGES
    client_bits = max(9, params.client_max_window_bits)
    assert inflate_raw(to_server, client_bits, params.client_no_context_takeover) == MESSAGES
    # Context takeover makes a repeated message cheaper, unless the agreement forbids it.
    first, again = to_client[0], to_client[3]
    assert (again == first) is params.server_no_context_takeover
    assert (len(again) < len(first) / 2) is not params.server_no_context_takeover


def inflate_strict(payload: bytes, bits: int) -> bytes:
    """Inflate one byte per call: every back-reference must then come from the window."""
    inflater = zlib.decompressobj(-bits)
    output = [inflater.decompress(payload + b"\x00\x00\xff\xff", 1)]
    while output[-1]:
        output.append(inflater.decompress(inflater.unconsumed_tail, 1))
    return b"".join(output)


def test_inflate_strict_checks_the_window() -> None:
    data = repeat_at(600)
    stream = zlib.compressobj(-1, zlib.DEFLATED, -10)
    payload = (stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert inflate_raw([payload], 9, reset=False) == [data]  # zlib does not check within one call
    assert inflate_strict(payload, 10) == data
    with pytest.raises(zlib.error, match="too far back"):
        inflate_strict(payload, 9)


def repeat_at(distance: int) -> bytes:
    """Random bytes repeated once, ``distance`` bytes apart."""
    block = random.Random(distance).randbytes(distance)
    return block + block


@pytest.mark.parametrize("name", SIZES)
def test_announced_window_is_the_one_used(name: str) -> None:
    """Bun PR #41629: every dedicated size ran the 3KB compressor."""
    opts = options({"compress": name})
    negotiated = negotiate_server(opts, PMD)
    assert negotiated is not None
    _, params = negotiated
    bits = params.server_max_window_bits
    assert bits == opts.compressor.window_bits
    compressor, _ = opts.codecs(params)
    # Repeats that fit the window are found: the window is not smaller than announced.
    near = repeat_at(2**bits - 300)
    assert len(compressor.compress(near)) < len(near) * 0.6
    # Repeats beyond it are not used: an inflater of exactly that window decodes everything.
    far = repeat_at(2**bits + 100)
    payload = compressor.compress(far)
    assert len(payload) > len(far) * 0.9
    assert inflate_strict(payload, bits) == far
    if bits < 15:  # sanity: a larger window would have broken that inflater
        larger = Compressor(DeflateParams(server_max_window_bits=bits + 1), "server")
        with pytest.raises(zlib.error, match="too far back"):
            inflate_strict(larger.compress(far), bits)


def test_client_compressor_with_8_bits() -> None:
    """zlib cannot raw-deflate with 8 bits; 9 bits never reach farther than 250 bytes."""
    compressor = Compressor(DeflateParams(client_max_window_bits=8), "client")
    for distance in (200, 250, 256, 300):
        data = repeat_at(distance)
        assert inflate_strict(compressor.compress(data), 8) == data
    assert len(compressor.compress(repeat_at(240))) < 300


@pytest.mark.parametrize("role", ["sender", "", None])
def test_bad_role(role: str | None) -> None:
    with pytest.raises(ValueError, match="role must be 'server' or 'client'"):
        Compressor(DeflateParams(), role)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="role must be 'server' or 'client'"):
        Decompressor(DeflateParams(), role)  # type: ignore[arg-type]


@pytest.mark.parametrize("params", [DeflateParams(), DeflateParams(True, True)])
def test_bad_compressor_settings(params: DeflateParams) -> None:
    with pytest.raises(ValueError):
        Compressor(params, "server", mem_level=10)
    with pytest.raises(ValueError):
        Compressor(params, "server", level=12)


# -- codec: shared compression ---------------------------------------------------------------


def test_share_key_rules() -> None:
    nct = DeflateParams(True, True, 12, 11)
    assert Compressor(DeflateParams(), "server").share_key is None
    assert Compressor(DeflateParams(False, True), "server").share_key is None
    assert Compressor(DeflateParams(True, False), "client").share_key is None
    assert Compressor(nct, "server").share_key == (12, 8, zlib.Z_DEFAULT_COMPRESSION)
    assert Compressor(nct, "client").share_key == (11, 8, zlib.Z_DEFAULT_COMPRESSION)
    # Same window, memLevel and level: same key, whatever the other parameters.
    a = Compressor(DeflateParams(True, False, 12, 9), "server", mem_level=5)
    b = Compressor(DeflateParams(True, True, 12, 15), "server", mem_level=5)
    assert a.share_key == b.share_key is not None
    assert a.share_key != Compressor(nct, "server").share_key  # memLevel differs
    assert Compressor(nct, "server", level=1).share_key != Compressor(nct, "server").share_key
    # 8 bits run as 9 bits, so they produce the same bytes.
    eight = Compressor(DeflateParams(True, True, 8), "server")
    nine = Compressor(DeflateParams(True, True, 9), "server")
    assert eight.share_key == nine.share_key == (9, 8, zlib.Z_DEFAULT_COMPRESSION)
    # Every preset Bun calls "shared" shares one key.
    offers = (PMD, f"{PMD}; {CNCT}", f"{PMD}; {SNCT}")
    params = [negotiate_server(SHARED, offer) for offer in offers]
    keys = {SHARED.codecs(p[1])[0].share_key for p in params if p is not None}
    assert keys == {(15, 8, zlib.Z_DEFAULT_COMPRESSION)}


def test_shared_output_is_identical_to_a_fresh_stream() -> None:
    rnd = random.Random(7)
    compressor = Compressor(DeflateParams(True, True, 10, 15), "server", mem_level=3)
    key = compressor.share_key
    assert key is not None
    for _ in range(200):
        size = rnd.choice([1, 5, 100, 1000, 20000])
        start = rnd.randrange(len(TEXT) - size)
        data = TEXT[start : start + size] if rnd.random() < 0.8 else rnd.randbytes(size)
        fresh = zlib.compressobj(-1, zlib.DEFLATED, -10, 3)
        expected = (fresh.compress(data) + fresh.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert compressor.compress(data) == expected
        assert compress_shared(key, data) == expected


def test_shared_streams_are_per_thread() -> None:
    key = (11, 4, 1)
    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(compress_shared(key, TEXT)))
    thread.start()
    assert compress_shared(key, TEXT) == compress_shared(key, TEXT)
    thread.join()
    assert results == [compress_shared(key, TEXT)]


# -- codec: limits and errors ----------------------------------------------------------------


def test_large_message_across_fragments() -> None:
    message = TEXT * 5 + os.urandom(20000)
    assert len(message) > 16 * 1024
    payload = Compressor(DeflateParams(), "client").compress(message)
    decompressor = Decompressor(DeflateParams(), "server")
    limit = len(message)
    chunks = [payload[i : i + 1000] for i in range(0, len(payload), 1000)]
    assert len(chunks) > 3
    output = b""
    for i, chunk in enumerate(chunks):
        output += decompressor.decompress(chunk, i == len(chunks) - 1, limit - len(output))
    assert output == message


def test_exact_limit() -> None:
    decompressor = Decompressor(DeflateParams(), "server")
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"
    with pytest.raises(PayloadTooBig, match="beyond 4 bytes"):
        decompressor.decompress(HELLO, True, 4)
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"  # a fresh message afterwards
    with pytest.raises(PayloadTooBig):
        decompressor.decompress(b"\x00", True, -1)  # a negative limit never means "unlimited"


def bomb(size: int) -> bytes:
    """A payload of ``size`` zero bytes, built without holding them."""
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [stream.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + stream.flush(zlib.Z_SYNC_FLUSH)[:-4]


def test_decompression_bomb_is_stopped_while_inflating() -> None:
    payload = bomb(4 << 20)
    assert len(payload) < 8 * 1024  # a few KB
    limit = 1 << 20
    decompressor = Decompressor(DeflateParams(), "server")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooBig):
            decompressor.decompress(payload, True, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1
    assert peak < 3 * limit
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"


def test_large_bomb_across_fragments() -> None:
    payload = bomb(128 << 20)  # 128 MiB of zeros in about 128 KB
    limit = 16 << 20
    decompressor = Decompressor(DeflateParams(), "server")
    tracemalloc.start()
    received = 0
    try:
        with pytest.raises(PayloadTooBig):
            for i in range(0, len(payload), 4096):
                fin = i + 4096 >= len(payload)
                output = decompressor.decompress(payload[i : i + 4096], fin, limit - received)
                received += len(output)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received <= limit
    assert peak < 3 * limit


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"\x07", HELLO_AGAIN])
def test_corrupt_data(data: bytes) -> None:
    decompressor = Decompressor(DeflateParams(), "server")
    with pytest.raises(InvalidDeflateData, match="invalid compressed data") as info:
        decompressor.decompress(data, True, 1000)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, zlib.error)
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"


def test_context_reset_follows_the_peer() -> None:
    # The client's compressor resets per message: so does the server's inflater.
    params = DeflateParams(client_no_context_takeover=True)
    decompressor = Decompressor(params, "server")
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"
    with pytest.raises(InvalidDeflateData, match="too far back"):
        decompressor.decompress(HELLO_AGAIN, True, 5)
    # The server's compressor keeps its context: the client's inflater does too.
    decompressor = Decompressor(params, "client")
    assert decompressor.decompress(HELLO, True, 5) == b"Hello"
    assert decompressor.decompress(HELLO_AGAIN, True, 5) == b"Hello"
