"""A capstone reply's Redis stream, read the way a reply's event stream is served.

Lesson 11's exercise. A reply lives in one Redis stream, ``cap:reply:<id>``: an ``owner``
entry, one entry per token, then exactly one of ``done``, ``error`` or ``stopped``. A browser
that reconnects sends the id of the last event it saw (``Last-Event-ID``); the server must send
what comes after that id, then whatever is written later, and end the response after the
reply's last event, or the browser waits on a finished reply forever.

`follow_reply` does all three with one command in a loop: ``XREAD`` from an id is exclusive
and returns at once what is already there (the replay), and with ``BLOCK`` it waits for the
next entry (the follow). The capstone's own loop (`server.apps.capstone.delivery`) adds
heartbeats, Redis outages and metrics around the same idea.

`write_reply` writes a reply in the capstone's format, at a chosen pace, so the reader can be
checked against a reply that is still being written or that ends with an ``error``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import redis.asyncio as aioredis

from server.sse import Event

TERMINAL = ("done", "error", "stopped")


async def follow_reply(
    redis: aioredis.Redis, key: str, last_id: str = "", *, block_ms: int = 1000
) -> AsyncGenerator[Event, None]:
    """The entries of stream `key` after `last_id` ("" = from the start) as events, those
    already there and those still to come, ending with the first done, error or stopped."""
    cursor = last_id or "0-0"
    while True:
        found: Any = await redis.xread({key: cursor}, block=block_ms)
        for _key, entries in found:
            for entry_id, fields in entries:
                kind = fields.get("event", "message")
                yield Event(fields["data"], kind, entry_id)
                if kind in TERMINAL:
                    return
                cursor = entry_id


async def write_reply(
    redis: aioredis.Redis,
    key: str,
    deltas: Iterable[str],
    *,
    end: str = "done",
    pause: float = 0.0,
    worker: str = "W",
) -> list[str]:
    """Write a reply as the capstone does (owner, tokens, then `end`), `pause` seconds apart;
    the ids of its entries, in order."""
    owner = json.dumps({"worker": worker, "takeover": False})
    ids = [str(await redis.xadd(key, {"event": "owner", "data": owner}))]
    index = -1
    for index, delta in enumerate(deltas):
        await asyncio.sleep(pause)
        token = json.dumps({"delta": delta, "i": index}, ensure_ascii=False)
        ids.append(str(await redis.xadd(key, {"data": token})))
    await asyncio.sleep(pause)
    last = {"tokens": index + 1} if end == "done" else {"message": f"The reply ended: {end}."}
    ids.append(str(await redis.xadd(key, {"event": end, "data": json.dumps(last)})))
    return ids
