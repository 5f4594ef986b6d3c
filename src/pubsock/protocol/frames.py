"""Framing (RFC 6455 §5): the compiled module when built, else the pure-Python source.

Set ``PUBSOCK_NO_EXTENSIONS=1`` to force the pure-Python implementation.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING or os.environ.get("PUBSOCK_NO_EXTENSIONS"):
    from . import _frames_py as _impl
else:
    try:
        from . import _frames_c as _impl
    except ImportError:  # not built: run the same source as plain Python
        from . import _frames_py as _impl

OP_CONTINUATION = _impl.OP_CONTINUATION
OP_TEXT = _impl.OP_TEXT
OP_BINARY = _impl.OP_BINARY
OP_CLOSE = _impl.OP_CLOSE
OP_PING = _impl.OP_PING
OP_PONG = _impl.OP_PONG
FrameReader = _impl.FrameReader
apply_mask = _impl.apply_mask
build_frame = _impl.build_frame
frame_header = _impl.frame_header

COMPILED: bool = not (_impl.__file__ or "").endswith(".py")
"""Whether the Cython-compiled implementation is in use."""

__all__ = [
    "COMPILED",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "apply_mask",
    "build_frame",
    "frame_header",
]
