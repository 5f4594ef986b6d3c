"""ASGI adapter tests: a real Starlette app (httpx, websockets) and raw ASGI apps over loopback."""
