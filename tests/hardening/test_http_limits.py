"""HTTP limits over loopback: request deadline (slowloris), header size and count, body size.

Each test keeps a websocket opened before the abuse and checks afterwards that it
still echoes and that a fresh request is answered: a limit hits one connection only.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from _hardening import Raw, assert_still_works, serving

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.5  # request_timeout of the slow-client tests


async def test_slowloris_head_is_cut_at_the_deadline_not_reset_by_each_byte() -> None:
    async with serving(request_timeout=TIMEOUT) as server:
        bystander = await Raw.websocket(server.port)
        slow = await Raw.connect(server.port)
        try:
            head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(100))
            start = time.monotonic()
            eof = asyncio.ensure_future(slow.expect_eof(10 * TIMEOUT))
            answers = 0
            for byte in head:  # one byte every 50 ms: each read comes well within request_timeout
                if eof.done():
                    break
                slow.write(bytes([byte]))
                await asyncio.sleep(0.05)
                if answers < 3:  # other clients are served meanwhile
                    await assert_still_works(server.port, bystander)
                    answers += 1
            assert await eof == b""  # cut without an answer, as Bun does
            elapsed = time.monotonic() - start
            assert TIMEOUT * 0.8 <= elapsed < TIMEOUT * 3, elapsed
            await assert_still_works(server.port, bystander)
        finally:
            await slow.close()
            await bystander.close()


async def test_the_deadline_restarts_for_each_request_on_a_keep_alive_connection() -> None:
    async with serving(request_timeout=TIMEOUT) as server:
        client = await Raw.connect(server.port)
        try:
            for i in range(3):  # three requests over 3 x 0.3 s: each one's head is complete in time
                await asyncio.sleep(0.3)
                client.write(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                answer = await client.read_response()
                assert answer.body.startswith(f"GET /{i} 0".encode())
            assert await client.expect_eof(5 * TIMEOUT) == b""  # then idle: closed silently
        finally:
            await client.close()


async def test_a_stalled_request_body_is_cut() -> None:
    async with serving(request_timeout=TIMEOUT) as server:
        bystander = await Raw.websocket(server.port)
        slow = await Raw.connect(server.port)
        try:
            slow.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            start = time.monotonic()
            assert await slow.expect_eof(10 * TIMEOUT) == b""
            assert TIMEOUT * 0.8 <= time.monotonic() - start < TIMEOUT * 4
            await assert_still_works(server.port, bystander)
        finally:
            await slow.close()
            await bystander.close()


async def test_a_slow_body_that_keeps_coming_is_received() -> None:
    async with serving(request_timeout=TIMEOUT) as server:
        client = await Raw.connect(server.port)
        try:
            client.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
            for _ in range(8):  # 8 x 0.15 s > request_timeout, but the body makes progress
                await asyncio.sleep(0.15)
                client.write(b"b")
            answer = await client.read_response()
            assert answer.body.startswith(b"POST /upload 8 ")
        finally:
            await client.close()


async def test_too_many_headers_get_431() -> None:
    async with serving(max_header_count=20) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.connect(server.port)
        try:
            headers = b"".join(b"X-%d: v\r\n" % i for i in range(20))
            client.write(b"GET /a HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            answer = await client.read_response()
            assert answer.status == 431
            assert answer.headers["connection"] == "close"
            assert await client.expect_eof() == b""
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_headers_at_the_count_limit_are_fine() -> None:
    async with serving(max_header_count=20) as server:
        client = await Raw.connect(server.port)
        try:
            headers = b"".join(b"X-%d: v\r\n" % i for i in range(19))
            client.write(b"GET /a HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            assert (await client.read_response()).status == 200
        finally:
            await client.close()


@pytest.mark.parametrize("chunk", [None, 100], ids=["one-write", "trickled"])
async def test_a_too_long_header_gets_431(chunk: int | None) -> None:
    async with serving(max_header_size=4096) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.connect(server.port)
        try:
            data = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n"
            for i in range(0, len(data), chunk or len(data)):
                client.write(data[i : i + (chunk or len(data))])
                await client.drain()
            answer = await client.read_response()
            assert answer.status == 431
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_an_endless_header_line_gets_431_early() -> None:
    # httptools buffers a header line until it ends: the server must count the bytes itself
    async with serving(max_header_size=4096) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.connect(server.port)
        try:
            client.write(b"GET /a HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            answer = asyncio.ensure_future(client.read_response())
            sent = 0
            while not answer.done() and sent < 1 << 20:
                client.write(b"v" * 512)
                sent += 512
                await client.drain()
                await asyncio.sleep(0.001)  # separate reads
            assert (await answer).status == 431
            assert sent <= 4096 + 8 * 1024, sent
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_a_too_long_url_gets_414() -> None:
    async with serving(max_header_size=4096) as server:
        client = await Raw.connect(server.port)
        try:
            client.write(b"GET /" + b"u" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await client.read_response()).status == 414
        finally:
            await client.close()


async def test_a_declared_body_over_the_limit_gets_413_before_it_is_sent() -> None:
    async with serving(max_request_body_size=1000) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.connect(server.port)
        try:
            client.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
            answer = await client.read_response()
            assert answer.status == 413
            assert answer.headers["connection"] == "close"
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_a_chunked_body_over_the_limit_gets_413() -> None:
    async with serving(max_request_body_size=1000) as server:
        bystander = await Raw.websocket(server.port)
        client = await Raw.connect(server.port)
        try:
            client.write(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            answer = asyncio.ensure_future(client.read_response())
            for _ in range(20):  # 20 x 100 bytes; the answer comes once 1000 are passed
                if answer.done():
                    break
                client.write(b"64\r\n" + b"c" * 100 + b"\r\n")
                await client.drain()
                await asyncio.sleep(0.01)
            assert (await answer).status == 413
            await assert_still_works(server.port, bystander)
        finally:
            await client.close()
            await bystander.close()


async def test_a_body_at_the_limit_is_accepted() -> None:
    async with serving(max_request_body_size=1000) as server:
        client = await Raw.connect(server.port)
        try:
            client.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"b" * 1000)
            answer = await client.read_response()
            assert (answer.status, answer.body[:13]) == (200, b"POST /up 1000")
        finally:
            await client.close()
