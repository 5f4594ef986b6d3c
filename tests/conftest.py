"""Shared fixtures: every async test runs on both event loops (asyncio and uvloop).

The whole suite also runs twice, compiled and with ``PUBSOCK_NO_EXTENSIONS=1``
(see the Makefile), so both implementations of the hot path are tested.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop


@pytest.fixture(scope="session", params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Run each async test once per event loop implementation."""
    if request.param == "uvloop":
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
