"""Lesson 09's broadcast room, on the real stack: nginx, two uvicorn workers, redis-server.

Each claim of the lesson is asserted here with the fault injected by the test itself: a
worker killed by pid (SIGKILL), a listener sent away and brought back, Redis shut down and
restarted, a client that never reads. Timing asserts are generous deadlines for the behaviour,
never latency checks. The hub (the fan-out core, no I/O) is tested on its own first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx2
import pytest

from server.clients.listeners import (
    Listener,
    listening,
    tally,
    wait_until_received,
)
from server.clients.publisher import publish, publish_numbered
from server.clients.sse_client import connect_sse
from server.course.cluster import shutdown_redis, start_workers, upstreams
from server.course.launcher import Server, start_nginx
from server.fanout import Dropped, Hub, Message, StreamsBroker, fan_out
from server.fanout.hub import Subscription, deliver
from server.fanout.streams import entries_after
from server.sse import Decoder

APP = "server.apps.broadcast:app"
FAST = {"HEARTBEAT": "0.5", "RETRY_MS": "300", "SEND_TIMEOUT": "2"}


# --- the hub: fan-out without waiting for anyone ---------------------------------------------


def test_a_message_is_encoded_as_sse_once_when_made() -> None:
    message = Message('{"text":"안녕"}', id="5-0")
    assert message.sse == 'id: 5-0\ndata: {"text":"안녕"}\n\n'.encode()
    assert Decoder().feed(message.sse)[0].data == message.data


def test_fan_out_offers_to_everyone_and_returns_the_full_queues_without_waiting() -> None:
    async def scenario() -> None:
        fine, full = Subscription(2), Subscription(1)
        assert fan_out(Message("1"), [fine, full]) == []
        assert fan_out(Message("2"), [fine, full]) == [full]  # full: 1 waiting of 1
        assert [(await fine.get(1)), (await fine.get(1))] == [Message("1"), Message("2")]

    asyncio.run(scenario())


def test_deliver_drops_and_removes_the_full_subscriptions_and_counts_the_rest() -> None:
    async def scenario() -> None:
        full, first, last = Subscription(1), Subscription(5), Subscription(5)
        full.offer(Message("earlier"))
        subscriptions = {first, full, last}
        assert deliver(Message("hello"), subscriptions, "too slow") == 2
        assert subscriptions == {first, last} and full.dropped == "too slow"
        assert [await first.get(1), await last.get(1)] == [Message("hello")] * 2
        with pytest.raises(Dropped, match="too slow"):
            await full.get(1)
        assert deliver(Message("again"), set(), "x") == 0

    asyncio.run(scenario())


def test_the_hub_drops_a_client_a_queue_behind_and_the_others_get_everything() -> None:
    async def scenario() -> None:
        hub = Hub(queue_size=3)
        slow, reader = hub.join(), hub.join()
        for n in range(5):
            hub.publish(Message(str(n)))
            assert (await reader.get(1)) == Message(str(n))
        with pytest.raises(Dropped, match="more than 3 messages behind"):
            await slow.get(1)
        stats = hub.stats()
        assert (stats.clients, stats.dropped, stats.most_waiting) == (1, 1, 3)
        assert (await reader.get(0.01)) is None, "nothing more: a timeout, for a heartbeat"

    asyncio.run(scenario())


# --- the stack -------------------------------------------------------------------------------


Stack = Callable[..., tuple[dict[str, Server], Server]]


@pytest.fixture
def stack() -> Iterator[Stack]:
    """`stack(broker, redis=None, **env)`: workers A and B behind nginx; stopped afterwards."""
    started: list[Server] = []

    def _stack(
        broker: str, redis: Server | None = None, upstream: str = "", **env: str
    ) -> tuple[dict[str, Server], Server]:
        settings = {**FAST, "BROKER": broker, **env}
        if redis is not None:
            settings["REDIS_URL"] = redis.url
        workers = start_workers(APP, "AB", env=settings)
        started.extend(workers.values())
        nginx = start_nginx(upstreams(workers), upstream=upstream)
        started.append(nginx)
        return workers, nginx

    yield _stack
    for server in reversed(started):
        server.stop()


def clients(listeners: int) -> tuple[httpx2.AsyncClient, httpx2.AsyncClient]:
    """One client for the listeners' streams, one for publishing."""
    limits = httpx2.Limits(max_connections=listeners + 10)
    timeout = httpx2.Timeout(10.0, read=30.0)
    return httpx2.AsyncClient(timeout=timeout, limits=limits), httpx2.AsyncClient(timeout=10.0)


def worker_stats(workers: Mapping[str, Server]) -> dict[str, dict[str, Any]]:
    return {name: httpx2.get(f"{w.url}/stats").json() for name, w in workers.items()}


# --- 1. in memory: each worker's listeners hear only that worker's publishers --------------


@pytest.mark.nginx
def test_in_memory_broadcast_reaches_only_the_listeners_of_the_worker_it_was_published_on(
    stack: Stack,
) -> None:
    workers, nginx = stack("memory")

    async def scenario() -> None:
        streams, publisher = clients(10)
        async with streams, publisher, listening(streams, f"{nginx.url}/events", 10) as room:
            assert {listener.worker for listener in room} == {"A", "B"}, "round robin spreads"
            published = await publish_numbered(publisher, f"{nginx.url}/publish", range(40))
            on = {name: {p.n for p in published if p.worker == name} for name in workers}
            assert 10 <= len(on["A"]) <= 30, "round robin spreads the publishes too"
            for listener in room:
                expected = len(on[listener.worker])
                assert await wait_until_received([listener], expected, 10)
            for listener in room:
                assert set(listener.numbers()) == on[listener.worker], "its own worker's only"
            fractions = [len(listener.numbers()) / 40 for listener in room]
            assert all(0.25 <= f <= 0.75 for f in fractions), fractions

    asyncio.run(scenario())


# --- 3. Redis pub/sub: everyone, while connected -------------------------------------------


@pytest.mark.nginx
@pytest.mark.redis
def test_pubsub_delivers_everything_to_everyone_connected_and_loses_what_a_listener_missed(
    stack: Stack, redis: Server
) -> None:
    _, nginx = stack("pubsub", redis)
    url = f"{nginx.url}/publish"

    async def scenario() -> None:
        streams, publisher = clients(6)
        async with streams, publisher, listening(streams, f"{nginx.url}/events", 6) as room:
            await publish_numbered(publisher, url, range(20))
            assert await wait_until_received(room, 20, 10)
            away = room[0]
            await away.leave()  # a network drop, for as long as the test says
            await publish_numbered(publisher, url, range(20, 30))
            await away.come_back()
            await publish_numbered(publisher, url, range(30, 40))
            assert await wait_until_received(room, 30, 10)
            assert await wait_until_received(room[1:], 40, 10)
            assert tally(away.numbers(), range(40)).lost == 10, "all 10 sent while away: gone"
            assert away.numbers() == [*range(20), *range(30, 40)]
            assert all(tally(other.numbers(), range(40)).perfect for other in room[1:])

    asyncio.run(scenario())


async def _kill_while_away(
    workers: Mapping[str, Server], nginx: Server, room: list[Listener], first: int
) -> list[Listener]:
    """Kill worker A; while its listeners are disconnected (the server said retry in 2 s),
    publish 10 messages; restart A; return A's listeners once they are back."""
    publisher_url = f"{nginx.url}/publish"
    victims = [listener for listener in room if listener.worker == "A"]
    assert victims
    async with httpx2.AsyncClient(timeout=10) as publisher:
        await asyncio.to_thread(workers["A"].kill)
        await asyncio.gather(*(listener.wait_disconnected(10) for listener in victims))
        await publish_numbered(publisher, publisher_url, range(first, first + 10))
        await asyncio.to_thread(workers["A"].restart)
        for listener in victims:
            await listener.wait_connected(20)  # through nginx, to B or to the new A
        await publish_numbered(publisher, publisher_url, range(first + 10, first + 20))
    return victims


@pytest.mark.nginx
@pytest.mark.redis
@pytest.mark.parametrize(("broker", "lost"), [("pubsub", 10), ("streams", 0)])
def test_messages_published_while_a_killed_workers_listeners_reconnect(
    stack: Stack, redis: Server, broker: str, lost: int
) -> None:
    """Pub/sub loses exactly what was published while they were away; Streams, nothing."""
    workers, nginx = stack(broker, redis, RETRY_MS="2000")

    async def scenario() -> None:
        streams, publisher = clients(6)
        async with streams, publisher, listening(streams, f"{nginx.url}/events", 6) as room:
            await publish_numbered(publisher, f"{nginx.url}/publish", range(10))
            assert await wait_until_received(room, 10, 10)
            victims = await _kill_while_away(workers, nginx, room, 10)
            assert await wait_until_received(room, 30 - lost, 15)
            for listener in room:
                expected = lost if listener in victims else 0
                result = tally(listener.numbers(), range(30))
                assert result.lost == expected, (listener.worker, result)
                assert result.duplicated == result.out_of_order == 0

    asyncio.run(scenario())


# --- 4. Redis Streams: three SIGKILLs, nothing lost, nothing twice, nothing out of order ----


@pytest.mark.nginx
@pytest.mark.redis
def test_streams_deliver_every_message_once_in_order_across_three_sigkills(
    stack: Stack, redis: Server
) -> None:
    workers, nginx = stack("streams", redis)
    total, listeners = 300, 20

    async def scenario() -> None:
        streams, publisher = clients(listeners)
        async with (
            streams,
            publisher,
            listening(streams, f"{nginx.url}/events", listeners) as room,
        ):
            published: list[Any] = []
            publishing = asyncio.create_task(
                publish_numbered(
                    publisher,
                    f"{nginx.url}/publish",
                    range(total),
                    interval=0.01,
                    key_prefix="kill-test-",  # a retried publish is stored once
                    into=published,
                )
            )
            for kill, victim in enumerate("ABA", start=1):
                while len(published) < total * kill // 4 and not publishing.done():
                    await asyncio.sleep(0.01)  # polling a condition: the publisher's progress
                pid = workers[victim].pid
                assert await asyncio.to_thread(workers[victim].kill) == -9, f"killed {pid}"
                await asyncio.to_thread(workers[victim].restart)
            await publishing
            assert await wait_until_received(room, total, 30), [len(r.received) for r in room]
            results = [tally(listener.numbers(), range(total)) for listener in room]
            assert all(r.perfect for r in results), results
            assert all(len(listener.numbers()) == total for listener in room)
            gaps = [c.gap for listener in room for c in listener.connections if c.gap]
            assert len(gaps) >= 3, "every kill cut some listeners, which reconnected"
            assert max(gaps) < 5.0, f"reconnected within 5 s of the cut (retry is 0.3 s): {gaps}"

    asyncio.run(scenario())


@pytest.mark.nginx
@pytest.mark.redis
def test_a_last_event_id_older_than_the_history_kept_gets_an_explicit_reset(
    stack: Stack, redis: Server
) -> None:
    _, nginx = stack("streams", redis, STREAM_MAXLEN="50")

    async def scenario() -> list[str]:
        broker = StreamsBroker(redis.url, maxlen=50)
        try:
            return [await broker.publish(json.dumps({"n": n})) for n in range(400)]
        finally:
            await broker.stop()

    ids = asyncio.run(scenario())
    with httpx2.Client(base_url=nginx.url) as client:
        with connect_sse(client, "GET", "/events?history=400&limit=1") as events:
            (oldest_kept,) = events
        for stale in (ids[0], "99999999999999-0"):  # trimmed away; never issued
            after = {"Last-Event-ID": stale}
            with connect_sse(client, "GET", "/events?limit=2", headers=after) as events:
                reset, first = events
            assert reset.event == "reset" and json.loads(reset.data)["last_event_id"] == stale
            assert reset.id == "", "a reset carries no id: the client keeps asking from its own"
            assert first.data == oldest_kept.data, "then the oldest kept"
        after = {"Last-Event-ID": ids[-2]}
        with connect_sse(client, "GET", "/events?limit=1", headers=after) as events:
            (resumed,) = events
        assert resumed.id == ids[-1], "a kept id resumes right after it"
    for malformed in ("banana", "5", "5-0-0", "+"):
        answer = httpx2.get(f"{nginx.url}/events", headers={"Last-Event-ID": malformed})
        assert answer.status_code == 400
        assert "Last-Event-ID must be a Redis stream id" in answer.json()["detail"]


@pytest.mark.redis
def test_the_catch_up_reads_every_entry_after_the_id_page_by_page_excluding_the_id(
    redis: Server,
) -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        broker = StreamsBroker(redis.url)
        try:
            ids = [await broker.publish(json.dumps({"n": n})) for n in range(10)]
            after_third = [i async for i, _ in entries_after(broker.redis, "room", ids[2], 3)]
            after_last = [i async for i, _ in entries_after(broker.redis, "room", ids[-1], 3)]
            return ids, after_third, after_last
        finally:
            await broker.stop()

    ids, after_third, after_last = asyncio.run(scenario())
    assert after_third == ids[3:], "exclusive start, every page, in order (7 = 3 + 3 + 1)"
    assert after_last == []


@pytest.mark.nginx
@pytest.mark.redis
def test_the_stream_is_the_chat_history_a_new_listener_can_read_back(
    stack: Stack, redis: Server
) -> None:
    _, nginx = stack("streams", redis, STREAM_MAXLEN="1000")
    for n in range(12):
        httpx2.post(
            f"{nginx.url}/publish", json={"n": n, "text": f"message {n}"}
        ).raise_for_status()
    url = f"{nginx.url}/events?history=5&limit=5"
    with httpx2.Client() as client, connect_sse(client, "GET", url) as events:
        assert [json.loads(e.data)["n"] for e in events] == [7, 8, 9, 10, 11]
    refused = httpx2.get(f"{nginx.url}/events?history=x")
    assert refused.status_code == 400


@pytest.mark.nginx
@pytest.mark.redis
def test_an_idempotency_key_stores_a_retried_publish_once(stack: Stack, redis: Server) -> None:
    _, nginx = stack("streams", redis)
    first, again = (
        httpx2.post(f"{nginx.url}/publish", json={"n": 1}, headers={"Idempotency-Key": "abc-1"})
        for _ in range(2)
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert {first.headers["x-worker"], again.headers["x-worker"]} == {"A", "B"}, "both workers"
    bad = httpx2.post(f"{nginx.url}/publish", json={"n": 1}, headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 400


# --- 5. a client that stops reading: tests/test_fault_runs.py (lesson 09's slow_client_run) ---


# --- 6. Redis goes away ------------------------------------------------------------------------


@pytest.mark.redis
def test_a_worker_never_says_it_reaches_redis_while_redis_is_down(redis: Server) -> None:
    """Regression: the follower set `healthy` before each XREAD attempt, so for the length of
    every failing retry a heartbeat said "ping" during an outage."""

    async def scenario() -> list[bool]:
        broker = StreamsBroker(redis.url)
        await broker.start()
        try:
            assert broker.healthy
            await asyncio.to_thread(shutdown_redis, redis)
            seen = []
            for _ in range(300):  # 3 s: six reconnection attempts
                seen.append(broker.healthy)
                await asyncio.sleep(0.01)
            return seen
        finally:
            await broker.stop()

    seen = asyncio.run(scenario())
    first_down = seen.index(False)
    assert first_down < 100, "it noticed within a second"
    assert not any(seen[first_down:]), "and never claimed otherwise while Redis was down"


@pytest.mark.nginx
@pytest.mark.redis
def test_while_redis_is_away_publish_is_503_streams_wait_and_nothing_accepted_is_lost(
    stack: Stack, redis: Server
) -> None:
    workers, nginx = stack("streams", redis)
    publish_url = f"{nginx.url}/publish"

    async def scenario() -> None:
        streams, publisher = clients(4)
        async with streams, publisher, listening(streams, f"{nginx.url}/events", 4) as room:
            await publish_numbered(publisher, publish_url, range(10))
            away = room[0]
            assert await wait_until_received([away], 10, 10)
            await away.leave()
            await publish_numbered(publisher, publish_url, range(10, 20))  # acknowledged
            await asyncio.to_thread(shutdown_redis, redis)

            refused, _ = await publish(publisher, publish_url, {"n": 99}, attempts=1)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "NOT stored" in refused.json()["detail"]
            async with streams.stream("GET", f"{workers['B'].url}/events") as response:
                lines = response.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 5) == ": waiting for redis"
            await away.come_back()  # reconnects during the outage: 200, then it waits

            await asyncio.to_thread(redis.restart)
            await publish_numbered(publisher, publish_url, range(20, 30), key_prefix="after-")
            assert await wait_until_received(room, 30, 15)
            for listener in room:
                assert tally(listener.numbers(), range(30)).perfect, listener.numbers()

    asyncio.run(scenario())
