"""Lessons 09 and 11's exercise checks pass the references and fail the usual mistakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.clients import reply_stream
from server.course.launcher import Server
from server.course.stream_read_checks import test_entries_after as check_entries_after
from server.course.stream_read_checks import test_follow_reply as check_follow_reply
from server.fanout import streams
from server.sse import Event

pytestmark = pytest.mark.redis


async def inclusive(redis: Any, key: str, last_id: str, page: int = 100) -> AsyncIterator[Any]:
    """Starts at `last_id` itself: the client gets it twice."""
    start = last_id
    while True:
        entries = await redis.xrange(key, min=start, max="+", count=page)
        for entry in entries:
            yield entry
        if len(entries) < page:
            return
        start = f"({entries[-1][0]}"


async def one_read(redis: Any, key: str, last_id: str, page: int = 100) -> AsyncIterator[Any]:
    """Reads one page and stops: a longer history is cut short."""
    for entry in await redis.xrange(key, min=f"({last_id}", max="+", count=page):
        yield entry


async def no_yield(redis: Any, key: str, last_id: str, page: int = 100) -> list[Any]:
    return list(await redis.xrange(key, min=f"({last_id}", max="+", count=page))


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (streams.entries_after, None),
        (inclusive, "sent again"),
        (one_read, "expected the 5 entries"),
        (no_yield, "async generator"),
    ],
)
def test_the_entries_after_check(redis: Server, fn: Any, says: str | None) -> None:
    if says is None:
        asyncio.run(check_entries_after(fn, redis.url))
    else:
        with pytest.raises(AssertionError, match=says):
            asyncio.run(check_entries_after(fn, redis.url))


async def no_event_name(redis: Any, key: str, last_id: str) -> AsyncIterator[Event]:
    """Leaves `event` empty for a token entry instead of ``message``."""
    async for event in reply_stream.follow_reply(redis, key, last_id):
        yield Event(event.data, "" if event.event == "message" else event.event, event.id)


async def from_the_start(redis: Any, key: str, last_id: str) -> AsyncIterator[Event]:
    """Ignores `last_id`: a resumed reader gets everything again."""
    async for event in reply_stream.follow_reply(redis, key, ""):
        yield event


async def past_the_end(redis: Any, key: str, last_id: str) -> AsyncIterator[Event]:
    """Reads what is there, without stopping at the end: the stray entry comes too."""
    await asyncio.sleep(1)  # the live reply is written meanwhile
    for entry_id, fields in await redis.xrange(key, min=f"({last_id or '0-0'}", max="+"):
        yield Event(fields["data"], fields.get("event", "message"), entry_id)


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (reply_stream.follow_reply, None),
        (no_event_name, "without an event field"),
        (from_the_start, "only what follows it"),
        (past_the_end, "stop after the last"),
    ],
)
def test_the_follow_reply_check(redis: Server, fn: Any, says: str | None) -> None:
    async def check() -> None:
        store = aioredis.from_url(redis.url, decode_responses=True)
        try:
            await store.delete("cap:reply:r")
            await reply_stream.write_reply(store, "cap:reply:r", ["Hel", "lo", "!"])
            await check_follow_reply(fn, store, "cap:reply:r")
        finally:
            await store.aclose()

    if says is None:
        asyncio.run(check())
    else:
        with pytest.raises(AssertionError, match=says):
            asyncio.run(check())
