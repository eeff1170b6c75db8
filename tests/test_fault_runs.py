"""Lesson 09's runs, each against the real stack (nginx, two uvicorn workers, redis-server).

The lesson's cells call these and state one claim each; here the same claims are asserted,
so a run that stops measuring what the lesson says fails here first.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx2
import pytest

from server.clients.room_runs import away_while_publishing, in_memory_room
from server.clients.slow_client import slow_client_run
from server.course.cluster import start_workers, upstreams
from server.course.fault_runs import (
    REAL_IP_FROM_LOOPBACK,
    kills_while_publishing,
    redis_outage,
    sticky_room,
    worker_for_address,
    worker_stats,
    workers_seen,
)
from server.course.launcher import Server, start_nginx

APP = "server.apps.broadcast:app"
FAST = {"HEARTBEAT": "1", "RETRY_MS": "300", "SEND_TIMEOUT": "2", "QUEUE_SIZE": "100"}


@pytest.fixture
def started() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in reversed(servers):
        server.stop()


def _stack(
    started: list[Server],
    broker: str,
    redis: Server | None = None,
    upstream: str = "",
    **settings: str,
) -> tuple[dict[str, Server], Server]:
    env = {**FAST, "BROKER": broker, **({"REDIS_URL": redis.url} if redis else {}), **settings}
    workers = start_workers(APP, "AB", env=env)
    started.extend(workers.values())
    nginx = start_nginx(upstreams(workers), upstream=upstream)
    started.append(nginx)
    return workers, nginx


@pytest.mark.nginx
def test_in_memory_room_each_listener_hears_its_own_worker_only(
    started: list[Server],
) -> None:
    _, nginx = _stack(started, "memory")
    run = asyncio.run(in_memory_room(nginx.url, listeners=6, messages=20))
    assert run.heard_own_worker_only()
    assert set(run.published_on) == {"A", "B"}
    assert all(0.25 <= share <= 0.75 for share in run.shares(20)), run.shares(20)


@pytest.mark.nginx
@pytest.mark.redis
def test_pubsub_loses_what_a_listener_missed_while_away(
    started: list[Server], redis: Server
) -> None:
    _, nginx = _stack(started, "pubsub", redis)
    run = asyncio.run(away_while_publishing(nginx.url, away_for=1.0, listeners=4))
    assert all(t.perfect and t.received == 30 for t in run.everyone)
    assert run.away.lost == run.sent_while_away > 0


@pytest.mark.nginx
def test_ip_hash_keys_on_the_first_three_octets(started: list[Server]) -> None:
    workers, _ = _stack(started, "memory")
    nginx = start_nginx(upstreams(workers), upstream="ip_hash;", server=REAL_IP_FROM_LOOPBACK)
    started.append(nginx)
    one_24 = {worker_for_address(nginx.url, f"10.1.2.{i}") for i in range(1, 17)}
    many_24s = {worker_for_address(nginx.url, f"10.1.{i}.7") for i in range(1, 17)}
    assert len(one_24) == 1 and many_24s == {"A", "B"}, (one_24, many_24s)


@pytest.mark.nginx
def test_sticky_users_move_with_their_dead_worker_and_back(started: list[Server]) -> None:
    workers, nginx = _stack(started, "memory", upstream="hash $cookie_user consistent;")
    users = [f"user-{i}" for i in range(12)]
    pinned = {user: workers_seen(nginx.url, user, 3) for user in users}
    assert all(len(set(seen)) == 1 for seen in pinned.values()), pinned
    run = asyncio.run(sticky_room(nginx.url, workers, users))
    assert all(got == run.published[worker] for worker, got in run.heard.values())
    assert run.moved == sum(seen[0] == "A" for seen in pinned.values()) > 0
    assert run.during == Counter({"B": run.moved}) and run.back == Counter({"A": run.moved})
    assert run.held == {"A": 0, "B": len(users)}


@pytest.mark.nginx
@pytest.mark.redis
def test_kills_lose_messages_with_pubsub_and_none_with_streams(
    started: list[Server], redis: Server
) -> None:
    pubsub_workers, pubsub_nginx = _stack(started, "pubsub", redis)
    lossy = asyncio.run(kills_while_publishing(pubsub_nginx.url, pubsub_workers, "A", 100, 8))
    cut = [len(listener.connections) > 1 for listener in lossy.room]
    lost = [t.lost for t in lossy.tallies()]
    assert any(cut) and all(n > 0 for n, c in zip(lost, cut, strict=True) if c), lost
    assert all(n == 0 for n, c in zip(lost, cut, strict=True) if not c), lost

    workers, nginx = _stack(started, "streams", redis)
    run = asyncio.run(kills_while_publishing(nginx.url, workers, "AB", 120, listeners=6))
    result = run.summary()
    assert result["cut"] >= 2 and result["perfect"] == 6, result
    assert result["lost"] == result["duplicated"] == result["reordered"] == 0, result
    assert len(run.marks) == 2 and all(len(ls.numbers()) == 121 for ls in run.room)


@pytest.mark.nginx
@pytest.mark.redis
def test_a_stalled_client_is_dropped_and_the_others_keep_their_pace(
    started: list[Server], redis: Server
) -> None:
    # A send timeout of 8 s: a room that waited on the stalled client's write would hold
    # deliveries for seconds, far from the healthy listeners' tens of ms (a few hundred under
    # load). The hub drops the stalled client a queue behind, long before the deadline.
    workers, nginx = _stack(started, "streams", redis, SEND_TIMEOUT="8")
    urls = [worker.url for worker in workers.values()]
    run = asyncio.run(slow_client_run(nginx.url, urls, redis.url, send_timeout=8))
    again = asyncio.run(slow_client_run(nginx.url, urls, redis.url, send_timeout=8))  # its own t=0
    assert again.dropped_after is not None and again.dropped_after > 0.5, again.dropped_after
    assert run.dropped_while_publishing() and run.closed, run.dropped_after
    assert 0 < run.stalled_bytes < 450 * 30_000, "it got what fit in the buffers, not all"
    # Nobody else waited: the healthy listeners' p99 in the window before the drop is bounded
    # by what waiting would cost (up to the send timeout), not compared with another latency.
    p99 = run.p99()
    assert p99["before the drop"] < run.send_timeout / 4, p99
    stats = worker_stats(workers)
    assert all(s["hub"]["most_waiting"] <= s["queue_size"] for s in stats.values())


@pytest.mark.nginx
@pytest.mark.redis
def test_a_redis_outage_refuses_publishes_and_loses_nothing_acknowledged(
    started: list[Server], redis: Server
) -> None:
    workers, nginx = _stack(started, "streams", redis)
    run = asyncio.run(redis_outage(nginx.url, workers, redis))
    assert run.refused.status_code == 503 and "NOT stored" in run.refused.json()["detail"]
    assert run.first_line == ": waiting for redis"
    assert all(r.perfect and r.received == 30 for r in run.results)


@pytest.mark.nginx
def test_nginx_default_health_check_turns_two_worker_failures_into_502_for_everyone(
    started: list[Server],
) -> None:
    """Lesson 09's nginx trap: by default (`max_fails=1 fail_timeout=10s`) a worker that failed
    once stays marked down for 10 s after it is back; `upstreams()` (`max_fails=0`) does not."""
    workers = start_workers(APP, "AB", env={**FAST, "BROKER": "memory"})
    started.extend(workers.values())
    default = start_nginx(list(workers.values()))
    without_check = start_nginx(upstreams(workers))
    started.extend([default, without_check])

    workers["A"].kill()
    with httpx2.Client() as client:
        answers = [client.get(f"{default.url}/") for _ in range(2)]  # round robin tries A
        assert [a.headers["x-worker"] for a in answers] == ["B", "B"]
        workers["A"].restart()
        workers["B"].kill()
        assert client.get(f"{default.url}/").status_code == 502  # A still marked down
        assert client.get(f"{without_check.url}/").headers["x-worker"] == "A"
    assert "no live upstreams" in default.log_tail()
