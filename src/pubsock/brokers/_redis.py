"""``RedisBroker``: scale-out through Redis pub/sub (``pip install 'pubsock[redis]'``).

Two connections from the ``redis`` asyncio client (with the ``hiredis``
parser): one in subscribe mode whose reader task hands every message to the
node at once, and one that sends ``PUBLISH`` commands pipelined in batches,
in order. One channel per topic: ``channel_prefix`` + the topic's UTF-8 bytes
(Redis channels are binary-safe, so no escaping is needed). Pub/sub ignores
the database number: use ``channel_prefix`` to keep applications apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._base import Broker, Lost, Receive

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

__all__ = ["RedisBroker"]

logger = logging.getLogger("pubsock.broker")

CHANNEL_CACHE = 4096  # topic -> channel bytes entries kept for publishing


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


class RedisBroker(Broker):
    """Nodes meet on a Redis server: ``RedisBroker("redis://127.0.0.1:6379/0")``.

    ``url`` takes the ``redis``, ``rediss`` (TLS) and ``unix`` schemes with the
    ``redis`` client's query options. ``command_timeout`` bounds one batch of
    publishes or one (un)subscribe; past it the connection counts as broken.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel_prefix: str = "pubsock:",
        client_name: str = "pubsock",
        command_timeout: float = 5.0,
        **options: float,
    ) -> None:
        super().__init__(**options)
        try:
            from redis.asyncio.connection import Connection, parse_url
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError("the Redis broker needs the redis client: pip install 'pubsock[redis]'") from exc
        kwargs: dict[str, Any] = dict(parse_url(url))
        self._connection_class: type[AbstractConnection] = kwargs.pop("connection_class", Connection)
        kwargs.update(
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=None,
            socket_keepalive=True,
            protocol=2,
        )
        self._kwargs = kwargs
        try:
            self._connection_class(**kwargs)  # no I/O: check the URL's options now, not at every reconnection
        except TypeError as exc:
            raise ValueError(f"bad Redis URL option: {exc}") from None
        self.url = _redact(url)
        self.client_name = client_name
        self.command_timeout = command_timeout
        self.channel_prefix = channel_prefix
        self._prefix = channel_prefix.encode("utf-8", "surrogatepass")
        self._channels: dict[str, bytes] = {}
        self._topics: dict[bytes, str] = {}  # subscribed channel -> topic
        self._pub: AbstractConnection | None = None
        self._sub: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._confirmations: deque[list[Any]] = deque()  # [replies still expected, future], in command order

    def channel(self, topic: str) -> bytes:
        """The Redis channel that carries ``topic``."""
        channel = self._channels.get(topic)
        if channel is None:
            if len(self._channels) >= CHANNEL_CACHE:
                self._channels.clear()
            channel = self._channels[topic] = self._prefix + topic.encode("utf-8", "surrogatepass")
        return channel

    async def connect(self, receive: Receive, lost: Lost) -> None:
        await self.close()
        pub = self._connection_class(client_name=f"{self.client_name}-pub", **self._kwargs)
        sub = self._connection_class(client_name=f"{self.client_name}-sub", **self._kwargs)
        self._pub, self._sub = pub, sub
        for connection in (pub, sub):
            connect: Callable[[], Awaitable[None]] = connection.connect  # untyped in redis-py
            await connect()
        self._reader = asyncio.get_running_loop().create_task(self._read(sub, receive, lost))

    async def _read(self, connection: AbstractConnection, receive: Receive, lost: Lost) -> None:
        """Hand every message to the node as it arrives; report the connection's end."""
        topics = self._topics
        confirmations = self._confirmations
        try:
            while True:
                reply = await connection.read_response(disconnect_on_error=False)
                kind = reply[0]
                if kind == b"message":
                    topic = topics.get(reply[1])
                    if topic is not None:  # else: unsubscribed while the message was on its way
                        receive(topic, reply[2])
                elif (kind == b"subscribe" or kind == b"unsubscribe") and confirmations:
                    waiting = confirmations[0]
                    waiting[0] -= 1
                    if waiting[0] == 0:
                        confirmations.popleft()
                        if not waiting[1].done():
                            waiting[1].set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the connection broke: the link reconnects
            self._fail_confirmations(exc)
            lost(exc)
        else:  # pragma: no cover - the loop only ends by an exception
            pass

    async def _command(self, name: str, channels: list[bytes]) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE and wait for the server to confirm each channel."""
        connection = self._sub
        if connection is None or self._reader is None or self._reader.done():
            raise ConnectionError("not connected to Redis")
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.append([len(channels), confirmed])
        async with asyncio.timeout(self.command_timeout):
            await connection.send_command(name, *channels, check_health=False)
            await confirmed

    async def subscribe(self, topics: Sequence[str]) -> None:
        channels = [self.channel(topic) for topic in topics]
        self._topics.update(zip(channels, topics))
        await self._command("SUBSCRIBE", channels)

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        channels = [self.channel(topic) for topic in topics]
        for channel in channels:
            self._topics.pop(channel, None)
        await self._command("UNSUBSCRIBE", channels)

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        connection = self._pub
        if connection is None:
            raise ConnectionError("not connected to Redis")
        chunks: list[bytes] = []
        append = chunks.append
        channel_of = self.channel
        for topic, data in messages:
            channel = channel_of(topic)
            append(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n" % (len(channel), channel, len(data)))
            append(data)
            append(b"\r\n")
        async with asyncio.timeout(self.command_timeout):
            await connection.send_packed_command(chunks, check_health=False)
            for _ in range(len(messages)):
                await connection.read_response(disconnect_on_error=False)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        self._fail_confirmations(ConnectionError("connection closed"))
        self._topics.clear()
        for connection in (self._pub, self._sub):
            if connection is not None:
                try:
                    await connection.disconnect(nowait=True)
                except Exception as exc:  # noqa: BLE001 - it is gone either way
                    logger.debug("closing a Redis connection: %r", exc)
        self._pub = self._sub = None

    def _fail_confirmations(self, exc: BaseException) -> None:
        while self._confirmations:
            future = self._confirmations.popleft()[1]
            if not future.done():
                future.set_exception(ConnectionError(f"Redis connection lost: {exc!r}"))
                future.exception()  # retrieved: nobody may be waiting any more
