"""Scale-out: carry ``publish`` between pubsock servers through a message broker.

``serve(..., broker="redis://127.0.0.1:6379/0")``, ``broker="nats://127.0.0.1:4222"``,
``broker="local://"`` (servers in one process) or a ``Broker`` object. Without a
broker (the default) topics are local to the server, as in Bun.

Options that every broker URL accepts as query parameters: ``unsubscribe_delay``,
``max_backoff``, ``connect_timeout`` (seconds); Redis also ``channel_prefix``,
NATS ``subject_prefix``. See ``docs/scale-out.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._base import MAX_BACKOFF as MAX_BACKOFF, Broker as Broker
from ._link import BrokerLink as BrokerLink
from ._local import LocalBroker as LocalBroker, LocalBus as LocalBus, named_bus as named_bus

if TYPE_CHECKING:
    from ._nats import NatsBroker as NatsBroker
    from ._redis import RedisBroker as RedisBroker

__all__ = [
    "MAX_BACKOFF",
    "Broker",
    "BrokerLink",
    "LocalBroker",
    "LocalBus",
    "NatsBroker",
    "RedisBroker",
    "broker_from_url",
    "named_bus",
    "resolve_broker",
]

_COMMON = {"unsubscribe_delay": float, "max_backoff": float, "connect_timeout": float, "command_timeout": float}
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_NATS_SCHEMES = ("nats", "tls")


def __getattr__(name: str) -> Any:
    """``RedisBroker`` and ``NatsBroker`` import their client library on first use."""
    if name == "RedisBroker":
        from ._redis import RedisBroker

        return RedisBroker
    if name == "NatsBroker":
        from ._nats import NatsBroker

        return NatsBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def broker_from_url(url: str) -> Broker:
    """Make the broker a URL names.

    Raises:
        ValueError: unknown scheme or a bad option value.
        ImportError: the broker's client library is not installed (``pubsock[redis]``, ``pubsock[nats]``).
    """
    if not isinstance(url, str):
        raise TypeError(f"broker URL must be a str, not {type(url).__name__}")
    base, _, query = url.partition("?")  # the query applies to every server of a comma-separated list
    parts = urlsplit(base.split(",", 1)[0])
    scheme = parts.scheme.lower()
    options: dict[str, Any] = {}
    own = set(_COMMON) | {"channel_prefix", "subject_prefix"}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in own:
            rest.append((key, value))
        elif key in _COMMON:
            try:
                options[key] = _COMMON[key](value)
            except ValueError:
                raise ValueError(f"broker URL option {key}={value!r} is not a number") from None
        else:
            options[key] = value
    url = f"{base}?{urlencode(rest)}" if rest else base
    if scheme in _REDIS_SCHEMES:
        if "subject_prefix" in options:
            raise ValueError("subject_prefix is a NATS option; Redis takes channel_prefix")
        from ._redis import RedisBroker

        return RedisBroker(url, **options)
    if scheme in _NATS_SCHEMES:
        if "channel_prefix" in options:
            raise ValueError("channel_prefix is a Redis option; NATS takes subject_prefix")
        if rest:
            raise ValueError(f"unknown NATS URL options {sorted(k for k, _ in rest)}")
        from ._nats import NatsBroker

        return NatsBroker(url, **options)
    if scheme == "local":
        options.pop("command_timeout", None)
        if "channel_prefix" in options or "subject_prefix" in options or rest:
            raise ValueError("local:// brokers take no prefix and no options but unsubscribe_delay, max_backoff, connect_timeout")
        return LocalBroker(name=parts.netloc, **options)
    raise ValueError(f"unknown broker URL scheme {scheme!r} in {url!r}: use redis://, rediss://, unix://, nats://, tls:// or local://")


def resolve_broker(broker: str | Broker) -> Broker:
    """A ``Broker`` from a URL or a ``Broker`` object (returned as is)."""
    if isinstance(broker, Broker):
        return broker
    if isinstance(broker, str):
        return broker_from_url(broker)
    raise TypeError(f"broker must be a URL or a pubsock.brokers.Broker, not {type(broker).__name__}")
