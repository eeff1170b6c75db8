"""What every broker offers a transport (SSE now, WebSocket in lesson 10).

A broker has two halves. **Publishing** takes a message from any worker and makes it
everyone's (`publish`). **Following** is one task per worker (`start`) that receives every
message once and hands it to this worker's `Hub`, which fans it out to the worker's clients.
A client reads its own `Feed`: `next(timeout)` is the next message, or None when nothing came
in time (the transport sends a heartbeat then).

The three brokers differ in what a client that was away gets back: nothing
(`memory`, `pubsub`), or everything after its last id (`streams`). Redis being unreachable is
`BrokerUnavailable`, which an endpoint turns into a 503: "not accepted, try again" is honest;
a 201 for a message that went nowhere is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Protocol, Self

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.event_ids import StreamId
from server.fanout.hub import Hub, Message, Subscription
from server.redis_client import COMMAND_TIMEOUT, FOLLOW_TIMEOUT, connect

# The most past messages one new client may ask for (`?history=K`): a request for the whole
# stream (`STREAM_MAXLEN` entries of up to 64 KB) would read hundreds of MB into memory at once.
HISTORY_MAX = 500
log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker cannot take or give messages now (Redis is unreachable). Try again later."""


def unavailable(error: Exception) -> str:
    """What a refused publish says: what happened, whether it was stored, what to do.

    A refused or reset connection stored nothing. A timeout is not so sure: the command may
    have run and only its answer been late, so the message may be in the stream; a retry with
    the same Idempotency-Key stores it once either way.
    """
    if isinstance(error, RedisTimeoutError | TimeoutError):
        return (
            f"Redis did not answer in time ({type(error).__name__}: {error}): the message may or "
            "may not have been stored. Retry later with the same Idempotency-Key: it is stored "
            "once either way."
        )
    return (
        f"Redis is unreachable ({type(error).__name__}: {error}): the message was NOT stored. "
        "Retry later (with the same Idempotency-Key)."
    )


class Feed(Protocol):
    """One client's messages, in order: `async with broker.subscribe(...) as feed`."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def open(self) -> None:
        """Join the worker's hub: messages fanned out from now on are queued for this client."""
        ...

    def next(self, timeout: float) -> Awaitable[Message | None]:
        """The next message, None after `timeout` seconds without one; `Dropped` if too slow."""
        ...

    def close(self) -> None:
        """Leave the hub now (idempotent): the client has gone or stalled."""
        ...


class Broker(Protocol):
    kind: str
    keeps_history: bool
    hub: Hub

    @property
    def healthy(self) -> bool:
        """Whether the broker reached its store at the last attempt (always True in memory)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, data: str, *, key: str | None = None) -> str | None:
        """Make `data` (JSON text) everyone's; its id, if the broker gives one.

        `key` is an idempotency key: publishing again with the same key (a retry after a
        lost answer) does not make a second message, where the broker supports it.
        """
        ...

    def subscribe(self, after: StreamId | None = None, history: int = 0) -> Feed:
        """A client's feed: after its last id, or its last `history` messages, then live.

        A broker that keeps no history raises `ValueError` for `history` > 0.
        """
        ...


class RedisFollower:
    """What both Redis brokers share: one connection, and one task per worker that follows
    Redis and feeds the hub. `_follow` sets `_ready` once a worker receives what is published
    (subscribed, or holding its stream cursor); `start` waits a little for that."""

    STARTUP_WAIT = 5.0  # seconds a starting worker waits for Redis before serving

    def __init__(self, redis_url: str) -> None:
        # Two clients: commands, each bounded by COMMAND_TIMEOUT and retried only when the
        # connection was refused or reset (a command that timed out may have run: a second
        # XADD would be a second message); and the follower's, whose blocking reads wait longer.
        backoff = ExponentialBackoff(cap=0.05, base=0.01)
        only_reconnect = Retry(backoff, retries=1, supported_errors=(RedisConnectionError,))
        self.redis = connect(redis_url, socket_timeout=COMMAND_TIMEOUT, retry=only_reconnect)
        self.follower_redis = connect(
            redis_url, socket_timeout=FOLLOW_TIMEOUT, retry=only_reconnect
        )
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _follow(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Start following; wait (a little) until ready, so a worker that says it is ready
        really receives what is published from then on."""
        self._task = asyncio.create_task(self._follow())
        self._task.add_done_callback(_say_if_it_died)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.STARTUP_WAIT)

    async def stop(self) -> None:
        """Stop following, and close the connection even if the task had failed."""
        try:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        finally:
            await self.redis.aclose()
            await self.follower_redis.aclose()


def _say_if_it_died(task: asyncio.Task[None]) -> None:
    """A follower never ends but by cancellation: if it does, its worker hears nothing more."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the Redis follower died; this worker gets no more messages", exc_info=task.exception()
        )


def message_of(entry_id: str, fields: dict[str, str], key: str) -> Message | None:
    """The message in one stream entry, or None (logged) for an entry with no `data` field,
    such as one added by hand in redis-cli: skipped and moved past, never a dead follower."""
    data = fields.get("data")
    if data is None:
        log.warning("skipping entry %s of %s: it has no data field (%s)", entry_id, key, fields)
        return None
    return Message(data, id=entry_id)


class OpenedFeed(ABC):
    """`async with feed:` opens it and closes it however the block ends: one copy for every feed."""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class LiveFeed(OpenedFeed):
    """A feed of live messages only, for brokers that keep no history."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._subscription: Subscription | None = None

    @classmethod
    def without_history(cls, broker: Broker, history: int) -> LiveFeed:
        if history:
            raise ValueError(f"the {broker.kind} broker keeps no history: ask without ?history")
        return cls(broker.hub)

    def open(self) -> None:
        """Join the hub: from now on, every message this worker receives is queued here."""
        self._subscription = self._hub.join()

    def close(self) -> None:
        if self._subscription is not None:
            self._hub.leave(self._subscription)

    def next(self, timeout: float) -> Awaitable[Message | None]:
        # Not `async def`: the caller awaits the subscription's own coroutine, one suspended
        # frame less per open stream (about 500 bytes, `bench/bench_capacity.py`).
        if self._subscription is None:
            raise RuntimeError("open the feed first: `async with broker.subscribe() as feed`")
        return self._subscription.get(timeout)
