"""Lesson 09's fault experiments: kill a worker, take Redis away, and count what each design loses.

Each run starts listeners (`server.clients.listeners`) through nginx, publishes numbered
messages (`server.clients.publisher`), injects one fault by the servers' own handles
(`Server.kill()` is SIGKILL by pid, `Server.restart()` brings a worker back on its port,
`shutdown_redis` is Redis's maintenance shutdown), and returns what every listener received,
so the lesson's cell only has to state its claim:

- `sticky_room`: users pinned by a cookie; their worker dies and comes back. Where do their
  streams and their next requests go, and which worker holds the streams afterwards?
- `kills_while_publishing`: workers killed and restarted while messages flow; `summary`
  counts the lost, duplicated and reordered messages over the whole room.
- `redis_outage`: Redis shut down while one listener is away; what a publisher and an open
  stream get meanwhile, and whether every acknowledged message arrives afterwards.

The runs are course machinery (they own the servers they break); everything they measure
goes through public interfaces: HTTP, SSE, and each worker's `/stats`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from server.clients.listeners import (
    Listener,
    Tally,
    listening,
    tally,
    wait_until_heard,
    wait_until_received,
)
from server.clients.measure import percentile
from server.clients.publisher import Published, publish_numbered
from server.clients.room_runs import room_client
from server.course.cluster import shutdown_redis
from server.course.supervisor import Server


def worker_stats(workers: Mapping[str, Server]) -> dict[str, dict[str, Any]]:
    """Each worker's own /stats, asked directly (not through nginx)."""
    return {name: httpx2.get(f"{worker.url}/stats").json() for name, worker in workers.items()}


def workers_seen(url: str, user: str, requests: int = 5) -> list[str]:
    """The worker (`X-Worker`) that answered each of `requests` requests with `user`'s cookie."""
    cookie = {"Cookie": f"user={user}"}
    with httpx2.Client() as client:
        return [client.get(f"{url}/", headers=cookie).headers["x-worker"] for _ in range(requests)]


# For an nginx whose `ip_hash` should see the client address a test sends in X-Forwarded-For
# (as it would behind a trusted load balancer or CDN): pass as `start_nginx(server=...)`.
REAL_IP_FROM_LOOPBACK = "set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;"


def worker_for_address(url: str, address: str) -> str:
    """The worker that answers a client at `address` (sent as X-Forwarded-For to an nginx
    started with `REAL_IP_FROM_LOOPBACK`): what `ip_hash` does with clients of many networks."""
    answer = httpx2.get(f"{url}/", headers={"X-Forwarded-For": address})
    return answer.headers["x-worker"]


@dataclass(frozen=True)
class StickyRun:
    published: dict[str, set[int]]  # worker -> numbers published on it
    heard: dict[str, tuple[str, set[int]]]  # listener -> (its worker, the numbers it got)
    moved: int  # listeners pinned to the killed worker
    during: Counter[str]  # where their streams went while it was down
    back: Counter[str]  # where their next request went once it was back
    held: dict[str, int]  # open streams per worker afterwards


async def sticky_room(
    url: str, workers: Mapping[str, Server], users: Sequence[str], kill: str = "A"
) -> StickyRun:
    """One listener and two publishes per user, all pinned by a `user` cookie (nginx at `url`
    balancing with `hash $cookie_user consistent`); then `kill` dies and comes back."""
    cookies = [{"Cookie": f"user={user}"} for user in users]
    async with (
        room_client() as client,
        listening(client, f"{url}/events", len(users), headers=cookies) as room,
    ):
        published: dict[str, set[int]] = {name: set() for name in workers}
        for i, cookie in enumerate(cookies * 2):
            answer = await client.post(f"{url}/publish", json={"n": i}, headers=cookie)
            published[answer.headers["x-worker"]].add(i)
        for listener in room:
            if not await wait_until_received([listener], len(published[listener.worker]), 10):
                raise TimeoutError(f"{listener.name} did not get its worker's messages")
        heard = {ls.name: (ls.worker, set(ls.numbers())) for ls in room}

        moved = [listener for listener in room if listener.worker == kill]
        before = {listener.name: len(listener.connections) for listener in moved}
        await asyncio.to_thread(workers[kill].kill)
        for listener in moved:  # cut: they reconnect after the retry, to another worker
            await listener.wait_reconnected(before[listener.name])
        during = Counter(listener.worker for listener in moved)
        await asyncio.to_thread(workers[kill].restart)
        moved_users = [users[room.index(listener)] for listener in moved]
        back = Counter(
            await asyncio.to_thread(lambda: [workers_seen(url, u, 1)[0] for u in moved_users])
        )
        stats = await asyncio.to_thread(worker_stats, workers)
        held = {name: s.get("events", {}).get("active", 0) for name, s in stats.items()}
        return StickyRun(published, heard, len(moved), during, back, held)


@dataclass(frozen=True)
class KillRun:
    room: list[Listener]
    total: int  # messages published during the kills (numbered 0 .. total-1)
    marks: list[float]  # seconds from the start to each kill
    started: float  # time.time() at the start

    def tallies(self) -> list[Tally]:
        return [
            tally([n for n in listener.numbers() if n < self.total], range(self.total))
            for listener in self.room
        ]

    def summary(self) -> dict[str, float]:
        """The room's totals: listeners cut, messages lost, duplicated, reordered."""
        results = self.tallies()
        gaps = [c.gap for ls in self.room for c in ls.connections if c.gap is not None]
        return {
            "listeners": len(self.room),
            "cut": sum(len(listener.connections) > 1 for listener in self.room),
            "lost": sum(r.lost for r in results),
            "duplicated": sum(r.duplicated for r in results),
            "reordered": sum(r.out_of_order for r in results),
            "perfect": sum(r.perfect for r in results),
            "reconnect p50 s": percentile(gaps, 50),
            "reconnect max s": max(gaps, default=0.0),
        }


async def kills_while_publishing(
    url: str, workers: Mapping[str, Server], kills: str, total: int, listeners: int = 20
) -> KillRun:
    """Publish `total` numbered messages through `url` (nginx), one every 5 ms or so, while
    the workers named in `kills` are killed (SIGKILL) and restarted, spread evenly over the
    run; then one last message, which every listener must hear. Publishes carry an
    idempotency key, so a retry after a kill is stored once."""
    async with room_client() as client, listening(client, f"{url}/events", listeners) as room:
        published: list[Published] = []
        started = time.time()
        publishing = asyncio.create_task(
            publish_numbered(
                client,
                f"{url}/publish",
                range(total),
                interval=0.005,
                key_prefix=f"{url.rsplit(':', 1)[-1]}-{kills}-{int(started)}-",  # unique per run
                into=published,
            )
        )
        marks = []
        for k, name in enumerate(kills, start=1):
            while len(published) < total * k // (len(kills) + 1) and not publishing.done():
                await asyncio.sleep(0.01)  # the publisher's progress, not a guess
            marks.append(time.time() - started)
            await asyncio.to_thread(workers[name].kill)
            await asyncio.to_thread(workers[name].restart)
        await publishing
        for listener in room:
            await listener.wait_connected()
        await publish_numbered(client, f"{url}/publish", [total])
        if not await wait_until_heard(room, total, 20):
            raise TimeoutError("the last message did not reach every listener")
        return KillRun(room, total, marks, started)


@dataclass(frozen=True)
class OutageRun:
    refused: httpx2.Response  # a publish during the outage
    first_line: str  # the first line an open stream got during the outage
    results: list[Tally]  # each listener, over the 30 messages acknowledged


async def redis_outage(url: str, workers: Mapping[str, Server], redis: Server) -> OutageRun:
    """Ten messages to four listeners; one leaves and misses ten more (acknowledged); Redis
    shuts down; a publish and a new stream are tried, the listener comes back; Redis returns
    and ten more messages are published. Numbers 1000-1029."""
    publish_url = f"{url}/publish"
    async with room_client() as client, listening(client, f"{url}/events", 4) as room:
        await publish_numbered(client, publish_url, range(1000, 1010))
        away = room[0]
        if not await wait_until_heard([away], 1009, 10):
            raise TimeoutError("the first messages did not arrive")
        await away.leave()
        await publish_numbered(client, publish_url, range(1010, 1020))  # not yet read by `away`
        await asyncio.to_thread(shutdown_redis, redis)

        refused = await client.post(publish_url, json={"n": 9999})
        worker = next(iter(workers.values()))
        async with client.stream("GET", f"{worker.url}/events") as response:
            first_line = await asyncio.wait_for(anext(response.aiter_lines()), 5)
        await away.come_back()  # during the outage: it gets its 200, then waits

        await asyncio.to_thread(redis.restart)
        await publish_numbered(client, publish_url, range(1020, 1030))
        if not await wait_until_heard(room, 1029, 15):
            raise TimeoutError("the messages after the outage did not reach every listener")
        results = [
            tally([n for n in listener.numbers() if n >= 1000], range(1000, 1030))
            for listener in room
        ]
        return OutageRun(refused, first_line, results)
