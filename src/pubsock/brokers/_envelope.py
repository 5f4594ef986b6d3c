"""The envelope that carries a publish between nodes.

Layout (18 bytes, then the payload)::

    byte 0      version (1)
    byte 1      flags: opcode in bits 0-3 (1 text, 2 binary); bit 7 = compress
    bytes 2-17  the publishing node's id (16 random bytes)
    bytes 18-   the message payload, as given to ``publish``

A node drops envelopes that carry its own id (its echo through the broker).
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["VERSION", "HEADER_SIZE", "NODE_ID_SIZE", "Envelope", "header", "pack", "unpack"]

VERSION: Final = 1
NODE_ID_SIZE: Final = 16
HEADER_SIZE: Final = 2 + NODE_ID_SIZE
COMPRESS: Final = 0x80
OPCODES: Final = (1, 2)


class Envelope(NamedTuple):
    node_id: bytes
    opcode: int
    compress: bool
    payload: bytes


def header(node_id: bytes, opcode: int, compress: bool) -> bytes:
    """The 18 header bytes for a message from ``node_id``."""
    if len(node_id) != NODE_ID_SIZE:
        raise ValueError(f"node id must be {NODE_ID_SIZE} bytes")
    if opcode not in OPCODES:
        raise ValueError(f"opcode must be 1 (text) or 2 (binary), not {opcode}")
    return bytes((VERSION, opcode | (COMPRESS if compress else 0))) + node_id


def pack(node_id: bytes, opcode: int, compress: bool, payload: bytes) -> bytes:
    """One envelope."""
    return header(node_id, opcode, compress) + payload


def unpack(data: bytes) -> Envelope | None:
    """Read an envelope; None if ``data`` is not one this version understands."""
    if len(data) < HEADER_SIZE or data[0] != VERSION:
        return None
    flags = data[1]
    opcode = flags & 0x0F
    if opcode not in OPCODES or flags & 0x70:
        return None
    return Envelope(data[2:HEADER_SIZE], opcode, bool(flags & COMPRESS), data[HEADER_SIZE:])
