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
    """One client's place in the hub: a bounded queue of messages waiting to be sent.

    The heartbeat's timer is lazy. Waiting with `asyncio.timeout` would arm and cancel a
    timer for every message of every client, some 15% of a worker's CPU per delivery
    (`bench/bench_capacity.py`). Instead each subscription keeps one timer, due `timeout`
    seconds after the last message it handed out; when it fires early (messages came
    meanwhile) it re-arms for the new due time, so a busy stream costs one timer per
    `timeout` seconds, and a message costs one clock read.
    """

    __slots__ = ("_last", "_queue", "_timer", "dropped")  # one per open stream: keep it small

    def __init__(self, size: int) -> None:
        # None in the queue wakes the stream: it was dropped, or it has been idle too long.
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(size)
        self.dropped: str | None = None  # why, once dropped
        self._last = 0.0  # loop time of the last message handed out, or of the first wait
        self._timer: asyncio.TimerHandle | None = None

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
        self.close()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def close(self) -> None:
        """Stop the heartbeat timer (the client left, or was dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def get(self, timeout: float) -> Message | None:
        """The next message, or None if none came within `timeout` seconds (send a heartbeat).

        Raises `Dropped` once the hub has dropped this client.
        """
        loop = asyncio.get_running_loop()
        if self.dropped is None:
            if self._queue.empty():
                if timeout <= 0:
                    return None
                if self._timer is None:
                    if not self._last:
                        self._last = loop.time()
                    self._timer = loop.call_at(self._last + timeout, self._idle, loop, timeout)
            message = await self._queue.get()
            if message is not None:
                self._last = loop.time()
                return message
            if self.dropped is None:
                return None  # woken by `_idle`: time for a heartbeat
        raise Dropped(self.dropped)

    def _idle(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """The timer: wake an idle stream with None, or wait on if a message came meanwhile."""
        now = loop.time()
        if self._queue.empty() and now >= self._last + timeout:
            self._timer = None
            self._last = now  # the next heartbeat is due `timeout` after this one
            self._queue.put_nowait(None)
        else:  # busy: messages came or are queued
            due = self._last + timeout if self._queue.empty() else now + timeout
            self._timer = loop.call_at(due, self._idle, loop, timeout)


def fan_out(message: Message, subscriptions: Iterable[Subscription]) -> list[Subscription]:
    """Offer `message` to every subscription without waiting; return the ones that were full.

    (Lesson 09's first exercise.) The caller drops those: a full queue is a client a whole
    queue behind, and waiting for it would hold up every other client of this worker.
    """
    return [subscription for subscription in subscriptions if not subscription.offer(message)]


def deliver(message: Message, subscriptions: set[Subscription], reason: str) -> int:
    """Offer `message` to every subscription; drop the full ones, with `reason`, and remove
    them from `subscriptions`. Returns how many subscriptions got the message.

    (Lesson 09's first exercise: the body of `Hub.publish`.) Nothing here waits: a full
    queue ends that client's stream (`Subscription.drop` wakes it with the reason) instead of
    holding up the others. The full ones are collected first and removed after the loop: a
    set must not change size while it is iterated.
    """
    for subscription in fan_out(message, subscriptions):
        subscription.drop(reason)
        subscriptions.discard(subscription)
    return len(subscriptions)


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
        subscription.close()
        self._subscriptions.discard(subscription)

    def publish(self, message: Message) -> None:
        """Hand `message` to every client of this worker; drop the clients that are full."""
        before = len(self._subscriptions)
        reason = f"more than {self.queue_size} messages behind"
        delivered = deliver(message, self._subscriptions, reason)
        stats = self._stats
        stats.messages += 1
        stats.deliveries += delivered
        stats.dropped += before - delivered
        longest = max((s.waiting for s in self._subscriptions), default=0)
        stats.most_waiting = max(stats.most_waiting, longest)

    def stats(self) -> HubStats:
        self._stats.clients = len(self._subscriptions)
        return HubStats(**vars(self._stats))
