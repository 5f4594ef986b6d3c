"""RFC 7692 permessage-deflate: Bun's presets, negotiation and the per-message codec.

Sans-I/O: strings in, strings out for the handshake; bytes in, bytes out for messages.

Notes on zlib:
- zlib refuses to raw-deflate with a 256-byte window (``wbits=-8``). A compressor limited
  to 8 bits runs with 9 instead: zlib never emits a distance above ``2**wbits - 262``
  (250 for 9 bits), so its output is valid for an 8-bit inflater.
- Inflaters run with at least 9 bits too: a 9-bit window decodes whatever an 8-bit peer sends.
- A message whose data ends in a final block (BFINAL) resets the inflater: the bytes after
  it are ignored and the next message starts a fresh stream.
"""

from __future__ import annotations

import functools
import re
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from .events import PayloadTooBigError

__all__ = [
    "COMPRESSOR_PRESETS",
    "DECOMPRESSOR_PRESETS",
    "CompressorPreset",
    "Compressor",
    "DecompressorPreset",
    "Decompressor",
    "DeflateOptions",
    "DeflateParams",
    "InvalidDeflateData",
    "PayloadTooBig",
    "Role",
    "ShareKey",
    "accept_client_response",
    "client_offer",
    "compress_shared",
    "negotiate_server",
]

Role = Literal["server", "client"]
ShareKey = tuple[int, int, int]
"""(window bits, memLevel, level) of a compressor without context takeover."""

EXTENSION: Final = "permessage-deflate"
_TAIL: Final = b"\x00\x00\xff\xff"
_EMPTY: Final = b"\x00"  # RFC 7692 §7.2.3.6: an empty message as one empty stored block


PayloadTooBig = PayloadTooBigError
"""Inflating a message would exceed the caller's limit (close with 1009); the frame reader's error."""


class InvalidDeflateData(ValueError):
    """The peer sent data that is not valid deflate (close with 1007)."""


# -- presets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompressorPreset:
    """One of Bun's compressor settings; ``dedicated`` means one stream per socket."""

    name: str
    window_bits: int
    mem_level: int
    dedicated: bool


@dataclass(frozen=True, slots=True)
class DecompressorPreset:
    """One of Bun's decompressor settings.

    ``dedicated=False`` (shared): no inflater survives a message; the server requires
    ``client_no_context_takeover``. Otherwise an inflater of ``window_bits`` per socket.
    """

    name: str
    window_bits: int
    dedicated: bool


def _compressors() -> dict[str, CompressorPreset]:
    sizes = {"3KB": (9, 1), "4KB": (9, 2), "8KB": (10, 3), "16KB": (11, 4)}
    sizes |= {"32KB": (12, 5), "64KB": (13, 6), "128KB": (14, 7), "256KB": (15, 8)}
    presets = {"shared": CompressorPreset("shared", 15, 8, False)}
    presets["dedicated"] = CompressorPreset("dedicated", 15, 8, True)
    for name, (bits, mem) in sizes.items():
        presets[name] = CompressorPreset(name, bits, mem, True)
    return presets


def _decompressors() -> dict[str, DecompressorPreset]:
    bits = {"3KB": 12, "4KB": 12, "8KB": 13, "16KB": 14}
    bits |= {"32KB": 15, "64KB": 15, "128KB": 15, "256KB": 15}
    presets = {"shared": DecompressorPreset("shared", 15, False)}
    presets["dedicated"] = DecompressorPreset("dedicated", 15, True)
    for name, window in bits.items():
        presets[name] = DecompressorPreset(name, window, True)
    return presets


COMPRESSOR_PRESETS: Final[Mapping[str, CompressorPreset]] = _compressors()
DECOMPRESSOR_PRESETS: Final[Mapping[str, DecompressorPreset]] = _decompressors()
_CHOICES: Final = ("disable", *COMPRESSOR_PRESETS)


def _preset_name(value: object, option: str) -> str:
    if value is None or value is False:
        return "disable"
    if value is True:
        return "shared"
    if not isinstance(value, str):
        raise TypeError(
            f"{option} must be a bool or one of {', '.join(map(repr, _CHOICES))},"
            f" got {type(value).__name__}"
        )
    if value not in _CHOICES:
        raise ValueError(f"{option} must be one of {', '.join(map(repr, _CHOICES))}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class DeflateOptions:
    """The server's ``per_message_deflate`` setting, parsed."""

    compressor: CompressorPreset
    decompressor: DecompressorPreset

    @classmethod
    def from_option(
        cls, value: object, *, option_name: str = "per_message_deflate"
    ) -> DeflateOptions | None:
        """Parse Bun's option value; ``None`` means the extension is never negotiated.

        ``False``/``None`` → off; ``True`` → shared compressor and decompressor; a mapping
        ``{"compress": x, "decompress": y}`` of bools or preset names, a missing key or
        ``None`` meaning ``"disable"``. Without a compressor the extension is off (as in
        Bun); a disabled decompressor behaves as ``"shared"``, since a peer that
        negotiated the extension may always compress.

        Raises:
            TypeError: ``value`` or one of its entries has the wrong type.
            ValueError: an unknown preset name or mapping key.
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls(COMPRESSOR_PRESETS["shared"], DECOMPRESSOR_PRESETS["shared"])
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{option_name} must be a bool, None or a mapping with 'compress' and"
                f" 'decompress' keys, got {type(value).__name__}"
            )
        unknown = [key for key in value if key not in ("compress", "decompress")]
        if unknown:
            raise ValueError(
                f"{option_name} accepts only the keys 'compress' and 'decompress',"
                f" got {unknown[0]!r}"
            )
        compress = _preset_name(value.get("compress"), f"{option_name}['compress']")
        decompress = _preset_name(value.get("decompress"), f"{option_name}['decompress']")
        if compress == "disable":
            return None
        if decompress == "disable":
            decompress = "shared"
        return cls(COMPRESSOR_PRESETS[compress], DECOMPRESSOR_PRESETS[decompress])

    def codecs(self, params: DeflateParams) -> tuple[Compressor, Decompressor]:
        """The server side's compressor and decompressor for a negotiated connection.

        Without server context takeover the compressor keeps no state (it compresses on the stream shared
        by its key), so connections with the same parameters get the same one.
        """
        if params.server_no_context_takeover:
            compressor = _stateless_compressor(params, self.compressor.mem_level)
        else:
            compressor = Compressor(params, "server", mem_level=self.compressor.mem_level)
        return compressor, Decompressor(params, "server")


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """Agreed parameters of one connection, as RFC 7692 names them (8 ≤ bits ≤ 15)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


# -- header parsing --------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BITS: Final = re.compile(r"[89]|1[0-5]")
_FLAGS: Final = ("server_no_context_takeover", "client_no_context_takeover")
_PARAMS: Final = (*_FLAGS, "server_max_window_bits", "client_max_window_bits")

Params = dict[str, str | None]


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings."""
    if '"' not in text:  # nothing quoted (every browser's offer): the plain split is the same
        return text.split(sep)
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _parse_value(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return text if _TOKEN.fullmatch(text) else None


def _parse_extensions(header: str) -> list[tuple[str, Params | None]]:
    """``[(lowercase name, params)]`` per list element; params is None if malformed.

    Params are lowercased names mapped to unquoted values (``None`` for a bare name).
    """
    extensions: list[tuple[str, Params | None]] = []
    for element in _split(header, ","):
        if not element.strip():
            continue
        name, *items = (item.strip() for item in _split(element, ";"))
        params: Params | None = {}
        for item in items:
            key, eq, raw = (part.strip() for part in item.partition("="))
            value = _parse_value(raw) if eq else None
            key = key.lower()
            if params is None or not _TOKEN.fullmatch(key) or (eq and value is None):
                params = None
            elif key in params:  # repeated: no valid offer or response repeats a parameter
                params = None
            else:
                params[key] = value
        extensions.append((name.lower(), params))
    return extensions


def _check(params: Params | None) -> str | None:
    """Return why ``params`` break RFC 7692's common rules, or None if they do not."""
    if params is None:
        return "malformed or repeated parameter"
    for key, value in params.items():
        if key not in _PARAMS:
            return f"unknown parameter {key!r}"
        if key in _FLAGS and value is not None:
            return f"{key} takes no value"
        if value is not None and not _BITS.fullmatch(value):
            return f"{key}={value} is not an integer from 8 to 15"
    return None


def _bits(value: str | None, default: int = 15) -> int:
    return default if value is None else int(value)


# -- server ----------------------------------------------------------------------------------


def negotiate_server(
    options: DeflateOptions, offers: str | list[str]
) -> tuple[str, DeflateParams] | None:
    """Answer the client's ``Sec-WebSocket-Extensions`` value(s) as Bun does.

    Returns:
        The response header value and the agreed parameters for the first acceptable
        permessage-deflate offer, or None to continue without compression.
    """
    header = offers if isinstance(offers, str) else ",".join(offers)
    return _negotiate_server(options, header)


@functools.lru_cache(maxsize=256)
def _negotiate_server(options: DeflateOptions, header: str) -> tuple[str, DeflateParams] | None:
    """`negotiate_server` for one header value; cached, as clients send the same few offers over and over."""
    for name, params in _parse_extensions(header):
        if name == EXTENSION:
            answer = _answer(options, params)
            if answer is not None:
                return answer
    return None


def _answer(options: DeflateOptions, params: Params | None) -> tuple[str, DeflateParams] | None:
    """Accept one offer or decline it (None), following Bun (bun-semantics §5.7).

    A client that offers ``client_max_window_bits`` gets the inflater's window (or its
    own lower value) back; without it the client may use 15 bits, so the inflater does.
    """
    if params is None or _check(params) is not None:
        return None
    server_bits = params.get("server_max_window_bits", "15")
    if server_bits is None or server_bits == "8":
        return None  # needs a value; zlib cannot raw-deflate with 8 bits
    offered_server_bits = "server_max_window_bits" in params
    # pubsock: Bun declines server_no_context_takeover together with server_max_window_bits;
    # RFC 7692 allows the pair, and Autobahn's cases 13.5 and 13.6 offer it, so it is accepted.
    server_nct = "server_no_context_takeover" in params
    reply = [EXTENSION]
    compressor = options.compressor
    if compressor.dedicated:
        bits = min(compressor.window_bits, int(server_bits))
    elif server_bits != "15":
        return None  # the shared compressor has a 15-bit window
    else:
        bits, server_nct = 15, True
    if server_nct:
        reply.append("server_no_context_takeover")
    decompressor = options.decompressor
    client_nct = not decompressor.dedicated or "client_no_context_takeover" in params
    if client_nct:
        reply.append("client_no_context_takeover")
    if offered_server_bits or bits < 15:
        reply.append(f"server_max_window_bits={bits}")
    client_bits = 15  # without client_max_window_bits the client may use 15 bits
    if "client_max_window_bits" in params:
        client_bits = min(decompressor.window_bits, _bits(params["client_max_window_bits"]))
        if client_bits < 15:
            reply.append(f"client_max_window_bits={client_bits}")
    agreed = DeflateParams(server_nct, client_nct, bits, client_bits)
    return "; ".join(reply), agreed


# -- client ----------------------------------------------------------------------------------


def client_offer(
    *,
    client_max_window_bits: int | bool = True,
    server_max_window_bits: int | None = None,
    client_no_context_takeover: bool = False,
    server_no_context_takeover: bool = False,
) -> str:
    """Build a client's ``Sec-WebSocket-Extensions`` offer.

    ``client_max_window_bits=True`` offers the bare parameter (the server may choose a
    window), ``False`` omits it, an int caps the client's window.

    Raises:
        ValueError: a window outside 8–15.
    """
    offer = [EXTENSION]
    if server_no_context_takeover:
        offer.append("server_no_context_takeover")
    if client_no_context_takeover:
        offer.append("client_no_context_takeover")
    for key, bits in (
        ("server_max_window_bits", server_max_window_bits),
        ("client_max_window_bits", client_max_window_bits),
    ):
        if bits is True:
            offer.append(key)
        elif bits is not None and bits is not False:
            if not 8 <= bits <= 15:
                raise ValueError(f"{key} must be from 8 to 15, got {bits}")
            offer.append(f"{key}={bits}")
    return "; ".join(offer)


def accept_client_response(header: str, offered: str) -> DeflateParams | None:
    """Validate the server's ``Sec-WebSocket-Extensions`` answer to ``offered``.

    ``offered`` is the value sent (from `client_offer`). Returns the agreed parameters,
    or None when the server answered without extensions.

    Raises:
        ValueError: the client must fail the connection (RFC 7692 §5.1): another
            extension, several permessage-deflate elements, malformed, unknown or
            repeated parameters, or values the offer does not allow.
    """
    extensions = _parse_extensions(header)
    if not extensions:
        return None
    offers = [params for name, params in _parse_extensions(offered) if name == EXTENSION]
    if not offers or offers[0] is None:
        raise ValueError(f"no valid {EXTENSION} offer in {offered!r}")
    offer = offers[0]
    for name, _ in extensions:
        if name != EXTENSION:
            raise ValueError(f"the server accepted extension {name!r}, which was not offered")
    if len(extensions) > 1:
        raise ValueError(f"the server answered {EXTENSION} more than once")
    params = extensions[0][1]
    problem = _check(params)
    if problem is not None or params is None:
        raise ValueError(f"invalid {EXTENSION} response: {problem}")
    if "server_no_context_takeover" in offer and "server_no_context_takeover" not in params:
        raise ValueError("the server ignored server_no_context_takeover")
    server_bits = _response_bits(params, offer, "server_max_window_bits")
    if "server_max_window_bits" in offer and "server_max_window_bits" not in params:
        raise ValueError("the server ignored server_max_window_bits")
    if "client_max_window_bits" in params and "client_max_window_bits" not in offer:
        raise ValueError("the server sent client_max_window_bits, which was not offered")
    client_bits = _response_bits(params, offer, "client_max_window_bits")
    return DeflateParams(
        server_no_context_takeover="server_no_context_takeover" in params,
        client_no_context_takeover="client_no_context_takeover" in params
        or "client_no_context_takeover" in offer,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )


def _response_bits(params: Params, offer: Params, key: str) -> int:
    limit = _bits(offer.get(key))
    if key not in params:
        return limit
    value = params[key]
    if value is None:
        raise ValueError(f"the server sent {key} without a value")
    if int(value) > limit:
        raise ValueError(f"the server sent {key}={value}, above the offered {limit}")
    return int(value)


# -- codec -----------------------------------------------------------------------------------


def _role_params(params: DeflateParams, role: Role, local: bool) -> tuple[int, bool]:
    """(window bits, no context takeover) of the compressing side: ``role`` if ``local``."""
    if role not in ("server", "client"):
        raise ValueError(f"role must be 'server' or 'client', got {role!r}")
    if (role == "server") == local:
        return params.server_max_window_bits, params.server_no_context_takeover
    return params.client_max_window_bits, params.client_no_context_takeover


class _SharedStreams(threading.local):
    """One compressor stream per share key and thread (Bun: one per event loop)."""

    def __init__(self) -> None:
        self.streams: dict[ShareKey, zlib._Compress] = {}


_shared = _SharedStreams()


def compress_shared(key: ShareKey, data: bytes | bytearray | memoryview) -> bytes:
    """Compress one message without context takeover on the stream shared by ``key``.

    The result is valid for every peer whose compressor has this `Compressor.share_key`.
    A full flush after each message forgets the history, so the stream is reused
    without a reallocation; the bytes equal those of a fresh stream.

    Raises:
        ValueError: ``key`` holds settings zlib rejects.
    """
    if not data:
        return _EMPTY
    stream = _shared_stream(key)
    return (stream.compress(data) + stream.flush(zlib.Z_FULL_FLUSH))[:-4]


def _shared_stream(key: ShareKey) -> zlib._Compress:
    stream = _shared.streams.get(key)
    if stream is None:
        bits, mem_level, level = key
        stream = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)
        _shared.streams[key] = stream
    return stream


@functools.lru_cache(maxsize=64)
def _stateless_compressor(params: DeflateParams, mem_level: int) -> Compressor:
    return Compressor(params, "server", mem_level=mem_level)


class Compressor:
    """Compresses the messages one side sends, as RFC 7692 payloads (RSV1 frames)."""

    __slots__ = ("_key", "_share_key", "_stream")

    def __init__(
        self,
        params: DeflateParams,
        role: Role,
        *,
        mem_level: int = zlib.DEF_MEM_LEVEL,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
    ) -> None:
        """Raises ValueError for a bad role, memLevel or level."""
        bits, no_context_takeover = _role_params(params, role, local=True)
        self._key: ShareKey = (max(9, bits), mem_level, level)
        self._share_key = self._key if no_context_takeover else None
        self._stream: zlib._Compress | None = None
        if no_context_takeover:
            _shared_stream(self._key)  # validates the settings
        else:
            self._stream = zlib.compressobj(level, zlib.DEFLATED, -self._key[0], mem_level)

    @property
    def share_key(self) -> ShareKey | None:
        """Equal for compressors whose output is interchangeable; None with context takeover.

        A server may compress a published message once per key, with `compress_shared`.
        """
        return self._share_key

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Return the payload of one whole message (``b"\\x00"`` for an empty one)."""
        stream = self._stream
        if stream is None:
            return compress_shared(self._key, data)
        if not data:
            return _EMPTY
        return (stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]


class Decompressor:
    """Inflates the messages one side receives, fragment by fragment.

    When the peer has no context takeover, no inflater outlives a message: this is
    Bun's shared decompressor, with nothing kept per socket between messages.
    """

    __slots__ = ("_inflater", "_reset", "_wbits")

    def __init__(self, params: DeflateParams, role: Role) -> None:
        """Raises ValueError for a bad role."""
        bits, self._reset = _role_params(params, role, local=False)
        self._wbits = max(9, bits)  # (a small int, shared; -bits would be a new int object per socket)
        self._inflater: zlib._Decompress | None = None

    def decompress(self, fragment: bytes | bytearray | memoryview, fin: bool, limit: int) -> bytes:
        """Inflate the next frame payload of a compressed message (``fin`` on its last).

        Returns at most ``limit`` bytes. Data after a final deflate block is ignored.
        After an exception the next message starts afresh.

        Raises:
            PayloadTooBig: the fragment inflates to more than ``limit`` bytes (any
                fragment if ``limit < 0``); detected while inflating, so at most
                ``limit + 1`` bytes are produced.
            InvalidDeflateData: the data is not valid deflate.
        """
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self._wbits)
        if inflater.eof:  # a final block ended the data; ignore the padding after it
            output = b""
        else:
            data = b"".join((fragment, _TAIL)) if fin else fragment
            try:
                output = inflater.decompress(data, max(limit, 0) + 1)
            except zlib.error as exc:
                self._inflater = None
                raise InvalidDeflateData(f"invalid compressed data: {exc}") from exc
        if len(output) > limit:  # also after a final block: a negative limit always fails
            self._inflater = None
            raise PayloadTooBig(f"message inflates beyond {limit} bytes")
        if fin and (self._reset or inflater.eof):
            self._inflater = None
        return output
