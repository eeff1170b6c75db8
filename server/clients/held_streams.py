"""What open streams do to every other request: the measurements behind lesson 07's "wall".

A server answers a plain page at once when it has a free worker. Under WSGI each open stream
holds a thread, so with all threads streaming the next request, *any* request, waits; under
ASGI an open stream holds no thread. The functions here open streams, wait until they are
really open (their first event has arrived: nothing left to chance), and time a plain request
while they stay open. `all_at_once` times requests sent together: if a server ran them one
after the other, the total is their sum; if side by side, about the slowest one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx2

T = TypeVar("T")
COUNTDOWN = "/countdown?start=2&interval=0.4"  # about 0.8 s: long enough to hold a thread


async def _hold(client: httpx2.AsyncClient, url: str, opened: asyncio.Semaphore) -> None:
    """Read the stream at `url` to its end, releasing `opened` when its first bytes arrive."""
    async with client.stream("GET", url) as response:
        chunks = response.aiter_bytes()
        await anext(chunks)  # the first event: this stream holds its worker now
        opened.release()
        async for _ in chunks:
            pass


async def plain_wait(base: str, streams: int, threads: int = 4, path: str = COUNTDOWN) -> float:
    """Seconds `GET base/` takes while `streams` streams at `path` are open or queued.

    It waits until `min(streams, threads)` of them have sent their first event (the rest
    queue behind them), then times the page, then reads every stream to its end.
    """
    opened = asyncio.Semaphore(0)
    limits = httpx2.Limits(max_connections=streams + 10)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
        holders = [asyncio.create_task(_hold(client, base + path, opened)) for _ in range(streams)]
        for _ in range(min(streams, threads)):
            await opened.acquire()
        start = time.perf_counter()
        (await client.get(f"{base}/")).raise_for_status()
        waited = time.perf_counter() - start
        await asyncio.gather(*holders)
    return waited


async def plain_latencies(base: str, n: int = 50, path: str = "/") -> list[float]:
    """Seconds each of `n` plain requests took, one after the other, on one connection."""
    times = []
    async with httpx2.AsyncClient(timeout=30) as client:
        for _ in range(n):
            start = time.perf_counter()
            (await client.get(base + path)).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


async def with_streams_open(
    base: str,
    streams: int,
    measure: Callable[[], Awaitable[T]],
    path: str = "/events?interval=5",
) -> T:
    """Run `measure()` while `streams` endless streams at `path` are open; then close them."""
    opened = asyncio.Semaphore(0)
    limits = httpx2.Limits(max_connections=streams + 10)
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        holders = [asyncio.create_task(_hold(client, base + path, opened)) for _ in range(streams)]
        try:
            for _ in range(streams):
                await opened.acquire()
            return await measure()
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)


async def all_at_once(urls: Sequence[str]) -> tuple[float, list[httpx2.Response]]:
    """Send a GET to each of `urls` at the same moment; seconds until the last answered."""
    limits = httpx2.Limits(max_connections=len(urls))
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(*(client.get(url) for url in urls))
        took = time.perf_counter() - start
    for response in responses:
        response.raise_for_status()
    return took, list(responses)
