"""``Server.stats()``: the server's counters as a dict, and their Prometheus text exposition.

The counters cost nothing on the hot path: bytes and messages in are counted by
each socket's compiled ``FrameReader`` (summed over open sockets when asked,
folded into the server's totals when a socket goes), messages and bytes out and
drops by the compiled ``Hub`` where the frames are queued, the rest (publishes,
opens, closes by cause) where Python code already runs once per event.
Gauges (open sockets, topics, subscriptions) are derived when asked.
"""

from __future__ import annotations

from typing import Final, Literal, TypedDict

__all__ = ["BrokerState", "Counters", "ServerStats", "METRICS", "METRICS_CONTENT_TYPE", "prometheus_text"]

BrokerState = Literal["absent", "starting", "up", "down"]


class ServerStats(TypedDict):
    """What ``Server.stats()`` returns: a plain dict with these keys, always all of them.

    Counters count from the server's creation and never go down; gauges are
    the values at the time of the call.
    """

    websockets_open: int  # gauge: open websockets (``pending_websockets``)
    websockets_opened: int  # upgrades completed
    topics: int  # gauge: topics with at least one subscriber
    subscriptions: int  # gauge: (socket, topic) pairs, the sum of every topic's subscriber count
    messages_in: int  # text and binary messages received (after reassembly)
    bytes_in: int  # WebSocket bytes received after the handshake (frame headers included)
    messages_out: int  # messages queued for sockets: one per send, one per subscriber a publish reached
    bytes_out: int  # the size of those frames, headers included (not control frames or the 101 answer)
    publishes: int  # server.publish and ws.publish calls (not those received from other nodes)
    dropped: int  # messages dropped over backpressure_limit: one per send, one per subscriber of a publish
    reads_paused: int  # times input flow control stopped reading a socket (over half its backpressure_limit)
    closed_backpressure: int  # sockets closed by close_on_backpressure_limit
    closed_idle_timeout: int  # sockets closed by idle_timeout (no traffic, or no pong after the ping)
    closed_too_big: int  # sockets failed with 1009 (over max_payload_length)
    closed_protocol_error: int  # sockets failed with another code (1002, 1007)
    broker: BrokerState  # "absent" without a broker
    broker_published: int  # envelopes handed to the broker
    broker_received: int  # envelopes from other nodes delivered locally
    broker_failed_publishes: int  # publishes that did not reach the broker
    broker_outages: int
    broker_reconnects: int


class Counters:
    """The server's counters that are not kept in C: events that already cost a Python call each.

    One slotted object rather than attributes of ``Server``: CPython 3.11 stops sharing
    an instance's dict keys (and specialising its attribute accesses) past 30 attributes,
    which would slow every ``self._...`` of the server's hot paths.
    """

    __slots__ = (
        "opened",
        "reads_paused",
        "closed_backpressure",
        "closed_idle_timeout",
        "closed_too_big",
        "closed_protocol_error",
        "gone_messages_in",
        "gone_bytes_in",
        "unhubbed_publishes",
        "unhubbed_remote",
    )

    def __init__(self) -> None:
        self.opened = 0
        self.reads_paused = 0
        self.closed_backpressure = 0
        self.closed_idle_timeout = 0
        self.closed_too_big = 0
        self.closed_protocol_error = 0
        self.gone_messages_in = 0  # the FrameReader counts of sockets whose connection is gone
        self.gone_bytes_in = 0
        self.unhubbed_publishes = 0  # server.publish calls that did not reach the Hub (no websocket handlers)
        self.unhubbed_remote = 0  # remote publishes the link received but did not hand to the Hub (likewise)


# key -> (metric name, type, help); every counter's name ends in _total (Prometheus' naming rules)
METRICS: Final[dict[str, tuple[str, str, str]]] = {
    "websockets_open": ("pubsock_websockets_open", "gauge", "Open WebSocket connections."),
    "websockets_opened": ("pubsock_websockets_opened_total", "counter", "WebSocket upgrades completed."),
    "topics": ("pubsock_topics", "gauge", "Topics with at least one subscriber."),
    "subscriptions": ("pubsock_subscriptions", "gauge", "Topic subscriptions of open WebSockets."),
    "messages_in": ("pubsock_messages_received_total", "counter", "WebSocket messages received."),
    "bytes_in": ("pubsock_received_bytes_total", "counter", "WebSocket bytes received after the handshake."),
    "messages_out": ("pubsock_messages_sent_total", "counter", "WebSocket messages queued for sending (sends and publish deliveries)."),
    "bytes_out": ("pubsock_sent_bytes_total", "counter", "Bytes of the WebSocket messages queued for sending."),
    "publishes": ("pubsock_publishes_total", "counter", "Publishes made on this server."),
    "dropped": ("pubsock_dropped_messages_total", "counter", "Messages dropped over a socket's backpressure limit."),
    "reads_paused": ("pubsock_reads_paused_total", "counter", "Times a socket was not read while over half its backpressure limit waited."),
    "closed_backpressure": ("pubsock_websockets_closed_total", "counter", "WebSockets closed by the server, by cause."),
    "closed_idle_timeout": ("pubsock_websockets_closed_total", "counter", ""),
    "closed_too_big": ("pubsock_websockets_closed_total", "counter", ""),
    "closed_protocol_error": ("pubsock_websockets_closed_total", "counter", ""),
    "broker": ("pubsock_broker_state", "gauge", "The broker link's state (1 for the current one)."),
    "broker_published": ("pubsock_broker_published_total", "counter", "Publishes handed to the broker."),
    "broker_received": ("pubsock_broker_received_total", "counter", "Publishes from other nodes delivered locally."),
    "broker_failed_publishes": ("pubsock_broker_failed_publishes_total", "counter", "Publishes that did not reach the broker."),
    "broker_outages": ("pubsock_broker_outages_total", "counter", "Times the broker link went down."),
    "broker_reconnects": ("pubsock_broker_reconnects_total", "counter", "Times the broker link came back."),
}

CLOSE_CAUSES: Final = {
    "closed_backpressure": "backpressure",
    "closed_idle_timeout": "idle_timeout",
    "closed_too_big": "too_big",
    "closed_protocol_error": "protocol_error",
}
BROKER_STATES: Final[tuple[BrokerState, ...]] = ("absent", "starting", "up", "down")

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of the Prometheus text exposition format."""


def prometheus_text(stats: ServerStats) -> str:
    """Render ``stats`` in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    described: set[str] = set()
    for key, (name, kind, text) in METRICS.items():
        if name not in described:
            described.add(name)
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
        value = stats[key]  # type: ignore[literal-required]
        if key == "broker":
            for state in BROKER_STATES:
                lines.append(f'{name}{{state="{state}"}} {int(value == state)}')
        elif key in CLOSE_CAUSES:
            lines.append(f'{name}{{cause="{CLOSE_CAUSES[key]}"}} {value}')
        else:
            lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"
