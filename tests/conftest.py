"""Shared test configuration: every async test runs on both event loops (asyncio and uvloop).

The whole suite also runs twice, compiled and with ``PUBSOCK_NO_EXTENSIONS=1``
(see the Makefile), so both implementations of the hot path are tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

LOOP_FACTORIES: Mapping[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Parametrize each async test over both event loop implementations."""
    return LOOP_FACTORIES
