"""Broadcast to every client of every worker: one fan-out core, three brokers (lesson 09).

Behind a load balancer, the clients of one room are spread over several workers, and a
message published on one worker must reach the clients of all of them. The pieces:

- `hub`: one worker's fan-out. A message goes into every client's bounded queue without
  waiting; a client a whole queue behind is dropped. Messages are encoded as SSE once.
- `broker`: what a transport needs from a broker (`publish`, `subscribe` a `Feed`), the
  error for "Redis is away" (`BrokerUnavailable`), and the Redis client settings.
- `memory`: publish into this worker's hub only. Right for one worker, wrong for two.
- `pubsub`: Redis pub/sub, one subscription per worker. Everyone gets everything while
  connected; what is published while a client (or a worker) is away is lost.
- `streams`: Redis Streams, one XREAD loop per worker, ids as SSE ids, and a catch-up with
  XRANGE after a client's `Last-Event-ID`. Nothing acknowledged is lost.

`open_broker("streams", redis_url)` picks one; the transports (`server.apps.broadcast` for
SSE) stay the same whichever it is.
"""

from __future__ import annotations

from server.fanout.broker import HISTORY_MAX, Broker, BrokerUnavailable, Feed
from server.fanout.hub import DEFAULT_QUEUE_SIZE, Dropped, Hub, Message, fan_out
from server.fanout.memory import MemoryBroker
from server.fanout.pubsub import PubSubBroker
from server.fanout.streams import DEFAULT_MAXLEN, StreamsBroker

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_QUEUE_SIZE",
    "HISTORY_MAX",
    "KINDS",
    "Broker",
    "BrokerUnavailable",
    "Dropped",
    "Feed",
    "Hub",
    "MemoryBroker",
    "Message",
    "PubSubBroker",
    "StreamsBroker",
    "fan_out",
    "open_broker",
]

KINDS = ("memory", "pubsub", "streams")


def open_broker(
    kind: str,
    redis_url: str | None = None,
    *,
    key: str = "room",
    queue_size: int = DEFAULT_QUEUE_SIZE,
    maxlen: int = DEFAULT_MAXLEN,
) -> MemoryBroker | PubSubBroker | StreamsBroker:
    """The broker called `kind` ("memory", "pubsub" or "streams"); Redis ones need a URL."""
    if kind not in KINDS:
        raise ValueError(f"broker must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "memory":
        return MemoryBroker(queue_size)
    if not redis_url:
        raise ValueError(f"the {kind} broker needs a Redis URL (redis://host:port)")
    if kind == "pubsub":
        return PubSubBroker(redis_url, key, queue_size)
    return StreamsBroker(redis_url, key, maxlen=maxlen, queue_size=queue_size)
