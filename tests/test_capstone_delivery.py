"""The capstone's reply stream, one reader on a real Redis: heartbeats while nothing comes.

`reply_events` is what `GET api/replies/{id}/events` streams. Driven directly, the silence is
whatever the test makes it, so "a ping fills a silence longer than HEARTBEAT" is checked
without racing a worker's death (the end-to-end kill test cannot promise the reconnecting
client ever sees a silence that long).
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from server.apps.capstone.delivery import reply_events
from server.apps.capstone.metrics import Metrics
from server.course.launcher import Server
from server.event_ids import parse_stream_id

pytestmark = pytest.mark.redis


def test_a_silent_reply_gets_pings_then_its_next_event_and_ends(redis: Server) -> None:
    async def scenario() -> list[bytes]:
        client = aioredis.Redis.from_url(redis.url, decode_responses=True)
        key = "cap:reply:r1"
        try:
            first = await client.xadd(key, {"event": "owner", "data": '{"worker": "A"}'})
            metrics = Metrics()
            stream = reply_events(
                client, "r1", parse_stream_id(first), heartbeat=0.2, retry_ms=1000, metrics=metrics
            )
            got = [await anext(stream), await anext(stream)]  # nothing new: two heartbeats
            assert metrics.registry.get_sample_value("capstone_open_streams") == 1
            await client.xadd(key, {"event": "done", "data": "{}"})
            got += [chunk async for chunk in stream]  # the last event, then the end
            assert metrics.registry.get_sample_value("capstone_open_streams") == 0
            return got
        finally:
            await client.aclose()

    got = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert got[:2] == [b": ping\n", b": ping\n"], got
    assert len(got) == 3 and got[2].startswith(b"event: done\nid: ") and b"retry: 1000" in got[2]
