"""Calling user handlers: sync ones inline, ``async def`` ones started eagerly.

An ``async def`` handler runs synchronously up to its first suspension, so
handlers of one socket start in the order their events arrived, and a handler
that never awaits costs no task. On Python 3.12+ this is ``asyncio``'s eager
task start; on 3.11 the first step runs inline outside any task
(``asyncio.current_task()`` is ``None`` until the first ``await`` suspends).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any

__all__ = ["start_coroutine"]

ErrorCallback = Callable[[BaseException], None]
_background: set[asyncio.Future[Any]] = set()


def _report(future: asyncio.Future[Any], on_error: ErrorCallback) -> None:
    _background.discard(future)
    if not future.cancelled() and future.exception() is not None:
        on_error(future.exception())  # type: ignore[arg-type]


if sys.version_info >= (3, 12):

    def start_coroutine(coro: Coroutine[Any, Any, Any], on_error: ErrorCallback) -> None:
        """Run ``coro`` as an eager task; ``on_error`` gets its exception, if any."""
        task = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)  # type: ignore[call-arg]
        if task.done():
            if not task.cancelled() and task.exception() is not None:
                on_error(task.exception())  # type: ignore[arg-type]
            return
        _background.add(task)
        task.add_done_callback(lambda done: _report(done, on_error))

else:

    class _Continue:
        """Awaitable that resumes a coroutine already started by hand."""

        __slots__ = ("coro", "first")

        def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
            self.coro = coro
            self.first = first

        def __await__(self) -> Generator[Any, Any, Any]:
            coro, yielded = self.coro, self.first
            while True:
                try:
                    value = yield yielded
                except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine (cancellation too)
                    try:
                        yielded = coro.throw(exc)
                    except StopIteration as stop:
                        return stop.value
                else:
                    try:
                        yielded = coro.send(value)
                    except StopIteration as stop:
                        return stop.value

    async def _finish(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
        return await _Continue(coro, first)

    def start_coroutine(coro: Coroutine[Any, Any, Any], on_error: ErrorCallback) -> None:
        """Run ``coro`` up to its first suspension now, the rest as a task; ``on_error`` gets its exception."""
        try:
            first = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the error handler
            on_error(exc)
            return
        task = asyncio.ensure_future(_finish(coro, first))
        _background.add(task)
        task.add_done_callback(lambda done: _report(done, on_error))
