"""Two runs on a broadcast room where nothing breaks but the design: lesson 09's first proofs.

`in_memory_room` publishes through nginx to listeners spread over two workers and records
which worker took each publish: with an in-memory broker, each listener hears exactly its
own worker's share. `away_while_publishing` sends one listener away (its network drops)
while messages are published, then brings it back: with Redis pub/sub it has lost every
message published meanwhile, because pub/sub keeps nothing to resume from.

Both only need the room's URL (nginx in front of the workers); the faults that kill a
worker or take Redis away are course machinery (`server.course.fault_runs`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx2

from server.clients.listeners import (
    Listener,
    Tally,
    listening,
    tally,
    wait_until_heard,
    wait_until_received,
)
from server.clients.publisher import Published, publish_numbered


def room_client(connections: int = 100) -> httpx2.AsyncClient:
    """One client for a room's listeners and its publisher: long reads, enough connections."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(10, read=30), limits=httpx2.Limits(max_connections=connections)
    )


@dataclass(frozen=True)
class RoomRun:
    room: list[Listener]
    published_on: dict[str, set[int]]  # worker name -> the numbers published on it

    def heard_own_worker_only(self) -> bool:
        """Whether each listener got exactly what was published on its own worker."""
        return all(set(ls.numbers()) == self.published_on[ls.worker] for ls in self.room)

    def shares(self, messages: int) -> list[float]:
        """The share of the room's messages each listener received."""
        return [len(listener.numbers()) / messages for listener in self.room]


async def in_memory_room(url: str, listeners: int = 10, messages: int = 40) -> RoomRun:
    """`listeners` listeners and `messages` publishes, all through `url` (nginx)."""
    async with room_client() as client, listening(client, f"{url}/events", listeners) as room:
        published = await publish_numbered(client, f"{url}/publish", range(messages))
        on: dict[str, set[int]] = {}
        for p in published:
            on.setdefault(p.worker, set()).add(p.n)
        for listener in room:  # each waits for as many as its own worker got
            if not await wait_until_received([listener], len(on.get(listener.worker, ())), 10):
                raise TimeoutError(f"{listener.name} did not get its worker's messages")
        return RoomRun(room, on)


@dataclass(frozen=True)
class AwayRun:
    everyone: list[Tally]  # each listener, while all were connected (30 messages)
    sent_while_away: int  # messages published while one listener was away
    away: Tally  # that listener, over the whole run


async def away_while_publishing(
    url: str, away_for: float = 2.0, listeners: int = 10, before: int = 30
) -> AwayRun:
    """`before` messages to everyone; then one listener away for `away_for` seconds while
    messages go out every 50 ms; then it comes back, and ten more reach everyone."""
    publish_url = f"{url}/publish"
    async with room_client() as client, listening(client, f"{url}/events", listeners) as room:
        await publish_numbered(client, publish_url, range(before))
        if not await wait_until_received(room, before, 10):
            raise TimeoutError("the connected listeners did not all get the first messages")
        everyone = [tally(listener.numbers(), range(before)) for listener in room]

        away = room[0]
        await away.leave()  # its network drops
        left, while_away, n = time.perf_counter(), list[Published](), before
        while time.perf_counter() - left < away_for:
            await publish_numbered(client, publish_url, [n], into=while_away)
            n += 1
            await asyncio.sleep(0.05)
        await away.come_back()
        await publish_numbered(client, publish_url, range(n, n + 10))
        if not await wait_until_heard(room, n + 9, 10):
            raise TimeoutError("the last message did not reach every listener")
        return AwayRun(everyone, len(while_away), tally(away.numbers(), range(n + 10)))
