"""One worker's fan-out: every message to every client of this process, never waiting for one.

A worker holds many open streams and receives each broadcast message once (from its own
publish, from Redis). The hub hands that message to every client's queue with
`put_nowait`: a put that cannot wait. The stream of each client reads its own queue at its
own pace. So the fan-out costs one quick loop per message, however slow any client is.

Each queue is bounded. A client whose queue is full is not keeping up (its network is slow,
or it stopped reading and its TCP window filled): the hub **drops** it instead of waiting or
buffering without end, and its stream ends. Memory per client is therefore bounded by the
queue size, and a dropped client that reconnects with `Last-Event-ID` catches up from a
broker that keeps history (`server.fanout.streams`); from one that does not, it has lost
what it missed (`server.fanout.pubsub`, `server.fanout.memory`).

A `Message` is encoded as SSE once, when it is made (`Message.sse`), not once per client;
a WebSocket layer sends `Message.data` instead. Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from server.event_ids import StreamId, parse_stream_id
from server.sse import Event, encode

DEFAULT_QUEUE_SIZE = 1000  # messages a client may be behind before it is dropped


@dataclass(frozen=True, slots=True)
class Message:
    """One broadcast message: JSON text, and the id its broker gave it (None if it gives none)."""

    data: str
    id: str | None = None
    event: str | None = None
    sse: bytes = field(init=False, repr=False, compare=False)  # the bytes of the SSE event

    def __post_init__(self) -> None:
        object.__setattr__(self, "sse", encode(Event(data=self.data, id=self.id, event=self.event)))

    @property
    def position(self) -> StreamId | None:
        """Where the message sits in a Redis stream (for ordering), or None without an id."""
        return parse_stream_id(self.id, "message id") if self.id else None


class Dropped(Exception):
    """The hub dropped this client: it fell a whole queue behind."""


class Subscription:
    """One client's place in the hub: a bounded queue of messages waiting to be sent."""

    def __init__(self, size: int) -> None:
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(size)
        self.dropped: str | None = None  # why, once dropped

    @property
    def waiting(self) -> int:
        """Messages queued for this client and not yet taken by its stream."""
        return self._queue.qsize()

    def offer(self, message: Message) -> bool:
        """Queue `message` without waiting. False if the queue is full (drop the client)."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def drop(self, reason: str) -> None:
        """Forget what is queued and wake the client's stream, which then ends."""
        self.dropped = reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self, timeout: float) -> Message | None:
        """The next message, or None if none came within `timeout` seconds (send a heartbeat).

        Raises `Dropped` once the hub has dropped this client.
        """
        if self.dropped is None:
            try:
                async with asyncio.timeout(timeout):
                    message = await self._queue.get()
            except TimeoutError:
                return None
            if message is not None:
                return message
        raise Dropped(self.dropped)


def fan_out(message: Message, subscriptions: Iterable[Subscription]) -> list[Subscription]:
    """Offer `message` to every subscription without waiting; return the ones that were full.

    (Lesson 09's first exercise.) The caller drops those: a full queue is a client a whole
    queue behind, and waiting for it would hold up every other client of this worker.
    """
    return [subscription for subscription in subscriptions if not subscription.offer(message)]


@dataclass
class HubStats:
    """What a worker's hub did, for `/stats` and the lesson's asserts."""

    clients: int = 0
    messages: int = 0  # fanned out
    deliveries: int = 0  # messages put in a client's queue
    dropped: int = 0  # clients dropped because their queue was full
    most_waiting: int = 0  # the longest queue seen, in messages (never above the queue size)


class Hub:
    """The subscriptions of one worker, and the loop body that feeds them."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._stats = HubStats()

    def join(self) -> Subscription:
        subscription = Subscription(self.queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def leave(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, message: Message) -> None:
        """Hand `message` to every client of this worker; drop the clients that are full."""
        full = fan_out(message, self._subscriptions)
        for subscription in full:
            subscription.drop(f"more than {self.queue_size} messages behind")
            self._subscriptions.discard(subscription)
        stats = self._stats
        stats.messages += 1
        stats.deliveries += len(self._subscriptions)
        stats.dropped += len(full)
        longest = max((s.waiting for s in self._subscriptions), default=0)
        stats.most_waiting = max(stats.most_waiting, longest)

    def stats(self) -> HubStats:
        self._stats.clients = len(self._subscriptions)
        return HubStats(**vars(self._stats))
