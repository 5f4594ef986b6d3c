"""Opening a connection: TCP (and TLS), then the WebSocket handshake, under one timeout."""

from __future__ import annotations

import asyncio

from ._options import ClientOptions
from ._protocol import ClientProtocol, OnClose, OnMessage, OnOpen, OnPong

__all__ = ["open_connection"]


async def open_connection(
    options: ClientOptions,
    *,
    on_open: OnOpen,
    on_message: OnMessage,
    on_close: OnClose,
    on_pong: OnPong | None = None,
) -> ClientProtocol:
    """Connect to ``options.url`` and complete the opening handshake.

    Returns the open protocol (``on_open`` has run). On failure nothing is left open
    and no callback has run.

    Raises:
        OSError: the TCP connection failed (e.g. `ConnectionRefusedError`,
            `socket.gaierror`) or TLS failed (`ssl.SSLError`, e.g. certificate
            verification).
        InvalidStatus: the server answered with another status than 101.
        HandshakeError: the server's 101 answer is invalid (e.g. a wrong
            ``Sec-WebSocket-Accept``), or it did not answer with HTTP.
        ConnectionError: the connection closed before the handshake completed.
        TimeoutError: all this took longer than ``options.open_timeout``.
    """
    loop = asyncio.get_running_loop()
    url = options.url
    protocol: ClientProtocol | None = None

    def factory() -> ClientProtocol:
        nonlocal protocol
        protocol = ClientProtocol(
            options, loop, on_open=on_open, on_message=on_message, on_close=on_close, on_pong=on_pong
        )
        return protocol

    options.logger.debug("connecting to %s%s", url.host_header, url.resource.partition("?")[0])
    try:
        async with asyncio.timeout(options.open_timeout):
            await loop.create_connection(
                factory,
                url.host,
                url.port,
                ssl=options.ssl,
                server_hostname=url.host if options.ssl is not None else None,
            )
            assert protocol is not None
            await protocol.opened
    except BaseException as exc:
        if protocol is not None:
            opened = protocol.opened
            if isinstance(exc, TimeoutError) and opened.done() and not opened.cancelled() and not opened.exception():
                return protocol  # it opened just as the timeout expired: keep it
            protocol.abort()
        if isinstance(exc, TimeoutError) and not str(exc):
            raise TimeoutError(
                f"timed out after {options.open_timeout:g} s opening {url.host_header}{url.resource}"
            ) from None
        raise
    return protocol
