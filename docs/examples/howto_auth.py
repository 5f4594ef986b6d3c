"""Authenticate at upgrade: check the credentials in ``fetch``, answer 401 without the 101.

Run: python docs/examples/howto_auth.py, then connect with a session cookie, a bearer token or ?token=.
"""

from __future__ import annotations

import asyncio
from http.cookies import CookieError, SimpleCookie

import pubsock

# Who may connect from a browser page: a cross-site page could otherwise open a WebSocket with the
# user's cookies (cross-site WebSocket hijacking). Non-browser clients send no Origin.
ALLOWED_ORIGINS = {"http://127.0.0.1:3000", "http://localhost:3000", "https://chat.example.com"}

SESSIONS = {"s3cr3t-alice": "alice", "s3cr3t-bob": "bob"}  # stands in for your session store


async def user_for(token: str) -> str | None:
    await asyncio.sleep(0)  # a database or cache lookup would be awaited here
    return SESSIONS.get(token)


def credentials(request: pubsock.Request) -> str | None:
    """The session token: a cookie (browsers), a bearer token (other clients) or ``?token=``."""
    try:
        cookie = SimpleCookie(request.headers.get("cookie", ""))
    except CookieError:
        cookie = SimpleCookie()
    if "session" in cookie:
        return cookie["session"].value
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.query.get("token")  # browsers cannot set headers on a WebSocket; use short-lived tokens


async def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if request.path != "/ws":
        return pubsock.Response("Not Found\n", status=404)
    origin = request.headers.get("origin")
    if origin is not None and origin not in ALLOWED_ORIGINS:
        return pubsock.Response("Forbidden\n", status=403)
    token = credentials(request)
    user = await user_for(token) if token else None
    if user is None:
        return pubsock.Response("Unauthorized\n", status=401, headers={"WWW-Authenticate": "Bearer"})
    if server.upgrade(request, data={"user": user}):  # upgrade works after an await
        return None
    return pubsock.Response("Expected a WebSocket handshake\n", status=400)


class Authenticated(pubsock.WebSocketHandler):
    def open(self, ws: pubsock.ServerWebSocket) -> None:
        ws.send(f"hello {ws.data['user']}")

    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.send(f"{ws.data['user']} said {message!r}")  # ws.data["user"] is who sent it: no re-check


if __name__ == "__main__":
    pubsock.run(fetch, websocket=Authenticated(), port=3000)
