"""A reply to the browser: its Redis stream as Server-Sent Events, resumable on any worker.

``GET api/replies/<reply>/events`` reads ``cap:reply:<reply>`` with ``XREAD`` from the
client's ``Last-Event-ID`` (a Redis stream id, checked by `server.event_ids`; malformed:
400) and sends each entry as one event whose ``id:`` is the entry's id. ``XREAD`` from an id
is exclusive and returns what is already there at once, so one command is both the catch-up
and the live follow: no gap, no duplicate, whichever worker serves the reconnection.

Why not lesson 09's `StreamsBroker`? It exists so that one worker reads a busy room's stream
*once* for all its clients (one XREAD loop, a hub). A reply has one reader, so its XREAD is
already the fan-out, and a broker per reply would be a task and a hub per reply for nothing.
What is shared with lesson 09 is the rest: Redis stream ids as SSE ids, `connect`'s fail-fast
client, a stalled client dropped by `server.asgi.send_deadline`. The price: each open stream holds
one Redis connection while its XREAD waits. Hundreds per worker are nothing to Redis (it
serves 10,000 clients by default); at many thousands, one XREAD per worker over many reply
keys, handing entries to each stream's queue (lesson 09's follower and hub), is the next step.

The stream ends after the reply's last event (``done``, ``error`` or ``stopped``), or after
``MAX_STREAM_SECONDS``, whichever comes first: then it simply ends, between two events, and
the client reconnects with its last id, as after any cut (the page and `EventSource` both
do). A proxy that never tells the server a tab has closed (jupyter-server-proxy) thus holds
a stream nobody reads for that long at most, not for as long as the reply lasts. While
nothing comes, a ``: ping`` comment goes out every ``HEARTBEAT`` seconds, below nginx's
``proxy_read_timeout`` (60 s here) and an ALB's idle timeout (60 s by default). While Redis is
away the comment says ``waiting for redis`` and the stream waits: the reply's promise, every
token after your last id, holds once Redis is back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from server.apps.capstone.metrics import Metrics
from server.apps.capstone.replies import TERMINAL
from server.event_ids import StreamId, parse_stream_id
from server.redis_client import RECONNECT_EVERY, REDIS_DOWN
from server.sse import Event, comment, encode

BLOCK_MS = 5000  # one XREAD's wait: below `connect`'s 10 s socket timeout


async def already_ended(redis: aioredis.Redis, reply: str, after: StreamId | None) -> bool:
    """Whether a client that has `after` already has the reply's last event (answer 204).

    ValueError for an id this reply never issued: one past its newest entry. A page that
    forgets to close its EventSource reconnects with the `done` event's own id, and an XREAD
    after it would hold the connection with pings until the reply expires."""
    if after is None:
        return False
    newest: Any = await redis.xrevrange(f"cap:reply:{reply}", count=1)
    if not newest:
        return False
    entry_id, fields = newest[0]
    last = parse_stream_id(entry_id, "entry id")
    if last is None or after > last:
        raise ValueError(f"Last-Event-ID {after} was not issued by this reply")
    return fields.get("event") in TERMINAL and after == last


async def reply_events(
    redis: aioredis.Redis,
    reply: str,
    after: StreamId | None,
    *,
    heartbeat: float,
    retry_ms: int,
    metrics: Metrics,
    lifetime: float = math.inf,
) -> AsyncIterator[bytes]:
    """The reply's events after `after`, ending with its last one (or after `lifetime`
    seconds, for the client to resume); heartbeats between."""
    key, cursor = f"cap:reply:{reply}", str(after) if after is not None else "0-0"
    block = min(BLOCK_MS, int(heartbeat * 1000))
    last_write, first = time.monotonic(), True
    ends = last_write + lifetime
    metrics.open_streams.inc()
    try:
        while (left := ends - time.monotonic()) > 0:
            try:
                wait = max(1, int(min(block / 1000, left) * 1000))  # ms, to the end
                found: Any = await redis.xread({key: cursor}, count=100, block=wait)
            except REDIS_DOWN:
                if time.monotonic() - last_write >= heartbeat:
                    yield comment("waiting for redis")
                    last_write = time.monotonic()
                await asyncio.sleep(RECONNECT_EVERY)
                continue
            if not found:
                if not await redis.exists(key):  # expired (REPLY_TTL) or never existed
                    yield encode(Event('{"message": "this reply is no longer kept"}', "error"))
                    return
                if time.monotonic() - last_write >= heartbeat:
                    yield comment("ping")
                    last_write = time.monotonic()
                continue
            for _key, entries in found:
                for entry_id, fields in entries:
                    event = fields.get("event")
                    yield encode(
                        Event(fields["data"], event, entry_id, retry_ms if first else None)
                    )
                    first, cursor, last_write = False, entry_id, time.monotonic()
                    if event in TERMINAL:
                        return
    finally:
        metrics.open_streams.dec()
