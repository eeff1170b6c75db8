"""`seconds_until` and `wait_until`, the one polling wait of the stage checks and of lesson 04's
disconnect cell, against a real server on a free port: the generator a client left is seen gone,
and a condition that never holds gives up at its deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2
import pytest

from server.clients.sse_client import aconnect_sse
from server.course.launcher import Server, start_app
from server.course.stages.waits import seconds_until, wait_until


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    with start_app("server.apps.fastapi_streams:app") as server:
        yield server


def counts(app: Server) -> dict[str, int]:
    return dict(httpx2.get(f"{app.url}/stats").json().get("events", {}))


def test_seconds_until_times_a_left_stream_s_cancellation(app: Server) -> None:
    async def leave_and_wait() -> tuple[float | None, float]:
        async with httpx2.AsyncClient(timeout=30) as client:
            url = f"{app.url}/events?interval=0.1"
            async with aconnect_sse(client, "GET", url) as events:
                async for _ in events:
                    break  # one event, then hang up
        assert counts(app)["active"] <= 1
        started = time.monotonic()
        took = await seconds_until(lambda: counts(app)["active"] == 0, within=30)
        return took, time.monotonic() - started

    took, waited = asyncio.run(leave_and_wait())
    assert took is not None, counts(app)
    assert 0 <= took <= waited, (took, waited)  # seconds since the call, not a clock reading
    assert counts(app)["cancelled"] >= 1


def test_a_condition_that_never_holds_gives_up_at_its_deadline() -> None:
    async def both() -> tuple[float | None, bool, float]:
        started = time.monotonic()
        took = await seconds_until(lambda: False, within=0.2)
        held = await wait_until(lambda: False, within=0.2)
        return took, held, time.monotonic() - started

    took, held, waited = asyncio.run(both())
    assert took is None and held is False
    assert waited >= 0.4


def test_a_condition_that_holds_at_once_is_a_number_of_seconds_and_true() -> None:
    took = asyncio.run(seconds_until(lambda: True, within=5))
    assert took is not None and took >= 0
    assert asyncio.run(wait_until(lambda: 1, within=5)) is True
