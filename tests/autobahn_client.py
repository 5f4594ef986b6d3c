"""Autobahn|Testsuite client testee: echo every message of every case from the fuzzingserver.

Run by ``shared/conformance/autobahn client -- python tests/autobahn_client.py [--api A] [--loop L]``,
which sets ``AUTOBAHN_URL`` and ``AUTOBAHN_AGENT``.

--api iterator (default): ``async with pubsock connect()``, ``async for message in ws: await ws.send(message)``.
--api events: the browser-style ``WebSocket`` with an ``onmessage`` listener that sends the message back.
--loop asyncio (default) or uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pubsock.client import CloseEvent, ConnectionClosed, MessageEvent, WebSocket, connect

MAX_PAYLOAD = 64 * 1024 * 1024  # the suite's largest messages are 16 MiB


async def echo_iterator(url: str) -> None:
    try:
        async with connect(url, max_payload_length=MAX_PAYLOAD) as ws:
            async for message in ws:
                await ws.send(message)
    except ConnectionClosed:
        pass  # the cases that fail the connection on purpose


async def echo_events(url: str) -> None:
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ws = WebSocket(url, max_payload_length=MAX_PAYLOAD)

    def on_message(event: MessageEvent) -> None:
        ws.send(event.data)

    def on_close(event: CloseEvent) -> None:
        closed.set_result(None)

    ws.onmessage = on_message
    ws.onclose = on_close
    await closed


async def first_message(url: str) -> str | bytes:
    async with connect(url) as ws:
        return await ws.recv()


async def main(api: str) -> None:
    base = os.environ["AUTOBAHN_URL"].rstrip("/")
    agent = os.environ.get("AUTOBAHN_AGENT", "pubsock")
    count = int(await first_message(f"{base}/getCaseCount"))
    echo = echo_events if api == "events" else echo_iterator
    for case in range(1, count + 1):
        try:
            await echo(f"{base}/runCase?case={case}&agent={agent}")
        except Exception as exc:  # report and go on with the next case
            print(f"case {case}: {type(exc).__name__}: {exc}", file=sys.stderr)
    async with connect(f"{base}/updateReports?agent={agent}"):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", choices=["iterator", "events"], default="iterator")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main(args.api))
    else:
        asyncio.run(main(args.api))
