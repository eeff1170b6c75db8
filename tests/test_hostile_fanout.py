"""The rooms of lessons 09 and 10 against a hung Redis, a large history and a stale dump.

- Redis hung (SIGSTOP) rather than down: a publish waited for redis-py's 10 s socket timeout,
  twice (it retried), past any client's patience, where a refused connection is a 503 at once.
  Each Redis call is bounded now: a hung Redis is a 503 within a few seconds, as a down one.
- `?history=K` read its K entries (up to `HISTORY_MAX` of up to 64 KB each) in one XREVRANGE;
  it reads them page by page now.
- After `shutdown_redis` (a dump on disk) and a restart, a later crash (`kill`, `restart`)
  reloaded the same old dump, reviving data a crash must lose.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
import redis as redis_sync
from conftest import wait_until

from server.course.cluster import shutdown_redis
from server.course.launcher import LauncherError, Server, start_app, start_redis
from server.fanout import HISTORY_MAX, StreamsBroker
from server.fanout.streams import PAGE

pytestmark = pytest.mark.redis

PATIENCE = 8.0  # seconds a client waits for an answer: above the apps' bound, far below 20 s


@pytest.mark.parametrize(
    ("target", "path", "body", "env"),
    [
        ("server.apps.broadcast:app", "/publish", {"n": 1}, {}),
        ("server.apps.ws_chat:app", "/messages", {"text": "hi", "tokens": 0}, {"TOKEN_DELAY": "0"}),
    ],
)
def test_a_hung_redis_is_a_503_within_the_clients_patience(
    redis: Server, target: str, path: str, body: dict[str, Any], env: dict[str, str]
) -> None:
    env = {**env, "BROKER": "streams", "REDIS_URL": redis.url}
    with start_app(target, env=env) as app:
        assert httpx2.post(app.url + path, json=body, timeout=PATIENCE).status_code in (201, 202)
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            answer = httpx2.post(app.url + path, json=body, timeout=PATIENCE)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        assert answer.status_code == 503, answer.text
        # Hung, not down: the XADD may have run, so the answer may not say "NOT stored".
        assert answer.headers["retry-after"], answer.headers
        assert "may or may not have been stored" in answer.json()["detail"], answer.text
        again = httpx2.post(app.url + path, json=body, timeout=PATIENCE)
        assert again.status_code in (201, 202), again.text  # and it recovers


class CountingRedis:
    """A redis-py client wrapper that records the COUNT of every range read."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.counts = inner, []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in ("xrange", "xrevrange"):
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts.append(kwargs.get("count"))
            return await attribute(*args, **kwargs)

        return counted


def test_a_history_is_read_page_by_page_and_arrives_whole(redis: Server) -> None:
    async def scenario() -> tuple[list[str], list[int | None], list[str]]:
        broker = StreamsBroker(redis.url, key="paged")
        ids = [await broker.publish(f'{{"n":{n}}}') for n in range(HISTORY_MAX + 50)]
        await broker.start()
        counting = CountingRedis(broker.redis)
        broker.redis = counting  # type: ignore[assignment]
        try:
            async with broker.subscribe(None, HISTORY_MAX) as feed:
                got = []
                for _ in range(HISTORY_MAX):
                    message = await feed.next(5)
                    assert message is not None, f"only {len(got)} of the history came"
                    got.append(str(message.id))
        finally:
            broker.redis = counting._inner
            await broker.stop()
        return got, counting.counts, ids

    got, counts, ids = asyncio.run(scenario())
    assert got == ids[-HISTORY_MAX:], "the last HISTORY_MAX entries, oldest first"
    assert counts and all(count is not None and count <= PAGE for count in counts), counts


def test_a_crash_after_a_restored_dump_does_not_restore_it_again() -> None:
    with start_redis() as redis:
        client = redis_sync.Redis.from_url(redis.url, decode_responses=True)
        try:
            client.set("kept", "through the maintenance shutdown")
            shutdown_redis(redis)
            redis.restart()  # loads the dump: maintenance keeps the data
            assert client.get("kept") == "through the maintenance shutdown"
            client.delete("kept")
            client.set("later", "written after the restore")
            redis.kill()  # a crash: with no persistence, everything is gone
            redis.restart()
            assert client.get("later") is None
            assert client.get("kept") is None, "the old dump was loaded again after a crash"
        finally:
            client.close()


def test_the_contenders_refuse_a_zero_heartbeat(serve: Callable[..., Server]) -> None:
    """The benches' rival rooms read HEARTBEAT with a bare float(), as the apps once did."""
    with pytest.raises(LauncherError, match="HEARTBEAT must be a number from"):
        serve("server.apps.broadcast_contenders:app", env={"HEARTBEAT": "0"})


def test_a_websocket_message_redis_cannot_take_closes_with_try_again_later(redis: Server) -> None:
    """Redis away is not the client's fault: 1013 "try again later" (as a 503), not 1008
    "policy violation" (a 400), which says the message was wrong and not to send it again."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    env = {"BROKER": "streams", "REDIS_URL": redis.url, "TOKEN_DELAY": "0"}
    with start_app("server.apps.ws_chat:app", env=env) as app:

        async def send_during_outage() -> tuple[int | None, str | None]:
            async with connect(app.url.replace("http://", "ws://") + "/ws") as socket:
                redis.kill()
                await socket.send('{"text": "hi", "tokens": 0}')
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(socket.recv(), 20)
                frame = closed.value.rcvd
                return (frame.code, frame.reason) if frame else (None, None)

        code, reason = asyncio.run(send_during_outage())
    assert code == 1013 and reason and "NOT stored" in reason, (code, reason)


def test_a_worker_says_it_cannot_reach_a_hung_redis_within_seconds(redis: Server) -> None:
    """The follower's XREAD waited redis-py's 10 s socket timeout, retried once: for 20 s a
    worker whose Redis hung said healthy, and its streams' heartbeats said `ping`."""
    env = {"BROKER": "streams", "REDIS_URL": redis.url}
    with start_app("server.apps.broadcast:app", env=env) as app:

        def healthy() -> bool:
            return bool(httpx2.get(app.url + "/", timeout=PATIENCE).json()["healthy"])

        wait_until(healthy, "healthy at start")
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: not healthy(), "unhealthy with Redis hung", deadline=10)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        wait_until(healthy, "healthy again once Redis answers")
