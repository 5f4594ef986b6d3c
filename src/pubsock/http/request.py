"""The HTTP request handed to ``fetch``."""

from __future__ import annotations

import json as _json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from .multidict import Headers, QueryParams

if TYPE_CHECKING:
    from .connection import HttpConnection

__all__ = ["Request"]


class Request:
    """One HTTP request: its line, headers and (already received) body.

    The body is read completely, within ``max_request_body_size``, before
    ``fetch`` is called; ``body()``, ``text()`` and ``json()`` may be awaited
    any number of times.
    """

    __slots__ = ("method", "target", "headers", "http_version", "_body", "_connection", "_query", "answered", "keep_alive")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes = b"",
        http_version: str = "1.1",
        connection: HttpConnection | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self._body = body
        self._connection = connection
        self._query: QueryParams | None = None
        self.answered = False
        self.keep_alive = True

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        return unquote(self.target.partition("?")[0])

    @property
    def query_string(self) -> str:
        """The raw query string, without ``?``."""
        return self.target.partition("?")[2]

    @property
    def query(self) -> QueryParams:
        """The decoded query parameters (``req.query.get("name")``, ``get_all``)."""
        if self._query is None:
            self._query = QueryParams(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    @property
    def url(self) -> str:
        """The full URL, built from the ``Host`` header (or the server address)."""
        if self.target.startswith(("http://", "https://")):
            return self.target
        scheme = "http"
        host = self.headers.get("host", "")
        connection = self._connection
        if connection is not None:
            scheme = connection.scheme
            if not host:
                host = connection.server_host
        return f"{scheme}://{host}{self.target}"

    @property
    def remote_address(self) -> str | None:
        """The client's IP address, or None when unknown."""
        return None if self._connection is None else self._connection.remote_address

    async def body(self) -> bytes:
        """Return the request body."""
        return self._body

    async def text(self) -> str:
        """Return the body decoded as UTF-8 (undecodable bytes replaced)."""
        return self._body.decode("utf-8", "replace")

    async def json(self) -> Any:
        """Return the body parsed as JSON.

        Raises:
            ValueError: the body is not valid JSON.
        """
        return _json.loads(self._body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"
