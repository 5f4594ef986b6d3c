"""HTTP/1.1 on httptools: requests, responses, headers and the connection protocol."""

from .multidict import Headers, QueryParams
from .request import Request
from .response import Response

__all__ = ["Headers", "QueryParams", "Request", "Response"]
