"""One client stops reading while four others read: is it dropped, and does anyone else wait?

A client that stops reading keeps its connection open. The server's writes pile up in the
kernel buffers on the way (worker, nginx, the client's receive window); once they are full,
the worker's next write to it waits. The broadcast app has two defences: the hub drops a
client a whole queue behind, and the send deadline ends a response whose write waited too
long. `slow_client_run` fills the room's Redis stream with large messages (so the buffers
fill in seconds, not hours), watches the workers' own `/stats` until one reports the stalled
stream ended, and records every healthy listener's delivery delay, so the lesson can compare
the delay before the stall with the delay while a write to the stalled client waited.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from server.clients.listeners import listening, read_to_end, stalled_stream, wait_until_received
from server.clients.measure import percentile
from server.clients.room_runs import room_client
from server.fanout.streams import StreamsBroker


async def fill(redis_url: str, count: int, size: int = 30_000, key: str = "room") -> None:
    """XADD `count` messages of about `size` bytes straight into the room's stream, in
    bursts of five every 20 ms (a producer that writes to Redis itself)."""
    producer = StreamsBroker(redis_url, key=key, maxlen=500)
    try:
        for n in range(count):
            await producer.publish(json.dumps({"n": n, "t": time.time(), "pad": "x" * size}))
            if n % 5 == 4:
                await asyncio.sleep(0.02)
    finally:
        await producer.stop()


def stats_of(worker_urls: Sequence[str]) -> list[dict[str, Any]]:
    """Each worker's own /stats."""
    return [httpx2.get(f"{url}/stats").json() for url in worker_urls]


# Messages numbered below this went out before 3 MB had been sent: under half of what the
# kernel buffers between a worker, nginx and a client that reads nothing hold on loopback
# (about 8 MB here), so no write to the stalled client can have waited yet.
SURELY_BUFFERED = 100


@dataclass(frozen=True)
class Delivery:
    n: int  # the message's number
    t: float  # its publish time, seconds since the start
    delay: float  # from its publish time to its arrival at a healthy listener


@dataclass(frozen=True)
class SlowClientRun:
    deliveries: list[Delivery]  # every message to every healthy listener
    dropped_after: float | None  # seconds from the start until a worker ended the stalled one
    filled_after: float  # seconds from the start until the last message was published
    stalled_bytes: int  # what the stalled client had been sent (the buffers on the way)
    closed: bool  # whether the server closed its connection
    send_timeout: float

    def dropped_while_publishing(self) -> bool:
        """Whether the stalled client was dropped while messages were still being published
        (or within the send deadline of the last one): the room did not have to go quiet."""
        return self.dropped_after is not None and self.dropped_after < (
            self.filled_after + self.send_timeout + 1  # + the polling's slack
        )

    @property
    def window(self) -> tuple[float, float]:
        """The `send_timeout` seconds before the drop: a write to the stalled client was
        waiting then (the send deadline ends a response that long after such a write), or
        its queue was filling up because its stream was stuck on one."""
        assert self.dropped_after is not None
        return max(0.0, self.dropped_after - self.send_timeout), self.dropped_after

    def p99(self) -> dict[str, float]:
        """Healthy listeners' delivery delay p99: while the first messages surely fit in the
        buffers, and in the window before the drop (later messages only)."""
        start, end = self.window
        early = [d.delay for d in self.deliveries if d.n < SURELY_BUFFERED]
        late = [d.delay for d in self.deliveries if d.n >= SURELY_BUFFERED and start <= d.t < end]
        return {"before": percentile(early, 99), "before the drop": percentile(late, 99)}


async def slow_client_run(
    url: str,
    worker_urls: Sequence[str],
    redis_url: str,
    *,
    count: int = 450,
    send_timeout: float = 2.0,
    give_up: float = 30.0,
) -> SlowClientRun:
    """Four listeners and one stalled client on `url` (nginx); `count` messages of 30 KB."""
    async with room_client() as client, listening(client, f"{url}/events", 4) as room:
        with stalled_stream(f"{url}/events") as sock:
            stalled_before = _stalled(await asyncio.to_thread(stats_of, worker_urls))
            start, dropped_after = time.time(), None
            filling = asyncio.create_task(_timed(fill(redis_url, count)))
            while dropped_after is None and time.time() - start < give_up:
                stats = await asyncio.to_thread(stats_of, worker_urls)
                if _stalled(stats) > stalled_before:
                    dropped_after = time.time() - start
                elif filling.done() and time.time() > filling.result() + 5 * send_timeout:
                    # Everything was published five send deadlines ago: it was not dropped.
                    # (Two seconds of margin were too few on a loaded machine: a drop counted
                    # late read as no drop.)
                    break
                await asyncio.sleep(0.1)  # the workers' own count, polled
            filled_after = await filling - start
            if not await wait_until_received(room, count, 30):
                raise TimeoutError("the healthy listeners did not get every message")
            got, closed = await asyncio.to_thread(read_to_end, sock)
    deliveries = [
        Delivery(r.data["n"], r.data["t"] - start, r.at - r.data["t"])
        for listener in room
        for r in listener.received
    ]
    return SlowClientRun(deliveries, dropped_after, filled_after, len(got), closed, send_timeout)


def _stalled(stats: list[dict[str, Any]]) -> int:
    """Streams the workers ended because their client stopped reading, so far."""
    return sum(int(s.get("events", {}).get("stalled", 0)) for s in stats)


async def _timed(work: Awaitable[None]) -> float:
    """Await `work`; the time.time() it finished."""
    await work
    return time.time()
