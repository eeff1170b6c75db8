"""Redis Streams fan-out: every message kept in order with an id, so a client catches up.

Theory of operation
-------------------
**Publish** is `XADD room MAXLEN ~ N * data <json>`: Redis appends the message to the stream
and returns its id (`1700000000000-0`, always rising), which becomes the SSE `id:` field.
`MAXLEN ~` caps the stream near N entries (trimming whole internal nodes, so a little above
N), which keeps Redis's memory bounded and makes the stream the room's history too. With an
idempotency key, a small Lua script makes the append happen once per key (a publisher that
retries after losing the answer does not add a duplicate).

**Follow**: one task per worker runs `XREAD BLOCK` from the last id it has seen, and hands
each new entry to the worker's `Hub`. Its cursor lives in the worker, so after Redis comes
back it carries on from where it was; after Redis loses its data, new ids are newer anyway.

**Catch up** (`server.fanout.stream_feed`): a client that reconnects with `Last-Event-ID: L`
first **joins** the hub (from now on live entries queue up for it), then reads what it missed
with `XRANGE room (L +` (the `(` makes the start exclusive), page by page, and then the live
queue, skipping any entry at or below the last id it sent. Joining before reading is what
leaves no gap: an entry is either old enough for the XRANGE or new enough for the queue, often
both, never neither. It needs one more condition, which the catch-up waits for: the worker's
follower must already have its cursor, or an entry added between the catch-up and the
follower's first read would fall between them.

**Reset**: an `L` older than the oldest entry still kept (trimmed away by `MAXLEN`), or one
this stream never issued (the stream is gone: Redis lost its data), cannot be caught up
from. The feed says so with an `event: reset` and goes on from the oldest entry kept: a
client sees the gap explicitly and can reload, instead of silently missing messages.
(Redis 7.0 does not record trimming in `XINFO STREAM`'s `max-deleted-entry-id`, so "older
than the oldest entry kept" is the test; it is conservative: an `L` just below the oldest
kept entry gets a reset it did not strictly need.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.event_ids import StreamId, parse_stream_id
from server.fanout.broker import (
    HISTORY_MAX,
    BrokerUnavailable,
    RedisFollower,
    log,
    message_of,
    unavailable,
)
from server.fanout.hub import DEFAULT_QUEUE_SIZE, Hub, Message
from server.fanout.stream_feed import StreamFeed
from server.idempotency import REMEMBERED
from server.redis_client import RECONNECT_EVERY, REDIS_DOWN

DEFAULT_MAXLEN = 10_000  # entries kept, about
PAGE = 200  # entries per XRANGE while catching up, and per XREAD
BLOCK_MS = 2000  # how long one XREAD waits for a new entry

# KEYS[1] the stream, KEYS[2] the key's marker; ARGV: maxlen, data, ttl. Atomic in Redis.
XADD_ONCE = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', ARGV[3])
return id
"""

Entry = tuple[str, dict[str, str]]  # (id, fields), as redis-py returns stream entries


class StreamsBroker(RedisFollower):
    """XADD to a stream; one XREAD loop per worker; per-client catch-up with XRANGE."""

    kind = "streams"
    keeps_history = True

    def __init__(
        self,
        redis_url: str,
        key: str = "room",
        *,
        maxlen: int = DEFAULT_MAXLEN,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        super().__init__(redis_url)
        self.key = key
        self.maxlen = maxlen
        self.hub = Hub(queue_size)
        self._xadd_once = self.redis.register_script(XADD_ONCE)
        self._cursor: str | None = None  # the last id the follower has handed to the hub
        self._healthy = False  # _ready is set once the follower has a cursor

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def following(self) -> bool:
        """Whether the worker's follower has its cursor (a catch-up must wait until it has)."""
        return self._ready.is_set()

    async def publish(self, data: str, *, key: str | None = None) -> str:
        """XADD `data`; its id. With `key` (`server.idempotency`), a second publish with the
        same key, within `REMEMBERED` seconds, adds nothing and returns the first one's id."""
        try:
            if key is None:
                return str(
                    await self.redis.xadd(
                        self.key, {"data": data}, maxlen=self.maxlen, approximate=True
                    )
                )
            marker = f"{self.key}:published:{key}"
            return str(
                await self._xadd_once(keys=[self.key, marker], args=[self.maxlen, data, REMEMBERED])
            )
        except REDIS_DOWN as error:
            self._healthy = False
            raise BrokerUnavailable(unavailable(error)) from error

    def subscribe(self, after: StreamId | None = None, history: int = 0) -> StreamFeed:
        """A feed from just after `after` (a client's Last-Event-ID), or, for a new client,
        the last `history` entries (at most `HISTORY_MAX`) and then the live ones."""
        if history > HISTORY_MAX:
            raise ValueError(
                f"history={history} is more than HISTORY_MAX ({HISTORY_MAX}): ask for at most "
                f"{HISTORY_MAX} past messages"
            )
        return StreamFeed(self, after, history)

    async def kept(self) -> tuple[StreamId, StreamId] | None:
        """The positions of the oldest and of the newest entry kept (None: the stream is empty)."""
        oldest = _entries(await self.redis.xrange(self.key, count=1))
        newest = _entries(await self.redis.xrevrange(self.key, count=1))
        return (_position(oldest[0]), _position(newest[0])) if oldest and newest else None

    async def messages_after(self, last_id: str) -> AsyncIterator[Message]:
        """The messages of every entry after `last_id` (`entries_after`): a feed's catch-up."""
        async for entry_id, fields in entries_after(self.redis, self.key, last_id):
            message = message_of(entry_id, fields, self.key)
            if message is not None:
                yield message

    async def before_newest(self, count: int) -> str:
        """The id just before the last `count` entries ("0-0" when there are no more), walked
        back `PAGE` entries at a time: one XREVRANGE of `HISTORY_MAX` entries of up to 64 KB
        would hold them all in memory at once. The entries themselves are then read forward,
        a page at a time, by `entries_after`."""
        seen, top = 0, "+"
        while True:
            page = _entries(await self.redis.xrevrange(self.key, max=top, min="-", count=PAGE))
            for entry_id, _fields in page:
                if seen == count:
                    return entry_id
                seen += 1
            if len(page) < PAGE:
                return "0-0"
            top = f"({page[-1][0]}"

    async def _follow(self) -> None:
        """The worker's one reader: every new entry, in order, to the hub."""
        while True:
            try:
                redis = self.follower_redis
                if self._cursor is None:
                    newest = _entries(await redis.xrevrange(self.key, count=1))
                    self._cursor = newest[0][0] if newest else "0-0"
                    self._ready.set()
                elif not self._healthy:
                    await redis.ping()  # back? (XREAD would only say so when it returns)
                self._healthy = True  # only after a command succeeded
                # [[key, [(id, fields), ...]]], or None when BLOCK_MS passed without an entry
                reply: Any = await redis.xread({self.key: self._cursor}, count=PAGE, block=BLOCK_MS)
            except REDIS_DOWN:
                self._healthy = False
                await asyncio.sleep(RECONNECT_EVERY)
                continue
            except RedisError as error:  # WRONGTYPE, READONLY after a failover: up, not working
                log.warning("following %s failed (%s); retrying", self.key, error)
                self._healthy = False
                await asyncio.sleep(RECONNECT_EVERY)
                continue
            for _stream, entries in reply or []:
                for entry_id, fields in _entries(entries):
                    message = message_of(entry_id, fields, self.key)
                    if message is not None:
                        self.hub.publish(message)
                    self._cursor = entry_id


async def entries_after(
    redis: aioredis.Redis, key: str, last_id: str, page: int = PAGE
) -> AsyncIterator[Entry]:
    """Every entry of the stream `key` after `last_id`, oldest first, `page` per XRANGE.

    (Lesson 09's second exercise.) The `(` in `XRANGE key (last_id +` makes the start
    exclusive: the client has `last_id` already. Each next page starts after the last entry
    of the one before; a short page is the end, for now: entries added later reach the
    client through the hub. Reading page by page keeps memory bounded however long the
    client was away.
    """
    start = f"({last_id}"
    while True:
        entries = _entries(await redis.xrange(key, min=start, max="+", count=page))
        for entry in entries:
            yield entry
        if len(entries) < page:
            return
        start = f"({entries[-1][0]}"


def _entries(reply: Iterable[tuple[Any, Any]] | None) -> list[Entry]:
    """Stream entries as redis-py returns them (typed loosely), as (id, fields) of text."""
    return [(str(i), {str(k): str(v) for k, v in (f or {}).items()}) for i, f in reply or []]


def _position(entry: Entry) -> StreamId:
    position = parse_stream_id(entry[0], "entry id")
    assert position is not None
    return position
