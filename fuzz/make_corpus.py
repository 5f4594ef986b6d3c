"""Write the seed corpora ``fuzz/corpus/<name>/`` from valid inputs (run once; the files are committed)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pubsock.protocol import _frames_py as frames  # noqa: E402
from pubsock.protocol.deflate import Compressor, DeflateParams  # noqa: E402
from pubsock.protocol.handshake import build_client_request  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"
MASK = b"\x37\xfa\x21\x3d"


def _frames_seeds() -> list[bytes]:
    seeds = []
    for masked in (True, False):
        mask = MASK if masked else None
        flags = 1 if masked else 0
        stream = b"".join(
            [
                frames.build_frame(frames.OP_TEXT, "héllo".encode(), mask=mask),
                frames.build_frame(frames.OP_BINARY, bytes(range(200)), mask=mask),
                frames.build_frame(frames.OP_TEXT, b"frag", fin=False, mask=mask),
                frames.build_frame(frames.OP_PING, b"p", mask=mask),
                frames.build_frame(frames.OP_CONTINUATION, "ment €".encode()[:-1], fin=False, mask=mask),
                frames.build_frame(frames.OP_CONTINUATION, "€".encode()[-1:], mask=mask),
                frames.build_frame(frames.OP_PONG, b"", mask=mask),
                frames.build_frame(frames.OP_CLOSE, b"\x03\xe8bye", mask=mask),
            ]
        )
        # default limit, random feeds
        seeds.append(bytes([flags | (2 << 2), 7]) + stream)
        # a tiny limit
        seeds.append(bytes([flags, 16, 0]) + stream)
        # a 64 KiB binary frame (16-bit length) and a 64-bit length header
        big = frames.build_frame(frames.OP_BINARY, b"x" * 300, mask=mask)
        seeds.append(bytes([flags | (1 << 2), 0x10, 0x00, 3]) + big)
        seeds.append(bytes([flags | (3 << 2), 1, 0, 0, 0]) + frames.frame_header(frames.OP_BINARY, 70000, mask=mask))
        # compressed messages (RSV1) for each inflater setting
        for params in range(8):
            bits = (9, 12, 15, 8)[params & 3]
            reset = bool(params & 4)
            agreed = DeflateParams(reset, reset, bits, bits)
            compressor = Compressor(agreed, "client" if masked else "server")
            payload = compressor.compress(b"hello hello hello hello")
            second = compressor.compress(b"hello again")
            stream = (
                frames.build_frame(frames.OP_TEXT, payload, rsv1=True, mask=mask)
                + frames.build_frame(frames.OP_BINARY, second[:3], fin=False, rsv1=True, mask=mask)
                + frames.build_frame(frames.OP_CONTINUATION, second[3:], mask=mask)
            )
            seeds.append(bytes([flags | 2 | (2 << 2) | (params << 4), 5]) + stream)
    return seeds


def _inflate_seeds() -> list[bytes]:
    seeds = []
    for flags in range(16):
        bits = (9, 12, 15, 8)[flags & 3]
        reset = bool(flags & 4)
        params = DeflateParams(reset, reset, bits, bits)
        peer = "server" if flags & 8 else "client"  # the role is the inflater's; the compressor is the peer
        compressor = Compressor(params, peer)  # type: ignore[arg-type]
        raw = bytes([flags])
        for message in (b"hello hello hello", b"", b"abc" * 40):
            payload = compressor.compress(message)
            half = len(payload) // 2
            raw += bytes([0x02]) + (1000).to_bytes(2, "big") + bytes([half]) + payload[:half]
            raw += bytes([0x80]) + bytes([60]) + bytes([len(payload) - half]) + payload[half:]
        seeds.append(raw)
        trip = bytes([flags | 16, 3])
        for message in (b"hello hello hello", b"", bytes(range(100))):
            trip += bytes([len(message)]) + message
        seeds.append(trip)
    return seeds


def _http_seeds() -> list[bytes]:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = build_client_request(
        "localhost", "/ws", key, protocols=["chat"], extensions="permessage-deflate; client_max_window_bits"
    )
    masked = frames.build_frame(frames.OP_TEXT, b"hi", mask=MASK) + frames.build_frame(
        frames.OP_CLOSE, b"\x03\xe8", mask=MASK
    )
    compressed = frames.build_frame(
        frames.OP_TEXT,
        Compressor(DeflateParams(), "client").compress(b"close"),
        rsv1=True,
        mask=MASK,
    )
    requests = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /?a=1&b HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\n\r\nGET /none HTTP/1.1\r\n\r\n",
        b"POST /async HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /stream HTTP/1.1\r\n\r\nGET /iter HTTP/1.0\r\n\r\n",
        b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        upgrade + masked,
        upgrade + compressed,
        upgrade.replace(b"Version: 13", b"Version: 8"),
        upgrade.replace(b"/ws", b"/plain"),
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10 + b"\r\n",
        b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n",
        b"BREW / HTTP/1.1\r\n\r\n",
        upgrade.replace(b"GET", b"HEAD").replace(b"Version: 13", b"Version: 12"),
        b"HEAD /stream HTTP/1.1\r\n\r\nHEAD /async HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nxyz",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"PUT /async HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"z" * 100,
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        upgrade
        + frames.build_frame(frames.OP_TEXT, b"x" * 70, mask=MASK)
        + frames.build_frame(frames.OP_BINARY, b"ab", fin=False, mask=MASK)
        + frames.build_frame(frames.OP_PING, b"", mask=MASK)
        + frames.build_frame(frames.OP_CONTINUATION, b"cd", mask=MASK),
    ]
    seeds = []
    for i, request in enumerate(requests):
        seeds.append(bytes([2 | (i & 1), 0]) + request)
        seeds.append(bytes([i & 1, 5 + i]) + request)
    return seeds


def main() -> None:
    for name, seeds in (("frames", _frames_seeds()), ("inflate", _inflate_seeds()), ("http", _http_seeds())):
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (folder / hashlib.sha1(seed).hexdigest()[:16]).write_bytes(seed)
        print(f"{name}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
