"""WebSocket URLs (sans-I/O): parse ``ws://`` and ``wss://`` URLs as a browser does."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from ._exceptions import InvalidURL

__all__ = ["WebSocketURL", "parse_url"]

_SCHEMES = {"ws": False, "wss": True, "http": False, "https": True}  # http(s) maps to ws(s), as in browsers
_DEFAULT_PORTS = {False: 80, True: 443}
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters kept as they are in the request target; everything else is percent-encoded (UTF-8).
_PATH_SAFE = "/%!$&'()*+,;=:@~-._"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class WebSocketURL:
    """A parsed WebSocket URL.

    ``host`` is what to connect to (an IPv6 literal without brackets, a name in IDNA form),
    ``resource`` the request target (path and query, percent-encoded).
    """

    secure: bool
    host: str
    port: int
    resource: str
    username: str | None = None
    password: str | None = None

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: brackets around IPv6, the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.secure]:
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        scheme = "wss" if self.secure else "ws"
        userinfo = ""
        if self.username is not None:
            userinfo = urllib.parse.quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + urllib.parse.quote(self.password, safe="")
            userinfo += "@"
        return f"{scheme}://{userinfo}{self.host_header}{self.resource}"


def parse_url(url: str) -> WebSocketURL:
    """Parse ``url`` the way a browser's ``new WebSocket(url)`` does.

    ``http://`` and ``https://`` become ``ws://`` and ``wss://``. Non-ASCII and spaces in
    the path and query are percent-encoded; a non-ASCII host is IDNA-encoded.

    Raises:
        TypeError: ``url`` is not a ``str``.
        InvalidURL: another scheme, a fragment (``#``), no host, a bad port or host,
            or control characters.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    text = url.strip()
    if _CONTROL.search(text):
        raise InvalidURL(url, "control characters are not allowed")
    if "#" in text:
        raise InvalidURL(url, "a WebSocket URL cannot have a fragment")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:
        raise InvalidURL(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidURL(url, "the scheme must be ws:// or wss://")
    secure = _SCHEMES[scheme]
    if not parts.netloc.rpartition("@")[2]:
        raise InvalidURL(url, "no host")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURL(url, "the port must be a number from 1 to 65535") from None
    if port is None:
        port = _DEFAULT_PORTS[secure]
    elif port == 0:
        raise InvalidURL(url, "the port must be a number from 1 to 65535")
    host = _check_host(url, parts.hostname or "", parts.netloc)
    resource = urllib.parse.quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query or text.endswith("?"):
        resource += "?" + urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
    username = None if parts.username is None else urllib.parse.unquote(parts.username)
    password = None if parts.password is None else urllib.parse.unquote(parts.password)
    return WebSocketURL(secure, host, port, resource, username, password)


def _check_host(url: str, host: str, netloc: str) -> str:
    if not host:
        raise InvalidURL(url, "no host")
    if "[" in netloc:  # urlsplit validated the IPv6 literal between the brackets
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise InvalidURL(url, f"invalid IPv6 address {host!r}") from None
        return host
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL(url, f"invalid host name {host!r}") from None
    if not _REG_NAME.fullmatch(host):
        raise InvalidURL(url, f"invalid host name {host!r}")
    return host
