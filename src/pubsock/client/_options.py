"""The client's options, validated once, and the opening handshake request they make."""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
import ssl as ssl_module
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..protocol.handshake import build_client_request, header_values, validate_client_headers
from ._url import WebSocketURL, parse_url

__all__ = ["DEFAULT_MAX_PAYLOAD_LENGTH", "ClientOptions", "HeadersLike", "ProtocolsLike"]

DEFAULT_MAX_PAYLOAD_LENGTH: Final = 16 * 1024 * 1024
HeadersLike: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
ProtocolsLike: TypeAlias = str | Sequence[str]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Set by the client itself: Connection, Upgrade, Sec-WebSocket-Version and -Key are dropped by
# validate_client_headers; the extension offer follows ``per_message_deflate``.
_MANAGED = frozenset({"sec-websocket-extensions"})


@functools.cache
def _default_ssl_context() -> ssl_module.SSLContext:
    return ssl_module.create_default_context()


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything a connection needs, checked. Build it with `ClientOptions.create`."""

    url: WebSocketURL
    headers: tuple[tuple[str, str], ...]
    protocols: tuple[str, ...]
    """The subprotocols offered: from a ``Sec-WebSocket-Protocol`` header if given, else ``protocols``."""
    per_message_deflate: bool
    ssl: ssl_module.SSLContext | None
    open_timeout: float | None
    close_timeout: float | None
    max_payload_length: int
    logger: logging.Logger

    @classmethod
    def create(
        cls,
        url: str,
        *,
        headers: HeadersLike | None,
        protocols: ProtocolsLike | None,
        per_message_deflate: bool,
        ssl: ssl_module.SSLContext | None,
        open_timeout: float | None,
        close_timeout: float | None,
        max_payload_length: int,
        logger: logging.Logger | str,
    ) -> ClientOptions:
        """Validate the options of ``WebSocket(...)`` and ``connect(...)``.

        Raises:
            InvalidURL: see `parse_url`.
            ValueError: a header name or value contains CR, LF or NUL (the message names
                the header); a subprotocol is not a token or is repeated; ``ssl`` with a
                ``ws://`` URL; a timeout that is not positive.
            TypeError: an option of the wrong type.
        """
        parsed = parse_url(url)
        custom = _check_headers(headers)
        names = {name.lower() for name, _ in custom}
        if parsed.username is not None and "authorization" not in names:
            credentials = f"{parsed.username}:{parsed.password or ''}".encode()
            custom.append(("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii")))
        if "sec-websocket-protocol" in names:
            offered = _split_protocols(header_values(custom, "sec-websocket-protocol"))
        else:
            offered = _check_protocols(protocols)
        if not isinstance(per_message_deflate, bool):
            raise TypeError(f"per_message_deflate must be a bool, not {type(per_message_deflate).__name__}")
        if ssl is not None:
            if not isinstance(ssl, ssl_module.SSLContext):
                raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}")
            if not parsed.secure:
                raise ValueError("ssl is only used with wss:// URLs")
        elif parsed.secure:
            ssl = _default_ssl_context()
        if isinstance(max_payload_length, bool) or not isinstance(max_payload_length, int):
            raise TypeError(f"max_payload_length must be an int, not {type(max_payload_length).__name__}")
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        return cls(
            url=parsed,
            headers=tuple(custom),
            protocols=offered,
            per_message_deflate=per_message_deflate,
            ssl=ssl,
            open_timeout=_check_timeout("open_timeout", open_timeout),
            close_timeout=_check_timeout("close_timeout", close_timeout),
            max_payload_length=max(0, max_payload_length),
            logger=logger,
        )

    def request(self, extensions: str | None) -> tuple[bytes, str]:
        """Return a new opening handshake request and the ``Sec-WebSocket-Key`` it carries."""
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        has_protocol_header = any(name.lower() == "sec-websocket-protocol" for name, _ in self.headers)
        request = build_client_request(
            self.url.host_header,
            self.url.resource,
            key,
            self.headers,
            () if has_protocol_header else self.protocols,
            extensions,
        )
        return request, key


def _check_headers(headers: HeadersLike | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"headers must be a mapping or (name, value) pairs, got {pair!r}")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {pair!r}")
    return [(name, value) for name, value in validate_client_headers(pairs) if name.lower() not in _MANAGED]


def _check_protocols(protocols: ProtocolsLike | None) -> tuple[str, ...]:
    if protocols is None:
        return ()
    items = [protocols] if isinstance(protocols, str) else list(protocols)
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"subprotocols must be str, got {item!r}")
        if not _TOKEN.fullmatch(item):
            raise ValueError(f"invalid subprotocol {item!r}: it must be a token (RFC 7230)")
        if item in seen:
            raise ValueError(f"subprotocol {item!r} is given twice")
        seen.add(item)
    return tuple(items)


def _split_protocols(values: list[str]) -> tuple[str, ...]:
    return tuple(token.strip() for value in values for token in value.split(",") if token.strip())


def _check_timeout(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return float(value)
