"""A capstone reply stream read through jupyter-server-proxy, and the tab closed (issue 22).

On a hub the browser reaches the capstone through jupyter-server-proxy, which does not tell the
server when the browser leaves: the stream stays open, holding a socket, a stream slot and a
Redis connection, for as long as the reply lasts. ``MAX_STREAM_SECONDS`` bounds that: the
stream ends on its own, between two events, and a reader still there resumes from its last id.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
import redis
from conftest import wait_until

from server.course.capstone_stack import Capstone, start_capstone
from server.course.stages.hub import PREFIX, start_hub

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

LIFETIME = 3.0  # MAX_STREAM_SECONDS here; the reply itself lasts about 20 s


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    slow = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "2", "FAKE_OPENAI_TOKENS": "40"}
    env = {"MAX_STREAM_SECONDS": str(LIFETIME)}
    with start_capstone(workers=1, env=env, fake_env=slow) as running:
        yield running


def test_a_stream_left_open_by_the_proxy_ends_at_its_lifetime(stack: Capstone) -> None:
    hub, token = start_hub()
    store = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    base = f"{hub.url}{PREFIX}proxy/{stack.nginx.port}"
    try:
        with httpx2.Client(
            base_url=base, timeout=30, headers={"Authorization": f"token {token}"}
        ) as tab:
            assert tab.get("/api/session").status_code == 200
            body = tab.post("/api/chat", json={"message": "a long one"}).json()
            sse = {"Accept": "text/event-stream"}  # anything else, the proxy buffers
            with tab.stream("GET", f"/{body['events']}", headers=sse) as response:
                assert response.status_code == 200 and b"event: owner" in next(
                    response.iter_bytes()
                )
            # the tab is closed: the client's connection to the proxy is gone
        wait_until(lambda: stack.metrics("A")["capstone_open_streams"] == 0,
                 "the worker's stream to end", deadline=LIFETIME + 7)  # fmt: skip
        assert store.hget(f"cap:gen:{body['reply']}", "status") == "running"  # not the reply's end
    finally:
        store.close()
        hub.stop()
