"""The HTTP response a ``fetch`` handler returns."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Union

__all__ = ["Response", "ResponseBody", "HeadersInput", "reason_phrase"]

ResponseBody = Union[None, str, bytes, bytearray, memoryview, Iterable[bytes | str], AsyncIterable[bytes | str]]
HeadersInput = Union[Mapping[str, str], Iterable[tuple[str, str]], None]


def reason_phrase(status: int) -> str:
    """Return the standard reason phrase for ``status`` ('' if unknown)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def normalize_headers(headers: HeadersInput, what: str = "headers") -> list[tuple[str, str]]:
    """Return ``headers`` (a mapping or ``(name, value)`` pairs) as a list of string pairs.

    Raises:
        TypeError: not a mapping or an iterable of string pairs.
        ValueError: a name or value contains CR, LF or NUL, or a character outside Latin-1.
    """
    if headers is None:
        return []
    if isinstance(headers, (str, bytes)):
        raise TypeError(f"{what} must be a mapping or (name, value) pairs, not {type(headers).__name__}")
    pairs: list[tuple[object, ...]]
    if isinstance(headers, Mapping):
        pairs = list(headers.items())
    else:
        try:
            pairs = [tuple(pair) for pair in headers]
        except TypeError:
            raise TypeError(f"{what} must be a mapping or (name, value) pairs, not {type(headers).__name__}") from None
    result: list[tuple[str, str]] = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], str):
            raise TypeError(f"{what} must hold (str, str) pairs, got {pair!r}")
        name, value = pair[0], pair[1]
        if not name or any(c in name for c in "\r\n\0:") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"{what}: invalid header {name!r}: names and values must not contain CR, LF or NUL")
        if not (name.isascii() and value.isascii()):
            try:
                name.encode("latin-1")
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"{what}: invalid header {name!r}: names and values must be Latin-1 text") from None
        result.append((name, value))
    return result


class Response:
    """An HTTP response: ``body`` is text, bytes, or a (async) iterable streamed chunked.

    Raises:
        TypeError: ``status`` is not an int, or ``body``/``headers`` have the wrong type.
        ValueError: ``status`` is outside 100-999, or a header contains CR/LF or non-Latin-1 text.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, body: ResponseBody = None, *, status: int = 200, headers: HeadersInput = None) -> None:
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"status must be an int, not {type(status).__name__}")
        if not 100 <= status <= 999:
            raise ValueError(f"status must be between 100 and 999, got {status}")
        if not isinstance(body, (str, bytes, bytearray, memoryview, Iterable, AsyncIterable)) and body is not None:
            raise TypeError(f"body must be str, bytes-like, an iterable or an async iterable, not {type(body).__name__}")
        self.status = status
        self.headers = normalize_headers(headers)
        self.body = body

    @classmethod
    def json(cls, obj: Any, *, status: int = 200, headers: HeadersInput = None) -> Response:
        """Return a response with ``obj`` serialized as JSON and ``Content-Type: application/json``."""
        pairs = normalize_headers(headers)
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("Content-Type", "application/json;charset=utf-8"))
        return cls(_json.dumps(obj, separators=(",", ":")), status=status, headers=pairs)

    def __repr__(self) -> str:
        return f"<Response {self.status}>"
