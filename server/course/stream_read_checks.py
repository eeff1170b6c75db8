"""Lessons 09 and 11's exercise checks: reading a Redis stream after a Last-Event-ID.

`test_entries_after(fn, redis_url)` (lesson 09) writes 7 entries and reads those after the 2nd
through the learner's ``entries_after(redis, key, last_id, page)`` with pages of 2: the 5 that
follow, the id itself not again, in 3 XRANGEs of ``page`` each (a client counts them), and
nothing after the last.

`test_follow_reply(fn, redis, key)` (lesson 11) reads a finished reply's stream ``key`` through
the learner's ``follow_reply(redis, key, last_id)``: every entry from the start, then only those
after one in its middle; then a reply a writer (`server.clients.reply_stream.write_reply`)
writes after the reader has started, ending with ``error`` and followed by a stray entry the
reader must not yield.

Each assertion says which rule failed, so a learner reads the message, not this module.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis

from server.clients import reply_stream
from server.sse import Event

__all__ = ["test_entries_after", "test_follow_reply"]

TOO_MANY = 20  # reads, or entries, that mean the learner's loop does not stop


async def _read_all(events: Any, name: str) -> list[Any]:
    """Every item of `events`, which must be an async generator (a coroutine has no `yield`)."""
    if inspect.iscoroutine(events):  # no `yield` in it (yet)
        await events
        raise AssertionError(f"{name} must be an async generator: it needs a `yield`")
    got = []
    async for item in events:
        got.append(item)
        assert len(got) <= TOO_MANY * 10, f"{name} yields and yields: does it stop?"
    return got


class _CountingRedis:
    """The real client, counting the pages the learner asks it for."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.pages: list[Any] = []

    async def xrange(self, *args: Any, **kwargs: Any) -> Any:
        self.pages.append(kwargs.get("count"))
        if len(self.pages) > TOO_MANY:
            raise AssertionError(f"more than {TOO_MANY} XRANGEs for 5 entries: does it stop?")
        return await self._redis.xrange(*args, **kwargs)


async def test_entries_after(fn: Callable[..., AsyncIterator[Any]], redis_url: str) -> None:
    """Assert `fn` reads the entries after an id, page by page, excluding the id."""
    redis = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await redis.delete("exercise")
        ids = [str(await redis.xadd("exercise", {"data": json.dumps({"n": n})})) for n in range(7)]
        counting = _CountingRedis(redis)
        entries = await _read_all(fn(counting, "exercise", ids[1], 2), "entries_after")
        got = [entry_id for entry_id, _ in entries]
        assert got != ids[1:], "the entry `last_id` itself was sent again: use an exclusive start"
        assert got == ids[2:], f"expected the 5 entries after the 2nd, got {len(got)}"
        pages = counting.pages
        assert pages and all(count == 2 for count in pages), f"read `page` entries a time: {pages}"
        assert len(pages) == 3, f"5 entries in pages of 2: 3 reads, not {len(pages)}"
        last = fn(_CountingRedis(redis), "exercise", ids[-1], 2)
        assert await _read_all(last, "entries_after") == [], "nothing after the last"
    finally:
        await redis.aclose()


async def test_follow_reply(
    fn: Callable[..., AsyncIterator[Event]], redis: aioredis.Redis, key: str
) -> None:
    """Assert `fn` replays the finished reply `key`, resumes after an id, follows a live one
    and stops at its end."""
    entries: Any = await redis.xrange(key)  # [(id, fields)]: text, with decode_responses
    ids = [entry_id for entry_id, _ in entries]
    got = await _read_all(fn(redis, key, ""), "follow_reply")
    assert [e.id for e in got] == ids, f"from the start: all {len(ids)} entries, got {len(got)}"
    assert [got[0].event, got[-1].event] == ["owner", "done"], "event: the entry's event field"
    assert {e.event for e in got[1:-1]} == {"message"}, "an entry without an event field: message"
    assert got[1].data == entries[1][1]["data"], "data: the entry's data field, as it is"
    middle = len(ids) // 2
    got = await _read_all(fn(redis, key, ids[middle]), "follow_reply")
    assert [e.id for e in got] == ids[middle + 1 :], "after a Last-Event-ID: only what follows it"
    live = "exercise:live"
    await redis.delete(live)
    reader = asyncio.ensure_future(_read_all(fn(redis, live, ""), "follow_reply"))
    written = await reply_stream.write_reply(redis, live, ["안녕", "!"], end="error", pause=0.1)
    await redis.xadd(live, {"data": "a stray entry after the end"})
    got = await reader
    assert [e.id for e in got] == written, (
        "follow entries written after you started, and stop after the last"
    )
    assert got[-1].event == "error", f"the last event must be the error, got {got[-1].event}"
