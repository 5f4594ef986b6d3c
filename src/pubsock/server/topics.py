"""Outboxes, topics and fan-out: the compiled module when built, else the pure-Python source.

Set ``PUBSOCK_NO_EXTENSIONS=1`` to force the pure-Python implementation.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING or os.environ.get("PUBSOCK_NO_EXTENSIONS"):
    from . import _topics_py as _impl
else:
    try:
        from . import _topics_c as _impl
    except ImportError:  # not built: run the same source as plain Python
        from . import _topics_py as _impl

BIG_MESSAGE = _impl.BIG_MESSAGE
Hub = _impl.Hub
Outbox = _impl.Outbox

COMPILED: bool = not (_impl.__file__ or "").endswith(".py")
"""Whether the Cython-compiled implementation is in use."""

__all__ = ["BIG_MESSAGE", "COMPILED", "Hub", "Outbox"]
