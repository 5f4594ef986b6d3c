"""Broker building blocks without a network: envelopes, NATS subject tokens, broker URLs and options."""

from __future__ import annotations

import os

import pytest
from nats.aio.client import _validate_subject

import pubsock
from pubsock.brokers import Broker, BrokerLink, LocalBroker, NatsBroker, RedisBroker, broker_from_url, resolve_broker
from pubsock.brokers._envelope import HEADER_SIZE, pack, unpack
from pubsock.brokers._nats import subject_token


def test_envelope_round_trip() -> None:
    node = os.urandom(16)
    for opcode in (1, 2):
        for compress in (False, True):
            data = pack(node, opcode, compress, b"payload")
            assert len(data) == HEADER_SIZE + 7
            assert unpack(data) == (node, opcode, compress, b"payload")
    assert pack(node, 1, False, b"")[:2] == b"\x01\x01" and pack(node, 2, True, b"")[:2] == b"\x01\x82"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01\x01" + b"n" * 15, b"\x02\x01" + b"n" * 16, b"\x01\x09" + b"n" * 16, b"\x01\x11" + b"n" * 16],
)
def test_what_is_not_an_envelope(data: bytes) -> None:
    assert unpack(data) is None


def test_envelope_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        pack(b"short", 1, False, b"")
    with pytest.raises(ValueError, match="opcode"):
        pack(os.urandom(16), 8, False, b"")


def test_the_link_reads_only_envelopes_of_other_nodes() -> None:
    delivered: list[tuple[str, int, bytes, bool]] = []
    link = BrokerLink(LocalBroker(), lambda *args: delivered.append(args), lambda topic: 0)
    other = os.urandom(16)
    link._receive("t", pack(other, 2, True, b"x"))
    link._receive("t", pack(link.node_id, 1, False, b"echo"))  # our own
    for bad in (b"", b"\x01\x01", b"\x07" + pack(other, 1, False, b"x")[1:], b"\x01\x13" + other):
        link._receive("t", bad)
    assert delivered == [("t", 2, b"x", True)] and link.received == 1


@pytest.mark.parametrize(
    "topic",
    ["room", "a.b", "*", ">", "a b", "tab\there", "new\r\nline", "100%", "%41", "ünïcödé", "\U0001f600", "\ud800", "x" * 600],
)
def test_subject_tokens_are_single_valid_tokens(topic: str) -> None:
    token = subject_token(topic)
    assert token and "." not in token and "*" not in token and ">" not in token
    assert all(0x21 <= ord(c) < 0x7F for c in token)
    _validate_subject(f"pubsock.{token}", strict=True)
    assert len(token) <= 512 + 2


def test_subject_tokens_are_injective() -> None:
    topics = ["A", "%41", "a.b", "a%2Eb", "a%2eb", "x" * 600, "x" * 601, "%h", "%H", "", " ", "%20"]
    tokens = [subject_token(t) for t in topics]
    assert len(set(tokens)) == len(tokens)
    assert subject_token("safe-Topic_1:/~") == "safe-Topic_1:/~"  # readable where it can be
    assert subject_token("a.b") == "a%2Eb"


def test_broker_urls() -> None:
    redis = broker_from_url("redis://user:secret@127.0.0.1:6390/2?channel_prefix=app:&unsubscribe_delay=0.5&max_backoff=0.1")
    assert isinstance(redis, RedisBroker)
    assert redis.channel_prefix == "app:" and redis.channel("room") == b"app:room" and redis.channel("ü") == "app:ü".encode()
    assert (redis.unsubscribe_delay, redis.max_backoff) == (0.5, 0.1)
    assert "secret" not in redis.url and "***" in redis.url and repr(redis).endswith(f"{redis.url}>")
    nats = broker_from_url("nats://127.0.0.1:4222,nats://127.0.0.2:4222?subject_prefix=chat.v1&connect_timeout=3")
    assert isinstance(nats, NatsBroker)
    assert nats.servers == ["nats://127.0.0.1:4222", "nats://127.0.0.2:4222"]
    assert nats.subject_prefix == "chat.v1" and nats.connect_timeout == 3
    assert isinstance(broker_from_url("redis://h:1/0?socket_keepalive=true&health_check_interval=5"), RedisBroker)
    assert isinstance(broker_from_url("nats://u:p@h:4222?subject_prefix=chat.v1"), NatsBroker)
    single = broker_from_url("nats://h:4222?subject_prefix=chat.v1&connect_timeout=3")
    assert isinstance(single, NatsBroker)
    assert single.subject("a.b") == "chat.v1.a%2Eb" and single.connect_timeout == 3 and single.servers == ["nats://h:4222"]
    assert isinstance(broker_from_url("local://name"), LocalBroker)


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("amqp://h", ValueError, "unknown broker URL scheme 'amqp'"),
        ("redis://h?subject_prefix=x", ValueError, "subject_prefix is a NATS option"),
        ("nats://h?channel_prefix=x", ValueError, "channel_prefix is a Redis option"),
        ("redis://h?unsubscribe_delay=-1", ValueError, "unsubscribe_delay must be >= 0"),
        ("redis://h?max_backoff=1", ValueError, "max_backoff must be in"),
        ("nats://h?subject_prefix=a.*", ValueError, "subject_prefix must be a valid NATS subject"),
        ("nats://h?connect_timeout=0", ValueError, "connect_timeout must be > 0"),
        ("nats://h?no_such_option=1", ValueError, "unknown NATS URL options"),
        ("redis://h?no_such_option=1", ValueError, "bad Redis URL option"),
        ("local://?channel_prefix=x", ValueError, "local:// brokers take no prefix"),
    ],
)
def test_bad_broker_urls(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("*", r"\*")):
        broker_from_url(url)


def test_resolve_broker() -> None:
    broker = LocalBroker()
    assert resolve_broker(broker) is broker
    with pytest.raises(TypeError, match="broker must be a URL or a pubsock.brokers.Broker"):
        resolve_broker(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="broker must be a URL"):
        pubsock.Server(broker=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown broker URL scheme"):
        pubsock.Server(broker="kafka://k")
    assert isinstance(pubsock.Server(broker="redis://127.0.0.1:1").broker_link, BrokerLink)
    assert pubsock.Server().broker_link is None
    assert issubclass(RedisBroker, Broker) and issubclass(NatsBroker, Broker)
