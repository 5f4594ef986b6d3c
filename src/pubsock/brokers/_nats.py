"""``NatsBroker``: scale-out through core NATS (``pip install 'pubsock[nats]'``).

One ``nats-py`` connection with ``no_echo`` (the server does not send a node
its own publishes). One subject per topic: ``subject_prefix`` + ``.`` + the
topic escaped into a single subject token (``subject``): NATS splits subjects
on ``.`` and treats ``*``/``>`` as wildcards, so those, ``%``, whitespace,
control and non-ASCII characters become ``%XX`` (UTF-8 bytes, upper-case hex).
Topics whose escaped form is long become ``%h`` + a SHA-256 digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._base import Broker, Lost, Receive

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = ["NatsBroker", "subject_token"]

logger = logging.getLogger("pubsock.broker")

MAX_TOKEN = 512  # escaped tokens longer than this are replaced by a digest
SUBJECT_CACHE = 4096
_SAFE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("*"), ord(">"), ord("%")}
_KEEP = {byte: chr(byte) for byte in _SAFE}


def subject_token(topic: str) -> str:
    """Escape ``topic`` into one NATS subject token (injective: distinct topics, distinct tokens)."""
    raw = topic.encode("utf-8", "surrogatepass")
    token = "".join([_KEEP.get(byte) or f"%{byte:02X}" for byte in raw])
    if len(token) > MAX_TOKEN:
        return "%h" + hashlib.sha256(raw).hexdigest()  # "%h" never starts an escape: escapes use 0-9A-F
    return token


class NatsBroker(Broker):
    """Nodes meet on a NATS server: ``NatsBroker("nats://127.0.0.1:4222")``.

    ``url`` may list several servers separated by commas (``nats``/``tls``
    schemes, with credentials in the URL). ``command_timeout`` bounds a
    subscribe (which waits for the server's acknowledgement).
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        subject_prefix: str = "pubsock",
        name: str = "pubsock",
        command_timeout: float = 5.0,
        **options: float,
    ) -> None:
        super().__init__(**options)
        try:
            import nats  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError("the NATS broker needs nats-py: pip install 'pubsock[nats]'") from exc
        if not subject_prefix or any(c.isspace() or c in "*>" for c in subject_prefix) or ".." in subject_prefix:
            raise ValueError(f"subject_prefix must be a valid NATS subject without wildcards, got {subject_prefix!r}")
        self.servers = [server.strip() for server in url.split(",") if server.strip()]
        self.url = ",".join(_redact(server) for server in self.servers)
        self.name = name
        self.command_timeout = command_timeout
        self.subject_prefix = subject_prefix.rstrip(".")
        self._subjects: dict[str, str] = {}
        self._nc: Client | None = None
        self._subs: dict[str, Subscription] = {}
        self._closing = False
        self._rejected_logged = False
        self._slow_logged = False

    def subject(self, topic: str) -> str:
        """The NATS subject that carries ``topic``."""
        subject = self._subjects.get(topic)
        if subject is None:
            if len(self._subjects) >= SUBJECT_CACHE:
                self._subjects.clear()
            subject = self._subjects[topic] = f"{self.subject_prefix}.{subject_token(topic)}"
        return subject

    async def connect(self, receive: Receive, lost: Lost) -> None:
        import nats
        from nats.errors import SlowConsumerError

        await self.close()
        self._closing = False
        self._slow_logged = False
        self._receive = receive
        reported = False

        async def closed() -> None:
            nonlocal reported
            if not self._closing and not reported:
                reported = True
                error = nc.last_error if nc is not None else None
                lost(error or ConnectionResetError("the NATS connection closed"))

        async def error(exc: Exception) -> None:
            if isinstance(exc, SlowConsumerError) and not self._slow_logged:
                self._slow_logged = True  # once per connection: the event loop was too busy to take messages
                logger.warning("NATS %s: messages dropped for a slow consumer (this node's event loop is overloaded)", self.url)
            else:
                logger.debug("NATS %s: %r", self.url, exc)

        nc: Client | None = None
        nc = await nats.connect(
            servers=self.servers,
            name=self.name,
            allow_reconnect=False,  # the link reconnects, resubscribes and reports the outage itself
            max_reconnect_attempts=1,  # nats-py's floor: two quick tries per server in the URL, then give up
            reconnect_time_wait=0.02,
            connect_timeout=max(1, round(self.connect_timeout)),
            no_echo=True,
            ping_interval=10,
            max_outstanding_pings=2,
            closed_cb=closed,
            disconnected_cb=closed,
            error_cb=error,
        )
        self._nc = nc

    def _connection(self) -> Client:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise ConnectionError("not connected to NATS")
        return nc

    async def subscribe(self, topics: Sequence[str]) -> None:
        nc = self._connection()
        receive = self._receive
        for topic in topics:

            async def deliver(msg: Msg, topic: str = topic) -> None:
                receive(topic, msg.data)

            self._subs[topic] = await nc.subscribe(self.subject(topic), cb=deliver)
        async with asyncio.timeout(self.command_timeout):
            await nc.flush(timeout=max(1, round(self.command_timeout)))  # the server has the SUBs

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        self._connection()
        for topic in topics:
            sub = self._subs.pop(topic, None)
            if sub is not None:
                await sub.unsubscribe()

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> int:
        from nats.errors import MaxPayloadError

        nc = self._connection()
        subject = self.subject
        refused = 0
        for topic, data in messages:
            try:
                await nc.publish(subject(topic), data)
            except MaxPayloadError:
                refused += 1
                if not self._rejected_logged:
                    self._rejected_logged = True
                    logger.warning(
                        "NATS %s refused a %d-byte publish (over its max_payload of %d); such publishes stay local",
                        self.url,
                        len(data),
                        nc.max_payload,
                    )
        return refused

    async def close(self) -> None:
        self._closing = True
        nc, self._nc = self._nc, None
        self._subs.clear()
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:  # noqa: BLE001 - it is gone either way
                logger.debug("closing NATS %s: %r", self.url, exc)

    _receive: Receive


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0] if ":" in credentials else "***"
    return f"{scheme}://{user}:***@{host}"
