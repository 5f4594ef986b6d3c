"""Serve wss:// and https:// directly. Run: python docs/examples/howto_tls.py CERTFILE KEYFILE"""

from __future__ import annotations

import argparse
import ssl

import pubsock


class Echo(pubsock.WebSocketHandler):
    def message(self, ws: pubsock.ServerWebSocket, message: str | bytes | bytearray | memoryview) -> None:
        ws.send(message)


def fetch(request: pubsock.Request, server: pubsock.Server) -> pubsock.Response | None:
    if server.upgrade(request):
        return None
    return pubsock.Response(f"Hello over {request.url.partition(':')[0]}\n")  # "https"


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """The long form of tls={"certfile": ..., "keyfile": ...}, for settings of your own."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("certfile")
    parser.add_argument("keyfile")
    parser.add_argument("--port", type=int, default=3443)
    args = parser.parse_args()
    # A mapping is enough in most cases; pass tls=tls_context(...) for more control.
    pubsock.run(fetch, websocket=Echo(), port=args.port, tls={"certfile": args.certfile, "keyfile": args.keyfile})
