"""Close codes (RFC 6455 §7.4) and close frame bodies."""

from __future__ import annotations

from typing import Final

__all__ = [
    "NORMAL",
    "GOING_AWAY",
    "PROTOCOL_ERROR",
    "UNSUPPORTED_DATA",
    "NO_STATUS",
    "ABNORMAL",
    "INVALID_DATA",
    "POLICY_VIOLATION",
    "MESSAGE_TOO_BIG",
    "INTERNAL_ERROR",
    "SERVICE_RESTART",
    "MAX_REASON_BYTES",
    "is_valid_code",
    "encode_reason",
    "build_close_body",
]

NORMAL: Final = 1000
GOING_AWAY: Final = 1001
PROTOCOL_ERROR: Final = 1002
UNSUPPORTED_DATA: Final = 1003
NO_STATUS: Final = 1005  # never on the wire: the peer's Close had no body
ABNORMAL: Final = 1006  # never on the wire: the connection was lost without a Close
INVALID_DATA: Final = 1007
POLICY_VIOLATION: Final = 1008
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011
SERVICE_RESTART: Final = 1012

MAX_REASON_BYTES: Final = 123


def is_valid_code(code: int) -> bool:
    """Return whether ``code`` may be sent in, or accepted from, a Close frame."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_reason(reason: str) -> bytes:
    """Encode ``reason`` as UTF-8, cut to 123 bytes at a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def build_close_body(code: int, reason: str = "") -> bytes:
    """Return the payload of a Close frame; code 1005 gives an empty body."""
    if code == NO_STATUS:
        return b""
    return code.to_bytes(2, "big") + encode_reason(reason)
