"""TLS: https and wss with a certificate the tests make (trustme), both ``tls=`` forms, SNI, handshake deadline."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import websockets
from _hardening import TEXT, Echo, Raw, assert_still_works, fetch, http_get, serving
from websockets.asyncio.client import connect

import pubsock

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def server_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
def cert_files(server_cert: trustme.LeafCert, tmp_path: Path) -> Iterator[dict[str, str]]:
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.private_key_pem.write_to_path(str(keyfile))
    with certfile.open("wb") as out:
        for pem in server_cert.cert_chain_pems:
            out.write(pem.bytes())
    yield {"certfile": str(certfile), "keyfile": str(keyfile)}


async def test_https_with_an_ssl_context(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    async with serving(tls=server_context) as server:
        assert server.url == f"https://127.0.0.1:{server.port}/"
        answer = await http_get(server.port, "/hello", client_context)
        assert answer.status == 200
        assert answer.body == b"GET /hello 0 https"  # the request sees its scheme


async def test_https_with_certfile_and_keyfile(cert_files: dict[str, str], client_context: ssl.SSLContext) -> None:
    async with serving(tls=cert_files) as server:
        assert server.url.startswith("https://")
        assert (await http_get(server.port, "/files", client_context)).body == b"GET /files 0 https"


async def test_https_post_body_and_keep_alive(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    async with serving(tls=server_context) as server:
        client = await Raw.connect(server.port, client_context)
        try:
            for size in (0, 10, 300_000):
                client.write(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"p" * size)
                assert (await client.read_response()).body == b"POST /p %d https" % size
        finally:
            await client.close()


@pytest.mark.parametrize("form", ["context", "files"])
async def test_wss_echo_with_the_websockets_client(
    form: str, server_context: ssl.SSLContext, cert_files: dict[str, str], client_context: ssl.SSLContext
) -> None:
    app = Echo()
    tls = server_context if form == "context" else cert_files
    async with serving(app, tls=tls) as server:
        url = f"wss://127.0.0.1:{server.port}/ws"
        async with connect(url, ssl=client_context) as ws:
            await ws.send("hello over tls")
            assert await ws.recv() == "hello over tls"
            big = bytes(range(256)) * 4096  # 1 MiB: many TLS records each way
            await ws.send(big)
            assert await ws.recv() == big
        assert await app.wait_closes(1) == [(1000, "")]


async def test_wss_close_from_the_server(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    app = Echo()
    async with serving(app, tls=server_context) as server:
        async with connect(f"wss://127.0.0.1:{server.port}/ws", ssl=client_context) as ws:
            await ws.send("close me")
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000
            assert ws.close_reason == "as you wish"
        assert app.closes == [(1000, "as you wish")]


async def test_wss_stop_close_active_sends_1001(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    app = Echo()
    async with pubsock.serve(fetch, websocket=app, port=0, tls=server_context) as server:
        async with connect(f"wss://127.0.0.1:{server.port}/ws", ssl=client_context) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await asyncio.wait_for(server.stop(close_active=True), 5)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
        assert app.closes == [(1001, "Server stopping")]


async def test_sni_callback_on_the_users_context(
    ca: trustme.CA, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    other = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.test").configure_cert(other)
    names: list[str | None] = []

    def choose(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)
        if name == "other.test":
            sock.context = other

    server_context.sni_callback = choose
    async with serving(tls=server_context) as server:
        for hostname, expected in (("other.test", "other.test"), ("localhost", "localhost")):
            client = await Raw.connect(server.port, client_context, server_hostname=hostname)  # verifies the name
            try:
                cert = client.writer.get_extra_info("peercert")
                assert ("DNS", expected) in cert["subjectAltName"]
                client.write(b"GET /sni HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await client.read_response()).body == b"GET /sni 0 https"
            finally:
                await client.close()
    assert names == ["other.test", "localhost"]


async def test_untrusted_client_fails_and_others_keep_working(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with serving(tls=server_context) as server:
        bystander = await Raw.websocket(server.port, tls=client_context)
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await Raw.connect(server.port, ssl.create_default_context())  # does not trust the test CA
            plain = await Raw.connect(server.port)  # plain HTTP on the TLS port
            try:
                plain.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = await plain.expect_eof()
                assert not data.startswith(b"HTTP/1.1 200")
            finally:
                await plain.close()
            await assert_still_works(server.port, bystander, client_context)
        finally:
            await bystander.close()


async def test_a_stalled_tls_handshake_is_cut_after_request_timeout(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with serving(tls=server_context, request_timeout=0.5) as server:
        silent = await Raw.connect(server.port)  # TCP only: never starts the TLS handshake
        try:
            start = time.monotonic()
            assert await silent.expect_eof() == b""
            assert time.monotonic() - start < 3
            bystander = await Raw.websocket(server.port, tls=client_context)
            try:
                bystander.send(TEXT, b"fine")
                assert (await bystander.recv()).payload == b"fine"
            finally:
                await bystander.close()
        finally:
            await silent.close()


def test_bad_tls_options() -> None:
    with pytest.raises(TypeError):
        pubsock.Server(fetch, tls="cert.pem")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pubsock.Server(fetch, tls={"keyfile": "key.pem"})
    with pytest.raises(FileNotFoundError):
        pubsock.Server(fetch, tls={"certfile": "/nonexistent/cert.pem", "keyfile": "/nonexistent/key.pem"})
