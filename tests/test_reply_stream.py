"""server.clients.reply_stream against a real redis-server: replay, follow, and the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from server.clients.reply_stream import TERMINAL, follow_reply, write_reply
from server.course.launcher import Server
from server.sse import Event

pytestmark = pytest.mark.redis

DEADLINE = 10.0
Scenario = Callable[[aioredis.Redis], Awaitable[None]]
Runner = Callable[[Scenario], None]


@pytest.fixture
def run(redis: Server) -> Runner:
    """Run an async scenario against conftest's empty Redis, with a fresh client."""

    def runner(scenario: Scenario) -> None:
        async def main() -> None:
            client = aioredis.from_url(redis.url, decode_responses=True)
            try:
                await scenario(client)
            finally:
                await client.aclose()

        asyncio.run(main())

    return runner


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    async def read() -> list[Event]:
        return [event async for event in events]

    return await asyncio.wait_for(read(), DEADLINE)


def test_from_the_start_it_replays_the_whole_reply_and_stops_after_done(run: Runner) -> None:
    async def scenario(redis: aioredis.Redis) -> None:
        ids = await write_reply(redis, "r", ["안녕", "하세요"])
        got = await collect(follow_reply(redis, "r"))
        assert [e.id for e in got] == ids
        assert [e.event for e in got] == ["owner", "message", "message", "done"]
        assert got[1].data == '{"delta": "안녕", "i": 0}'
        assert got[-1].data == '{"tokens": 2}'

    run(scenario)


def test_after_a_last_event_id_it_sends_only_what_came_after(run: Runner) -> None:
    async def scenario(redis: aioredis.Redis) -> None:
        ids = await write_reply(redis, "r", list("abcdef"))
        got = await collect(follow_reply(redis, "r", ids[3]))
        assert [e.id for e in got] == ids[4:]

    run(scenario)


def test_it_follows_entries_written_later_and_stops_after_error(run: Runner) -> None:
    async def scenario(redis: aioredis.Redis) -> None:
        reader = asyncio.ensure_future(collect(follow_reply(redis, "r", block_ms=100)))
        ids = await write_reply(redis, "r", list("abc"), end="error", pause=0.05)
        await redis.xadd("r", {"data": "written after the end"})
        got = await reader
        assert [e.id for e in got] == ids, "every entry once, none after the error"
        assert got[-1].event == "error"
        assert "error" in got[-1].data

    run(scenario)


@pytest.mark.parametrize("end", TERMINAL)
def test_each_terminal_event_ends_the_stream(run: Runner, end: str) -> None:
    async def scenario(redis: aioredis.Redis) -> None:
        await write_reply(redis, "r", [], end=end)
        got = await collect(follow_reply(redis, "r"))
        assert [e.event for e in got] == ["owner", end]

    run(scenario)


def test_a_reply_without_its_end_keeps_the_reader_waiting(run: Runner) -> None:
    async def scenario(redis: aioredis.Redis) -> None:
        await redis.xadd("r", {"data": "one token, then nothing"})
        events = follow_reply(redis, "r", block_ms=50)
        assert (await anext(events)).data == "one token, then nothing"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(events), 0.5)
        await events.aclose()

    run(scenario)
