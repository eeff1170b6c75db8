"""The capstone's rate limit is a sliding window: no burst of twice the limit across a minute.

It counted per clock minute: a user sending RATE messages in the last second of a minute and
RATE more in the first second of the next had 2 x RATE accepted in about a second (27 of a
limit of 20 in 5.8 s were measured). Now the messages of the last 60 s count, whenever they
were sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2
import pytest
import redis

from server.course.capstone_stack import Capstone, start_capstone

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

RATE = 3


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    env = {"RATE_PER_MINUTE": str(RATE), "MAX_ACTIVE": "100"}
    fast = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0", "FAKE_OPENAI_TOKENS": "3"}
    with start_capstone(workers=1, env=env, fake_env=fast) as running:
        yield running


def redis_seconds(store: redis.Redis) -> float:
    seconds, micros = store.time()
    return seconds + micros / 1e6


@pytest.mark.timeout(180)
def test_a_burst_across_a_minute_boundary_is_refused(stack: Capstone) -> None:
    store = redis.Redis.from_url(stack.redis.url)
    try:
        # Redis's clock is the one the limit reads: start 1.5 s before its next minute.
        time.sleep((58.5 - redis_seconds(store) % 60) % 60)
        boundary = (redis_seconds(store) // 60 + 1) * 60
        with httpx2.Client(base_url=stack.url, timeout=10) as client:
            client.get("/api/session")
            before = [client.post("/api/chat", json={"message": f"a{n}"}) for n in range(RATE)]
            time.sleep(max(0.0, boundary + 0.2 - redis_seconds(store)))  # into the next minute
            after = [client.post("/api/chat", json={"message": f"b{n}"}) for n in range(RATE)]
    finally:
        store.close()
    assert [r.status_code for r in before] == [202] * RATE
    assert [r.status_code for r in after] == [429] * RATE, [r.text for r in after]
    waits = [int(r.headers["retry-after"]) for r in after]
    assert all(55 <= wait <= 60 for wait in waits), waits  # until the first message is 60 s old
