"""Redis errors that are not "Redis is down" must not end a worker's follower in silence.

A `WRONGTYPE` (the key replaced by hand, or a `READONLY` replica after a failover) used to end the
follower task for good while `/status` kept saying healthy and the heartbeats kept saying ping;
an entry without a `data` field, added by hand in redis-cli, did the same. Now the follower logs
it, says unhealthy, backs off and goes on, and a poison entry is skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx2
import pytest
import redis as redis_py

from server.clients.sse_client import aconnect_sse
from server.course.launcher import Server

pytestmark = pytest.mark.redis


def publish(app: Server, text: str) -> None:
    response = httpx2.post(f"{app.url}/publish", json={"text": text}, timeout=10)
    assert response.status_code == 201, response.text


def healthy(app: Server) -> bool:
    return bool(httpx2.get(f"{app.url}/", timeout=10).json()["healthy"])


async def first_texts(app: Server, count: int, started: asyncio.Event) -> list[str]:
    url = f"{app.url}/events?limit={count}"
    async with httpx2.AsyncClient(timeout=30) as client, aconnect_sse(client, "GET", url) as events:
        started.set()
        return [json.loads(event.data)["text"] async for event in events]


def test_the_follower_survives_a_wrong_type_and_a_poison_entry(
    serve: Callable[..., Server], redis: Server, wait_for: Callable[..., float]
) -> None:
    app = serve("server.apps.broadcast:app", env={"BROKER": "streams", "REDIS_URL": redis.url})
    store = redis_py.Redis.from_url(redis.url)

    async def scenario() -> list[str]:
        started = asyncio.Event()
        listener = asyncio.create_task(first_texts(app, 2, started))
        await started.wait()
        await asyncio.to_thread(publish, app, "before")
        store.delete("room")
        store.set("room", "not a stream")  # WRONGTYPE for the follower's XREAD
        await asyncio.to_thread(wait_for, lambda: not healthy(app), "unhealthy on WRONGTYPE")
        store.delete("room")
        store.xadd("room", {"text": "no data field"})  # a poison entry
        await asyncio.to_thread(wait_for, lambda: healthy(app), "healthy again")
        await asyncio.to_thread(publish, app, "after")
        return await listener

    assert asyncio.run(scenario()) == ["before", "after"]
    assert "WRONGTYPE" in app.log_tail(200) and "no data field" in app.log_tail(200)
