"""One worker's fan-out: every message to every client of this process, never waiting for one.

A worker holds many open streams and receives each broadcast message once (from its own
publish, from Redis). The hub hands that message to every client's queue with
`Subscription.offer`: a put that cannot wait. The stream of each client reads its own queue
at its own pace. So the fan-out costs one quick loop per message, however slow any client is.

Each queue is bounded. A client whose queue is full is not keeping up (its network is slow,
or it stopped reading and its TCP window filled): the hub **drops** it instead of waiting or
buffering without end, and its stream ends. Memory per client is therefore bounded by the
queue size, and a dropped client that reconnects with `Last-Event-ID` catches up from a
broker that keeps history (`server.fanout.streams`); from one that does not, it has lost
what it missed (`server.fanout.pubsub`, `server.fanout.memory`).

A `Message` is encoded as SSE once, when it is made (`Message.sse`), not once per client;
a WebSocket layer sends `Message.data` instead; its stream position is parsed once, when
first asked (`Message.position`). Nothing here knows about HTTP.
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
    _position: StreamId | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sse", encode(Event(data=self.data, id=self.id, event=self.event)))

    @property
    def position(self) -> StreamId | None:
        """Where the message sits in a Redis stream (for ordering), or None without an id.

        Every client's feed asks, for every message: the id is parsed once, on the first
        ask (not when made: a malformed id raises only where a position is needed).
        """
        try:
            return self._position
        except AttributeError:  # the first ask
            position = parse_stream_id(self.id, "message id") if self.id else None
            object.__setattr__(self, "_position", position)
            return position


class Dropped(Exception):
    """The hub dropped this client: it fell a whole queue behind."""


class Subscription:
    """One client's place in the hub: a bounded queue of messages waiting to be sent.

    The queue is a list and one future, not an `asyncio.Queue`: a stream has one reader,
    and `asyncio.Queue` pays for many (deques of waiting getters and putters, an `Event` for
    `join`), some 2.5 KiB per open stream and several calls per message. A stream that finds
    its queue empty waits on `_waiter`; `offer` wakes it. A list, not a `deque`: the queue
    nearly always holds none or one message, and an empty list is 56 bytes where a deque
    starts with a block for 64 (760 bytes per open stream); taking from the front of a long
    list moves the rest, but a client that far behind is about to be dropped.

    The heartbeat's timer is lazy. Waiting with `asyncio.timeout` would arm and cancel a
    timer for every message of every client, some 15% of a worker's CPU per delivery
    (`bench/bench_capacity.py`). Instead each subscription keeps one timer, due `timeout`
    seconds after the last message it handed out; when it fires early (messages came
    meanwhile) it re-arms for the new due time, so a busy stream costs one timer per
    `timeout` seconds, and a message costs one clock read.
    """

    # one per open stream: keep it small (bench/bench_capacity.py measures KiB per stream)
    __slots__ = ("_last", "_queue", "_size", "_stats", "_timer", "_waiter", "dropped")

    def __init__(self, size: int, stats: HubStats | None = None) -> None:
        # None in the queue wakes the stream: it was dropped, or it has been idle too long.
        self._queue: list[Message | None] = []
        self._size = size  # the bound: `offer` refuses a message to a full queue
        self._waiter: asyncio.Future[None] | None = None  # the stream, waiting on an empty queue
        self._stats = stats  # the hub's, for the longest queue seen
        self.dropped: str | None = None  # why, once dropped
        self._last = 0.0  # loop time of the last message handed out, or of the first wait
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Messages queued for this client and not yet taken by its stream."""
        return len(self._queue)

    def offer(self, message: Message) -> bool:
        """Queue `message` without waiting. False if the queue is full (drop the client)."""
        queue = self._queue
        if len(queue) >= self._size:
            return False
        self._put(message)
        stats = self._stats
        if stats is not None and len(queue) > stats.most_waiting:
            stats.most_waiting = len(queue)
        return True

    def drop(self, reason: str) -> None:
        """Forget what is queued and wake the client's stream, which then ends."""
        self.dropped = reason
        self.close()
        self._queue.clear()
        self._put(None)

    def close(self) -> None:
        """Stop the heartbeat timer (the client left, or was dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def get(self, timeout: float) -> Message | None:
        """The next message, or None if none came within `timeout` seconds (send a heartbeat).

        Raises `Dropped` once the hub has dropped this client. One reader at a time: a
        second `get` while one waits raises `RuntimeError`.
        """
        if self.dropped is None:
            queue = self._queue
            loop = asyncio.get_running_loop()
            if not queue:
                if timeout <= 0:
                    return None
                if self._waiter is not None:
                    raise RuntimeError("a subscription has one reader: another get() waits")
                if self._timer is None:
                    if not self._last:
                        self._last = loop.time()
                    self._timer = loop.call_at(self._last + timeout, self._idle, loop, timeout)
                self._waiter = loop.create_future()
                try:
                    await self._waiter  # `_put` sets it after appending: the queue is not empty
                finally:
                    self._waiter = None
            message = queue.pop(0)
            if message is not None:
                self._last = loop.time()
                return message
            if self.dropped is None:
                return None  # woken by `_idle`: time for a heartbeat
        raise Dropped(self.dropped)

    def _put(self, message: Message | None) -> None:
        """Append to the queue (never full here) and wake the stream if it waits."""
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _idle(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """The timer: wake an idle stream with None, or wait on if a message came meanwhile."""
        now = loop.time()
        if not self._queue and now >= self._last + timeout:
            self._timer = None
            self._last = now  # the next heartbeat is due `timeout` after this one
            self._put(None)
        else:  # busy: messages came or are queued
            due = self._last + timeout if not self._queue else now + timeout
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
        subscription = Subscription(self.queue_size, self._stats)  # it counts `most_waiting`
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
        stats.dropped += before - delivered  # `most_waiting`: each subscription's `offer`

    def stats(self) -> HubStats:
        self._stats.clients = len(self._subscriptions)
        return HubStats(**vars(self._stats))
